//! The cluster zone (`cluster.local` by default) as an immutable snapshot built from Services and
//! EndpointSlices, answering queries the way the Kubernetes DNS specification (schema 1.1.0,
//! kubernetes/dns `docs/specification.md`) and CoreDNS's `kubernetes` plugin do. Pure: no I/O,
//! no clock; the watch task rebuilds a snapshot on every change and the server swaps it in.
//!
//! | name | answer |
//! |---|---|
//! | `<svc>.<ns>.svc.<zone>` | ClusterIP: A/AAAA of the cluster IPs; headless: the ready endpoints' IPs; ExternalName: CNAME |
//! | `<hostname>.<svc>.<ns>.svc.<zone>` | headless: the endpoint with that hostname (or dashed IP) |
//! | `_<port>._<proto>.<svc>.<ns>.svc.<zone>` | SRV per named port (target: the service, or each endpoint if headless) |
//! | `<a-b-c-d>.<ns>.pod.<zone>` | A of the dashed IP (CoreDNS `pods insecure`) |
//! | `dns-version.<zone>` | TXT `1.1.0` |
//! | `<d>.<c>.<b>.<a>.in-addr.arpa` (and ip6.arpa) | PTR of cluster IPs and headless endpoints ([`Zone::lookup_reverse`]) |
//!
//! Unknown names inside the zone get NXDOMAIN, known names without data of the asked type get
//! NOERROR with no answers; both carry the zone's SOA in the authority section.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The TTL of every record, as CoreDNS's kubernetes plugin (`ttl 5` by default in Kubernetes'
/// Corefile): short, because endpoints move.
pub const TTL: u32 = 5;
/// The DNS schema version served at `dns-version.<zone>`.
pub const SCHEMA_VERSION: &str = "1.1.0";
/// The label EndpointSlices carry to name their Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Why a cluster domain was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error("invalid cluster domain {domain:?}")]
    InvalidDomain {
        domain: String,
        #[source]
        source: hickory_proto::ProtoError,
    },
    #[error("invalid cluster domain {0:?}: it must have at least one label")]
    EmptyDomain(String),
}

/// A validated cluster domain such as `cluster.local`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDomain {
    /// Lowercase, fully qualified.
    name: Name,
    /// Lowercase, no trailing dot.
    text: String,
}

impl ClusterDomain {
    /// The domain as a fully qualified DNS name.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The domain without the trailing dot (`cluster.local`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `name` is the domain or below it (case-insensitive).
    pub fn contains(&self, name: &Name) -> bool {
        self.name.zone_of(&name.to_lowercase())
    }
}

impl FromStr for ClusterDomain {
    type Err = ZoneError;

    fn from_str(domain: &str) -> Result<Self, ZoneError> {
        let text = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        if text.is_empty() {
            return Err(ZoneError::EmptyDomain(domain.to_string()));
        }
        let name = Name::from_ascii(format!("{text}."))
            .map_err(|source| ZoneError::InvalidDomain { domain: domain.to_string(), source })?;
        Ok(ClusterDomain { name, text })
    }
}

impl std::fmt::Display for ClusterDomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The answer to one question about a name in the zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// NoError or NXDomain.
    pub response_code: ResponseCode,
    pub answers: Vec<Record>,
    /// The SOA on negative answers (NXDOMAIN and NODATA).
    pub authorities: Vec<Record>,
    /// Addresses of SRV targets.
    pub additionals: Vec<Record>,
}

