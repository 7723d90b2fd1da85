//! The scheduler's view of the cluster: plain structs for nodes and the pods on them, with the
//! aggregates plugins read (requested resources, host ports in use). Built by the cache from
//! informer events; plugins and tests use them without any API.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::resources::{Resource, pod_requests};

/// One host port a container asks for: protocol, host IP (`0.0.0.0` when unset) and port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub protocol: String,
    pub ip: String,
    pub port: i32,
}

impl HostPort {
    /// Whether two host ports collide: same protocol and port, and either IP is the wildcard or
    /// they are equal (upstream `HostPortInfo.CheckConflict`).
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// A pod with the values the plugins need precomputed.
#[derive(Clone, Debug)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    /// `namespace/name`.
    pub key: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub priority: i32,
    pub labels: BTreeMap<String, String>,
    /// Requests for fit checks.
    pub requests: Resource,
    /// Requests with the cpu/memory defaults, for scoring.
    pub non_zero_requests: Resource,
    pub host_ports: Vec<HostPort>,
    /// Whether the pod has any pod affinity or anti-affinity (upstream `PodsWithAffinity`).
    pub has_affinity: bool,
    /// Whether the pod has required anti-affinity terms (`PodsWithRequiredAntiAffinity`).
    pub has_required_anti_affinity: bool,
}

impl PodInfo {
    /// Precomputes a pod's requests, ports and labels.
    pub fn new(pod: Pod) -> PodInfo {
        let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let host_ports = spec
            .map(|s| {
                s.containers
                    .iter()
                    .flat_map(|c| c.ports.iter().flatten())
                    .filter(|p| p.host_port.unwrap_or(0) > 0)
                    .map(|p| HostPort {
                        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
                        ip: p.host_ip.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "0.0.0.0".to_string()),
                        port: p.host_port.unwrap_or(0),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let affinity = spec.and_then(|s| s.affinity.as_ref());
        let has_affinity = affinity.is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some());
        let has_required_anti_affinity = affinity
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())
            .is_some_and(|t| !t.is_empty());
        PodInfo {
            has_affinity,
            has_required_anti_affinity,
            key: format!("{namespace}/{name}"),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            requests: pod_requests(&pod, false),
            non_zero_requests: pod_requests(&pod, true),
            host_ports,
            namespace,
            name,
            pod: Arc::new(pod),
        }
    }

    /// The node the pod is bound (or assumed) to.
    pub fn node_name(&self) -> Option<&str> {
        self.pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty())
    }

    /// Whether the pod is being deleted.
    pub fn is_terminating(&self) -> bool {
        self.pod.metadata.deletion_timestamp.is_some()
    }
}

/// A node with the pods on it and their aggregate requests.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub node: Arc<Node>,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub allocatable: Resource,
    pub pods: Vec<Arc<PodInfo>>,
    pub requested: Resource,
    pub non_zero_requested: Resource,
    pub used_ports: Vec<HostPort>,
    /// The pods with pod (anti-)affinity, a subset of `pods`.
    pub pods_with_affinity: Vec<Arc<PodInfo>>,
}

impl NodeInfo {
    /// A node without pods.
    pub fn new(node: Node) -> NodeInfo {
        let allocatable = Resource::from_list(node.status.as_ref().and_then(|s| s.allocatable.as_ref()));
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            allocatable,
            node: Arc::new(node),
            pods: Vec::new(),
            requested: Resource::default(),
            non_zero_requested: Resource::default(),
            used_ports: Vec::new(),
            pods_with_affinity: Vec::new(),
        }
    }

    /// Replaces the node object, keeping the pods.
    pub fn set_node(&mut self, node: Node) {
        let fresh = NodeInfo::new(node);
        self.node = fresh.node;
        self.name = fresh.name;
        self.labels = fresh.labels;
        self.allocatable = fresh.allocatable;
    }

    /// Accounts a pod to this node.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.requested.allowed_pod_number += 1;
        self.non_zero_requested.add(&pod.non_zero_requests);
        self.used_ports.extend(pod.host_ports.iter().cloned());
        if pod.has_affinity {
            self.pods_with_affinity.push(pod.clone());
        }
        self.pods.push(pod);
    }

    /// Removes a pod by `namespace/name`; returns whether it was here.
    pub fn remove_pod(&mut self, key: &str) -> bool {
        let Some(i) = self.pods.iter().position(|p| p.key == key) else { return false };
        let pod = self.pods.swap_remove(i);
        self.pods_with_affinity.retain(|p| p.key != key);
        self.requested.sub(&pod.requests);
        self.requested.allowed_pod_number -= 1;
        self.non_zero_requested.sub(&pod.non_zero_requests);
        for hp in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|u| u == hp) {
                self.used_ports.swap_remove(j);
            }
        }
        true
    }

    /// The node's taints.
    pub fn taints(&self) -> &[k8s_openapi::api::core::v1::Taint] {
        self.node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or(&[])
    }
}

/// An immutable point-in-time view of all nodes, shared with the plugins for one cycle.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub nodes: Vec<Arc<NodeInfo>>,
}

impl Snapshot {
    /// A snapshot of the given nodes.
    pub fn new(nodes: Vec<Arc<NodeInfo>>) -> Snapshot {
        Snapshot { nodes }
    }

    /// A node by name.
    pub fn get(&self, name: &str) -> Option<&Arc<NodeInfo>> {
        self.nodes.iter().find(|n| n.name == name)
    }
}
