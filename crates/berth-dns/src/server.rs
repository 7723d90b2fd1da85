//! The DNS server: a hickory `RequestHandler` that answers cluster names from the current
//! [`Zone`] snapshot and forwards the rest upstream, served over UDP and TCP on one port.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

use crate::upstream::Upstream;
use crate::zone::{ClusterDomain, Zone};
use crate::{DnsConfig, DnsError};

/// How long a TCP client may stay idle before the server closes the connection.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);
/// How many ExternalName CNAMEs are followed for one question.
const MAX_CNAME_CHAIN: usize = 8;

/// The zone snapshot the server answers from; `None` until the first full list of Services and
/// EndpointSlices (cluster names get SERVFAIL meanwhile, as CoreDNS before it is ready).
#[derive(Default)]
pub struct ZoneCell {
    zone: RwLock<Option<Arc<Zone>>>,
}

impl ZoneCell {
    /// The current snapshot.
    pub fn get(&self) -> Option<Arc<Zone>> {
        match self.zone.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Swaps in a new snapshot.
    pub fn set(&self, zone: Zone) {
        let zone = Some(Arc::new(zone));
        match self.zone.write() {
            Ok(mut guard) => *guard = zone,
            Err(poisoned) => *poisoned.into_inner() = zone,
        }
    }
}

/// What the handler sends back for one question.
struct Outcome {
    response_code: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
}

impl Outcome {
    fn code(response_code: ResponseCode) -> Outcome {
        Outcome {
            response_code,
            authoritative: false,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
        }
    }
}

/// Answers cluster names from the zone, forwards the rest.
pub struct ClusterDnsHandler {
    domain: ClusterDomain,
    zone: Arc<ZoneCell>,
    upstream: Option<Upstream>,
}

impl ClusterDnsHandler {
    /// A handler over `zone`, forwarding through `upstream` (none: SERVFAIL outside the zone).
    pub fn new(domain: ClusterDomain, zone: Arc<ZoneCell>, upstream: Option<Upstream>) -> ClusterDnsHandler {
        ClusterDnsHandler { domain, zone, upstream }
    }

    async fn resolve(&self, name: &Name, qtype: RecordType) -> Outcome {
        if self.domain.contains(name) {
            let Some(zone) = self.zone.get() else { return Outcome::code(ResponseCode::ServFail) };
            let Some(answer) = zone.lookup(name, qtype) else { return Outcome::code(ResponseCode::ServFail) };
            let mut outcome = Outcome {
                response_code: answer.response_code,
                authoritative: true,
                answers: answer.answers,
                authorities: answer.authorities,
                additionals: answer.additionals,
            };
            if qtype != RecordType::CNAME && qtype != RecordType::ANY {
                self.chase_cname(&zone, &mut outcome, qtype).await;
            }
            return outcome;
        }
        if let Some(answer) = self.zone.get().and_then(|zone| zone.lookup_reverse(name, qtype)) {
            return Outcome {
                response_code: answer.response_code,
                authoritative: true,
                answers: answer.answers,
                authorities: answer.authorities,
                additionals: answer.additionals,
            };
        }
        self.forward(name, qtype).await
    }

    /// Follows an ExternalName CNAME: inside the zone from the snapshot, outside through the
    /// upstream (as CoreDNS's kubernetes plugin resolves external names with its `upstream`).
    async fn chase_cname(&self, zone: &Zone, outcome: &mut Outcome, qtype: RecordType) {
        for _ in 0..MAX_CNAME_CHAIN {
            let Some(target) = outcome.answers.last().and_then(cname_of).cloned() else { return };
            if self.domain.contains(&target) {
                let Some(answer) = zone.lookup(&target, qtype) else { return };
                outcome.answers.extend(answer.answers);
                outcome.additionals.extend(answer.additionals);
            } else {
                let forwarded = self.forward(&target, qtype).await;
                outcome.answers.extend(forwarded.answers);
                return;
            }
        }
    }