impl Answer {
    /// A CNAME target outside the answers, for the server to chase (ExternalName services).
    pub fn cname_target(&self) -> Option<&Name> {
        match self.answers.last().map(|r| &r.data) {
            Some(RData::CNAME(CNAME(target))) => Some(target),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Port {
    /// Lowercase port name (only named ports get SRV records).
    name: String,
    /// Lowercase protocol (`tcp`, `udp`, `sctp`).
    protocol: String,
    port: u16,
}

#[derive(Debug, Clone)]
struct Endpoint {
    /// The endpoint's `hostname`, else its dashed IP.
    hostname: String,
    ip: IpAddr,
    /// The ports of the EndpointSlice the endpoint came from.
    ports: Vec<Port>,
}

#[derive(Debug, Clone)]
enum Kind {
    ClusterIp(Vec<IpAddr>),
    Headless,
    ExternalName(Name),
}

#[derive(Debug, Clone)]
struct ServiceEntry {
    kind: Kind,
    ports: Vec<Port>,
    /// Ready endpoints (headless only), deduplicated by IP.
    endpoints: Vec<Endpoint>,
}

/// An immutable snapshot of the cluster zone.
#[derive(Debug, Clone)]
pub struct Zone {
    domain: ClusterDomain,
    soa: Record,
    /// (namespace, name) → service.
    services: HashMap<(String, String), ServiceEntry>,
    namespaces: HashSet<String>,
    /// IP → names for PTR queries.
    reverse: HashMap<IpAddr, Vec<Name>>,
}

/// An IP written with dashes (`10-0-0-1`, `fd00--1`), as CoreDNS names endpoints and pods.
pub fn dashed_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// The IP a dashed label names (`10-0-0-1`, `fd00--1`), if any.
pub fn parse_dashed_ip(label: &str) -> Option<IpAddr> {
    if label.matches('-').count() == 3
        && let Ok(v4) = label.replace('-', ".").parse::<Ipv4Addr>()
    {
        return Some(IpAddr::V4(v4));
    }
    label.replace('-', ":").parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

fn port_u16(port: i32) -> Option<u16> {
    u16::try_from(port).ok().filter(|p| *p != 0)
}

/// A port of a Service or EndpointSlice as SRV records name it; `None` for an unnamed or invalid
/// port, which has no SRV record.
fn named_port(name: Option<&str>, protocol: Option<&str>, port: Option<i32>) -> Option<Port> {
    Some(Port {
        name: lower(name.filter(|n| !n.is_empty())?),
        protocol: lower(protocol.unwrap_or("TCP")),
        port: port_u16(port?)?,
    })
}

/// Whether a Service is headless (`clusterIP: None`).
fn is_headless(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

fn service_entry(service: &Service) -> Option<ServiceEntry> {
    let spec = service.spec.as_ref()?;
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| named_port(p.name.as_deref(), p.protocol.as_deref(), Some(p.port)))
        .collect();
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        let target = spec.external_name.as_deref().filter(|n| !n.is_empty())?;
        let mut name = Name::from_ascii(target).ok()?;
        name.set_fqdn(true);
        Kind::ExternalName(name.to_lowercase())
    } else if is_headless(service) {
        Kind::Headless
    } else {
        let mut ips: Vec<IpAddr> = spec.cluster_ips.iter().flatten().filter_map(|ip| ip.parse().ok()).collect();
        if ips.is_empty()
            && let Some(ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok())
        {
            ips.push(ip);
        }
        Kind::ClusterIp(ips)
    };
    Some(ServiceEntry { kind, ports, endpoints: Vec::new() })
}

/// The ready endpoints of one EndpointSlice, with its ports.
fn slice_endpoints(slice: &EndpointSlice, publish_not_ready: bool) -> Vec<Endpoint> {
    if slice.address_type == "FQDN" {
        return Vec::new();
    }
    let ports: Vec<Port> = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| named_port(p.name.as_deref(), p.protocol.as_deref(), p.port))
        .collect();
    let mut out = Vec::new();
    for endpoint in &slice.endpoints {
        // A nil `ready` means ready (discovery/v1 EndpointConditions).
        let ready = endpoint.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
        if !ready && !publish_not_ready {
            continue;
        }
        for address in &endpoint.addresses {
            let Ok(ip) = address.parse::<IpAddr>() else { continue };
            let hostname =
                endpoint.hostname.as_deref().filter(|h| !h.is_empty()).map(lower).unwrap_or_else(|| dashed_ip(ip));
            out.push(Endpoint { hostname, ip, ports: ports.clone() });
        }
    }
    out
}

fn record(name: Name, rdata: RData) -> Record {
    Record::from_rdata(name, TTL, rdata)
}

fn address_record(name: &Name, ip: IpAddr) -> Record {
    match ip {
        IpAddr::V4(v4) => record(name.clone(), RData::A(A(v4))),
        IpAddr::V6(v6) => record(name.clone(), RData::AAAA(AAAA(v6))),
    }
}

fn matches_type(ip: &IpAddr, qtype: RecordType) -> bool {
    match qtype {
        RecordType::A => ip.is_ipv4(),
        RecordType::AAAA => ip.is_ipv6(),
        RecordType::ANY => true,
        _ => false,
    }
}

/// Appends `label.` in front of a name.
fn child(parent: &Name, label: &str) -> Option<Name> {
    Name::from_ascii(label).ok()?.append_domain(parent).ok()
}

impl Zone {
    /// A zone with no services.
    pub fn empty(domain: &ClusterDomain, serial: u32) -> Zone {
        Zone::build(domain, [], [], serial)
    }

    /// Builds the zone from every Service and EndpointSlice. `serial` goes into the SOA (the
    /// watch task uses a counter of rebuilds).
    pub fn build<'a>(
        domain: &ClusterDomain,
        services: impl IntoIterator<Item = &'a Service>,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
        serial: u32,
    ) -> Zone {
        let mut entries: HashMap<(String, String), ServiceEntry> = HashMap::new();
        let mut publish_not_ready: HashSet<(String, String)> = HashSet::new();
        for service in services {
            let (Some(ns), Some(name)) = (service.metadata.namespace.as_deref(), service.metadata.name.as_deref())
            else {
                continue;
            };
            let key = (lower(ns), lower(name));
            if service.spec.as_ref().and_then(|s| s.publish_not_ready_addresses).unwrap_or(false) {
                publish_not_ready.insert(key.clone());
            }
            if let Some(entry) = service_entry(service) {
                entries.insert(key, entry);
            }
        }
        for slice in slices {
            let Some(ns) = slice.metadata.namespace.as_deref() else { continue };
            let Some(service) = slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) else {
                continue;
            };
            let key = (lower(ns), lower(service));
            let pnr = publish_not_ready.contains(&key);
            if let Some(entry) = entries.get_mut(&key).filter(|e| matches!(e.kind, Kind::Headless)) {
                for endpoint in slice_endpoints(slice, pnr) {
                    if !entry.endpoints.iter().any(|e| e.ip == endpoint.ip) {
                        entry.endpoints.push(endpoint);
                    }
                }
            }
        }
        let mut zone = Zone {
            soa: soa_record(domain, serial),
            domain: domain.clone(),
            namespaces: entries.keys().map(|(ns, _)| ns.clone()).collect(),
            services: HashMap::new(),
            reverse: HashMap::new(),
        };
        for ((ns, name), entry) in &mut entries {
            // Deterministic answers: sort endpoints by IP.
            entry.endpoints.sort_by_key(|e| e.ip);
            let Some(service_name) = zone.service_name(ns, name) else { continue };
            match &entry.kind {
                Kind::ClusterIp(ips) => {
                    for ip in ips {
                        zone.reverse.entry(*ip).or_default().push(service_name.clone());
                    }
                }
                Kind::Headless => {
                    for endpoint in &entry.endpoints {
                        if let Some(host) = child(&service_name, &endpoint.hostname) {
                            zone.reverse.entry(endpoint.ip).or_default().push(host);
                        }
                    }
                }
                Kind::ExternalName(_) => {}
            }
        }
        zone.services = entries;
        zone
    }

