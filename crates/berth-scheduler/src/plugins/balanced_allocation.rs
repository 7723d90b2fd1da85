//! NodeResourcesBalancedAllocation: favours nodes whose cpu and memory utilisation would stay
//! close to each other, score `(1 - std deviation of the fractions) * 100`.

use super::node_resources_fit::requested_with_pod;
use crate::framework::{CycleState, MAX_NODE_SCORE, Plugin};
use crate::snapshot::{NodeInfo, PodInfo};

pub const NAME: &str = "NodeResourcesBalancedAllocation";

struct BalancedAllocation {
    resources: Vec<String>,
}

pub fn new() -> Box<dyn Plugin> {
    Box::new(BalancedAllocation { resources: vec!["cpu".to_string(), "memory".to_string()] })
}

impl Plugin for BalancedAllocation {
    plugin_identity!(NAME, scores);
    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let fractions: Vec<f64> = self
            .resources
            .iter()
            .filter_map(|r| {
                let capacity = node.allocatable.get(r);
                (capacity > 0).then(|| (requested_with_pod(pod, node, r, false) as f64 / capacity as f64).min(1.0))
            })
            .collect();
        let std = match fractions.as_slice() {
            [] | [_] => 0.0,
            [a, b] => (a - b).abs() / 2.0,
            many => {
                let mean = many.iter().sum::<f64>() / many.len() as f64;
                (many.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / many.len() as f64).sqrt()
            }
        };
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }
}
