//! Forwarding of names outside the cluster zone: a hickory resolver over the host's nameservers
//! (from `/etc/resolv.conf`) or explicit ones. Touches the network only toward those servers.

use std::net::SocketAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::{Resolver, TokioResolver};

use crate::DnsError as Error;

/// Where names outside the cluster domain go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Upstreams {
    /// The nameservers of the host's `/etc/resolv.conf` (as CoreDNS's `forward . /etc/resolv.conf`).
    #[default]
    System,
    /// These servers, over UDP with TCP fallback.
    Servers(Vec<SocketAddr>),
    /// No forwarding: names outside the zone get SERVFAIL.
    None,
}

/// The result of forwarding one question.
#[derive(Debug, Clone)]
pub struct Forwarded {
    pub response_code: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
}

/// A forwarding resolver.
pub struct Upstream {
    resolver: TokioResolver,
}

impl Upstream {
    /// Builds the resolver; `None` for [`Upstreams::None`]. `exclude` (our own listen address) is
    /// dropped from the list so a host whose resolv.conf points at us cannot make a loop.
    pub fn new(upstreams: &Upstreams, exclude: SocketAddr) -> Result<Option<Upstream>, Error> {
        let servers: Vec<NameServerConfig> = match upstreams {
            Upstreams::None => return Ok(None),
            Upstreams::System => {
                let (config, _) = hickory_resolver::system_conf::read_system_conf().map_err(Error::SystemResolvConf)?;
                config
                    .name_servers
                    .into_iter()
                    .filter(|ns| !ns.connections.iter().any(|c| SocketAddr::new(ns.ip, c.port) == exclude))
                    .collect()
            }
            Upstreams::Servers(addrs) => addrs
                .iter()
                .filter(|addr| **addr != exclude)
                .map(|addr| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = addr.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = addr.port();
                    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
                })
                .collect(),
        };
        if servers.is_empty() {
            tracing::warn!("no upstream nameservers; names outside the cluster domain will fail");
            return Ok(None);
        }
        let config = ResolverConfig::from_parts(None, Vec::new(), servers);
        let mut builder = Resolver::builder_with_config(config, TokioRuntimeProvider::default());
        let options: &mut ResolverOpts = builder.options_mut();
        // A forwarder passes CNAME chains on (RFC 1034 4.3.2) and never answers from /etc/hosts.
        options.preserve_intermediates = true;
        options.use_hosts_file = ResolveHosts::Never;
        options.ndots = 0;
        let resolver = builder.build().map_err(Error::Resolver)?;
        Ok(Some(Upstream { resolver }))
    }

    /// Forwards one question. A negative answer (NXDOMAIN, NODATA) is an `Ok` with its code and
    /// SOA; an unreachable upstream is an error.
    pub async fn forward(&self, name: &Name, qtype: RecordType) -> Result<Forwarded, NetError> {
        let mut name = name.clone();
        name.set_fqdn(true);
        match self.resolver.lookup(name, qtype).await {
            Ok(lookup) => Ok(Forwarded {
                response_code: ResponseCode::NoError,
                answers: lookup.answers().to_vec(),
                authorities: Vec::new(),
            }),
            Err(NetError::Dns(DnsError::NoRecordsFound(no_records))) => Ok(Forwarded {
                response_code: no_records.response_code,
                answers: Vec::new(),
                authorities: no_records.soa.map(|soa| vec![soa.into_record_of_rdata()]).unwrap_or_default(),
            }),
            Err(err) => Err(err),
        }
    }
}
