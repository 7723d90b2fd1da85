//! End-to-end tests of Services through the service proxy: `berth server` with its agent and
//! proxy, busybox httpd pods behind a ClusterIP/NodePort Service and a LoadBalancer, traffic from
//! the host, a Service without endpoints that refuses connections at once, an unready pod dropped
//! within 2 s, a deleted pod leaving the endpoints while it still serves, and a rolling update
//! under load that fails no request. (Traffic from pods, by Service name: e2e_dns.rs.)
//!
//! They need root, runc, CNI and nft, so they are `#[ignore]`d; run them with
//! `cargo nextest run -p berth --run-ignored all --test e2e_services`.
//!
//! Safety on a shared machine: the cluster fixture's proxy mode (`Cluster::start_with_proxy`)
//! gives each run its own bridge, pod CIDR, service CIDR (10.150-199.x.0/24, blackholed for
//! forwarded traffic by a policy rule), nftables table and NodePort addresses (127.0.0.1 and the
//! bridge's own address); it sets route_localnet and forwarding on that bridge only, never the
//! global ip_forward, and removes table, rules and route on drop. Traffic stays on the host.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::cluster::{Cluster, POD_TIMEOUT, http_get, is_ready, prerequisites, web_pods};
use common::wait_until;
use serde_json::Value;

/// myapp-service (8081 → 80, NodePort 32002) at `myapp_ip`, and a Service selecting no pod.
fn services(myapp_ip: &str, empty_ip: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: myapp-service}}
spec:
  type: NodePort
  clusterIP: {myapp_ip}
  selector: {{app: myapp}}
  ports:
  - {{name: http, port: 8081, targetPort: 80, nodePort: 32002}}
---
apiVersion: v1
kind: Service
metadata: {{name: empty-service}}
spec:
  clusterIP: {empty_ip}
  selector: {{app: nothing}}
  ports:
  - {{name: http, port: 8082, targetPort: 80}}
"#
    )
}

/// Counts of the answers (pod names) to `n` requests.
fn answers(addr: SocketAddr, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let body = http_get(addr).unwrap_or_else(|e| format!("error: {e}"));
        let last = body.lines().last().unwrap_or_default().trim().to_string();
        *seen.entry(last).or_insert(0) += 1;
    }
    seen
}

#[test]
#[ignore = "needs root: runc, netns, CNI, nftables"]
fn services_balance_over_pods_from_the_host_and_reject_without_endpoints() {
    if !prerequisites("services_balance_over_pods_from_the_host_and_reject_without_endpoints") {
        return;
    }
    let c = Cluster::start_with_proxy(0, &|_| Vec::new());
    let proxy = c.proxy.as_ref().expect("proxy setup");
    let prefix = proxy.service_cidr.trim_end_matches("0/24").to_string();
    let (myapp_ip, empty_ip) = (format!("{prefix}100"), format!("{prefix}101"));

    c.apply(&web_pods("myapp", 3));
    c.apply(&services(&myapp_ip, &empty_ip));
    for i in 0..3 {
        c.wait_pod(&format!("myapp-{i}"), "became ready", is_ready);
    }
    // The EndpointSlice controller lists the three pods; the proxy programs them.
    let ready = wait_until(POD_TIMEOUT, || {
        c.berth(&["get", "endpointslices", "-l", "kubernetes.io/service-name=myapp-service", "-o", "json"])
            .is_ok_and(|l| l["items"][0]["endpoints"].as_array().is_some_and(|e| e.len() == 3))
    });
    assert!(ready, "no EndpointSlice with 3 endpoints; log:\n{}", c.log());

    // From the host: 60 requests reach all three backends.
    let cluster_ip: SocketAddr = format!("{myapp_ip}:8081").parse().expect("addr");
    let mut seen = BTreeMap::new();
    let synced = wait_until(POD_TIMEOUT, || {
        seen = answers(cluster_ip, 60);
        (0..3).all(|i| seen.contains_key(&format!("myapp-{i}")))
    });
    assert!(synced, "ClusterIP answers: {seen:?}; log:\n{}", c.log());
    assert_eq!(seen.values().sum::<usize>(), 60, "every request answered: {seen:?}");

    // NodePort at 127.0.0.1 and at the node's bridge address.
    for host in ["127.0.0.1".to_string(), c.gateway()] {
        let addr: SocketAddr = format!("{host}:32002").parse().expect("addr");
        let seen = answers(addr, 10);
        assert!(seen.keys().all(|k| k.starts_with("myapp-")), "NodePort at {addr}: {seen:?}");
    }

    // No endpoints: refused at once, not a timeout.
    let empty: SocketAddr = format!("{empty_ip}:8082").parse().expect("addr");
    let started = Instant::now();
    let err = http_get(empty).expect_err("no endpoints");
    assert!(err.contains("refused"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1), "rejected at once, took {:?}", started.elapsed());

    // LoadBalancer: the service load balancer gives it the node's address (EXTERNAL-IP), and the
    // proxy answers there on the Service's port.
    c.apply(
        "apiVersion: v1\nkind: Service\nmetadata: {name: myapp-lb}\nspec:\n  type: LoadBalancer\n  \
         selector: {app: myapp}\n  ports:\n  - {port: 8090, targetPort: 80}\n",
    );
    let mut ingress = String::new();
    let assigned = wait_until(POD_TIMEOUT, || {
        let svc = c.berth(&["get", "svc", "myapp-lb", "-o", "json"]).unwrap_or_default();
        ingress = svc["status"]["loadBalancer"]["ingress"][0]["ip"].as_str().unwrap_or_default().to_string();
        !ingress.is_empty()
    });
    assert!(assigned, "no load balancer ingress; log:\n{}", c.log());
    let lb: SocketAddr = format!("{ingress}:8090").parse().expect("addr");
    let mut seen = BTreeMap::new();
    let reached = wait_until(POD_TIMEOUT, || {
        seen = answers(lb, 10);
        seen.keys().all(|k| k.starts_with("myapp-"))
    });
    assert!(reached, "LoadBalancer at {lb}: {seen:?}");
}

