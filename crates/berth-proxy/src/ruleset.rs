//! Renders Service ports into the text of one nftables table (`nft -f` syntax). Pure: the same
//! input always gives the same text, so an unchanged ruleset is detected by comparing strings.
//!
//! # Shape
//!
//! Lookups cost the same for 10 or 10,000 Services: one verdict map keyed by
//! `daddr . l4proto . dport` (ClusterIPs, externalIPs, LoadBalancer IPs) and one keyed by
//! `l4proto . dport` for NodePorts, each jumping to a per-Service chain that picks an endpoint with
//! `numgen random` and jumps to a per-endpoint chain that DNATs. Filter chains ahead of NAT reject
//! (TCP reset, ICMP port unreachable) connections to Services without endpoints. The postrouting
//! chain masquerades packets marked by the service chains.
//!
//! # Masquerading
//!
//! Hosts here run without `br_netfilter`, so a pod's reply to another pod on the same bridge goes
//! straight over L2 and would bypass the reverse NAT: every DNAT to a pod from a pod is
//! therefore masqueraded (which also covers hairpin traffic, a pod reaching itself). Traffic from
//! outside the cluster network is masqueraded as upstream does, except for the Local traffic
//! policies, which keep the client's address.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::config::Ipv4Cidr;
use crate::service_port::{Endpoint, ServicePort};

/// What the ruleset needs beyond the Service ports.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// The table name (`inet <table>`).
    pub table: String,
    /// NodePort addresses besides 127.0.0.1; empty: every local address (`fib daddr type local`).
    pub node_ips: Vec<Ipv4Addr>,
    pub service_cidr: Ipv4Cidr,
    pub cluster_cidr: Option<Ipv4Cidr>,
    pub masquerade_mark: u32,
}

impl RenderOptions {
    pub fn from_config(config: &crate::ProxyConfig) -> Self {
        RenderOptions {
            table: config.table.clone(),
            node_ips: config.node_ips.clone(),
            service_cidr: config.service_cidr,
            cluster_cidr: config.cluster_cidr,
            masquerade_mark: config.masquerade_mark,
        }
    }
}

/// The `nft -f` batch that replaces the table atomically: create it if absent (so the delete
/// cannot fail), delete it, and define it anew, in one transaction.
pub fn batch(table: &str, ruleset: &str) -> String {
    format!("add table inet {table}\ndelete table inet {table}\n{ruleset}")
}

/// The `nft -f` batch that turns the table from `previous` (the text last applied) into `next`
/// in one transaction without deleting it, so the affinity sets keep their clients and the cost
/// follows the change, not the table: maps are flushed and refilled; chains whose rules changed
/// are flushed and refilled, chains that are gone deleted, unchanged chains left alone; sets that
/// are gone or whose definition changed are deleted (and re-created), the others keep their
/// elements.
pub fn update_batch(table: &str, previous: &str, next: &str) -> String {
    let (old, new) = (Objects::parse(previous), Objects::parse(next));
    let mut b = String::new();
    for map in old.maps.keys() {
        let _ = writeln!(b, "flush map inet {table} {map}");
    }
    let deleted_sets: Vec<&String> =
        old.sets.iter().filter(|(n, d)| new.sets.get(*n) != Some(*d)).map(|(n, _)| n).collect();
    // A chain is left alone when its rules are the same and use no set that is re-created.
    let unchanged = |name: &String, body: &String| {
        new.chains.get(name) == Some(body) && !deleted_sets.iter().any(|set| body.contains(&format!("@{set} ")))
    };
    for (chain, body) in &old.chains {
        if !unchanged(chain, body) {
            let _ = writeln!(b, "flush chain inet {table} {chain}");
        }
    }
    for chain in old.chains.keys().filter(|c| !new.chains.contains_key(*c)) {
        let _ = writeln!(b, "delete chain inet {table} {chain}");
    }
    for map in old.maps.keys().filter(|m| !new.maps.contains_key(*m)) {
        let _ = writeln!(b, "delete map inet {table} {map}");
    }
    for set in &deleted_sets {
        let _ = writeln!(b, "delete set inet {table} {set}");
    }
    // `next` without the blocks of the unchanged chains.
    let mut lines = next.lines();
    while let Some(line) = lines.next() {
        let skip = line
            .strip_prefix("\tchain ")
            .and_then(|l| l.strip_suffix(" {"))
            .and_then(|name| old.chains.get_key_value(name))
            .is_some_and(|(name, body)| unchanged(name, body));
        if skip {
            lines.by_ref().take_while(|l| *l != "\t}").for_each(drop);
            continue;
        }
        b.push_str(line);
        b.push('\n');
    }
    b
}

