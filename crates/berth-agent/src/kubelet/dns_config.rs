//! The pod's `/etc/resolv.conf`, from its `dnsPolicy` and `dnsConfig` and the node's DNS settings,
//! following the kubelet (pkg/kubelet/network/dns): ClusterFirst pods get the cluster DNS IP,
//! the `<ns>.svc.<domain> svc.<domain> <domain>` search list plus the host's, and `ndots:5`;
//! Default (and ClusterFirst with hostNetwork) pods get the host's; None gets only `dnsConfig`.
//! Pure except [`host_resolv_conf`], which reads the host's files.

use std::net::IpAddr;
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;

/// At most this many nameservers (validation.MaxDNSNameservers); the libc resolver ignores more.
pub const MAX_NAMESERVERS: usize = 3;
/// At most this many search domains (MaxDNSSearchPaths).
pub const MAX_SEARCHES: usize = 32;
/// At most this many characters in the search line (MaxDNSSearchListChars).
pub const MAX_SEARCH_CHARS: usize = 2048;
/// The options of ClusterFirst pods.
pub const CLUSTER_OPTIONS: &[&str] = &["ndots:5"];

/// The contents of a resolv.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Parses resolv.conf text as the kubelet does: every `nameserver`, the last `search` line
    /// (trailing dots dropped), and the options of every `options` line.
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("nameserver") => conf.nameservers.extend(fields.next().map(str::to_string)),
                Some("search") => {
                    conf.searches =
                        fields.map(|s| if s == "." { s } else { s.trim_end_matches('.') }.to_string()).collect()
                }
                Some("options") => conf.options.extend(fields.map(str::to_string)),
                _ => {}
            }
        }
        conf
    }

    /// The file text: `nameserver` lines, then one `search` and one `options` line when non-empty.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for ns in &self.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }

    fn has_loopback_nameserver(&self) -> bool {
        self.nameservers.iter().any(|ns| ns.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()))
    }
}

/// The host's resolver configuration for pods. `/etc/resolv.conf`, unless it points at a
/// loopback stub (systemd-resolved's 127.0.0.53, unreachable from a pod's network namespace)
/// and `/run/systemd/resolve/resolv.conf` lists the real servers, as k3s picks it.
pub fn host_resolv_conf() -> ResolvConf {
    let read = |path: &str| std::fs::read_to_string(Path::new(path)).ok().map(|t| ResolvConf::parse(&t));
    let etc = read("/etc/resolv.conf").unwrap_or_default();
    if etc.has_loopback_nameserver()
        && let Some(systemd) = read("/run/systemd/resolve/resolv.conf")
        && !systemd.nameservers.is_empty()
        && !systemd.has_loopback_nameserver()
    {
        return systemd;
    }
    etc
}

/// How the pod's DNS is configured (the kubelet's podDNSType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodDnsType {
    Cluster,
    Host,
    None,
}

/// The pod's DNS type from `dnsPolicy` and `hostNetwork`; without a cluster DNS IP, Cluster
/// falls back to Host (the kubelet reports "MissingClusterDNS").
pub fn pod_dns_type(pod: &Pod, cluster_dns: Option<IpAddr>) -> PodDnsType {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let kind = match spec.and_then(|s| s.dns_policy.as_deref()).unwrap_or("ClusterFirst") {
        "None" => PodDnsType::None,
        "ClusterFirstWithHostNet" => PodDnsType::Cluster,
        "Default" => PodDnsType::Host,
        // ClusterFirst (and anything unknown, which validation rejects): host DNS for hostNetwork pods.
        _ if host_network => PodDnsType::Host,
        _ => PodDnsType::Cluster,
    };
    if kind == PodDnsType::Cluster && cluster_dns.is_none() { PodDnsType::Host } else { kind }
}