    /// The cluster domain.
    pub fn domain(&self) -> &ClusterDomain {
        &self.domain
    }

    /// How many Services the zone holds.
    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// `<name>.<ns>.svc.<zone>.`
    fn service_name(&self, ns: &str, name: &str) -> Option<Name> {
        Name::from_ascii(format!("{name}.{ns}.svc.{}.", self.domain.text)).ok()
    }

    fn no_error(&self, answers: Vec<Record>, additionals: Vec<Record>) -> Answer {
        let authorities = if answers.is_empty() { vec![self.soa.clone()] } else { Vec::new() };
        Answer { response_code: ResponseCode::NoError, answers, authorities, additionals }
    }

    fn nx_domain(&self) -> Answer {
        Answer {
            response_code: ResponseCode::NXDomain,
            answers: Vec::new(),
            authorities: vec![self.soa.clone()],
            additionals: Vec::new(),
        }
    }

    /// Answers a question about `name`; `None` when the name is outside the cluster domain (the
    /// server forwards those).
    pub fn lookup(&self, name: &Name, qtype: RecordType) -> Option<Answer> {
        let name = name.to_lowercase();
        if !self.domain.name.zone_of(&name) {
            return None;
        }
        let extra = usize::from(name.num_labels()).saturating_sub(usize::from(self.domain.name.num_labels()));
        let labels: Vec<String> = name.iter().take(extra).map(|l| String::from_utf8_lossy(l).into_owned()).collect();
        let mut qname = name.clone();
        qname.set_fqdn(true);
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        Some(match labels.as_slice() {
            [] => self.apex(&qname, qtype),
            ["dns-version"] => match qtype {
                RecordType::TXT | RecordType::ANY => {
                    self.no_error(vec![record(qname, RData::TXT(TXT::new(vec![SCHEMA_VERSION.into()])))], Vec::new())
                }
                _ => self.no_error(Vec::new(), Vec::new()),
            },
            ["svc"] | ["pod"] => self.no_error(Vec::new(), Vec::new()),
            [ns, "svc"] | [ns, "pod"] => {
                if self.namespaces.contains(*ns) {
                    self.no_error(Vec::new(), Vec::new())
                } else {
                    self.nx_domain()
                }
            }
            [service, ns, "svc"] => self.service(&qname, ns, service, qtype),
            [first, service, ns, "svc"] => self.endpoint(&qname, ns, service, first, qtype),
            [port, proto, service, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
                self.srv(&qname, ns, service, Some((&port[1..], &proto[1..])), qtype)
            }
            [ip, _ns, "pod"] => match parse_dashed_ip(ip) {
                Some(ip) if matches_type(&ip, qtype) => self.no_error(vec![address_record(&qname, ip)], Vec::new()),
                Some(_) => self.no_error(Vec::new(), Vec::new()),
                None => self.nx_domain(),
            },
            _ => self.nx_domain(),
        })
    }

