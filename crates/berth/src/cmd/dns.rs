//! Cluster DNS in `berth server`: its flags (k3s' `--cluster-dns`, `--cluster-domain`,
//! `--disable coredns`), the `kube-system/kube-dns` Service, and the node's DNS server
//! (`berth_dns`) listening on the node IP.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use berth_dns::{DnsConfig, Upstreams};
use clap::Args;
use tokio_util::sync::CancellationToken;

/// Flags of the cluster DNS.
#[derive(Debug, Clone, Args)]
pub struct DnsArgs {
    /// The cluster IP of the DNS Service (kube-system/kube-dns) that pods' resolv.conf names
    /// [default: the 10th address of --service-cidr, e.g. 10.43.0.10].
    #[arg(long, value_name = "IP")]
    pub cluster_dns: Option<IpAddr>,
    /// The cluster domain.
    #[arg(long, default_value = berth_dns::DEFAULT_CLUSTER_DOMAIN, value_name = "DOMAIN")]
    pub cluster_domain: String,
    /// Do not run the cluster DNS server (also `--disable coredns`, as k3s). Pods still get
    /// --cluster-dns in their resolv.conf.
    #[arg(long)]
    pub disable_cluster_dns: bool,
    /// The port the node's DNS server listens on (UDP and TCP); the kube-dns Service forwards
    /// port 53 to it. 0 picks a free port.
    #[arg(long, default_value_t = 53, value_name = "PORT")]
    pub cluster_dns_port: u16,
    /// The address the node's DNS server listens on [default: --node-ip].
    #[arg(long, value_name = "IP")]
    pub cluster_dns_bind_address: Option<IpAddr>,
    /// Nameservers for names outside the cluster domain, `IP` or `IP:PORT` (repeat or
    /// comma-separate) [default: those of /etc/resolv.conf].
    #[arg(long, value_name = "IP[:PORT]", value_delimiter = ',', value_parser = parse_upstream)]
    pub cluster_dns_upstream: Vec<SocketAddr>,
}

fn parse_upstream(value: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    value.parse::<SocketAddr>().map_err(|_| format!("{value:?} is not an IP or IP:PORT"))
}

/// The 10th address of a CIDR, as k3s picks the cluster DNS IP (10.43.0.0/16 → 10.43.0.10).
pub fn tenth_address(cidr: &str) -> anyhow::Result<IpAddr> {
    let (base, _) = cidr.split_once('/').unwrap_or((cidr, ""));
    let base: IpAddr = base.trim().parse().with_context(|| format!("invalid --service-cidr {cidr}"))?;
    Ok(match base {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4).wrapping_add(10)).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6).wrapping_add(10)).into()),
    })
}

impl DnsArgs {
    /// The cluster DNS IP: the flag, else the 10th address of the service CIDR.
    pub fn cluster_dns_ip(&self, service_cidr: &str) -> anyhow::Result<IpAddr> {
        match self.cluster_dns {
            Some(ip) => Ok(ip),
            None => tenth_address(service_cidr),
        }
    }

    /// Whether the DNS server is off (`--disable-cluster-dns` or `--disable coredns`).
    pub fn disabled(&self, disable: &[String]) -> bool {
        self.disable_cluster_dns || disable.iter().any(|d| d == "coredns" || d == "dns")
    }

    /// The node's DNS server configuration.
    pub fn config(&self, node_name: &str, node_ip: IpAddr) -> DnsConfig {
        let ip = self.cluster_dns_bind_address.unwrap_or(node_ip);
        DnsConfig {
            listen: SocketAddr::new(ip, self.cluster_dns_port),
            cluster_domain: self.cluster_domain.clone(),
            upstreams: if self.cluster_dns_upstream.is_empty() {
                Upstreams::System
            } else {
                Upstreams::Servers(self.cluster_dns_upstream.clone())
            },
            node_name: Some(node_name.to_string()),
            advertise: None,
        }
    }
}

/// Creates the kube-dns Service, binds the node's DNS server and serves until `cancel` fires.
/// A port that cannot be bound (already in use, or 53 without root) is logged and leaves this
/// node without DNS rather than stopping the server.
pub async fn run(
    client: kube::Client,
    cluster_dns: IpAddr,
    config: DnsConfig,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    // Without the Service pods cannot reach DNS through its ClusterIP, but the node's server
    // still answers at its own address: log, and carry on.
    if let Err(err) = berth_dns::kube_dns::ensure_service(&client, cluster_dns).await {
        tracing::error!("{:#}", anyhow::Error::from(err));
    }
    let listen = config.listen;
    let server = match berth_dns::DnsServer::bind(config).await {
        Ok(server) => server,
        Err(err) => {
            tracing::error!(
                "cluster DNS not started: {:#} (pass --cluster-dns-port or --cluster-dns-bind-address, or --disable coredns)",
                anyhow::Error::from(err)
            );
            return Ok(());
        }
    };
    tracing::info!(%listen, %cluster_dns, "cluster DNS started");
    server.run(client, cancel).await.context("cluster DNS failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_dns_defaults_to_the_tenth_service_address() {
        assert_eq!(tenth_address("10.43.0.0/16").unwrap().to_string(), "10.43.0.10");
        assert_eq!(tenth_address("fd00:43::/112").unwrap().to_string(), "fd00:43::a");
        assert!(tenth_address("nonsense").is_err());
    }

    #[test]
    fn upstreams_take_an_ip_or_ip_and_port() {
        assert_eq!(parse_upstream("192.0.2.1").unwrap().to_string(), "192.0.2.1:53");
        assert_eq!(parse_upstream("127.0.0.1:5353").unwrap().to_string(), "127.0.0.1:5353");
        assert!(parse_upstream("example.com").is_err());
    }
}