    async fn forward(&self, name: &Name, qtype: RecordType) -> Outcome {
        let Some(upstream) = &self.upstream else { return Outcome::code(ResponseCode::ServFail) };
        match upstream.forward(name, qtype).await {
            Ok(forwarded) => Outcome {
                response_code: forwarded.response_code,
                authoritative: false,
                answers: forwarded.answers,
                authorities: forwarded.authorities,
                additionals: Vec::new(),
            },
            Err(err) => {
                tracing::debug!(%name, %qtype, error = %err, "forwarding failed");
                Outcome::code(ResponseCode::ServFail)
            }
        }
    }
}

fn cname_of(record: &Record) -> Option<&Name> {
    match &record.data {
        hickory_proto::rr::RData::CNAME(cname) => Some(&cname.0),
        _ => None,
    }
}

/// The OPT record of the response when the request had one (RFC 6891 6.1.1).
fn response_edns(request: &Request) -> Option<Edns> {
    let req = request.edns.as_ref()?;
    let mut edns = Edns::new();
    edns.set_max_payload(req.max_payload().max(512));
    edns.set_version(0);
    edns.set_dnssec_ok(req.flags().dnssec_ok);
    Some(edns)
}

#[async_trait::async_trait]
impl RequestHandler for ClusterDnsHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut response: R) -> ResponseInfo {
        let edns = response_edns(request);
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        let outcome = if request.metadata.message_type != MessageType::Query {
            Outcome::code(ResponseCode::FormErr)
        } else if request.metadata.op_code != OpCode::Query {
            Outcome::code(ResponseCode::NotImp)
        } else {
            match request.request_info() {
                Ok(info) => {
                    let name: Name = info.query.name().clone().into();
                    self.resolve(&name, info.query.query_type()).await
                }
                Err(_) => Outcome::code(ResponseCode::FormErr),
            }
        };
        metadata.response_code = outcome.response_code;
        metadata.authoritative = outcome.authoritative;
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let message = builder.build(
            metadata,
            outcome.answers.iter(),
            outcome.authorities.iter(),
            std::iter::empty(),
            outcome.additionals.iter(),
        );
        match response.send_response(message).await {
            Ok(info) => info,
            Err(err) => {
                tracing::debug!(error = %err, "failed to send a DNS response");
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header { metadata, counts: HeaderCounts::default() })
            }
        }
    }
}

/// A DNS server bound to its UDP and TCP sockets (one port), not yet serving.
pub struct DnsServer {
    config: DnsConfig,
    domain: ClusterDomain,
    udp: UdpSocket,
    tcp: TcpListener,
    zone: Arc<ZoneCell>,
}

impl DnsServer {
    /// Binds UDP and TCP on `config.listen`; port 0 picks one free port for both.
    pub async fn bind(config: DnsConfig) -> Result<DnsServer, DnsError> {
        let domain: ClusterDomain = config.cluster_domain.parse()?;
        let listen = config.listen;
        let mut attempts = 0;
        let (udp, tcp) = loop {
            attempts += 1;
            let udp = UdpSocket::bind(listen).await.map_err(|source| DnsError::Bind { addr: listen, source })?;
            let addr = udp.local_addr().map_err(|source| DnsError::Bind { addr: listen, source })?;
            match TcpListener::bind(addr).await {
                Ok(tcp) => break (udp, tcp),
                // The UDP port picked for port 0 may be taken for TCP: pick again.
                Err(e) if listen.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse && attempts < 10 => continue,
                Err(source) => return Err(DnsError::Bind { addr, source }),
            }
        };
        Ok(DnsServer { config, domain, udp, tcp, zone: Arc::new(ZoneCell::default()) })
    }

    /// The bound address (UDP and TCP share the port).
    pub fn local_addr(&self) -> Result<SocketAddr, DnsError> {
        self.udp.local_addr().map_err(|source| DnsError::Bind { addr: self.config.listen, source })
    }

    /// The snapshot the server answers from (set it directly to serve without the API).
    pub fn zone(&self) -> Arc<ZoneCell> {
        self.zone.clone()
    }

    /// The configuration it was bound with.
    pub fn config(&self) -> &DnsConfig {
        &self.config
    }

    /// The cluster domain.
    pub fn domain(&self) -> &ClusterDomain {
        &self.domain
    }

    /// Serves queries until `cancel` fires.
    pub async fn serve(self, cancel: CancellationToken) -> Result<(), DnsError> {
        let local = self.local_addr()?;
        // Without upstreams the cluster zone still works; only forwarding fails (SERVFAIL).
        let upstream = Upstream::new(&self.config.upstreams, local).unwrap_or_else(|err| {
            tracing::warn!(error = %crate::error_chain(&err), "no upstream nameservers; forwarding disabled");
            None
        });
        let handler = ClusterDnsHandler::new(self.domain.clone(), self.zone.clone(), upstream);
        let mut server = hickory_server::Server::new(handler);
        server.register_socket(self.udp);
        server.register_listener(self.tcp, TCP_TIMEOUT, 64);
        tracing::info!(addr = %local, domain = %self.domain, "cluster DNS listening");
        let shutdown = server.shutdown_token().clone();
        let stop = async move {
            cancel.cancelled().await;
            shutdown.cancel();
            std::future::pending::<()>().await
        };
        tokio::select! {
            result = server.block_until_done() => result.map_err(DnsError::Serve),
            () = stop => Ok(()),
        }
    }
}