    fn apex(&self, qname: &Name, qtype: RecordType) -> Answer {
        match qtype {
            RecordType::SOA => self.no_error(vec![self.soa.clone()], Vec::new()),
            RecordType::NS => {
                let ns = child(&self.domain.name, "ns.dns").unwrap_or_else(|| self.domain.name.clone());
                self.no_error(vec![record(qname.clone(), RData::NS(NS(ns)))], Vec::new())
            }
            _ => self.no_error(Vec::new(), Vec::new()),
        }
    }

    fn service(&self, qname: &Name, ns: &str, service: &str, qtype: RecordType) -> Answer {
        let Some(entry) = self.services.get(&(ns.to_string(), service.to_string())) else {
            return self.nx_domain();
        };
        match &entry.kind {
            Kind::ExternalName(target) => {
                self.no_error(vec![record(qname.clone(), RData::CNAME(CNAME(target.clone())))], Vec::new())
            }
            _ if qtype == RecordType::SRV => self.srv(qname, ns, service, None, qtype),
            Kind::ClusterIp(ips) => {
                let answers = ips.iter().filter(|ip| matches_type(ip, qtype)).map(|ip| address_record(qname, *ip));
                self.no_error(answers.collect(), Vec::new())
            }
            // CoreDNS answers NXDOMAIN for a headless service without ready endpoints.
            Kind::Headless if entry.endpoints.is_empty() => self.nx_domain(),
            Kind::Headless => {
                let ips: BTreeSet<IpAddr> = entry.endpoints.iter().map(|e| e.ip).collect();
                let answers = ips.into_iter().filter(|ip| matches_type(ip, qtype)).map(|ip| address_record(qname, ip));
                self.no_error(answers.collect(), Vec::new())
            }
        }
    }

    /// `<hostname>.<svc>.<ns>.svc.<zone>` (headless endpoints) and `_<proto>.<svc>...`.
    fn endpoint(&self, qname: &Name, ns: &str, service: &str, first: &str, qtype: RecordType) -> Answer {
        let Some(entry) = self.services.get(&(ns.to_string(), service.to_string())) else {
            return self.nx_domain();
        };
        if let Some(proto) = first.strip_prefix('_') {
            // An empty non-terminal above the SRV names.
            let ports = if matches!(entry.kind, Kind::Headless) {
                entry.endpoints.iter().flat_map(|e| e.ports.iter()).any(|p| p.protocol == proto)
            } else {
                entry.ports.iter().any(|p| p.protocol == proto)
            };
            return if ports { self.no_error(Vec::new(), Vec::new()) } else { self.nx_domain() };
        }
        if !matches!(entry.kind, Kind::Headless) {
            return self.nx_domain();
        }
        let endpoints: Vec<&Endpoint> = entry.endpoints.iter().filter(|e| e.hostname == first).collect();
        if endpoints.is_empty() {
            return self.nx_domain();
        }
        let answers = endpoints.iter().filter(|e| matches_type(&e.ip, qtype)).map(|e| address_record(qname, e.ip));
        self.no_error(answers.collect(), Vec::new())
    }

