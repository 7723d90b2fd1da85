//! NodeUnschedulable: cordoned nodes (`spec.unschedulable`) are skipped unless the pod tolerates
//! the `node.kubernetes.io/unschedulable:NoSchedule` taint.

use k8s_openapi::api::core::v1::Taint;

use super::helpers::{pod_tolerations, tolerates};
use crate::framework::{CycleState, Plugin, Status};
use crate::snapshot::{NodeInfo, PodInfo};

pub const NAME: &str = "NodeUnschedulable";
/// Upstream `ErrReasonUnschedulable`.
pub const ERR_REASON: &str = "node(s) were unschedulable";

struct NodeUnschedulable;

pub fn new() -> Box<dyn Plugin> {
    Box::new(NodeUnschedulable)
}

impl Plugin for NodeUnschedulable {
    plugin_identity!(NAME, filters);
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let cordoned = node.node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
        if !cordoned {
            return Status::success();
        }
        let taint = Taint {
            key: "node.kubernetes.io/unschedulable".to_string(),
            effect: "NoSchedule".to_string(),
            ..Default::default()
        };
        if pod_tolerations(&pod.pod).iter().any(|t| tolerates(t, &taint)) {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON)
        }
    }
}
