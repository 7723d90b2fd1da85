//! End-to-end tests of cluster DNS: `berth server` with its agent runs the node's DNS server on
//! the cluster bridge's address, busybox pods resolve Services by their short names through
//! their resolv.conf (directly, and through the kube-dns ClusterIP and the service proxy).
//!
//! They need root, runc, CNI (and nft for the proxy), so they are `#[ignore]`d; run them with
//! `cargo nextest run -p berth --run-ignored all --test e2e_dns`.
//!
//! Safety on a shared machine: the cluster fixture's bridge, CIDRs, table and cleanup (see
//! e2e_pods.rs and e2e_services.rs); the DNS server listens only on the test bridge's own
//! address and forwards names outside the cluster domain to 127.0.0.1:9 (discard), never to the
//! host's resolvers. Traffic stays on the host.

mod common;

use std::time::Duration;

use common::cluster::{Cluster, POD_TIMEOUT, prerequisites};
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

/// A pod that resolves `myapp-service` (and fetches it when `fetch`) until it works, logging
/// every attempt, then idles. `dns` is extra pod spec (dnsPolicy, dnsConfig).
fn client(dns: &str, fetch: bool) -> String {
    // Debian's busybox-static wget segfaults in this image (static glibc, no NSS modules), so
    // the fetch is an HTTP request by nc to the address nslookup resolved for the name.
    let fetch = if fetch {
        "ip=$(sed -n '/^Name:/,$p' /tmp/out | sed -n 's/^Address: *//p' | head -n 1); echo \"fetch: $ip\"; \
         printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 2 $ip 8081 | tail -n 1 | sed 's/^/body: /'"
    } else {
        "true"
    };
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  terminationGracePeriodSeconds: 1
{dns}
  containers:
  - name: main
    image: busybox
    command:
    - sh
    - -c
    - |
      cat /etc/resolv.conf | sed 's/^/resolv: /'
      i=0
      while [ $i -lt 60 ]; do
        # busybox nslookup tries every search domain and exits 1 when any is NXDOMAIN.
        nslookup myapp-service > /tmp/out 2>&1
        if grep -q '^Name:' /tmp/out; then
          sed 's/^/nslookup: /' /tmp/out
          {fetch}
          echo done
          exec sleep 3600
        fi
        i=$((i+1))
        sleep 0.5
      done
      sed 's/^/failed: /' /tmp/out
      echo done
      exec sleep 3600
"#
    )
}

/// The client's log once it printed `done`.
fn client_log(c: &Cluster) -> String {
    c.wait_pod("client", "started", |p| p["status"]["phase"] == "Running");
    let uid = c.pod("client").and_then(|p| p["metadata"]["uid"].as_str().map(String::from)).unwrap_or_default();
    let log = c.data.join("agent/pods").join(uid).join("logs/main/0.log");
    let mut text = String::new();
    let done = wait_until(Duration::from_secs(60), || {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("done")
    });
    assert!(done, "client never finished; log: {text}\nserver log:\n{}", c.log());
    text
}

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
    c.apply(&client(&dns, false));
    let log = client_log(&c);
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

#[test]
#[ignore = "needs root: runc, netns, CNI, nftables"]
fn a_cluster_first_pod_resolves_and_reaches_a_service_through_kube_dns() {
    if !prerequisites("a_cluster_first_pod_resolves_and_reaches_a_service_through_kube_dns") {
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
    c.apply(BACKEND);
    let ip = service_ip(&c);
    c.wait_pod("myapp", "became ready", |p| {
        p["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
    });
    let ready =
        wait_until(POD_TIMEOUT, || kube_dns_slices(&c).is_ok_and(|l| l["items"][0]["ports"][0]["port"] == 5353));
    assert!(ready, "no kube-dns EndpointSlice; log:\n{}", c.log());

    c.apply(&client("", true));
    let log = client_log(&c);
    assert!(log.contains(&format!("resolv: nameserver {dns_ip}")), "{log}");
    assert!(log.contains("resolv: search default.svc.cluster.local svc.cluster.local cluster.local"), "{log}");
    assert!(log.contains("resolv: options ndots:5"), "{log}");
    assert!(log.contains("nslookup: ") && log.contains(&ip), "no answer {ip} in: {log}\nserver log:\n{}", c.log());
    assert!(log.contains("body: hello from myapp"), "no HTTP answer from the resolved address: {log}");
}
