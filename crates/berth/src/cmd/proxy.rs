//! The service proxy in `berth server` and `berth agent`: its flags (k3s' `--disable-kube-proxy`,
//! kube-proxy's `--nodeport-addresses`, cleanup and naming) and the `berth_proxy::ProxyConfig`
//! built from them. Runs as root only (nftables, routes).

use std::net::{IpAddr, Ipv4Addr};

use anyhow::Context;
use berth_proxy::{BlackholeRoute, ProxyConfig, RouteLocalnet};
use clap::Args;
use tokio_util::sync::CancellationToken;

/// Flags of the service proxy, shared by `berth server` and `berth agent`.
#[derive(Debug, Clone, Args)]
pub struct ProxyArgs {
    /// Do not run the service proxy (nftables rules for Services), as k3s' flag.
    #[arg(long)]
    pub disable_kube_proxy: bool,
    /// Remove the proxy's nftables table and blackhole route on shutdown (they are kept by
    /// default, so Services keep working while berth restarts).
    #[arg(long)]
    pub proxy_cleanup_on_exit: bool,
    /// The nftables table (family inet) the proxy owns and updates atomically on every sync.
    #[arg(long, default_value = "berth", value_name = "NAME")]
    pub proxy_table: String,
    /// Addresses that accept NodePorts besides 127.0.0.1 (repeat or comma-separate)
    /// [default: every local address].
    #[arg(long, value_name = "IP", value_delimiter = ',')]
    pub nodeport_addresses: Vec<Ipv4Addr>,
    /// Interfaces to set route_localnet=1 on, for NodePorts at 127.0.0.1 [default: all]; `none`
    /// leaves the sysctl alone.
    #[arg(long, value_name = "IFACE", value_delimiter = ',')]
    pub proxy_route_localnet: Vec<String>,
    /// The routing table holding the service CIDR's blackhole route.
    #[arg(long, default_value_t = BlackholeRoute::default().table, value_name = "ID")]
    pub proxy_route_table: u32,
}

/// The service and cluster CIDRs for `berth agent` (the server has its own flags for both).
#[derive(Debug, Clone, Args)]
pub struct AgentProxyArgs {
    #[command(flatten)]
    pub proxy: ProxyArgs,
    /// The cluster's service CIDR (blackholed, and where unknown ClusterIPs are refused).
    #[arg(long, default_value = "10.43.0.0/16", value_name = "CIDR")]
    pub service_cidr: String,
    /// The cluster's pod CIDR.
    #[arg(long, default_value = "10.42.0.0/16", value_name = "CIDR")]
    pub cluster_cidr: String,
}

/// The proxy's configuration, or `None` when it is disabled or cannot run (not root).
pub fn config(
    args: &ProxyArgs,
    node_name: &str,
    node_ip: IpAddr,
    service_cidr: &str,
    cluster_cidr: &str,
) -> anyhow::Result<Option<ProxyConfig>> {
    if args.disable_kube_proxy {
        return Ok(None);
    }
    if !is_root() {
        tracing::warn!("the service proxy needs root (nftables); Services get no rules on this node");
        return Ok(None);
    }
    let mut config = ProxyConfig::new(node_name);
    config.service_cidr = service_cidr.parse().with_context(|| format!("invalid --service-cidr {service_cidr}"))?;
    config.cluster_cidr = Some(cluster_cidr.parse().with_context(|| format!("invalid --cluster-cidr {cluster_cidr}"))?);
    config.table = args.proxy_table.clone();
    config.cleanup_on_exit = args.proxy_cleanup_on_exit;
    config.node_ips = args.nodeport_addresses.clone();
    if let (IpAddr::V4(ip), false) = (node_ip, config.node_ips.is_empty()) {
        config.node_ips.push(ip);
    }
    config.route_localnet = match args.proxy_route_localnet.as_slice() {
        [] => RouteLocalnet::All,
        [none] if none == "none" => RouteLocalnet::Off,
        list => RouteLocalnet::Interfaces(list.to_vec()),
    };
    config.blackhole = Some(BlackholeRoute { table: args.proxy_route_table, ..BlackholeRoute::default() });
    Ok(Some(config))
}

/// Runs the proxy until `cancel` fires.
pub async fn run(client: kube::Client, config: ProxyConfig, cancel: CancellationToken) -> anyhow::Result<()> {
    berth_proxy::run(client, config, cancel).await.context("the service proxy failed")
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// Starts the proxy of `berth agent` beside its kubelet, or nothing when disabled. A proxy that
/// fails cancels `cancel`, so the agent stops rather than run a node without Services.
pub fn spawn_for_agent(
    args: &AgentProxyArgs,
    kubelet: &berth_agent::kubelet::KubeletConfig,
    client: kube::Client,
    cancel: &CancellationToken,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(config) =
        config(&args.proxy, &kubelet.node_name, kubelet.node_ip, &args.service_cidr, &args.cluster_cidr)?
    else {
        return Ok(None);
    };
    let (token, parent) = (cancel.child_token(), cancel.clone());
    Ok(Some(tokio::spawn(async move {
        if let Err(err) = run(client, config, token).await {
            tracing::error!(component = "proxy", "{err:#}");
            parent.cancel();
        }
    })))
}

/// Waits for a proxy started by [`spawn_for_agent`] to finish (its cleanup, after cancellation).
pub async fn join(handle: Option<tokio::task::JoinHandle<()>>) {
    if let Some(handle) = handle
        && let Err(err) = handle.await
    {
        tracing::error!(component = "proxy", error = %err, "the proxy task panicked");
    }
}