fn omit_duplicates(items: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// Merges `dnsConfig.options` over existing `name[:value]` options; a later option of the same
/// name replaces the earlier one in place.
fn merge_options(existing: &[String], extra: &[(String, Option<String>)]) -> Vec<String> {
    let mut merged: Vec<(String, Option<String>)> = Vec::new();
    let parsed = existing.iter().map(|o| match o.split_once(':') {
        Some((name, value)) => (name.to_string(), Some(value.to_string())),
        None => (o.clone(), None),
    });
    for (name, value) in parsed.chain(extra.iter().cloned()) {
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => merged.push((name, value)),
        }
    }
    merged
        .into_iter()
        .map(|(name, value)| match value.filter(|v| !v.is_empty()) {
            Some(value) => format!("{name}:{value}"),
            None => name,
        })
        .collect()
}

/// Trims the search list to the resolver's limits (count, then total length), as the kubelet.
fn fit_searches(mut searches: Vec<String>) -> Vec<String> {
    searches.truncate(MAX_SEARCHES);
    while !searches.is_empty() && searches.join(" ").len() > MAX_SEARCH_CHARS {
        searches.pop();
    }
    searches
}

/// The pod's resolv.conf from its spec, the cluster DNS settings and the host's resolv.conf.
pub fn pod_resolv_conf(pod: &Pod, cluster_dns: Option<IpAddr>, cluster_domain: &str, host: &ResolvConf) -> ResolvConf {
    let mut conf = match pod_dns_type(pod, cluster_dns) {
        PodDnsType::None => ResolvConf::default(),
        PodDnsType::Host => host.clone(),
        PodDnsType::Cluster => {
            let domain = cluster_domain.trim_end_matches('.');
            let mut searches = Vec::new();
            if !domain.is_empty() {
                let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
                searches = vec![format!("{ns}.svc.{domain}"), format!("svc.{domain}"), domain.to_string()];
            }
            searches.extend(host.searches.iter().cloned());
            ResolvConf {
                nameservers: cluster_dns.iter().map(IpAddr::to_string).collect(),
                searches: omit_duplicates(searches),
                options: CLUSTER_OPTIONS.iter().map(|o| o.to_string()).collect(),
            }
        }
    };
    if let Some(dns) = pod.spec.as_ref().and_then(|s| s.dns_config.as_ref()) {
        conf.nameservers.extend(dns.nameservers.iter().flatten().cloned());
        conf.nameservers = omit_duplicates(conf.nameservers);
        conf.searches.extend(dns.searches.iter().flatten().cloned());
        conf.searches = omit_duplicates(conf.searches);
        let extra: Vec<(String, Option<String>)> = dns
            .options
            .iter()
            .flatten()
            .filter_map(|o| Some((o.name.clone().filter(|n| !n.is_empty())?, o.value.clone())))
            .collect();
        conf.options = merge_options(&conf.options, &extra);
    }
    conf.nameservers.truncate(MAX_NAMESERVERS);
    conf.searches = fit_searches(conf.searches);
    conf
}