/// The named objects of a rendered table (parsed from this module's own output), each with the
/// lines of its block.
#[derive(Default)]
struct Objects {
    chains: std::collections::BTreeMap<String, String>,
    maps: std::collections::BTreeMap<String, String>,
    sets: std::collections::BTreeMap<String, String>,
}

impl Objects {
    fn parse(text: &str) -> Objects {
        let mut objects = Objects::default();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let Some(head) = line.strip_prefix('\t').and_then(|l| l.strip_suffix(" {")) else { continue };
            let Some((kind, name)) = head.split_once(' ') else { continue };
            let into = match kind {
                "chain" => &mut objects.chains,
                "map" => &mut objects.maps,
                "set" => &mut objects.sets,
                _ => continue,
            };
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "\t}").collect();
            into.insert(name.to_string(), body.join("\n"));
        }
        objects
    }
}

/// The `nft -f` batch that deletes the table (also when absent).
pub fn delete_batch(table: &str) -> String {
    format!("add table inet {table}\ndelete table inet {table}\n")
}

/// Renders the whole table for `ports` (any order; the output is sorted).
pub fn render(options: &RenderOptions, ports: &[ServicePort]) -> String {
    let mut ports: Vec<&ServicePort> = ports.iter().collect();
    ports.sort_by(|a, b| (&a.namespace, &a.name, a.protocol, a.port).cmp(&(&b.namespace, &b.name, b.protocol, b.port)));
    let mut r = Renderer {
        options,
        services: Vec::new(),
        node_ports: Vec::new(),
        no_ep_services: Vec::new(),
        no_ep_node_ports: Vec::new(),
        chains: String::new(),
        sets: String::new(),
    };
    for port in ports {
        r.service_port(port);
    }
    r.finish()
}

struct Renderer<'a> {
    options: &'a RenderOptions,
    /// Elements of the verdict maps.
    services: Vec<String>,
    node_ports: Vec<String>,
    no_ep_services: Vec<String>,
    no_ep_node_ports: Vec<String>,
    /// Per-Service and per-endpoint chains.
    chains: String,
    /// Affinity sets.
    sets: String,
}

const REJECT: &str = "goto reject-chain";

