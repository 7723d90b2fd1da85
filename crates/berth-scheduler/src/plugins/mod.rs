//! The in-tree plugins, one per file, each exporting `NAME` and `new`, and the default profile
//! that orders them (filter order) and weights their scores as upstream's default profile.

use std::sync::Arc;

use crate::config::SchedulerConfig;
use crate::framework::Plugin;

/// The identity part of a `Plugin` impl: `name()` returning `$name`, and `filters()`/`scores()`
/// returning true for the extension points listed (`filters`, `scores`).
macro_rules! plugin_identity {
    ($name:expr $(, $point:ident)* $(,)?) => {
        fn name(&self) -> &'static str {
            $name
        }
        $(plugin_identity!(@$point);)*
    };
    (@filters) => {
        fn filters(&self) -> bool {
            true
        }
    };
    (@scores) => {
        fn scores(&self) -> bool {
            true
        }
    };
}

pub mod balanced_allocation;
pub mod helpers;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod taint_toleration;

#[cfg(test)]
mod tests;

/// Upstream's default profile: plugins in filter order, with score weights (TaintToleration 3,
/// NodeAffinity 2, PodTopologySpread 2, InterPodAffinity 2, NodeResourcesFit 1,
/// NodeResourcesBalancedAllocation 1).
pub fn default_plugins(config: &SchedulerConfig) -> Vec<(Arc<dyn Plugin>, i64)> {
    let boxed: Vec<(Box<dyn Plugin>, i64)> = vec![
        (node_unschedulable::new(), 0),
        (node_name::new(), 0),
        (taint_toleration::new(), 3),
        (node_affinity::new(), 2),
        (node_ports::new(), 0),
        (node_resources_fit::new(config.scoring, config.resource_weights.clone()), 1),
        (pod_topology_spread::new(), 2),
        (inter_pod_affinity::new(), 2),
        (balanced_allocation::new(), 1),
    ];
    boxed.into_iter().map(|(p, w)| (Arc::from(p), w)).collect()
}
