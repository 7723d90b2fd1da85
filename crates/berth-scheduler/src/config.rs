//! Scheduler configuration: name, scoring strategy, resource weights, how many nodes to score,
//! and the pod backoff bounds.

use std::time::Duration;

/// How NodeResourcesFit scores nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scoring {
    /// Prefer the emptiest nodes (spread); upstream's default.
    #[default]
    LeastAllocated,
    /// Prefer the fullest nodes that still fit (bin packing).
    MostAllocated,
}

/// A resource and its weight in NodeResourcesFit scoring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceWeight {
    pub name: String,
    pub weight: i64,
}

/// Scheduler settings.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Pods with this `spec.schedulerName` are ours (`default-scheduler`).
    pub scheduler_name: String,
    pub scoring: Scoring,
    /// Resources NodeResourcesFit scores on (default cpu 1, memory 1).
    pub resource_weights: Vec<ResourceWeight>,
    /// Percentage of nodes to find feasible before scoring; 0 means upstream's adaptive value.
    pub percentage_of_nodes_to_score: u32,
    /// First retry delay of a failed pod (1 s), doubled per attempt.
    pub pod_initial_backoff: Duration,
    /// Retry delay cap (10 s).
    pub pod_max_backoff: Duration,
    /// How long a pod may stay in the unschedulable queue before it is retried anyway (60 s).
    pub unschedulable_flush_interval: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            scheduler_name: "default-scheduler".to_string(),
            scoring: Scoring::LeastAllocated,
            resource_weights: vec![
                ResourceWeight { name: "cpu".to_string(), weight: 1 },
                ResourceWeight { name: "memory".to_string(), weight: 1 },
            ],
            percentage_of_nodes_to_score: 0,
            pod_initial_backoff: Duration::from_secs(1),
            pod_max_backoff: Duration::from_secs(10),
            unschedulable_flush_interval: Duration::from_secs(60),
        }
    }
}
