//! `berth exec POD [-c C] [-i] [-t] -- CMD...`: runs a command in a container through the
//! apiserver's `pods/exec` (WebSocket, v5/v4 channel protocol, served by the kubelet) and exits
//! with the command's exit code, as kubectl does.

use std::process::ExitCode;

use clap::Args;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::AttachParams;
use tokio::io::AsyncWriteExt;

use super::Ctx;
use super::logs::pod_name;
use crate::errors::PlainError;

/// `berth exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The pod (NAME or pod/NAME).
    pub pod: String,
    /// The command and its arguments (after `--`).
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
    /// The container (default: the pod's only or first container).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass stdin to the container.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Stdin is a TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
}

/// The exit code a finished exec's Status reports: 0 for Success, the `ExitCode` cause for
/// `NonZeroExitCode`, `None` for other failures (their message is the error).
pub fn exit_code(status: &Status) -> Result<i32, String> {
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    if status.reason.as_deref() == Some("NonZeroExitCode")
        && let Some(code) = status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
            .and_then(|c| c.message.as_deref()?.parse().ok())
    {
        return Ok(code);
    }
    Err(status.message.clone().unwrap_or_else(|| "command failed".into()))
}

pub async fn run(ctx: &Ctx, args: ExecArgs) -> anyhow::Result<ExitCode> {
    let name = pod_name(&args.pod)?;
    let pods: kube::Api<Pod> = kube::Api::namespaced(ctx.api.client.clone(), &ctx.namespace);
    let container = match args.container.clone() {
        Some(c) => Some(c),
        None => {
            let pod = pods.get(name).await.map_err(crate::errors::from_kube)?;
            let containers = pod.spec.map(|s| s.containers).unwrap_or_default();
            if containers.len() > 1 {
                eprintln!("Defaulted container \"{}\" out of: {}", containers[0].name, {
                    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
                    names.join(", ")
                });
            }
            containers.first().map(|c| c.name.clone())
        }
    };
    let params = AttachParams {
        container,
        stdin: args.stdin,
        stdout: true,
        stderr: !args.tty,
        tty: args.tty,
        ..Default::default()
    };
    let mut process = pods.exec(name, args.command.clone(), &params).await.map_err(crate::errors::from_kube)?;
    let status = process.take_status();
    let stdin_task = match (args.stdin, process.stdin()) {
        (true, Some(mut remote)) => Some(tokio::spawn(async move {
            let mut local = tokio::io::stdin();
            let _ = tokio::io::copy(&mut local, &mut remote).await;
            let _ = remote.shutdown().await;
        })),
        _ => None,
    };
    let out = process.stdout().map(|mut remote| {
        tokio::spawn(async move {
            let mut local = tokio::io::stdout();
            let _ = tokio::io::copy(&mut remote, &mut local).await;
            let _ = local.flush().await;
        })
    });
    let err = process.stderr().map(|mut remote| {
        tokio::spawn(async move {
            let mut local = tokio::io::stderr();
            let _ = tokio::io::copy(&mut remote, &mut local).await;
        })
    });
    let status = match status {
        Some(s) => s.await,
        None => None,
    };
    for task in [out, err].into_iter().flatten() {
        let _ = task.await;
    }
    if let Some(task) = stdin_task {
        task.abort();
    }
    let _ = process.join().await;
    match status.as_ref().map(exit_code) {
        Some(Ok(0)) | None => Ok(ExitCode::SUCCESS),
        Some(Ok(code)) => {
            eprintln!("command terminated with exit code {code}");
            Ok(ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)))
        }
        Some(Err(message)) => Err(anyhow::Error::new(PlainError(format!("error: {message}")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_carries_the_exit_code() {
        let ok: Status = serde_json::from_value(serde_json::json!({"metadata": {}, "status": "Success"})).unwrap();
        assert_eq!(exit_code(&ok), Ok(0));
        let failed: Status = serde_json::from_value(serde_json::json!({
            "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode", "message": "exit 3",
            "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}
        }))
        .unwrap();
        assert_eq!(exit_code(&failed), Ok(3));
        let other: Status = serde_json::from_value(serde_json::json!({
            "metadata": {}, "status": "Failure", "reason": "InternalError", "message": "no such container"
        }))
        .unwrap();
        assert_eq!(exit_code(&other), Err("no such container".to_string()));
    }
}