/// The resolv.conf text of a pod on this node (reads the host's resolv.conf).
pub fn resolv_conf_for(pod: &Pod, config: &super::KubeletConfig) -> String {
    pod_resolv_conf(pod, config.cluster_dns, &config.cluster_domain, &host_resolv_conf()).render()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodDNSConfig, PodDNSConfigOption, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    const DNS: &str = "10.43.0.10";

    fn host() -> ResolvConf {
        ResolvConf::parse(
            "# generated\nnameserver 192.168.1.1\nnameserver 192.168.1.2 ; second\nsearch old.example\n\
             search corp.example. lab.example\noptions edns0 timeout:2\n",
        )
    }

    fn pod(policy: Option<&str>, host_network: bool) -> Pod {
        Pod {
            metadata: ObjectMeta { namespace: Some("shop".into()), name: Some("p".into()), ..Default::default() },
            spec: Some(PodSpec {
                dns_policy: policy.map(str::to_string),
                host_network: Some(host_network),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn resolv(pod: &Pod) -> ResolvConf {
        pod_resolv_conf(pod, Some(DNS.parse().expect("ip")), "cluster.local", &host())
    }

    #[test]
    fn host_resolv_conf_is_parsed_like_the_kubelet() {
        let host = host();
        assert_eq!(host.nameservers, ["192.168.1.1", "192.168.1.2"]);
        assert_eq!(host.searches, ["corp.example", "lab.example"], "last search line wins, dots trimmed");
        assert_eq!(host.options, ["edns0", "timeout:2"]);
    }

    #[test]
    fn cluster_first_pods_use_the_cluster_dns_and_search_list() {
        let conf = resolv(&pod(None, false));
        assert_eq!(conf.nameservers, [DNS]);
        assert_eq!(
            conf.searches,
            ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example", "lab.example"]
        );
        assert_eq!(conf.options, ["ndots:5"]);
        assert_eq!(
            conf.render(),
            "nameserver 10.43.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\noptions ndots:5\n"
        );
        assert_eq!(resolv(&pod(Some("ClusterFirst"), false)), conf);
        assert_eq!(resolv(&pod(Some("ClusterFirstWithHostNet"), true)), conf);
    }

    #[test]
    fn default_policy_and_host_network_cluster_first_use_the_host() {
        assert_eq!(resolv(&pod(Some("Default"), false)), host());
        assert_eq!(resolv(&pod(Some("ClusterFirst"), true)), host());
    }

    #[test]
    fn without_a_cluster_dns_ip_cluster_first_falls_back_to_the_host() {
        let conf = pod_resolv_conf(&pod(None, false), None, "cluster.local", &host());
        assert_eq!(conf, host());
    }

    #[test]
    fn none_policy_uses_only_dns_config() {
        let mut p = pod(Some("None"), false);
        p.spec.as_mut().expect("spec").dns_config = Some(PodDNSConfig {
            nameservers: Some(vec!["1.2.3.4".into()]),
            searches: Some(vec!["ns1.svc.cluster-domain.example".into(), "my.dns.search.suffix".into()]),
            options: Some(vec![
                PodDNSConfigOption { name: Some("ndots".into()), value: Some("2".into()) },
                PodDNSConfigOption { name: Some("edns0".into()), value: None },
            ]),
        });
        assert_eq!(
            resolv(&p).render(),
            "nameserver 1.2.3.4\nsearch ns1.svc.cluster-domain.example my.dns.search.suffix\noptions ndots:2 edns0\n"
        );
    }

    #[test]
    fn dns_config_is_merged_into_cluster_first() {
        let mut p = pod(None, false);
        p.spec.as_mut().expect("spec").dns_config = Some(PodDNSConfig {
            nameservers: Some(vec![DNS.into(), "9.9.9.9".into(), "8.8.8.8".into(), "1.1.1.1".into()]),
            searches: Some(vec!["svc.cluster.local".into(), "extra.example".into()]),
            options: Some(vec![
                PodDNSConfigOption { name: Some("ndots".into()), value: Some("1".into()) },
                PodDNSConfigOption { name: Some("single-request".into()), value: None },
            ]),
        });
        let conf = resolv(&p);
        assert_eq!(conf.nameservers, [DNS, "9.9.9.9", "8.8.8.8"], "deduplicated, at most 3");
        assert_eq!(conf.searches.last().map(String::as_str), Some("extra.example"));
        assert_eq!(conf.searches.iter().filter(|s| *s == "svc.cluster.local").count(), 1);
        assert_eq!(conf.options, ["ndots:1", "single-request"]);
    }

    #[test]
    fn search_list_is_trimmed_to_the_limits() {
        let many: Vec<String> = (0..40).map(|i| format!("d{i}.example")).collect();
        assert_eq!(fit_searches(many).len(), MAX_SEARCHES);
        let long: Vec<String> = (0..10).map(|i| format!("{i}{}", "x".repeat(250))).collect();
        let fitted = fit_searches(long);
        assert!(fitted.join(" ").len() <= MAX_SEARCH_CHARS);
        assert_eq!(fitted.len(), 8);
    }
}
