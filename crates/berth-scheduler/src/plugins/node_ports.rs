//! NodePorts: a pod asking for host ports fits only where none of them is in use.

use crate::framework::{CycleState, Plugin, Status};
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

pub const NAME: &str = "NodePorts";
/// Upstream `ErrReason`.
pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";

struct NodePorts;

pub fn new() -> Box<dyn Plugin> {
    Box::new(NodePorts)
}

impl Plugin for NodePorts {
    plugin_identity!(NAME, filters);
    fn pre_filter(&self, _state: &mut CycleState, pod: &PodInfo, _snapshot: &Snapshot) -> Status {
        if pod.host_ports.is_empty() { Status::skip() } else { Status::success() }
    }
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let conflict = pod.host_ports.iter().any(|want| node.used_ports.iter().any(|used| used.conflicts(want)));
        if conflict { Status::unschedulable(ERR_REASON) } else { Status::success() }
    }
}
