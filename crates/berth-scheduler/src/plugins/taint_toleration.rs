//! TaintToleration: NoSchedule/NoExecute taints the pod does not tolerate rule a node out;
//! untolerated PreferNoSchedule taints lower its score.

use super::helpers::{find_untolerated_taint, pod_tolerations, tolerates};
use crate::framework::{CycleState, MAX_NODE_SCORE, Plugin, Status, default_normalize_score};
use crate::snapshot::{NodeInfo, PodInfo};

pub const NAME: &str = "TaintToleration";

struct TaintToleration;

pub fn new() -> Box<dyn Plugin> {
    Box::new(TaintToleration)
}

/// Upstream's reason: `node(s) had untolerated taint {key: value}`.
pub fn untolerated_reason(key: &str, value: &str) -> String {
    format!("node(s) had untolerated taint {{{key}: {value}}}")
}

impl Plugin for TaintToleration {
    plugin_identity!(NAME, filters, scores);
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match find_untolerated_taint(node.taints(), pod_tolerations(&pod.pod), &["NoSchedule", "NoExecute"]) {
            Some(t) => Status::unresolvable(untolerated_reason(&t.key, t.value.as_deref().unwrap_or(""))),
            None => Status::success(),
        }
    }
    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let tolerations: Vec<_> = pod_tolerations(&pod.pod)
            .iter()
            .filter(|t| t.effect.as_deref().is_none_or(|e| e.is_empty() || e == "PreferNoSchedule"))
            .collect();
        node.taints()
            .iter()
            .filter(|t| t.effect == "PreferNoSchedule")
            .filter(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
            .count() as i64
    }
    fn normalize(&self, _state: &CycleState, _pod: &PodInfo, scores: &mut [i64]) {
        default_normalize_score(MAX_NODE_SCORE, true, scores);
    }
}
