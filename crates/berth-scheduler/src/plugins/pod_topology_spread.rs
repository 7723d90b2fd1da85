//! PodTopologySpread: `topologySpreadConstraints` with `whenUnsatisfiable: DoNotSchedule` filter
//! nodes whose domain would exceed `maxSkew` over the least loaded domain (`minDomains` counts
//! missing domains as empty); `ScheduleAnyway` constraints score less loaded domains higher.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::TopologySpreadConstraint;

use super::helpers::{pod_matches_node_selector_and_affinity, selector_matches};
use crate::framework::{CycleState, MAX_NODE_SCORE, Plugin, Status};
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

pub const NAME: &str = "PodTopologySpread";
pub const ERR_REASON_CONSTRAINTS_NOT_MATCH: &str = "node(s) didn't match pod topology spread constraints";
pub const ERR_REASON_NODE_LABEL_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
const SCORE_KEY: &str = "PodTopologySpread/score";

struct PodTopologySpread;

pub fn new() -> Box<dyn Plugin> {
    Box::new(PodTopologySpread)
}

fn constraints<'a>(pod: &'a PodInfo, when: &str) -> Vec<&'a TopologySpreadConstraint> {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or(&[])
        .iter()
        .filter(|c| c.when_unsatisfiable == when)
        .collect()
}

/// Per constraint: matching pod counts by domain value, over nodes that pass the pod's node
/// affinity (nodeAffinityPolicy Honor) and carry every constraint's key.
fn count_domains(pod: &PodInfo, cs: &[&TopologySpreadConstraint], snapshot: &Snapshot) -> Vec<HashMap<String, i64>> {
    let mut counts = vec![HashMap::new(); cs.len()];
    for node in &snapshot.nodes {
        if !cs.iter().all(|c| node.labels.contains_key(&c.topology_key))
            || !pod_matches_node_selector_and_affinity(&pod.pod, node)
        {
            continue;
        }
        for (i, c) in cs.iter().enumerate() {
            let n = node
                .pods
                .iter()
                .filter(|p| {
                    p.namespace == pod.namespace
                        && !p.is_terminating()
                        && selector_matches(c.label_selector.as_ref(), &p.labels)
                })
                .count() as i64;
            *counts[i].entry(node.labels[&c.topology_key].clone()).or_default() += n;
        }
    }
    counts
}

struct PreFilterState {
    counts: Vec<HashMap<String, i64>>,
    min_match: Vec<i64>,
}

impl Plugin for PodTopologySpread {
    plugin_identity!(NAME, filters, scores);
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> Status {
        let cs = constraints(pod, "DoNotSchedule");
        if cs.is_empty() {
            return Status::skip();
        }
        let counts = count_domains(pod, &cs, snapshot);
        let min_match = cs
            .iter()
            .zip(&counts)
            .map(|(c, m)| {
                let domains = m.len() as i32;
                if c.min_domains.is_some_and(|md| domains < md) { 0 } else { m.values().copied().min().unwrap_or(0) }
            })
            .collect();
        state.write(NAME, PreFilterState { counts, min_match });
        Status::success()
    }
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(NAME) else { return Status::success() };
        let cs = constraints(pod, "DoNotSchedule");
        for (i, c) in cs.iter().enumerate() {
            let Some(value) = node.labels.get(&c.topology_key) else {
                return Status::unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH);
            };
            let self_match = i64::from(selector_matches(c.label_selector.as_ref(), &pod.labels));
            let count = s.counts[i].get(value).copied().unwrap_or(0);
            if count + self_match - s.min_match[i] > i64::from(c.max_skew) {
                return Status::unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH);
            }
        }
        Status::success()
    }
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        _feasible: &[Arc<NodeInfo>],
    ) -> Status {
        let cs = constraints(pod, "ScheduleAnyway");
        if cs.is_empty() {
            return Status::skip();
        }
        let counts = count_domains(pod, &cs, snapshot);
        state.write(SCORE_KEY, counts);
        Status::success()
    }
    /// Raw score in thousandths; -1 marks a node without the topology keys (scored 0).
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(counts) = state.read::<Vec<HashMap<String, i64>>>(SCORE_KEY) else { return 0 };
        let cs = constraints(pod, "ScheduleAnyway");
        let mut score = 0.0;
        for (i, c) in cs.iter().enumerate() {
            let Some(value) = node.labels.get(&c.topology_key) else { return -1 };
            // Upstream weights each constraint by log(domains + 2) so keys with many domains
            // do not dominate.
            let weight = ((counts[i].len() + 2) as f64).ln();
            let count = counts[i].get(value).copied().unwrap_or(0) as f64;
            score += count * weight + f64::from(c.max_skew - 1) * weight;
        }
        (score * 1000.0).round() as i64
    }
    fn normalize(&self, _state: &CycleState, _pod: &PodInfo, scores: &mut [i64]) {
        let valid = scores.iter().copied().filter(|s| *s >= 0);
        let (min, max) = valid.clone().fold((i64::MAX, 0), |(lo, hi), s| (lo.min(s), hi.max(s)));
        for s in scores.iter_mut() {
            *s = if *s < 0 {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *s) / max
            };
        }
    }
}
