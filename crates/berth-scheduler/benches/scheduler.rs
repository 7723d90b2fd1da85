//! Throughput of the pure framework (no API): 1,000 nodes x 10,000 pods with the default
//! profile. Each decision is applied to the snapshot before the next pod, as the cache's assume
//! does. Prints pods/s and p50/p99 per-pod latency. Run with `cargo bench -p berth-scheduler`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_scheduler::plugins::default_plugins;
use berth_scheduler::{Framework, NodeInfo, PodInfo, SchedulerConfig, Scoring, Snapshot};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;

const NODES: usize = 1_000;
const PODS: usize = 10_000;

fn node(i: usize) -> NodeInfo {
    let n: Node = serde_json::from_value(json!({
        "metadata": {"name": format!("node-{i:04}"), "labels": {
            "kubernetes.io/hostname": format!("node-{i:04}"),
            "topology.kubernetes.io/zone": format!("zone-{}", i % 5),
            "disk": if i.is_multiple_of(4) { "ssd" } else { "hdd" },
        }},
        "spec": if i.is_multiple_of(50) { json!({"taints": [{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]}) } else { json!({}) },
        "status": {"allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"}},
    }))
    .expect("node");
    NodeInfo::new(n)
}

fn pod(i: usize) -> PodInfo {
    let mut spec = json!({"containers": [{"name": "c", "resources": {"requests": {
        "cpu": format!("{}m", 100 + (i % 8) * 100), "memory": format!("{}Mi", 128 + (i % 16) * 64)}}}]});
    match i % 20 {
        0 => spec["nodeSelector"] = json!({"disk": "ssd"}),
        1 => {
            spec["affinity"] = json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 10, "preference": {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone-1"]}]}}]}})
        }
        2 => {
            spec["topologySpreadConstraints"] = json!([{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "spread"}}}])
        }
        _ => {}
    }
    let app = if i % 20 == 2 { "spread" } else { "plain" };
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": format!("pod-{i}"), "namespace": "default", "labels": {"app": app}},
        "spec": spec,
    }))
    .expect("pod");
    PodInfo::new(p)
}

fn run(scoring: Scoring) {
    let config = SchedulerConfig { scoring, ..SchedulerConfig::default() };
    let framework = Framework::new(default_plugins(&config), config.percentage_of_nodes_to_score);
    let mut snapshot = Snapshot::new((0..NODES).map(|i| Arc::new(node(i))).collect());
    let index: std::collections::HashMap<String, usize> =
        snapshot.nodes.iter().enumerate().map(|(i, n)| (n.name.clone(), i)).collect();
    let pods: Vec<PodInfo> = (0..PODS).map(pod).collect();
    let mut latencies: Vec<Duration> = Vec::with_capacity(PODS);
    let mut failed = 0;
    let start = Instant::now();
    for p in pods {
        let t = Instant::now();
        match framework.schedule(&p, &snapshot) {
            Ok(r) => {
                let mut placed = p;
                Arc::make_mut(&mut placed.pod).spec.get_or_insert_with(Default::default).node_name =
                    Some(r.node.clone());
                let i = index[&r.node];
                Arc::make_mut(&mut snapshot.nodes[i]).add_pod(Arc::new(placed));
            }
            Err(_) => failed += 1,
        }
        latencies.push(t.elapsed());
    }
    let total = start.elapsed();
    latencies.sort();
    let pct = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "{scoring:?}: {NODES} nodes x {PODS} pods in {:.2?}: {:.0} pods/s, p50 {:.2?}, p99 {:.2?}, unschedulable {failed}",
        total,
        PODS as f64 / total.as_secs_f64(),
        pct(0.50),
        pct(0.99),
    );
}

fn main() {
    run(Scoring::LeastAllocated);
    run(Scoring::MostAllocated);
}
