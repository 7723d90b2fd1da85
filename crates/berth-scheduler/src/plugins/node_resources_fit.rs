//! NodeResourcesFit: a pod fits where every requested resource (cpu, memory, ephemeral storage,
//! extended resources, one pod slot) is free; scores nodes by LeastAllocated (spread) or
//! MostAllocated (bin packing) over weighted resources.

use crate::config::{ResourceWeight, Scoring};
use crate::framework::{CycleState, MAX_NODE_SCORE, Plugin, Status};
use crate::resources::Resource;
use crate::snapshot::{NodeInfo, PodInfo};

pub const NAME: &str = "NodeResourcesFit";

struct NodeResourcesFit {
    scoring: Scoring,
    resources: Vec<ResourceWeight>,
}

pub fn new(scoring: Scoring, resources: Vec<ResourceWeight>) -> Box<dyn Plugin> {
    Box::new(NodeResourcesFit { scoring, resources })
}

/// The reasons a pod does not fit a node's free resources (upstream `fitsRequest`), in
/// upstream's order: pods, cpu, memory, ephemeral-storage, extended resources.
pub fn insufficient_resources(pod: &Resource, node: &NodeInfo) -> Vec<String> {
    let mut reasons = Vec::new();
    let alloc = &node.allocatable;
    let used = &node.requested;
    if used.allowed_pod_number + 1 > alloc.allowed_pod_number {
        reasons.push("Too many pods".to_string());
    }
    let checks = [("cpu", pod.milli_cpu), ("memory", pod.memory), ("ephemeral-storage", pod.ephemeral_storage)];
    for (name, want) in checks {
        if want > 0 && want > alloc.get(name) - used.get(name) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    for (name, want) in &pod.scalar {
        if *want > 0 && *want > alloc.get(name) - used.get(name) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    reasons
}

/// Requested amount of `name` on the node including the pod, as the scorers count it: the
/// non-zero defaults for cpu/memory (`use_non_zero`), real requests otherwise.
pub fn requested_with_pod(pod: &PodInfo, node: &NodeInfo, name: &str, use_non_zero: bool) -> i64 {
    if use_non_zero && (name == "cpu" || name == "memory") {
        node.non_zero_requested.get(name) + pod.non_zero_requests.get(name)
    } else {
        node.requested.get(name) + pod.requests.get(name)
    }
}

fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

fn most_requested(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 {
        return 0;
    }
    requested.min(capacity) * MAX_NODE_SCORE / capacity
}

impl Plugin for NodeResourcesFit {
    plugin_identity!(NAME, filters, scores);
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let reasons = insufficient_resources(&pod.requests, node);
        if reasons.is_empty() {
            Status::success()
        } else {
            Status { code: crate::framework::Code::Unschedulable, reasons }
        }
    }
    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let (mut total, mut weights) = (0i64, 0i64);
        for rw in &self.resources {
            let capacity = node.allocatable.get(&rw.name);
            let is_native = rw.name == "cpu" || rw.name == "memory";
            if capacity == 0 && !is_native {
                continue;
            }
            let requested = requested_with_pod(pod, node, &rw.name, true);
            let s = match self.scoring {
                Scoring::LeastAllocated => least_requested(requested, capacity),
                Scoring::MostAllocated => most_requested(requested, capacity),
            };
            total += s * rw.weight;
            weights += rw.weight;
        }
        if weights == 0 { 0 } else { total / weights }
    }
}
