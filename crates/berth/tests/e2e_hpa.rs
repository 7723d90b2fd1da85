//! End-to-end HorizontalPodAutoscaler with real pods: busybox containers burning CPU
//! (`while :; do :; done`, request 100m, limit 200m) behind an HPA at 50% scale up to maxReplicas;
//! once the template's command becomes `sleep`, they scale back to minReplicas. Usage flows from
//! the kubelet's `/metrics/resource` through the apiserver's embedded collector and
//! `metrics.k8s.io` to the HPA controller, as with metrics-server upstream.
//!
//! Needs root, runc, the CNI plugins and busybox-static (see e2e_pods.rs), so it is `#[ignore]`d;
//! run it with `cargo nextest run -p berth --run-ignored all --test e2e_hpa --no-capture` to see
//! the benchmark line (time from load start to the scaled replicas Ready).

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, prerequisites};
use common::wait_until;
use serde_json::Value;

/// How long each scaling may take (sync period 1 s, resolution 1 s, rollouts of real pods); short
/// enough that a failure is reported, and the cluster cleaned up, before nextest's 180 s limit.
const SCALE_TIMEOUT: Duration = Duration::from_secs(60);

/// The burner Deployment. It leaves `replicas` unset (1 by default), as one should with an HPA:
/// a re-apply then leaves the HPA's count alone.
fn burner(command: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: burn}}
spec:
  selector: {{matchLabels: {{app: burn}}}}
  template:
    metadata: {{labels: {{app: burn}}}}
    spec:
      terminationGracePeriodSeconds: 1
      # A shared test machine's disk may be nearly full: the DiskPressure taint must not keep the
      # new pods of a rollout off the node.
      tolerations:
      - {{key: node.kubernetes.io/disk-pressure, operator: Exists, effect: NoSchedule}}
      containers:
      - name: burn
        image: busybox
        command: ["sh", "-c", "{command}"]
        resources:
          requests: {{cpu: 100m}}
          limits: {{cpu: 200m}}
"#
    )
}

const HPA: &str = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: burn}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: burn}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
  behavior:
    scaleUp:
      stabilizationWindowSeconds: 0
      policies: [{type: Pods, value: 2, periodSeconds: 2}]
    scaleDown:
      stabilizationWindowSeconds: 6
      policies: [{type: Percent, value: 100, periodSeconds: 2}]
"#;

/// (spec.replicas, readyReplicas) of the Deployment.
fn replicas(c: &Cluster) -> (i64, i64) {
    let d = c.berth(&["get", "deployment", "burn", "-o", "json"]).unwrap_or_default();
    (d["spec"]["replicas"].as_i64().unwrap_or(-1), d["status"]["readyReplicas"].as_i64().unwrap_or(0))
}

/// Pod name -> millicores from `berth top pods`.
fn top_pods(c: &Cluster) -> Vec<(String, i64)> {
    let text = match c.berth(&["top", "pods", "--no-headers"]) {
        Ok(Value::String(s)) => s,
        _ => return Vec::new(),
    };
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            Some((w.first()?.to_string(), w.get(1)?.strip_suffix('m')?.parse().ok()?))
        })
        .collect()
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn cpu_burners_scale_up_to_max_and_back_to_min() {
    if !prerequisites("cpu_burners_scale_up_to_max_and_back_to_min") {
        return;
    }
    let c = Cluster::start_with(0, &|_| {
        // Fast metrics and HPA syncs so the test sees scaling within seconds.
        ["--metrics-resolution", "1s", "--horizontal-pod-autoscaler-sync-period", "1s"].map(String::from).to_vec()
    });
    let load_start = Instant::now();
    c.apply(&burner("while :; do :; done"));
    c.apply(HPA);

    // Up: the burners use their 200m limit, 400% of a 50% target: to maxReplicas 3, all Ready.
    let mut max_seen = 0;
    let up = wait_until(SCALE_TIMEOUT, || {
        let (spec, ready) = replicas(&c);
        max_seen = max_seen.max(spec);
        spec == 3 && ready == 3
    });
    assert!(
        up,
        "never 3 ready replicas: {:?}\n{:?}\nlog:\n{}",
        replicas(&c),
        c.berth(&["describe", "hpa", "burn"]),
        c.log()
    );
    println!("benchmark: load start to 3 scaled replicas Ready: {:.1}s", load_start.elapsed().as_secs_f64());

    // `top` is plausible: every burner near its 200m limit, none above one core.
    let mut last = Vec::new();
    let plausible = wait_until(Duration::from_secs(15), || {
        last = top_pods(&c);
        last.len() == 3 && last.iter().all(|(_, m)| (100..=1000).contains(m))
    });
    assert!(plausible, "berth top pods: {last:?}");
    let hpa = c.berth(&["get", "hpa", "burn", "-o", "json"]).expect("hpa");
    let util = hpa["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"].as_i64().unwrap_or(0);
    assert!(util > 50, "utilization {util}% should be above the 50% target: {hpa:#}");

    // maxReplicas holds while the load goes on.
    let over = wait_until(Duration::from_secs(6), || replicas(&c).0 > 3);
    assert!(!over, "scaled beyond maxReplicas: {:?}", replicas(&c));

    // Down: the load goes away (a new template that sleeps); back to minReplicas 1.
    let load_end = Instant::now();
    c.apply(&burner("sleep 3600"));
    let down = wait_until(SCALE_TIMEOUT, || {
        let (spec, _) = replicas(&c);
        max_seen = max_seen.max(spec);
        spec == 1
    });
    assert!(down, "never back to 1 replica: {:?}\n{:?}", replicas(&c), c.berth(&["describe", "hpa", "burn"]));
    println!("benchmark: load end to minReplicas: {:.1}s", load_end.elapsed().as_secs_f64());
    assert!(max_seen <= 3, "maxReplicas exceeded: {max_seen}");
    let events = c.berth(&["describe", "hpa", "burn"]).map(|v| v.to_string()).unwrap_or_default();
    assert!(events.contains("SuccessfulRescale"), "{events}");
    assert!(events.contains("All metrics below target"), "{events}");
}
