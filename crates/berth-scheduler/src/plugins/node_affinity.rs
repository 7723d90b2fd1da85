//! NodeAffinity (with NodeSelector): `spec.nodeSelector` and required node affinity filter
//! nodes; preferred node affinity terms add their weights to a node's score.

use super::helpers::{node_selector_term_matches, pod_matches_node_selector_and_affinity};
use crate::framework::{CycleState, MAX_NODE_SCORE, Plugin, Status, default_normalize_score};
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

pub const NAME: &str = "NodeAffinity";
/// Upstream `ErrReasonPod`.
pub const ERR_REASON: &str = "node(s) didn't match Pod's node affinity/selector";

struct NodeAffinity;

pub fn new() -> Box<dyn Plugin> {
    Box::new(NodeAffinity)
}

impl Plugin for NodeAffinity {
    plugin_identity!(NAME, filters, scores);
    fn pre_filter(&self, _state: &mut CycleState, pod: &PodInfo, _snapshot: &Snapshot) -> Status {
        let Some(spec) = pod.pod.spec.as_ref() else { return Status::skip() };
        let has_selector = spec.node_selector.as_ref().is_some_and(|m| !m.is_empty());
        let has_required = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .is_some_and(|na| na.required_during_scheduling_ignored_during_execution.is_some());
        if has_selector || has_required { Status::success() } else { Status::skip() }
    }
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if pod_matches_node_selector_and_affinity(&pod.pod, node) {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON)
        }
    }
    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let preferred = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|na| na.preferred_during_scheduling_ignored_during_execution.as_deref())
            .unwrap_or(&[]);
        preferred
            .iter()
            .filter(|p| p.weight != 0 && node_selector_term_matches(&p.preference, node))
            .map(|p| i64::from(p.weight))
            .sum()
    }
    fn normalize(&self, _state: &CycleState, _pod: &PodInfo, scores: &mut [i64]) {
        default_normalize_score(MAX_NODE_SCORE, false, scores);
    }
}
