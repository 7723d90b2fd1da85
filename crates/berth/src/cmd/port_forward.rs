//! `berth port-forward POD [LOCAL:]REMOTE...`: listens on 127.0.0.1:LOCAL and forwards each
//! connection through the apiserver's `pods/portforward` (WebSocket, served by the kubelet) to
//! REMOTE inside the pod, until interrupted.

use std::process::ExitCode;

use std::io::Write;

use clap::Args;
use k8s_openapi::api::core::v1::Pod;

use super::Ctx;
use super::logs::pod_name;

/// `berth port-forward`.
#[derive(Debug, Args)]
pub struct PortForwardArgs {
    /// The pod (NAME or pod/NAME).
    pub pod: String,
    /// Port pairs `LOCAL:REMOTE` (or `REMOTE`, the same locally; `:REMOTE`, any free local port).
    #[arg(required = true, value_name = "[LOCAL:]REMOTE")]
    pub ports: Vec<String>,
}

/// Parses `LOCAL:REMOTE`, `REMOTE` or `:REMOTE` into (local, remote); local 0 means any port.
pub fn parse_pair(text: &str) -> anyhow::Result<(u16, u16)> {
    let (local, remote) = match text.split_once(':') {
        Some((l, r)) => (if l.is_empty() { "0" } else { l }, r),
        None => (text, text),
    };
    let port = |s: &str| s.parse::<u16>().map_err(|_| anyhow::anyhow!("invalid port {s:?} in {text:?}"));
    let (local, remote) = (port(local)?, port(remote)?);
    if remote == 0 {
        anyhow::bail!("remote port must be > 0 in {text:?}");
    }
    Ok((local, remote))
}

pub async fn run(ctx: &Ctx, args: PortForwardArgs) -> anyhow::Result<ExitCode> {
    let name = pod_name(&args.pod)?.to_string();
    let pods: kube::Api<Pod> = kube::Api::namespaced(ctx.api.client.clone(), &ctx.namespace);
    pods.get(&name).await.map_err(crate::errors::from_kube)?;
    let mut tasks = Vec::new();
    for pair in &args.ports {
        let (local, remote) = parse_pair(pair)?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", local)).await?;
        println!("Forwarding from 127.0.0.1:{} -> {remote}", listener.local_addr()?.port());
        let pods = pods.clone();
        let name = name.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else { continue };
                let port = listener.local_addr().map(|a| a.port()).unwrap_or(local);
                // Not println!: a closed stdout must not end the forwarding.
                let _ = writeln!(std::io::stdout(), "Handling connection for {port}");
                let (pods, name) = (pods.clone(), name.clone());
                tokio::spawn(async move {
                    let mut forwarder = match pods.portforward(&name, &[remote]).await {
                        Ok(f) => f,
                        Err(e) => {
                            eprintln!("error: port-forward to {name}:{remote}: {e}");
                            return;
                        }
                    };
                    if let Some(mut upstream) = forwarder.take_stream(remote) {
                        let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
                    }
                    forwarder.abort();
                });
            }
        }));
    }
    tokio::signal::ctrl_c().await?;
    for t in tasks {
        t.abort();
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_pairs_parse_like_kubectl() {
        assert_eq!(parse_pair("8080:80").unwrap(), (8080, 80));
        assert_eq!(parse_pair("80").unwrap(), (80, 80));
        assert_eq!(parse_pair(":80").unwrap(), (0, 80));
        assert!(parse_pair("x:80").is_err());
        assert!(parse_pair("80:0").is_err());
    }
}