    /// SRV records of a service: for one named port (`Some((port, proto))`) or for all of them.
    fn srv(&self, qname: &Name, ns: &str, service: &str, port: Option<(&str, &str)>, qtype: RecordType) -> Answer {
        let Some(entry) = self.services.get(&(ns.to_string(), service.to_string())) else {
            return self.nx_domain();
        };
        let Some(service_name) = self.service_name(ns, service) else { return self.nx_domain() };
        let wanted = |p: &Port| port.is_none_or(|(name, proto)| p.name == name && p.protocol == proto);
        // (target, port, address of the target)
        let mut targets: Vec<(Name, u16, Option<IpAddr>)> = Vec::new();
        match &entry.kind {
            Kind::ExternalName(_) => return self.nx_domain(),
            Kind::ClusterIp(_) => {
                for p in entry.ports.iter().filter(|p| wanted(p)) {
                    targets.push((service_name.clone(), p.port, None));
                }
            }
            Kind::Headless => {
                for endpoint in &entry.endpoints {
                    let Some(host) = child(&service_name, &endpoint.hostname) else { continue };
                    for p in endpoint.ports.iter().filter(|p| wanted(p)) {
                        targets.push((host.clone(), p.port, Some(endpoint.ip)));
                    }
                }
            }
        }
        if targets.is_empty() {
            return if port.is_some() { self.nx_domain() } else { self.no_error(Vec::new(), Vec::new()) };
        }
        if qtype != RecordType::SRV && qtype != RecordType::ANY {
            return self.no_error(Vec::new(), Vec::new());
        }
        // CoreDNS spreads the weight evenly over the records of one answer.
        let weight = u16::try_from((100 / targets.len()).max(1)).unwrap_or(1);
        let mut answers = Vec::new();
        let mut additionals = Vec::new();
        for (target, port, ip) in targets {
            answers.push(record(qname.clone(), RData::SRV(SRV::new(0, weight, port, target.clone()))));
            let known = additionals.iter().any(|r: &Record| r.name == target);
            match (&entry.kind, ip) {
                (_, Some(ip)) => additionals.push(address_record(&target, ip)),
                (Kind::ClusterIp(ips), None) if !known => {
                    additionals.extend(ips.iter().map(|ip| address_record(&target, *ip)));
                }
                _ => {}
            }
        }
        self.no_error(answers, additionals)
    }

    /// Answers a PTR question for a cluster IP or headless endpoint; `None` when `name` is not a
    /// reverse name of an IP the zone knows (the server forwards it).
    pub fn lookup_reverse(&self, name: &Name, qtype: RecordType) -> Option<Answer> {
        let ip = reverse_ip(&name.to_lowercase())?;
        let targets = self.reverse.get(&ip)?;
        let mut qname = name.to_lowercase();
        qname.set_fqdn(true);
        if qtype != RecordType::PTR && qtype != RecordType::ANY {
            return Some(self.no_error(Vec::new(), Vec::new()));
        }
        let answers = targets.iter().map(|t| record(qname.clone(), RData::PTR(PTR(t.clone())))).collect();
        Some(self.no_error(answers, Vec::new()))
    }
}

/// The IP of a full reverse name (`4.3.2.1.in-addr.arpa.` or the 32 nibbles of ip6.arpa).
fn reverse_ip(name: &Name) -> Option<IpAddr> {
    let labels: Vec<String> = name.iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect();
    match labels.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [d, c, b, a, "in-addr", "arpa"] => format!("{a}.{b}.{c}.{d}").parse::<Ipv4Addr>().ok().map(IpAddr::V4),
        [nibbles @ .., "ip6", "arpa"] if nibbles.len() == 32 => {
            let mut value: u128 = 0;
            for nibble in nibbles.iter().rev() {
                let digit = u128::from_str_radix(nibble, 16).ok().filter(|_| nibble.len() == 1)?;
                value = (value << 4) | digit;
            }
            Some(IpAddr::V6(Ipv6Addr::from(value)))
        }
        _ => None,
    }
}

/// The zone's SOA, shaped like CoreDNS's: `ns.dns.<zone>. hostmaster.<zone>.`, negative TTL 5.
fn soa_record(domain: &ClusterDomain, serial: u32) -> Record {
    let mname = child(&domain.name, "ns.dns").unwrap_or_else(|| domain.name.clone());
    let rname = child(&domain.name, "hostmaster").unwrap_or_else(|| domain.name.clone());
    record(domain.name.clone(), RData::SOA(SOA::new(mname, rname, serial, 7200, 1800, 86400, TTL)))
}

#[cfg(test)]
mod tests;
