//! `berth logs POD [-c C] [-f] [--tail N] [--since 10s] [--timestamps] [--previous]`: the
//! container's log through the apiserver's `pods/log` (which the kubelet serves), as kubectl.

use std::process::ExitCode;

use clap::Args;
use futures::AsyncBufReadExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use tokio::io::AsyncWriteExt;

use super::Ctx;

/// `berth logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The pod (NAME or pod/NAME).
    pub pod: String,
    /// The container (needed when the pod has several).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Stream new lines until the container ends.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Lines of recent log to show (-1: all).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub tail: i64,
    /// Only lines newer than this duration (e.g. 10s, 5m, 1h).
    #[arg(long, value_parser = crate::cli::parse_duration)]
    pub since: Option<std::time::Duration>,
    /// Prefix each line with its RFC 3339 timestamp.
    #[arg(long)]
    pub timestamps: bool,
    /// The previous, terminated instance of the container.
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Stop after this many bytes.
    #[arg(long)]
    pub limit_bytes: Option<i64>,
}

/// The pod name of `NAME`, `pod/NAME` or `pods/NAME`.
pub fn pod_name(arg: &str) -> anyhow::Result<&str> {
    match arg.split_once('/') {
        None => Ok(arg),
        Some(("pod" | "pods" | "po", name)) if !name.is_empty() => Ok(name),
        Some((kind, _)) => anyhow::bail!("cannot get logs of {kind:?}: only pods have logs here"),
    }
}

/// The kube parameters of the flags.
pub fn log_params(args: &LogsArgs) -> LogParams {
    LogParams {
        container: args.container.clone(),
        follow: args.follow,
        tail_lines: (args.tail >= 0).then_some(args.tail),
        since_seconds: args.since.map(|d| i64::try_from(d.as_secs().max(1)).unwrap_or(i64::MAX)),
        timestamps: args.timestamps,
        previous: args.previous,
        limit_bytes: args.limit_bytes,
        ..Default::default()
    }
}

pub async fn run(ctx: &Ctx, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let name = pod_name(&args.pod)?;
    let pods: kube::Api<Pod> = kube::Api::namespaced(ctx.api.client.clone(), &ctx.namespace);
    let reader = pods.log_stream(name, &log_params(&args)).await.map_err(crate::errors::from_kube)?;
    let mut lines = reader.lines();
    let mut stdout = tokio::io::stdout();
    use futures::TryStreamExt;
    while let Some(line) = lines.try_next().await? {
        stdout.write_all(line.as_bytes()).await?;
        stdout.write_all(b"\n").await?;
        stdout.flush().await?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_arguments_accept_the_kind_prefix() {
        assert_eq!(pod_name("web").unwrap(), "web");
        assert_eq!(pod_name("pod/web").unwrap(), "web");
        assert!(pod_name("deploy/web").is_err());
    }

    #[test]
    fn flags_map_to_log_parameters() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            a: LogsArgs,
        }
        let t = T::parse_from(["t", "web", "-c", "main", "-f", "--tail", "5", "--since", "1m", "--timestamps", "-p"]);
        let p = log_params(&t.a);
        assert_eq!(p.container.as_deref(), Some("main"));
        assert!(p.follow && p.timestamps && p.previous);
        assert_eq!((p.tail_lines, p.since_seconds), (Some(5), Some(60)));
        let t = T::parse_from(["t", "web"]);
        assert_eq!(log_params(&t.a).tail_lines, None);
    }
}
