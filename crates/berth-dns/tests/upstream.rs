//! Forwarding configuration: the host's resolv.conf is read for `Upstreams::System`, the
//! server's own address is never an upstream (no loop when the host's resolv.conf points at
//! Berth), and without upstreams outside names fail instead of hanging.

use std::net::SocketAddr;

use berth_dns::Upstreams;
use berth_dns::upstream::Upstream;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

#[test]
fn the_servers_own_address_is_never_an_upstream() {
    let own = addr("127.0.0.1:5353");
    let only_self = Upstream::new(&Upstreams::Servers(vec![own]), own).expect("config");
    assert!(only_self.is_none(), "forwarding to itself would loop");
    let other = Upstream::new(&Upstreams::Servers(vec![own, addr("127.0.0.1:5354")]), own).expect("config");
    assert!(other.is_some(), "the other server stays");
    assert!(Upstream::new(&Upstreams::None, own).expect("config").is_none());
}

#[test]
fn system_upstreams_come_from_the_hosts_resolv_conf() {
    let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let servers: Vec<SocketAddr> = conf
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
    let Some(first) = servers.first().copied() else {
        eprintln!("skipping: no nameserver in /etc/resolv.conf");
        return;
    };
    assert!(Upstream::new(&Upstreams::System, addr("192.0.2.1:53")).expect("read resolv.conf").is_some());
    // Listening on the host's only nameserver: nothing left to forward to.
    if servers.iter().all(|s| *s == first) {
        assert!(Upstream::new(&Upstreams::System, first).expect("read resolv.conf").is_none());
    }
}
