//! One module per verb; `run` dispatches the parsed command line, and `Ctx` carries what every
//! client verb needs (the API, namespace scope, lazily fetched discovery).

pub mod agent;
pub mod api_resources;
pub mod apply;
pub mod cluster_info;
mod components;
pub mod create;
pub mod delete;
pub mod describe;
pub mod dns;
pub mod get;
pub mod image;
pub mod kubelet_args;
pub mod proxy;
pub mod server;
pub mod version;
// The workload verbs (issue 4).
pub mod annotate;
pub mod cordon;
pub mod drain;
pub mod expose;
pub mod label;
pub mod rollout;
pub mod scale;
pub mod set_image;
pub mod taint;
// Autoscaling and resource metrics (issue 6).
pub mod autoscale;
pub mod top;
// Logs, exec and port-forward through the kubelet (issue 3).
pub mod exec;
pub mod logs;
pub mod port_forward;

use std::process::ExitCode;

use tokio::sync::OnceCell;

use crate::api::Api;
use crate::cli::{Cli, Command, GlobalArgs};
use crate::discovery::{Discovery, ResourceInfo};

/// What client verbs share.
pub struct Ctx {
    pub api: Api,
    /// `-n`, else the kubeconfig context's namespace, else `default`.
    pub namespace: String,
    pub all_namespaces: bool,
    pub cluster_url: String,
    /// Whether `-n` was given (manifests naming another namespace are then refused).
    pub explicit_namespace: bool,
    /// `--request-timeout` (zero: none).
    pub request_timeout: std::time::Duration,
    discovery: OnceCell<Discovery>,
}

impl Ctx {
    pub async fn connect(global: &GlobalArgs) -> anyhow::Result<Ctx> {
        let conn = crate::kubeconfig::connect(global).await?;
        Ok(Ctx {
            api: Api { client: conn.client },
            namespace: conn.namespace,
            all_namespaces: global.all_namespaces,
            cluster_url: conn.cluster_url,
            explicit_namespace: global.namespace.is_some(),
            request_timeout: global.request_timeout,
            discovery: OnceCell::new(),
        })
    }

    pub async fn discovery(&self) -> anyhow::Result<&Discovery> {
        self.discovery.get_or_try_init(|| Discovery::run(&self.api.client)).await
    }

    /// The namespace to address for a resource: None for cluster-scoped ones and with -A.
    pub fn scope(&self, res: &ResourceInfo) -> Option<&str> {
        (res.namespaced && !self.all_namespaces).then_some(self.namespace.as_str())
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Image(cmd) = &cli.command {
        return image::run(cmd);
    }
    if let Command::Server(args) = cli.command {
        return server::run(*args).await;
    }
    if let Command::Agent(args) = cli.command {
        return agent::run(&cli.global, *args).await;
    }
    if let Command::Version(args) = &cli.command
        && args.client
    {
        return version::print_client();
    }
    let ctx = Ctx::connect(&cli.global).await?;
    let result = match cli.command {
        Command::Server(_) | Command::Agent(_) | Command::Image(_) => unreachable!("handled above"),
        Command::Get(args) => get::run(&ctx, args).await,
        Command::Describe(args) => describe::run(&ctx, args).await,
        Command::Apply(args) => apply::run(&ctx, args).await,
        Command::Create(args) => create::run(&ctx, args).await,
        Command::Delete(args) => delete::run(&ctx, args).await,
        Command::ApiResources(args) => api_resources::run(&ctx, args).await,
        Command::Version(_) => version::run(&ctx).await,
        Command::ClusterInfo => cluster_info::run(&ctx).await,
        Command::Scale(args) => scale::run(&ctx, args).await,
        Command::Expose(args) => expose::run(&ctx, args).await,
        Command::Rollout(args) => rollout::run(&ctx, args).await,
        Command::Set(args) => set_image::run(&ctx, args).await,
        Command::Cordon(args) => cordon::run(&ctx, args, true).await,
        Command::Uncordon(args) => cordon::run(&ctx, args, false).await,
        Command::Drain(args) => drain::run(&ctx, args).await,
        Command::Taint(args) => taint::run(&ctx, args).await,
        Command::Label(args) => label::run(&ctx, args).await,
        Command::Annotate(args) => annotate::run(&ctx, args).await,
        Command::Autoscale(args) => autoscale::run(&ctx, args).await,
        Command::Top(args) => top::run(&ctx, args).await,
        Command::Logs(args) => logs::run(&ctx, args).await,
        Command::Exec(args) => exec::run(&ctx, args).await,
        Command::PortForward(args) => port_forward::run(&ctx, args).await,
    };
    result.map_err(|err| crate::errors::connection_refused(err, &ctx.cluster_url))
}

/// kubectl's `TYPE[,TYPE] [NAME...]` or `TYPE/NAME...` arguments, as (type, names) pairs.
pub fn parse_targets(args: &[String]) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let Some(first) = args.first() else { return Ok(Vec::new()) };
    if args.iter().any(|a| a.contains('/')) {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for arg in args {
            let Some((ty, name)) = arg.split_once('/').filter(|(t, n)| !t.is_empty() && !n.is_empty()) else {
                anyhow::bail!(
                    "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'berth get resource/<resource_name>' instead of 'berth get resource resource/<resource_name>'"
                );
            };
            match out.last_mut() {
                Some((t, names)) if t == ty => names.push(name.to_string()),
                _ => out.push((ty.to_string(), vec![name.to_string()])),
            }
        }
        return Ok(out);
    }
    let names: Vec<String> = args[1..].to_vec();
    Ok(first.split(',').filter(|t| !t.is_empty()).map(|t| (t.to_string(), names.clone())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn targets_in_type_names_form() {
        let got = parse_targets(&s(&["deploy,svc", "web", "db"])).unwrap();
        assert_eq!(got, vec![("deploy".into(), s(&["web", "db"])), ("svc".into(), s(&["web", "db"]))]);
    }

    #[test]
    fn targets_in_slash_form() {
        let got = parse_targets(&s(&["pod/a", "pod/b", "svc/c"])).unwrap();
        assert_eq!(got, vec![("pod".into(), s(&["a", "b"])), ("svc".into(), s(&["c"]))]);
        assert!(parse_targets(&s(&["pod", "svc/c"])).is_err());
    }
}
