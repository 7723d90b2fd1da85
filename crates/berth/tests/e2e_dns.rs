//! End-to-end tests of cluster DNS: `berth server` with its agent runs the node's DNS server on
//! the cluster bridge's address, busybox pods resolve Services by their short names through
//! their resolv.conf, directly and through the kube-dns ClusterIP and the service proxy. There a
//! pod's `wget` reaches all three backends by the Service's short name, its full name and an
//! ExternalName pointing at it; nslookup shows the CNAME, and the headless Service's pod IPs.
//!
//! They need root, runc, CNI (and nft for the proxy), so they are `#[ignore]`d; run them with
//! `cargo nextest run -p berth --run-ignored all --test e2e_dns`.
//!
//! Safety on a shared machine: the cluster fixture's bridge, CIDRs, table and cleanup (see
//! e2e_pods.rs and e2e_services.rs); the DNS server listens only on the test bridge's own
//! address and forwards names outside the cluster domain to 127.0.0.1:9 (discard), never to the
//! host's resolvers. Traffic stays on the host.

mod common;

use common::cluster::{Cluster, POD_TIMEOUT, is_ready, prerequisites, script_pod, web_pods};
use common::wait_until;

/// A web pod and `myapp-service` (8081 → 80) in front of it.
const BACKEND: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: myapp, labels: {app: myapp}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello from myapp > /www/index.html && exec httpd -f -p 80 -h /www"]
---
apiVersion: v1
kind: Service
metadata: {name: myapp-service}
spec:
  selector: {app: myapp}
  ports:
  - {name: http, port: 8081, targetPort: 80}
"#;

/// The client's script: resolves `myapp-service` until it works, logging every attempt, then
/// idles.
const LOOKUP_SCRIPT: &str = r#"cat /etc/resolv.conf | sed 's/^/resolv: /'
i=0
while [ $i -lt 60 ]; do
  # busybox nslookup tries every search domain and exits 1 when any is NXDOMAIN.
  nslookup myapp-service > /tmp/out 2>&1
  if grep -q '^Name:' /tmp/out; then
    sed 's/^/nslookup: /' /tmp/out
    echo done
    exec sleep 3600
  fi
  i=$((i+1))
  sleep 0.5
done
sed 's/^/failed: /' /tmp/out
echo done
exec sleep 3600
"#;

fn service_ip(c: &Cluster) -> String {
    let svc = c.berth(&["get", "service", "myapp-service", "-o", "json"]).expect("get service");
    svc["spec"]["clusterIP"].as_str().unwrap_or_default().to_string()
}

/// The kube-dns Service's EndpointSlices, as JSON.
fn kube_dns_slices(c: &Cluster) -> Result<serde_json::Value, String> {
    c.berth(&["get", "endpointslices", "-n", "kube-system", "-l", "kubernetes.io/service-name=kube-dns", "-o", "json"])
}

fn dns_flags(c: &Cluster) -> Vec<String> {
    ["--cluster-dns-bind-address", &c.gateway(), "--cluster-dns-upstream", "127.0.0.1:9"].map(String::from).to_vec()
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn a_pod_resolves_a_service_by_its_short_name_from_the_node_dns_server() {
    if !prerequisites("a_pod_resolves_a_service_by_its_short_name_from_the_node_dns_server") {
        return;
    }
    let c = Cluster::start_with(0, &dns_flags);
    c.apply(BACKEND);
    let ip = service_ip(&c);
    assert!(!ip.is_empty());
    // Without the proxy, the pod names the node's DNS server (the bridge address, port 53)
    // directly, with the search list and options a ClusterFirst pod gets.
    let dns = format!(
        "  dnsPolicy: None\n  dnsConfig:\n    nameservers: [{}]\n    searches: [default.svc.cluster.local, svc.cluster.local, cluster.local]\n    options: [{{name: ndots, value: \"5\"}}]",
        c.gateway()
    );
    c.apply(&script_pod("client", &dns, LOOKUP_SCRIPT));
    let log = c.wait_log("client", "main", "done");
    assert!(log.contains(&format!("resolv: nameserver {}", c.gateway())), "{log}");
    assert!(log.contains("resolv: search default.svc.cluster.local svc.cluster.local cluster.local"), "{log}");
    assert!(log.contains("nslookup: ") && log.contains(&ip), "no answer {ip} in: {log}\nserver log:\n{}", c.log());

    // The kube-dns Service and this node's EndpointSlice exist.
    let svc = c.berth(&["get", "service", "kube-dns", "-n", "kube-system", "-o", "json"]).expect("kube-dns");
    assert_eq!(svc["spec"]["clusterIP"], "10.43.0.10");
    let slices = kube_dns_slices(&c).expect("slices");
    assert_eq!(slices["items"][0]["endpoints"][0]["addresses"][0], c.gateway(), "{slices:#}");
    assert_eq!(slices["items"][0]["ports"][0]["port"], 53, "{slices:#}");
}

/// myapp-service in front of the `myapp` pods, a headless Service over the same pods, and an
/// ExternalName Service naming myapp-service's full name.
const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: myapp-service}
spec:
  selector: {app: myapp}
  ports:
  - {name: http, port: 8081, targetPort: 80}
