//! Autoscaler decision time: the scale-up plan for many pending pods over many existing nodes,
//! and the scale-down pass over the same cluster, with the scheduler's real filters. Prints
//! figures; asserts nothing about speed.
//!
//! `BENCH_NODES` (default 1000) existing nodes of 32 cpu / 256 GiB, 30 of 32 cpus requested;
//! `BENCH_PENDING` (default 5000) pending pods of 1 cpu / 2 GiB; two node groups.

use std::sync::Arc;
use std::time::Instant;

use berth_autoscaler::AutoscalerConfig;
use berth_autoscaler::plan::{GroupState, plan_scale_up, template_node, unneeded_nodes};
use berth_scheduler::plugins::default_plugins;
use berth_scheduler::{Framework, NodeInfo, PodInfo, SchedulerConfig};
use k8s_openapi::api::core::v1::Pod;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn pod(name: &str, node: Option<&str>) -> Arc<PodInfo> {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "bench",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true}]},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}]},
    }))
    .expect("a valid pod");
    Arc::new(PodInfo::new(pod))
}

fn main() {
    let node_count = env("BENCH_NODES", 1000);
    let pending_count = env("BENCH_PENDING", 5000);
    let config = AutoscalerConfig::parse(
        r#"
nodeGroups:
- {name: small, provider: sim, maxSize: 2000, template: {capacity: {cpu: "8", memory: 32Gi, pods: "110"}}}
- {name: large, provider: sim, maxSize: 2000, template: {capacity: {cpu: "32", memory: 256Gi, pods: "110"}}}
"#,
    )
    .expect("bench config");
    let existing_group = &config.node_groups[1];
    let mut nodes = Vec::with_capacity(node_count);
    for i in 0..node_count {
        let name = format!("sim-{i}");
        let mut n = NodeInfo::new(template_node(existing_group, &name));
        for j in 0..30 {
            n.add_pod(pod(&format!("run-{i}-{j}"), Some(&name)));
        }
        nodes.push(n);
    }
    let pending: Vec<Arc<PodInfo>> = (0..pending_count).map(|i| pod(&format!("pending-{i}"), None)).collect();
    let groups: Vec<GroupState> =
        config.node_groups.iter().map(|g| GroupState { config: g.clone(), size: 0 }).collect();
    let framework = Framework::new(default_plugins(&SchedulerConfig::default()), 100);

    let start = Instant::now();
    let plan = plan_scale_up(&framework, &nodes, &pending, &groups, config.expander);
    let up = start.elapsed();
    let chosen = plan.chosen.as_ref().map(|c| format!("{} +{} nodes for {} pods", c.group, c.nodes, c.pods.len()));
    println!(
        "scale-up decision: {node_count} nodes, {pending_count} pending pods: {:.2} s ({} fit existing nodes; {})",
        up.as_secs_f64(),
        plan.schedulable.len(),
        chosen.unwrap_or_else(|| "no scale-up".into())
    );

    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let start = Instant::now();
    let (gone, _) = unneeded_nodes(&framework, &nodes, &names, 0.5);
    println!(
        "scale-down pass: {node_count} nodes with 30 of 32 cpus requested: {:.2} s ({} unneeded)",
        start.elapsed().as_secs_f64(),
        gone.len()
    );
}