impl Renderer<'_> {
    fn service_port(&mut self, sp: &ServicePort) {
        let id = sp.id();
        let cluster = sp.cluster_endpoints();
        let internal = sp.internal_endpoints();
        let proto = sp.protocol;
        let key = |ip: Ipv4Addr| format!("{ip} . {proto} . {}", sp.port);

        // The ClusterIP. No endpoints at all: reject. Endpoints, but none local for
        // internalTrafficPolicy Local: drop, as upstream.
        if cluster.is_empty() {
            self.no_ep_services.push(format!("{} : {REJECT}", key(sp.cluster_ip)));
        } else if internal.is_empty() {
            self.no_ep_services.push(format!("{} : drop", key(sp.cluster_ip)));
        } else {
            let chain = format!("svc-{id}");
            self.services.push(format!("{} : goto {chain}", key(sp.cluster_ip)));
            let mut rules = Vec::new();
            match self.options.cluster_cidr {
                Some(cidr) => rules.push(format!("ip saddr != {cidr} jump mark-for-masquerade")),
                None => rules.push("jump mark-for-masquerade".to_string()),
            }
            balance(&mut rules, "", sp, &internal);
            self.chain(&chain, &rules);
        }

        // NodePort, externalIPs and LoadBalancer IPs.
        if sp.externally_accessible() {
            if cluster.is_empty() {
                for ip in &sp.external_ips {
                    self.no_ep_services.push(format!("{} : {REJECT}", key(*ip)));
                }
                if let Some(np) = sp.node_port {
                    self.no_ep_node_ports.push(format!("{proto} . {np} : {REJECT}"));
                }
            } else {
                let chain = format!("ext-{id}");
                for ip in &sp.external_ips {
                    self.services.push(format!("{} : goto {chain}", key(*ip)));
                }
                if let Some(np) = sp.node_port {
                    self.node_ports.push(format!("{proto} . {np} : goto {chain}"));
                }
                let mut rules = Vec::new();
                if sp.external_local {
                    // Traffic from this host or from pods has no client address worth keeping:
                    // it goes to any endpoint (upstream's short-circuit), masqueraded.
                    rules.push("fib saddr type local jump mark-for-masquerade".to_string());
                    balance(&mut rules, "fib saddr type local ", sp, &cluster);
                    if let Some(cidr) = self.options.cluster_cidr {
                        balance(&mut rules, &format!("ip saddr {cidr} "), sp, &cluster);
                    }
                    let local = sp.local_endpoints();
                    if local.is_empty() {
                        rules.push("drop".to_string());
                    } else {
                        balance(&mut rules, "", sp, &local);
                    }
                } else {
                    rules.push("jump mark-for-masquerade".to_string());
                    balance(&mut rules, "", sp, &cluster);
                }
                self.chain(&chain, &rules);
            }
        }

        // One chain (and affinity set) per endpoint any of the above can pick.
        let mut used: BTreeSet<&Endpoint> = BTreeSet::new();
        used.extend(internal.iter().copied());
        if sp.externally_accessible() {
            used.extend(cluster.iter().copied());
            used.extend(sp.local_endpoints());
        }
        for ep in used {
            let name = endpoint_chain(sp, ep);
            let mut rules = Vec::new();
            match self.options.cluster_cidr {
                // A pod endpoint reached from a pod: see "Masquerading" above.
                Some(cidr) if cidr.contains(ep.ip) => rules.push(format!("ip saddr {cidr} jump mark-for-masquerade")),
                _ => rules.push(format!("ip saddr {} jump mark-for-masquerade", ep.ip)),
            }
            if let Some(timeout) = sp.affinity_timeout {
                let set = affinity_set(sp, ep);
                let _ = write!(
                    self.sets,
                    "\tset {set} {{\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout {timeout}s\n\t}}\n"
                );
                rules.push(format!("update @{set} {{ ip saddr }}"));
            }
            rules.push(format!("meta l4proto {} dnat ip to {}:{}", sp.protocol, ep.ip, ep.port));
            self.chain(&name, &rules);
        }
    }

    fn chain(&mut self, name: &str, rules: &[String]) {
        let _ = writeln!(self.chains, "\tchain {name} {{");
        for rule in rules {
            let _ = writeln!(self.chains, "\t\t{rule}");
        }
        self.chains.push_str("\t}\n");
    }

    fn finish(self) -> String {
        let o = self.options;
        let mark = format!("{:#x}", o.masquerade_mark);
        let node_port_match = if o.node_ips.is_empty() {
            "fib daddr type local".to_string()
        } else {
            "ip daddr @nodeport-ips".to_string()
        };
        let mut t = String::new();
        let _ = writeln!(t, "table inet {} {{", o.table);
        map(&mut t, "services", "ipv4_addr . inet_proto . inet_service", &self.services);
        map(&mut t, "service-nodeports", "inet_proto . inet_service", &self.node_ports);
        map(&mut t, "no-endpoint-services", "ipv4_addr . inet_proto . inet_service", &self.no_ep_services);
        map(&mut t, "no-endpoint-nodeports", "inet_proto . inet_service", &self.no_ep_node_ports);
        if !o.node_ips.is_empty() {
            let mut ips: Vec<Ipv4Addr> = o.node_ips.clone();
            ips.push(Ipv4Addr::LOCALHOST);
            ips.sort();
            ips.dedup();
            let ips: Vec<String> = ips.iter().map(ToString::to_string).collect();
            let _ =
                write!(t, "\tset nodeport-ips {{\n\t\ttype ipv4_addr\n\t\telements = {{ {} }}\n\t}}\n", ips.join(", "));
        }
        t.push_str(&self.sets);
        // Filter ahead of NAT (-110 < -100): Services without endpoints are answered at once.
        for (chain, hook) in [("filter-prerouting", "prerouting"), ("filter-output", "output")] {
            let _ = write!(
                t,
                "\tchain {chain} {{\n\t\ttype filter hook {hook} priority -110; policy accept;\n\t\tct state new jump endpoints-check\n\t}}\n"
            );
        }
        let _ = write!(
            t,
            "\tchain endpoints-check {{\n\t\tip daddr . meta l4proto . th dport vmap @no-endpoint-services\n\t\t{node_port_match} meta l4proto . th dport vmap @no-endpoint-nodeports\n\t}}\n"
        );
        t.push_str(
            "\tchain reject-chain {\n\t\tmeta l4proto tcp reject with tcp reset\n\t\treject with icmpx port-unreachable\n\t}\n",
        );
        // A ClusterIP without rules is refused here rather than routed anywhere.
        for (chain, hook) in [("nat-prerouting", "prerouting"), ("nat-output", "output")] {
            let _ = write!(
                t,
                "\tchain {chain} {{\n\t\ttype nat hook {hook} priority -100; policy accept;\n\t\tjump services\n\t\tip daddr {} goto reject-chain\n\t}}\n",
                o.service_cidr
            );
        }
        // 127.0.0.0/8 sources (NodePorts at localhost, with route_localnet) must never leave
        // the host unmasqueraded; they are marked already, the second rule is a safety net.
        let _ = write!(
            t,
            "\tchain nat-postrouting {{\n\t\ttype nat hook postrouting priority 100; policy accept;\n\t\tmeta mark & {mark} != 0 goto masquerading\n\t\tip saddr 127.0.0.0/8 ct status dnat oifname != \"lo\" masquerade\n\t}}\n"
        );
        let _ = write!(
            t,
            "\tchain masquerading {{\n\t\tmeta mark set meta mark xor {mark}\n\t\tmasquerade fully-random\n\t}}\n"
        );
        let _ = write!(t, "\tchain mark-for-masquerade {{\n\t\tmeta mark set meta mark or {mark}\n\t}}\n");
        let _ = write!(
            t,
            "\tchain services {{\n\t\tip daddr . meta l4proto . th dport vmap @services\n\t\t{node_port_match} meta l4proto . th dport vmap @service-nodeports\n\t}}\n"
        );
        t.push_str(&self.chains);
        t.push_str("}\n");
        t
    }
}

