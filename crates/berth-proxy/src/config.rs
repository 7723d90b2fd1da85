//! The proxy's configuration: which node it serves, which addresses carry NodePorts, the service
//! and cluster CIDRs, and the names of what it creates on the host (nftables table, routing table).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::time::Duration;

use crate::Error;

/// An IPv4 network such as `10.43.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// The network holding `addr` (host bits are cleared).
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, Error> {
        if prefix > 32 {
            return Err(Error::InvalidCidr(format!("{addr}/{prefix}")));
        }
        let mask = Self::mask(prefix);
        Ok(Ipv4Cidr { addr: Ipv4Addr::from(u32::from(addr) & mask), prefix })
    }

    fn mask(prefix: u8) -> u32 {
        if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) }
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.prefix) == u32::from(self.addr)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidCidr(s.to_string());
        let (addr, prefix) = s.trim().split_once('/').ok_or_else(invalid)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| invalid())?;
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        Ipv4Cidr::new(addr, prefix).map_err(|_| invalid())
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Where the proxy enables `route_localnet`, which lets packets with a 127.0.0.0/8 source leave
/// through a non-loopback interface once DNAT has sent them to a pod: what NodePorts on
/// 127.0.0.1 need (kube-proxy sets it on `all`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteLocalnet {
    /// `net.ipv4.conf.all.route_localnet=1` (host-wide, as kube-proxy).
    All,
    /// Only these interfaces (the pod bridge): what tests on a shared machine use.
    Interfaces(Vec<String>),
    /// Leave it alone: NodePorts at 127.0.0.1 then do not work.
    Off,
}

/// How the proxy keeps packets for the service CIDR from leaving the host when no rule matches.
///
/// A plain `blackhole` route in the main table would also fail the `connect()` of local
/// processes before the output hook can DNAT them (the kernel answers EINVAL from the route
/// lookup), so the route lives in its own routing table, consulted by a policy rule only for
/// packets that did not originate on this host. Local traffic to an unknown ClusterIP is
/// rejected by the table itself instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlackholeRoute {
    /// The routing table holding `blackhole <service CIDR>`.
    pub table: u32,
    /// The preference of the policy rules (`to <service CIDR> iif lo lookup main` at this
    /// preference, `to <service CIDR> lookup <table>` at the next).
    pub priority: u32,
}

impl Default for BlackholeRoute {
    fn default() -> Self {
        BlackholeRoute { table: 4043, priority: 9000 }
    }
}

/// Everything `run` needs to know.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// This node's name: endpoints with this `nodeName` are local (traffic policy `Local`).
    pub node_name: String,
    /// Addresses that accept NodePorts besides 127.0.0.1; empty means every local address.
    pub node_ips: Vec<Ipv4Addr>,
    /// The service CIDR (ClusterIPs), blackholed for forwarded traffic.
    pub service_cidr: Ipv4Cidr,
    /// The pod network of the whole cluster. Known: traffic from pods to a ClusterIP keeps its
    /// source unless the endpoint is a pod too (then masqueraded, see the ruleset). Unknown:
    /// every service packet is masqueraded.
    pub cluster_cidr: Option<Ipv4Cidr>,
    /// The nftables table (`inet <table>`), owned entirely by the proxy.
    pub table: String,
    /// Delete the table and the blackhole route when `run` is cancelled (not on a crash, so
    /// traffic keeps flowing while the proxy restarts).
    pub cleanup_on_exit: bool,
    pub route_localnet: RouteLocalnet,
    /// `None`: install no blackhole route.
    pub blackhole: Option<BlackholeRoute>,
    /// The packet mark bit that asks the postrouting chain to masquerade.
    pub masquerade_mark: u32,
    /// Changes arriving within this window are applied in one sync.
    pub debounce: Duration,
    /// How often to check that the table still exists (and re-create it if not).
    pub resync: Duration,
}

impl ProxyConfig {
    /// Defaults: table `berth`, k3s' service CIDR 10.43.0.0/16, route_localnet on `all`.
    pub fn new(node_name: impl Into<String>) -> Self {
        ProxyConfig {
            node_name: node_name.into(),
            node_ips: Vec::new(),
            service_cidr: Ipv4Cidr { addr: Ipv4Addr::new(10, 43, 0, 0), prefix: 16 },
            cluster_cidr: None,
            table: "berth".to_string(),
            cleanup_on_exit: false,
            route_localnet: RouteLocalnet::All,
            blackhole: Some(BlackholeRoute::default()),
            masquerade_mark: 0x4000,
            debounce: Duration::from_millis(100),
            resync: Duration::from_secs(60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parses_and_clears_host_bits() {
        let c: Ipv4Cidr = "10.43.1.7/16".parse().unwrap();
        assert_eq!(c.to_string(), "10.43.0.0/16");
        assert!(c.contains(Ipv4Addr::new(10, 43, 255, 1)));
        assert!(!c.contains(Ipv4Addr::new(10, 44, 0, 1)));
        assert!("0.0.0.0/0".parse::<Ipv4Cidr>().unwrap().contains(Ipv4Addr::new(1, 2, 3, 4)));
        for bad in ["10.43.0.0", "10.43.0.0/33", "x/8", "fd00::/64"] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
    }
}