---
apiVersion: v1
kind: Service
metadata: {name: myapp-headless}
spec:
  clusterIP: None
  selector: {app: myapp}
  ports:
  - {name: http, port: 80}
---
apiVersion: v1
kind: Service
metadata: {name: myapp-external}
spec:
  type: ExternalName
  externalName: myapp-service.default.svc.cluster.local
"#;

/// The script of a ClusterFirst pod that fetches the Services by name with `wget` once the short name answers:
/// 60 times by the short name, once by the full name and once through the ExternalName, then
/// looks up the ExternalName (CNAME) and the headless Service (pod IPs), connects to the
/// apiserver through the `kubernetes` Service, and idles. (No `wget -T`:
/// Debian's busybox 1.35 wget crashes when a timeout meets a name lookup.)
const WGET_SCRIPT: &str = r#"cat /etc/resolv.conf | sed 's/^/resolv: /'
i=0
until wget -q -O /dev/null http://myapp-service:8081 || [ $i -ge 60 ]; do i=$((i+1)); sleep 0.5; done
i=0
while [ $i -lt 60 ]; do
  echo "answer: $(wget -qO- http://myapp-service:8081 2>&1)"
  i=$((i+1))
done
echo "fqdn: $(wget -qO- http://myapp-service.default.svc.cluster.local:8081 2>&1)"
echo "external: $(wget -qO- http://myapp-external:8081 2>&1)"
nslookup myapp-external.default.svc.cluster.local. 2>&1 | sed 's/^/cname: /'
nslookup myapp-headless.default.svc.cluster.local. 2>&1 | sed 's/^/headless: /'
echo | nc -w 2 kubernetes.default.svc 443 >/dev/null && echo "kubernetes: connected"
echo done
exec sleep 3600
"#;

/// The values after `prefix` on the log lines that carry it.
fn logged<'a>(log: &'a str, prefix: &str) -> Vec<&'a str> {
    log.lines().filter_map(|l| l.split_once(prefix)).map(|(_, v)| v.trim()).collect()
}

#[test]
#[ignore = "needs root: runc, netns, CNI, nftables"]
fn a_pod_reaches_services_by_name_through_kube_dns_and_the_proxy() {
    if !prerequisites("a_pod_reaches_services_by_name_through_kube_dns_and_the_proxy") {
        return;
    }
    let c = Cluster::start_with_proxy(1, &|c| {
        let mut flags = dns_flags(c);
        // Another port than 53: the proxy forwards kube-dns's port 53 to it.
        flags.extend(["--cluster-dns-port", "5353"].map(String::from));
        flags
    });
    let proxy = c.proxy.as_ref().expect("proxy setup");
    let dns_ip = format!("{}10", proxy.service_cidr.trim_end_matches("0/24"));
    c.apply(&web_pods("myapp", 3));
    c.apply(SERVICES);
    let pod_ips: Vec<String> = (0..3)
        .map(|i| {
            let pod = c.wait_pod(&format!("myapp-{i}"), "became ready", is_ready);
            pod["status"]["podIP"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    let ready =
        wait_until(POD_TIMEOUT, || kube_dns_slices(&c).is_ok_and(|l| l["items"][0]["ports"][0]["port"] == 5353));
    assert!(ready, "no kube-dns EndpointSlice; log:\n{}", c.log());

    c.apply(&script_pod("client", "", WGET_SCRIPT));
    let log = c.wait_log("client", "main", "done");
    assert!(log.contains(&format!("resolv: nameserver {dns_ip}")), "{log}");
    assert!(log.contains("resolv: search default.svc.cluster.local svc.cluster.local cluster.local"), "{log}");
    assert!(log.contains("resolv: options ndots:5"), "{log}");

    // `wget -qO- http://myapp-service:8081`, 60 times: every answer from a backend, all three seen.
    let answers = logged(&log, "answer: ");
    let backends: std::collections::BTreeSet<&str> = answers.iter().copied().collect();
    assert_eq!(answers.len(), 60, "{log}");
    assert_eq!(backends, ["myapp-0", "myapp-1", "myapp-2"].into(), "answers by the short name: {log}");
    for how in ["fqdn: ", "external: "] {
        let answer = logged(&log, how);
        assert!(answer.len() == 1 && answer[0].starts_with("myapp-"), "{how}{answer:?}\n{log}");
    }
    // ExternalName: a CNAME to myapp-service; headless: the three pod IPs.
    let cname = logged(&log, "cname: ").join("\n");
    assert!(cname.contains("canonical name = myapp-service.default.svc.cluster.local"), "{cname}");
    let headless = logged(&log, "headless: ").join("\n");
    assert!(pod_ips.iter().all(|ip| !ip.is_empty() && headless.contains(ip.as_str())), "{pod_ips:?} in {headless}");
    // The apiserver (listening on loopback) accepts a connection to kubernetes.default.svc:443.
    assert!(log.contains("kubernetes: connected"), "{log}");
}
