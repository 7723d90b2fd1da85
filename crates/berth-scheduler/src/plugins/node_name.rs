//! NodeName: a pod that names its node (`spec.nodeName`) fits only there.

use crate::framework::{CycleState, Plugin, Status};
use crate::snapshot::{NodeInfo, PodInfo};

pub const NAME: &str = "NodeName";
/// Upstream `ErrReason`.
pub const ERR_REASON: &str = "node(s) didn't match the requested node name";

struct NodeName;

pub fn new() -> Box<dyn Plugin> {
    Box::new(NodeName)
}

impl Plugin for NodeName {
    plugin_identity!(NAME, filters);
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match pod.node_name() {
            Some(want) if want != node.name => Status::unresolvable(ERR_REASON),
            _ => Status::success(),
        }
    }
}