fn map(t: &mut String, name: &str, key: &str, elements: &[String]) {
    let _ = write!(t, "\tmap {name} {{\n\t\ttype {key} : verdict\n");
    if !elements.is_empty() {
        let _ = writeln!(t, "\t\telements = {{ {} }}", elements.join(",\n\t\t\t"));
    }
    t.push_str("\t}\n");
}

/// Above this many endpoints a Service picks one through an anonymous `numgen` verdict map;
/// up to it, through a cascade of rules.
///
/// Each anonymous set costs the kernel a scan of the table's sets when it is created, so 10,000
/// Services with a map each took 45 s to load (nft 1.0.6, kernel 6.18) against 2 s for the
/// cascade, which needs no set: rule i matches with probability 1/(N-i), as kube-proxy's iptables
/// `statistic` rules, so each endpoint gets 1/N.
pub const NUMGEN_MAP_MIN_ENDPOINTS: usize = 17;

/// Rules (each starting with `prefix`) that send a packet to one of `endpoints`: the endpoint it
/// used last when affinity is on, else a random one.
fn balance(rules: &mut Vec<String>, prefix: &str, sp: &ServicePort, endpoints: &[&Endpoint]) {
    if sp.affinity_timeout.is_some() {
        for ep in endpoints {
            rules.push(format!("{prefix}ip saddr @{} goto {}", affinity_set(sp, ep), endpoint_chain(sp, ep)));
        }
    }
    match endpoints {
        [] => {}
        [one] => rules.push(format!("{prefix}goto {}", endpoint_chain(sp, one))),
        many if many.len() < NUMGEN_MAP_MIN_ENDPOINTS => {
            let (last, rest) = many.split_last().expect("more than one endpoint");
            for (i, ep) in rest.iter().enumerate() {
                rules.push(format!("{prefix}numgen random mod {} 0 goto {}", many.len() - i, endpoint_chain(sp, ep)));
            }
            rules.push(format!("{prefix}goto {}", endpoint_chain(sp, last)));
        }
        many => {
            let arms: Vec<String> =
                many.iter().enumerate().map(|(i, ep)| format!("{i} : goto {}", endpoint_chain(sp, ep))).collect();
            rules.push(format!("{prefix}numgen random mod {} vmap {{ {} }}", many.len(), arms.join(", ")));
        }
    }
}

fn endpoint_chain(sp: &ServicePort, ep: &Endpoint) -> String {
    format!("ep-{}/{}/{}", sp.id(), ep.ip, ep.port)
}

fn affinity_set(sp: &ServicePort, ep: &Endpoint) -> String {
    format!("aff-{}/{}/{}", sp.id(), ep.ip, ep.port)
}

#[cfg(test)]
mod tests;
