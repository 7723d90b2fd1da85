//! The scheduler cache: node infos built from the node and pod informers, plus pods assumed on a
//! node after a scheduling decision until the watch confirms the binding (or binding fails and
//! they are forgotten). Hands out cheap [`Snapshot`]s (shared `Arc<NodeInfo>`s).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

/// Nodes with their pods.
#[derive(Default)]
pub struct Cache {
    nodes: BTreeMap<String, Arc<NodeInfo>>,
    /// Where each accounted pod is: `namespace/name` → node name.
    pod_node: HashMap<String, String>,
    /// Pods placed by us whose binding the watch has not confirmed yet.
    assumed: HashSet<String>,
    /// Bound pods on nodes not (yet) known, added when the node appears.
    orphans: HashMap<String, Vec<Arc<PodInfo>>>,
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

impl Cache {
    /// Adds or replaces a node, keeping its pods. Returns whether the change can make a pending
    /// pod fit (a new node, or changed allocatable, labels, taints or cordon), like upstream's
    /// node-update event filtering, so status heartbeats do not retry every pod.
    pub fn add_or_update_node(&mut self, node: Node) -> bool {
        let name = node.metadata.name.clone().unwrap_or_default();
        match self.nodes.get_mut(&name) {
            Some(info) => {
                let old = &info.node;
                let relevant = old.metadata.labels != node.metadata.labels
                    || old.spec.as_ref().map(|s| (&s.taints, s.unschedulable))
                        != node.spec.as_ref().map(|s| (&s.taints, s.unschedulable))
                    || old.status.as_ref().map(|s| &s.allocatable) != node.status.as_ref().map(|s| &s.allocatable);
                Arc::make_mut(info).set_node(node);
                relevant
            }
            None => {
                let mut info = NodeInfo::new(node);
                for p in self.orphans.remove(&name).unwrap_or_default() {
                    info.add_pod(p);
                }
                self.nodes.insert(name, Arc::new(info));
                true
            }
        }
    }

    /// Removes a node; its pods are kept aside in case it comes back.
    pub fn remove_node(&mut self, name: &str) {
        if let Some(info) = self.nodes.remove(name) {
            self.orphans.insert(name.to_string(), info.pods.clone());
        }
    }

    /// Node names currently known.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    fn account(&mut self, info: Arc<PodInfo>, node: &str) {
        self.pod_node.insert(info.key.clone(), node.to_string());
        match self.nodes.get_mut(node) {
            Some(n) => Arc::make_mut(n).add_pod(info),
            None => self.orphans.entry(node.to_string()).or_default().push(info),
        }
    }

    /// Removes a pod from wherever it is accounted; returns whether it was.
    pub fn remove_pod(&mut self, key: &str) -> bool {
        self.assumed.remove(key);
        let Some(node) = self.pod_node.remove(key) else { return false };
        match self.nodes.get_mut(&node) {
            Some(n) => {
                Arc::make_mut(n).remove_pod(key);
            }
            None => {
                if let Some(list) = self.orphans.get_mut(&node) {
                    list.retain(|p| p.key != key);
                }
            }
        }
        true
    }

    /// A bound pod from the watch: confirms an assumed pod, or (re-)accounts it. Terminal pods
    /// free their resources. Returns true when the pod was not accounted before.
    pub fn add_or_update_pod(&mut self, pod: Pod) -> bool {
        let info = Arc::new(PodInfo::new(pod));
        let Some(node) = info.node_name().map(str::to_string) else { return false };
        let existed = self.remove_pod(&info.key);
        if !is_terminal(&info.pod) {
            self.account(info, &node);
        }
        !existed
    }

    /// Accounts a pod on `node` before its binding is confirmed.
    pub fn assume(&mut self, mut pod: Pod, node: &str) {
        pod.spec.get_or_insert_with(Default::default).node_name = Some(node.to_string());
        let info = Arc::new(PodInfo::new(pod));
        self.remove_pod(&info.key);
        self.assumed.insert(info.key.clone());
        self.account(info, node);
    }

    /// Undoes [`Cache::assume`] after a failed binding.
    pub fn forget(&mut self, key: &str) {
        if self.assumed.contains(key) {
            self.remove_pod(key);
        }
    }

    /// Whether a pod is assumed and not yet confirmed.
    pub fn is_assumed(&self, key: &str) -> bool {
        self.assumed.contains(key)
    }

    /// Keys of all accounted pods that are not merely assumed.
    pub fn confirmed_pod_keys(&self) -> Vec<String> {
        self.pod_node.keys().filter(|k| !self.assumed.contains(*k)).cloned().collect()
    }

    /// The current view for one scheduling cycle.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::new(self.nodes.values().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name}, "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}))
            .expect("node")
    }

    fn pod(name: &str, node: Option<&str>) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}}))
        .expect("pod")
    }

    #[test]
    fn assumed_pod_counts_until_forgotten_and_confirmation_does_not_double_count() {
        let mut c = Cache::default();
        c.add_or_update_node(node("a"));
        c.assume(pod("p", None), "a");
        assert_eq!(c.snapshot().nodes[0].requested.milli_cpu, 1000);
        c.forget("default/p");
        assert_eq!(c.snapshot().nodes[0].requested.milli_cpu, 0);
        c.assume(pod("p", None), "a");
        c.add_or_update_pod(pod("p", Some("a")));
        assert!(!c.is_assumed("default/p"));
        assert_eq!(c.snapshot().nodes[0].requested.milli_cpu, 1000);
        assert_eq!(c.snapshot().nodes[0].pods.len(), 1);
    }

    #[test]
    fn only_relevant_node_updates_are_reported() {
        let mut c = Cache::default();
        assert!(c.add_or_update_node(node("a")), "a new node is relevant");
        let mut heartbeat = node("a");
        heartbeat.metadata.resource_version = Some("2".into());
        assert!(!c.add_or_update_node(heartbeat), "unchanged spec and allocatable");
        let mut cordoned = node("a");
        cordoned.spec = Some(k8s_openapi::api::core::v1::NodeSpec { unschedulable: Some(true), ..Default::default() });
        assert!(c.add_or_update_node(cordoned), "cordon is relevant");
    }

    #[test]
    fn pods_on_unknown_nodes_are_added_when_the_node_appears() {
        let mut c = Cache::default();
        c.add_or_update_pod(pod("p", Some("late")));
        c.add_or_update_node(node("late"));
        assert_eq!(c.snapshot().nodes[0].pods.len(), 1);
        assert!(c.remove_pod("default/p"));
        assert_eq!(c.snapshot().nodes[0].requested.milli_cpu, 0);
    }
}
