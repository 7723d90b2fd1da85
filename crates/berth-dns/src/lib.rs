//! berth-dns: cluster DNS. Serves the `cluster.local` zone from Services and EndpointSlices
//! (watched through the API) with hickory, answers pod names from the name itself, and forwards
//! every other name to the host's resolvers. An API client like any other component; the only
//! sockets it opens are its listen address and the upstream nameservers.
//!
//! | module | what it does |
//! |---|---|
//! | [`zone`] | the zone snapshot and its answers (pure) |
//! | [`server`] | the hickory request handler and the UDP/TCP server |
//! | [`upstream`] | forwarding to the host's or explicit nameservers |
//! | [`watch`] | reflector stores of Services and EndpointSlices → zone rebuilds |
//! | [`kube_dns`] | the `kube-system/kube-dns` Service and each node's EndpointSlice |
#![forbid(unsafe_code)]

pub mod kube_dns;
pub mod server;
pub mod upstream;
pub mod watch;
pub mod zone;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio_util::sync::CancellationToken;

pub use server::{ClusterDnsHandler, DnsServer, ZoneCell};
pub use upstream::Upstreams;
pub use zone::{Answer, ClusterDomain, Zone, ZoneError};

/// The default cluster domain.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// Errors of the DNS server; each names what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error(transparent)]
    Zone(#[from] ZoneError),
    #[error("failed to bind the DNS server to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read the host's nameservers from /etc/resolv.conf")]
    SystemResolvConf(#[source] hickory_resolver::net::NetError),
    #[error("failed to build the forwarding resolver")]
    Resolver(#[source] hickory_resolver::net::NetError),
    #[error("the DNS server failed")]
    Serve(#[source] hickory_server::net::NetError),
    #[error("failed to {what} {name}")]
    Api {
        what: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Settings of one node's DNS server.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Where to listen (UDP and TCP): the node's InternalIP and port 53 in a cluster; port 0 picks
    /// a free port.
    pub listen: SocketAddr,
    /// The cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// Where names outside the cluster domain go.
    pub upstreams: Upstreams,
    /// The node whose kube-dns EndpointSlice this server keeps; `None` keeps none.
    pub node_name: Option<String>,
    /// The address put into the EndpointSlice; default: the listen address (which must then not
    /// be unspecified).
    pub advertise: Option<SocketAddr>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53),
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_string(),
            upstreams: Upstreams::System,
            node_name: None,
            advertise: None,
        }
    }
}

impl DnsServer {
    /// Serves the cluster zone from the API until `cancel` fires: watches Services and
    /// EndpointSlices and keeps this node's kube-dns EndpointSlice (when `node_name` is set).
    pub async fn run(self, client: kube::Client, cancel: CancellationToken) -> Result<(), DnsError> {
        let local = self.local_addr()?;
        let cancel = cancel.child_token();
        let watch = tokio::spawn(watch::sync_zone(client.clone(), self.domain().clone(), self.zone(), cancel.clone()));
        let slice = self.config().node_name.clone().map(|node| {
            let addr = self.config().advertise.unwrap_or(local);
            tokio::spawn(kube_dns::maintain_endpoint_slice(client.clone(), node, addr, cancel.clone()))
        });
        let result = self.serve(cancel.clone()).await;
        // A server that stopped on its own takes its helpers with it (a child token: the
        // caller's stays as it was).
        cancel.cancel();
        let _ = watch.await;
        if let Some(slice) = slice {
            let _ = slice.await;
        }
        result
    }
}

/// Binds `config.listen` and serves the cluster zone until `cancel` fires (see [`DnsServer::run`]).
pub async fn run(client: kube::Client, config: DnsConfig, cancel: CancellationToken) -> Result<(), DnsError> {
    DnsServer::bind(config).await?.run(client, cancel).await
}

/// An error and its sources on one line, for logs.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