/// A Deployment of httpd pods as users run them behind a Service: a readiness probe (a file the
/// test can remove), a preStop sleep so a terminating pod keeps serving while the proxy drops it,
/// and a rolling update that never goes below the desired count.
fn rolling_deployment(image: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: roll}}
spec:
  replicas: 3
  strategy: {{type: RollingUpdate, rollingUpdate: {{maxUnavailable: 0, maxSurge: 1}}}}
  selector: {{matchLabels: {{app: roll}}}}
  template:
    metadata: {{labels: {{app: roll}}}}
    spec:
      terminationGracePeriodSeconds: 10
      tolerations: [{{key: node.kubernetes.io/disk-pressure, operator: Exists}}]
      containers:
      - name: httpd
        image: {image}
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www && echo $(POD_NAME) > /www/index.html && touch /tmp/ready && exec httpd -f -p 80 -h /www"]
        env:
        - name: POD_NAME
          valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
        readinessProbe:
          exec: {{command: ["cat", "/tmp/ready"]}}
          periodSeconds: 1
          failureThreshold: 1
        lifecycle:
          preStop:
            exec: {{command: ["sleep", "3"]}}
"#
    )
}

fn ready_pods(c: &Cluster, app: &str) -> Vec<String> {
    let list = c.berth(&["get", "pods", "-l", &format!("app={app}"), "-o", "json"]).unwrap_or_default();
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| is_ready(p))
        .filter_map(|p| p["metadata"]["name"].as_str().map(String::from))
        .collect()
}

/// One request's outcome: when it was sent and who answered (or the error).
type Sample = (Instant, Result<String, String>);

/// Requests to `addr` every 40 ms (25/s) on a thread, until [`Load::finish`].
struct Load {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Sample>>,
}

impl Load {
    fn start(addr: SocketAddr) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                let at = Instant::now();
                let answer = http_get(addr).map(|body| body.lines().last().unwrap_or_default().trim().to_string());
                samples.push((at, answer));
                std::thread::sleep(Duration::from_millis(40).saturating_sub(at.elapsed()));
            }
            samples
        });
        Load { stop, thread }
    }

    fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("load thread")
    }
}

/// The endpoint with address `ip` in a list of EndpointSlices.
fn endpoint<'a>(slices: &'a Value, ip: &str) -> Option<&'a Value> {
    slices["items"]
        .as_array()?
        .iter()
        .flat_map(|s| s["endpoints"].as_array().into_iter().flatten())
        .find(|e| e["addresses"][0] == ip)
}

/// The requests sent after `since` that `pod` answered.
fn answered_by<'a>(samples: &'a [Sample], pod: &str, since: Instant) -> Vec<&'a Sample> {
    samples.iter().filter(|(at, answer)| *at > since && answer.as_deref() == Ok(pod)).collect()
}

