//! `berth agent`: joins a server as k3s agents do and runs a kubelet, or many sim nodes. With
//! `--server URL --token K10...` it fetches the CA from the unauthenticated `GET /cacerts`, checks
//! it against the hash in the token before trusting it, then talks to the server with the token's
//! secret as its bearer token (a node identity). Without `--server` it uses the kubeconfig.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use berth_apiserver::node_token::{CACERTS_PATH, NodeToken};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::cli::GlobalArgs;

/// Sim nodes (kwok-like fake nodes), for `berth agent` and `berth server`.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Run this many simulated nodes (no containers: pods go Running at once) instead of a kubelet.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub sim_nodes: usize,
    /// Names of the sim nodes are PREFIX0, PREFIX1, ...
    #[arg(long, value_name = "PREFIX", default_value = "sim-")]
    pub sim_node_prefix: String,
    /// CPU capacity of each sim node.
    #[arg(long, value_name = "QUANTITY", default_value = "32")]
    pub sim_cpu: String,
    /// Memory capacity of each sim node.
    #[arg(long, value_name = "QUANTITY", default_value = "256Gi")]
    pub sim_memory: String,
    /// Pod capacity of each sim node.
    #[arg(long, value_name = "N", default_value = "110")]
    pub sim_pods: String,
    /// The range the sim nodes' pod CIDRs (one /24 each) come from.
    #[arg(long, value_name = "CIDR", default_value = "10.64.0.0/10")]
    pub sim_pod_cidr: String,
}

impl SimArgs {
    /// The sim runtime's configuration.
    pub fn config(&self) -> berth_agent::sim::SimConfig {
        berth_agent::sim::SimConfig {
            nodes: self.sim_nodes,
            prefix: self.sim_node_prefix.clone(),
            cpu: self.sim_cpu.clone(),
            memory: self.sim_memory.clone(),
            pods: self.sim_pods.clone(),
            pod_cidr: self.sim_pod_cidr.clone(),
            ..Default::default()
        }
    }
}

/// `berth agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The server to join, e.g. https://10.0.0.1:6443 [default: the kubeconfig's server].
    #[arg(long, env = "BERTH_URL", value_name = "URL")]
    pub server: Option<String>,
    /// The join token (DATA_DIR/server/token on the server): K10<ca hash>::server:<secret>.
    #[arg(long, env = "BERTH_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Read the join token from this file.
    #[arg(long, value_name = "PATH", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// Folder to hold state (the kubelet's is DATA_DIR/agent) [default: as for berth server].
    #[arg(long, short = 'd', value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub kubelet: super::kubelet_args::KubeletArgs,
    /// The cluster DNS address written into ClusterFirst pods' resolv.conf [default: the 10th
    /// address of --service-cidr, the server's kube-dns Service, e.g. 10.43.0.10].
    #[arg(long, value_name = "IP")]
    pub cluster_dns: Option<std::net::IpAddr>,
    /// The cluster domain of the pods' DNS search list.
    #[arg(long, default_value = "cluster.local", value_name = "DOMAIN")]
    pub cluster_domain: String,
    #[command(flatten)]
    pub proxy: super::proxy::AgentProxyArgs,
    #[command(flatten)]
    pub sim: SimArgs,
}

/// Why joining failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(
        "the CA served by {server} does not match the hash in the join token (wrong server, or a man in the middle)"
    )]
    CaMismatch { server: String },
    #[error("--server needs --token or --token-file")]
    NoToken,
    #[error("the CA from {server} contains no certificate")]
    NoCertificate { server: String },
}

/// The token from `--token` or `--token-file`.
fn token(args: &AgentArgs) -> anyhow::Result<NodeToken> {
    let text = match (&args.token, &args.token_file) {
        (Some(t), _) => t.clone(),
        (None, Some(path)) => {
            std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))?
        }
        (None, None) => return Err(JoinError::NoToken.into()),
    };
    Ok(NodeToken::parse(&text)?)
}

/// Fetches the CA without trusting the server yet, and checks it against the token.
pub async fn fetch_ca(server: &str, token: &NodeToken) -> anyhow::Result<String> {
    let uri: http::Uri = server.parse().with_context(|| format!("invalid --server {server:?}"))?;
    let mut config = kube::Config::new(uri);
    // Nothing sent here is secret and nothing received is used before its hash is checked.
    config.accept_invalid_certs = true;
    let client = kube::Client::try_from(config).context("failed to build a client")?;
    let request = http::Request::get(CACERTS_PATH).body(Vec::new()).context("failed to build the request")?;
    let pem = client.request_text(request).await.with_context(|| format!("failed to fetch {server}{CACERTS_PATH}"))?;
    if !token.matches_ca(&pem) {
        return Err(JoinError::CaMismatch { server: server.to_string() }.into());
    }
    Ok(pem)
}

