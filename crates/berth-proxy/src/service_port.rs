//! What the proxy programs, per Service port: its addresses (ClusterIP, NodePort, externalIPs,
//! LoadBalancer ingress IPs), policies, and the endpoints of its EndpointSlices. Pure: built from
//! API objects, no I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The default ClientIP affinity timeout (three hours, as upstream).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        })
    }
}

/// One endpoint (address and target port) of a Service port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    /// On this node (`nodeName` equals the proxy's node).
    pub local: bool,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

/// One port of one Service, with everything needed to render its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub namespace: String,
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub cluster_ip: Ipv4Addr,
    pub node_port: Option<u16>,
    /// `spec.externalIPs` and `status.loadBalancer.ingress[].ip`, sorted and deduplicated.
    pub external_ips: Vec<Ipv4Addr>,
    /// ClientIP session affinity timeout in seconds.
    pub affinity_timeout: Option<u32>,
    /// `externalTrafficPolicy: Local`.
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// Every endpoint from the slices, sorted and deduplicated by address and port.
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// A stable name for this port, usable in nftables identifiers: `ns/name/proto/port`.
    pub fn id(&self) -> String {
        format!("{}/{}/{}/{}", self.namespace, self.name, self.protocol, self.port)
    }

    /// Reached from outside the cluster network (NodePort, externalIPs, LoadBalancer).
    pub fn externally_accessible(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty()
    }

    /// The endpoints that receive traffic from the whole cluster: the ready ones, or when none is
    /// ready the serving and terminating ones (upstream's graceful-termination fallback).
    pub fn cluster_endpoints(&self) -> Vec<&Endpoint> {
        usable(self.endpoints.iter())
    }

    /// The local endpoints, with the same fallback among local endpoints.
    pub fn local_endpoints(&self) -> Vec<&Endpoint> {
        usable(self.endpoints.iter().filter(|e| e.local))
    }

    /// The endpoints for traffic to the ClusterIP (internalTrafficPolicy).
    pub fn internal_endpoints(&self) -> Vec<&Endpoint> {
        if self.internal_local { self.local_endpoints() } else { self.cluster_endpoints() }
    }

    /// The endpoints for NodePort, externalIP and LoadBalancer traffic (externalTrafficPolicy).
    pub fn external_endpoints(&self) -> Vec<&Endpoint> {
        if self.external_local { self.local_endpoints() } else { self.cluster_endpoints() }
    }
}

fn usable<'a>(endpoints: impl Iterator<Item = &'a Endpoint> + Clone) -> Vec<&'a Endpoint> {
    let ready: Vec<&Endpoint> = endpoints.clone().filter(|e| e.ready).collect();
    if !ready.is_empty() {
        return ready;
    }
    endpoints.filter(|e| e.serving && e.terminating).collect()
}

/// The Service ports the proxy programs for `service`, given the EndpointSlices of its namespace
/// (slices of other Services are ignored). Headless, ExternalName and non-IPv4 Services have none.
pub fn service_ports(service: &Service, slices: &[&EndpointSlice], node_name: &str) -> Vec<ServicePort> {
    let (Some(spec), Some(name)) = (&service.spec, &service.metadata.name) else { return Vec::new() };
    let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let Some(cluster_ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse::<Ipv4Addr>().ok()) else {
        return Vec::new(); // headless ("None"), unallocated or IPv6
    };
    let mut external_ips: Vec<Ipv4Addr> = spec.external_ips.iter().flatten().filter_map(|ip| ip.parse().ok()).collect();
    if spec.type_.as_deref() == Some("LoadBalancer") {
        let ingress = service.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.as_ref());
        external_ips
            .extend(ingress.iter().flat_map(|i| i.iter()).filter_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok()));
    }
    external_ips.sort();
    external_ips.dedup();
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        let config = spec.session_affinity_config.as_ref().and_then(|c| c.client_ip.as_ref());
        config.and_then(|c| c.timeout_seconds).and_then(|t| u32::try_from(t).ok()).unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
    });
    let external_local = spec.external_traffic_policy.as_deref() == Some("Local");
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let slices: Vec<&EndpointSlice> = slices
        .iter()
        .copied()
        .filter(|s| s.metadata.namespace.as_deref().unwrap_or("default") == namespace)
        .filter(|s| s.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) == Some(name))
        .filter(|s| s.address_type == "IPv4")
        .collect();

    let mut ports = Vec::new();
    for sp in spec.ports.iter().flatten() {
        let Some(protocol) = Protocol::parse(sp.protocol.as_deref()) else { continue };
        let Ok(port) = u16::try_from(sp.port) else { continue };
        let node_port = sp.node_port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0);
        let node_port = node_port.filter(|_| matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer")));
        ports.push(ServicePort {
            namespace: namespace.to_string(),
            name: name.clone(),
            protocol,
            port,
            cluster_ip,
            node_port,
            external_ips: external_ips.clone(),
            affinity_timeout,
            external_local,
            internal_local,
            endpoints: endpoints_for(&slices, sp.name.as_deref().unwrap_or(""), protocol, node_name),
        });
    }
    ports
}

/// The endpoints of the slices' port named `port_name` with `protocol`.
fn endpoints_for(slices: &[&EndpointSlice], port_name: &str, protocol: Protocol, node_name: &str) -> Vec<Endpoint> {
    let mut found: BTreeMap<(Ipv4Addr, u16), Endpoint> = BTreeMap::new();
    for slice in slices {
        let port = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == port_name && Protocol::parse(p.protocol.as_deref()) == Some(protocol)
        });
        let Some(port) = port.and_then(|p| p.port).and_then(|p| u16::try_from(p).ok()) else { continue };
        for ep in &slice.endpoints {
            // Upstream uses the first address only: the others are (for now) always ignored.
            let Some(ip) = ep.addresses.first().and_then(|a| a.parse::<Ipv4Addr>().ok()) else { continue };
            let conditions = ep.conditions.as_ref();
            // Unset conditions mean: ready unless known otherwise; serving follows ready.
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
            let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
            let local = ep.node_name.as_deref() == Some(node_name);
            found.entry((ip, port)).or_insert(Endpoint { ip, port, local, ready, serving, terminating });
        }
    }
    found.into_values().collect()
}

#[cfg(test)]
pub(crate) mod tests;