#[test]
#[ignore = "needs root: runc, netns, CNI, nftables"]
fn unready_and_deleted_pods_stop_getting_traffic_and_a_rolling_update_under_load_fails_no_request() {
    if !prerequisites("unready_and_deleted_pods_stop_getting_traffic_and_a_rolling_update_under_load_fails_no_request")
    {
        return;
    }
    let c = Cluster::start_with_proxy(1, &|_| Vec::new());
    c.import_image("docker.io/library/busybox:v2");
    let proxy = c.proxy.as_ref().expect("proxy setup");
    let ip = format!("{}110", proxy.service_cidr.trim_end_matches("0/24"));
    c.apply(&rolling_deployment("busybox:latest"));
    c.apply(&format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: roll}}\nspec:\n  clusterIP: {ip}\n  selector: {{app: roll}}\n  ports:\n  - {{port: 8081, targetPort: 80}}\n"
    ));
    let addr: SocketAddr = format!("{ip}:8081").parse().expect("addr");
    let mut pods = Vec::new();
    let up = wait_until(POD_TIMEOUT * 2, || {
        pods = ready_pods(&c, "roll");
        pods.len() == 3 && (0..3).all(|_| http_get(addr).is_ok())
    });
    assert!(up, "3 ready pods behind the Service: {pods:?}; log:\n{}", c.log());

    // One pod turns unready: within 2 s it gets no more requests.
    let victim = pods[0].clone();
    let out = c.server().berth().args(["exec", &victim, "--", "rm", "/tmp/ready"]).output().expect("berth exec");
    assert!(out.status.success(), "exec: {}", String::from_utf8_lossy(&out.stderr));
    let unready_at = Instant::now();
    let load = Load::start(addr);
    std::thread::sleep(Duration::from_secs(4));
    let samples = load.finish();
    let late = answered_by(&samples, &victim, unready_at + Duration::from_secs(2));
    assert!(late.is_empty(), "{victim} still answered {} request(s) 2 s after turning unready", late.len());
    assert!(samples.iter().all(|(_, a)| a.is_ok()), "the other pods answered every request: {samples:?}");
    let out = c.server().berth().args(["exec", &victim, "--", "sh", "-c", "echo > /tmp/ready"]).output().expect("exec");
    assert!(out.status.success(), "exec: {}", String::from_utf8_lossy(&out.stderr));
    assert!(wait_until(POD_TIMEOUT, || ready_pods(&c, "roll").len() == 3), "the pod became ready again");

    // A deleted pod leaves the endpoints (terminating, not ready) while its container still
    // serves through its preStop sleep; from then on it gets no new connection.
    let victim = ready_pods(&c, "roll").remove(0);
    let victim_ip = c.pod(&victim).and_then(|p| p["status"]["podIP"].as_str().map(String::from)).unwrap_or_default();
    let load = Load::start(addr);
    let out = c.server().berth().args(["delete", "pod", &victim, "--wait=false"]).output().expect("berth delete");
    assert!(out.status.success(), "delete: {}", String::from_utf8_lossy(&out.stderr));
    let mut slices = Value::Null;
    let terminating = wait_until(Duration::from_secs(5), || {
        slices = c
            .berth(&["get", "endpointslices", "-l", "kubernetes.io/service-name=roll", "-o", "json"])
            .unwrap_or_default();
        endpoint(&slices, &victim_ip)
            .is_some_and(|e| e["conditions"]["terminating"] == true && e["conditions"]["ready"] == false)
    });
    let left_at = Instant::now();
    assert!(terminating, "{victim} ({victim_ip}) never turned terminating in the slice: {slices:#}");
    let direct: SocketAddr = format!("{victim_ip}:80").parse().expect("pod addr");
    let still = http_get(direct).map(|body| body.trim_end().ends_with(victim.as_str()));
    assert_eq!(still, Ok(true), "{victim}'s container stopped before it left the endpoints");
    let gone = wait_until(POD_TIMEOUT, || c.pod(&victim).is_none());
    let samples = load.finish();
    assert!(gone, "{victim} was never deleted; log:\n{}", c.log());
    let late = answered_by(&samples, &victim, left_at + Duration::from_secs(1));
    assert!(late.is_empty(), "{victim} answered {} request(s) 1 s after it left the endpoints", late.len());
    assert!(samples.iter().all(|(_, a)| a.is_ok()), "every request answered: {samples:?}");
    assert!(wait_until(POD_TIMEOUT * 2, || ready_pods(&c, "roll").len() == 3), "a replacement pod became ready");

    // A rolling update to a new image under 25 requests/s: not one fails.
    let load = Load::start(addr);
    let started = Instant::now();
    let out =
        c.server().berth().args(["set", "image", "deployment/roll", "httpd=busybox:v2"]).output().expect("set image");
    assert!(out.status.success(), "set image: {}", String::from_utf8_lossy(&out.stderr));
    let out = c
        .server()
        .berth()
        .args(["rollout", "status", "deployment/roll", "--timeout", "120s"])
        .output()
        .expect("rollout status");
    assert!(out.status.success(), "rollout: {}\nlog:\n{}", String::from_utf8_lossy(&out.stdout), c.log());
    // Let the last old pod finish terminating under load too.
    let old_gone = wait_until(POD_TIMEOUT, || {
        let list = c.berth(&["get", "pods", "-l", "app=roll", "-o", "json"]).unwrap_or_default();
        list["items"].as_array().is_some_and(|items| {
            items.len() == 3 && items.iter().all(|p| p["spec"]["containers"][0]["image"] == "busybox:v2")
        })
    });
    let samples = load.finish();
    assert!(old_gone, "old pods never went");
    let failed: Vec<&Sample> = samples.iter().filter(|(_, a)| a.is_err()).collect();
    let secs = started.elapsed().as_secs_f64();
    assert!(samples.len() as f64 >= 20.0 * secs * 0.9, "{} requests in {secs:.1} s: under 20/s", samples.len());
    assert!(failed.is_empty(), "{} of {} requests failed during the rollout: {failed:?}", failed.len(), samples.len());
}