/// A client for `server` that trusts only `ca_pem` and authenticates with the token's secret.
pub fn join_client(server: &str, ca_pem: &str, token: &NodeToken) -> anyhow::Result<kube::Client> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let uri: http::Uri = server.parse().with_context(|| format!("invalid --server {server:?}"))?;
    let certs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .context("failed to parse the CA")?;
    if certs.is_empty() {
        return Err(JoinError::NoCertificate { server: server.to_string() }.into());
    }
    let mut config = kube::Config::new(uri);
    config.root_cert = Some(certs);
    config.auth_info = serde_json::from_value(serde_json::json!({ "token": token.secret }))
        .context("failed to set the bearer token")?;
    kube::Client::try_from(config).context("failed to build a client")
}

/// The kubelet's configuration from the flags.
fn kubelet_config(args: &AgentArgs) -> anyhow::Result<berth_agent::kubelet::KubeletConfig> {
    let data_dir = args.data_dir.clone().unwrap_or_else(super::server::default_data_dir);
    let mut config = args.kubelet.config(&data_dir)?;
    config.cluster_dns = Some(match args.cluster_dns {
        Some(ip) => ip,
        None => super::dns::tenth_address(&args.proxy.service_cidr)?,
    });
    config.cluster_domain = args.cluster_domain.clone();
    Ok(config)
}

/// Resolves on the first SIGINT or SIGTERM (handlers registered before this returns).
fn shutdown_on_signal(cancel: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("failed to install a SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("failed to install a SIGTERM handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        cancel.cancel();
    });
    Ok(())
}

pub async fn run(global: &GlobalArgs, args: AgentArgs) -> anyhow::Result<ExitCode> {
    let cancel = CancellationToken::new();
    shutdown_on_signal(cancel.clone())?;
    let (client, url, joined_ca) = match &args.server {
        Some(server) => {
            let token = token(&args)?;
            let ca = fetch_ca(server, &token).await?;
            (join_client(server, &ca, &token)?, server.clone(), Some(ca))
        }
        None => {
            let conn = crate::kubeconfig::connect(global).await?;
            (conn.client, conn.cluster_url, None)
        }
    };
    if args.sim.sim_nodes > 0 {
        let config = args.sim.config();
        let handle = berth_agent::sim::start(client, config, cancel.child_token())
            .await
            .context("failed to start the sim nodes")?;
        ready(&format!("berth agent running {} sim nodes against {url}", handle.nodes.len()))?;
        handle.join().await;
        return Ok(ExitCode::SUCCESS);
    }
    let mut config = kubelet_config(&args)?;
    if let Some(ca) = &joined_ca {
        // The kubelet server accepts the apiserver's client certificates, signed by this CA.
        let path = config.data_dir.join("server-ca.crt");
        std::fs::create_dir_all(&config.data_dir)
            .and_then(|()| std::fs::write(&path, ca))
            .with_context(|| format!("failed to write {}", path.display()))?;
        config.client_ca_file = Some(path);
    }
    tracing::info!(server = %url, node = %config.node_name, "starting the kubelet");
    ready(&format!("berth agent starting node {} against {url}", config.node_name))?;
    let proxy = super::proxy::spawn_for_agent(&args.proxy, &config, client.clone(), &cancel)?;
    berth_agent::kubelet::run(client, config, cancel.child_token()).await.context("the kubelet failed")?;
    super::proxy::join(proxy).await;
    Ok(ExitCode::SUCCESS)
}

fn ready(line: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn agent(args: &[&str]) -> AgentArgs {
        let cli = Cli::try_parse_from(["berth", "agent"].iter().chain(args)).expect("flags");
        let Command::Agent(agent) = cli.command else { panic!("agent") };
        *agent
    }

    #[test]
    fn pods_name_the_kube_dns_service_by_default_as_on_the_server() {
        let dns = |args: &[&str]| kubelet_config(&agent(args)).expect("config").cluster_dns;
        assert_eq!(dns(&[]), Some("10.43.0.10".parse().unwrap()));
        assert_eq!(dns(&["--service-cidr", "10.96.0.0/12"]), Some("10.96.0.10".parse().unwrap()));
        assert_eq!(dns(&["--cluster-dns", "10.0.0.53"]), Some("10.0.0.53".parse().unwrap()));
    }
}
