//! Node lifecycle controller (k8s `pkg/controller/nodelifecycle` and `pkg/controller/tainteviction`):
//! watches Nodes and their Leases in `kube-node-lease`; a node whose Lease (or Ready heartbeat) has
//! not changed for the grace period gets its conditions set to Unknown ("Kubelet stopped posting
//! node status."), its pods marked not Ready; conditions are mirrored into taints
//! (`node.kubernetes.io/unreachable` / `not-ready` NoExecute and NoSchedule, the pressure taints,
//! and `unschedulable:NoSchedule` from `spec.unschedulable`), removed again on recovery. The
//! NoExecute taint manager deletes pods on tainted nodes that do not tolerate the taints at once,
//! and those tolerating them for `tolerationSeconds` after that many seconds.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::is_status;
use crate::events::{EventType, Recorder};
use crate::queue::store_ready;
use crate::{ControllersConfig, Error};

/// Namespace of the node heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// Taint of a node whose Ready condition is False.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Taint of a node whose Ready condition is Unknown.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Taint mirroring `spec.unschedulable`.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// Reason of conditions the controller set to Unknown.
pub const REASON_NODE_STATUS_UNKNOWN: &str = "NodeStatusUnknown";
/// Message of conditions the controller set to Unknown.
pub const MESSAGE_NODE_STATUS_UNKNOWN: &str = "Kubelet stopped posting node status.";

/// The conditions the controller turns Unknown (upstream `nodeConditionTypes` plus Ready).
const CONDITION_TYPES: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];
/// (condition type, status, taint key): upstream `nodeConditionToTaintKeyStatusMap`.
const CONDITION_TAINTS: &[(&str, &str, &str)] = &[
    ("Ready", "False", TAINT_NOT_READY),
    ("Ready", "Unknown", TAINT_UNREACHABLE),
    ("MemoryPressure", "True", "node.kubernetes.io/memory-pressure"),
    ("DiskPressure", "True", "node.kubernetes.io/disk-pressure"),
    ("NetworkUnavailable", "True", "node.kubernetes.io/network-unavailable"),
    ("PIDPressure", "True", "node.kubernetes.io/pid-pressure"),
];
/// Event source of the taint manager.
const TAINT_COMPONENT: &str = "taint-eviction-controller";
/// Event source of the node monitor.
const NODE_COMPONENT: &str = "node-controller";
/// Least time between two passes woken by watch events, so a burst of pod events costs one pass.
const MIN_PASS_INTERVAL: Duration = Duration::from_millis(50);

/// What the controller last observed of a node's heartbeat, and when (its local clock).
struct NodeHealth {
    observed: (Option<String>, Option<String>),
    probe: Instant,
}

/// A pod scheduled for deletion by the taint manager.
struct PendingEviction {
    deadline: Instant,
}

struct Monitor {
    client: kube::Client,
    grace: Duration,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: Store<Pod>,
    node_events: Recorder,
    taint_events: Recorder,
    health: HashMap<String, NodeHealth>,
    pending: HashMap<String, PendingEviction>,
}

/// Runs the node lifecycle controller until cancelled.
pub async fn run(client: kube::Client, config: ControllersConfig, cancel: CancellationToken) -> Result<(), Error> {
    let notify = Arc::new(Notify::new());
    let nodes = spawn_reflector(Api::<Node>::all(client.clone()), &notify, &cancel);
    let leases = spawn_reflector(Api::<Lease>::namespaced(client.clone(), NODE_LEASE_NAMESPACE), &notify, &cancel);
    let pods = spawn_reflector(Api::<Pod>::all(client.clone()), &notify, &cancel);
    let mut m = Monitor {
        node_events: Recorder::new(client.clone(), NODE_COMPONENT),
        taint_events: Recorder::new(client.clone(), TAINT_COMPONENT),
        client,
        grace: config.node_monitor_grace_period,
        nodes,
        leases,
        pods,
        health: HashMap::new(),
        pending: HashMap::new(),
    };
    let period = config.node_monitor_period.max(Duration::from_millis(10));
    let mut next_monitor = Instant::now();
    loop {
        let synced = store_ready(&m.nodes) && store_ready(&m.leases) && store_ready(&m.pods);
        let mut wake = Instant::now() + period;
        if synced {
            if Instant::now() >= next_monitor {
                m.monitor_nodes().await;
                next_monitor = Instant::now() + period;
            }
            wake = next_monitor;
            if let Some(next) = m.taint_pass().await {
                wake = wake.min(next);
            }
        }
        let passed = Instant::now();
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep_until(wake) => {}
            _ = notify.notified() => {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep_until(passed + MIN_PASS_INTERVAL) => {}
                }
            }
        }
    }
}

/// Starts a reflector for `api` (stopped with `cancel`) that pokes `notify` on every event.
fn spawn_reflector<K>(api: Api<K>, notify: &Arc<Notify>, cancel: &CancellationToken) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let notify = notify.clone();
    let stream = reflector::reflector(writer, watcher::watcher(api, watcher::Config::default()))
        .default_backoff()
        .take_until(cancel.clone().cancelled_owned());
    tokio::spawn(stream.for_each(move |_| {
        notify.notify_one();
        futures::future::ready(())
    }));
    store
}

fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

/// The status of the node's Ready condition (`None` when it has none).
pub fn ready_status(node: &Node) -> Option<&str> {
    condition(node, "Ready").map(|c| c.status.as_str())
}

/// The node's conditions after the grace period passed without a heartbeat (upstream
/// `tryUpdateNodeHealth`): every known condition becomes Unknown; `None` when nothing changes.
pub fn unknown_conditions(node: &Node, now: Time) -> Option<Vec<NodeCondition>> {
    let mut conditions = node.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let mut changed = false;
    for type_ in CONDITION_TYPES {
        match conditions.iter_mut().find(|c| c.type_ == *type_) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some(REASON_NODE_STATUS_UNKNOWN.into());
                c.message = Some(MESSAGE_NODE_STATUS_UNKNOWN.into());
                c.last_transition_time = Some(now.clone());
                changed = true;
            }
            None => {
                conditions.push(NodeCondition {
                    type_: type_.to_string(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(now.clone()),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conditions)
}

/// Whether the taint is one this controller owns.
fn managed(t: &Taint) -> bool {
    match t.effect.as_str() {
        "NoExecute" => t.key == TAINT_NOT_READY || t.key == TAINT_UNREACHABLE,
        "NoSchedule" => t.key == TAINT_UNSCHEDULABLE || CONDITION_TAINTS.iter().any(|(_, _, k)| *k == t.key),
        _ => false,
    }
}

/// The node's taints as they should be: its own taints kept, the controller's derived from its
/// conditions and `spec.unschedulable` (existing `timeAdded` values kept). `None` when unchanged.
pub fn desired_taints(node: &Node, now: Time) -> Option<Vec<Taint>> {
    let current = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    let mut want: Vec<(String, &str)> = Vec::new();
    for (type_, status, key) in CONDITION_TAINTS {
        if condition(node, type_).is_some_and(|c| c.status == *status) {
            want.push((key.to_string(), "NoSchedule"));
        }
    }
    match ready_status(node) {
        Some("False") => want.push((TAINT_NOT_READY.into(), "NoExecute")),
        Some("Unknown") => want.push((TAINT_UNREACHABLE.into(), "NoExecute")),
        _ => {}
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        want.push((TAINT_UNSCHEDULABLE.into(), "NoSchedule"));
    }
    let mut out: Vec<Taint> = current.iter().filter(|t| !managed(t)).cloned().collect();
    for (key, effect) in want {
        match current.iter().find(|t| t.key == key && t.effect == effect) {
            Some(t) => out.push(t.clone()),
            None => out.push(Taint {
                key,
                effect: effect.into(),
                value: None,
                time_added: (effect == "NoExecute").then(|| now.clone()),
            }),
        }
    }
    let same = out.len() == current.len() && out.iter().all(|t| current.contains(t));
    (!same).then_some(out)
}

/// Upstream `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect.as_deref().is_some_and(|e| !e.is_empty() && e != taint.effect) {
        return false;
    }
    if t.key.as_deref().is_some_and(|k| !k.is_empty() && k != taint.key) {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// What the taint manager does with a pod on a node with these NoExecute taints.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No NoExecute taints, or all tolerated forever.
    Keep,
    /// Delete after this long (0: now).
    EvictAfter(Duration),
}

/// Upstream `processPodOnNode`: some taint not tolerated → now; else the smallest
/// `tolerationSeconds` among the tolerations used, or forever when none sets it.
pub fn verdict(tolerations: &[Toleration], taints: &[Taint]) -> Verdict {
    let no_execute: Vec<&Taint> = taints.iter().filter(|t| t.effect == "NoExecute").collect();
    if no_execute.is_empty() {
        return Verdict::Keep;
    }
    let mut min: Option<i64> = None;
    for taint in no_execute {
        let used: Vec<&Toleration> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if used.is_empty() {
            return Verdict::EvictAfter(Duration::ZERO);
        }
        for t in used {
            if let Some(s) = t.toleration_seconds {
                min = Some(min.map_or(s, |m| m.min(s)));
            }
        }
    }
    match min {
        None => Verdict::Keep,
        Some(s) => Verdict::EvictAfter(Duration::from_secs(u64::try_from(s).unwrap_or(0))),
    }
}

fn pod_ready_true(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

impl Monitor {
    /// One pass of upstream `monitorNodeHealth` plus `TaintNodesByCondition` over every node.
    async fn monitor_nodes(&mut self) {
        let nodes = self.nodes.state();
        self.health.retain(|name, _| nodes.iter().any(|n| n.name_any() == *name));
        for node in nodes {
            if let Err(e) = self.monitor_node(&node).await {
                tracing::debug!(node = %node.name_any(), error = %e, "node health update failed; retrying next period");
            }
        }
    }

    async fn monitor_node(&mut self, node: &Node) -> Result<(), Error> {
        let name = node.name_any();
        let lease = self.leases.get(&ObjectRef::new(&name).within(NODE_LEASE_NAMESPACE));
        let renew = lease.and_then(|l| l.spec.as_ref()?.renew_time.as_ref().map(|t| t.0.to_string()));
        let heartbeat = condition(node, "Ready").and_then(|c| c.last_heartbeat_time.as_ref()).map(|t| t.0.to_string());
        let observed = (renew, heartbeat);
        let now = Instant::now();
        let health =
            self.health.entry(name.clone()).or_insert_with(|| NodeHealth { observed: observed.clone(), probe: now });
        if health.observed != observed {
            health.observed = observed;
            health.probe = now;
        }
        let stale = now.duration_since(health.probe) > self.grace;
        let api: Api<Node> = Api::all(self.client.clone());
        let mut node = node.clone();
        let was_ready = ready_status(&node) == Some("True");
        if stale && let Some(conditions) = unknown_conditions(&node, Time(jiff::Timestamp::now())) {
            let patch = serde_json::json!({"status": {"conditions": conditions}});
            node = match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(n) => n,
                Err(e) if is_status(&e, 404) => return Ok(()),
                Err(e) => return Err(Error::api(format!("mark node {name} unknown"), e)),
            };
            if was_ready {
                let msg = format!("Node {name} status is now: NodeNotReady");
                self.node_events.record(&node, EventType::Normal, "NodeNotReady", &msg).await;
            }
        }
        if let Some(taints) = desired_taints(&node, Time(jiff::Timestamp::now())) {
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": node.resource_version()},
                "spec": {"taints": taints},
            });
            match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {}
                Err(e) if is_status(&e, 404) || is_status(&e, 409) => {}
                Err(e) => return Err(Error::api(format!("update taints of node {name}"), e)),
            }
        }
        if ready_status(&node) != Some("True") && condition(&node, "Ready").is_some() {
            self.mark_pods_not_ready(&name).await;
        }
        Ok(())
    }

    /// Upstream `MarkPodsNotReady`: pods on a node that is not Ready get Ready=False.
    async fn mark_pods_not_ready(&self, node: &str) {
        for pod in self.pods.state() {
            if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node) || !pod_ready_true(&pod) {
                continue;
            }
            let mut conditions = pod.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
            for c in conditions.iter_mut().filter(|c| c.type_ == "Ready") {
                c.status = "False".into();
                c.last_transition_time = Some(Time(jiff::Timestamp::now()));
            }
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": pod.resource_version()},
                "status": {"conditions": conditions},
            });
            match api.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(p) => self.node_events.record(&p, EventType::Warning, "NodeNotReady", "Node is not ready").await,
                Err(e) => tracing::debug!(pod = %pod.name_any(), error = %e, "could not mark pod not ready"),
            }
        }
    }

    /// The NoExecute taint manager over every pod; returns when it next needs to run.
    async fn taint_pass(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let taints: BTreeMap<String, Vec<Taint>> = self
            .nodes
            .state()
            .iter()
            .map(|n| (n.name_any(), n.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default()))
            .collect();
        let pods = self.pods.state();
        let mut next: Option<Instant> = None;
        let mut seen = Vec::new();
        for pod in pods {
            let uid = pod.uid().unwrap_or_default();
            let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else { continue };
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.clone()).unwrap_or_default();
            let node_taints = taints.get(node).map(Vec::as_slice).unwrap_or(&[]);
            let after = match verdict(&tolerations, node_taints) {
                Verdict::Keep => {
                    if self.pending.remove(&uid).is_some() {
                        let msg = format!(
                            "Cancelling deletion of Pod {}/{}",
                            pod.namespace().unwrap_or_default(),
                            pod.name_any()
                        );
                        self.taint_events.record(&*pod, EventType::Normal, "TaintManagerEviction", &msg).await;
                    }
                    continue;
                }
                Verdict::EvictAfter(d) => d,
            };
            seen.push(uid.clone());
            let deadline =
                self.pending.entry(uid.clone()).or_insert(PendingEviction { deadline: now + after }).deadline;
            if deadline > now {
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
                continue;
            }
            self.evict(&pod).await;
        }
        self.pending.retain(|uid, _| seen.contains(uid));
        next
    }

    /// Deletes a pod for the taint manager (upstream `deletePodHandler`).
    async fn evict(&self, pod: &Pod) {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let msg = format!("Marking for deletion Pod {ns}/{name}");
        self.taint_events.record(pod, EventType::Normal, "TaintManagerEviction", &msg).await;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let mut conditions = pod.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
        conditions.retain(|c| c.type_ != "DisruptionTarget");
        conditions.push(k8s_openapi::api::core::v1::PodCondition {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
            reason: Some("DeletionByTaintManager".into()),
            message: Some("Taint manager: deleting due to NoExecute taint".into()),
            last_transition_time: Some(Time(jiff::Timestamp::now())),
            ..Default::default()
        });
        let patch = serde_json::json!({"status": {"conditions": conditions}});
        if let Err(e) = api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            tracing::debug!(pod = %name, error = %e, "could not add DisruptionTarget condition");
        }
        let dp = DeleteParams {
            preconditions: pod.uid().map(|uid| kube::api::Preconditions { uid: Some(uid), resource_version: None }),
            ..Default::default()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) || is_status(&e, 409) => {}
            Err(e) => tracing::warn!(pod = %name, error = %e, "taint manager could not delete pod"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus};

    fn taint(key: &str, effect: &str) -> Taint {
        Taint { key: key.into(), effect: effect.into(), value: None, time_added: None }
    }

    fn tol(key: &str, effect: Option<&str>, secs: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: effect.map(String::from),
            toleration_seconds: secs,
            value: None,
        }
    }

    fn node(ready: &str, unschedulable: bool) -> Node {
        Node {
            metadata: kube::api::ObjectMeta { name: Some("n".into()), ..Default::default() },
            spec: Some(NodeSpec { unschedulable: Some(unschedulable), ..Default::default() }),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn verdicts_follow_tolerations() {
        let unreachable = [taint(TAINT_UNREACHABLE, "NoExecute")];
        assert_eq!(verdict(&[], &[taint("x", "NoSchedule")]), Verdict::Keep);
        assert_eq!(verdict(&[], &unreachable), Verdict::EvictAfter(Duration::ZERO));
        assert_eq!(verdict(&[tol(TAINT_UNREACHABLE, Some("NoExecute"), None)], &unreachable), Verdict::Keep);
        let tols = [tol(TAINT_UNREACHABLE, Some("NoExecute"), Some(30)), tol("", None, Some(10))];
        assert_eq!(verdict(&tols, &unreachable), Verdict::EvictAfter(Duration::from_secs(10)));
        // A NoSchedule toleration does not tolerate a NoExecute taint.
        assert_eq!(
            verdict(&[tol(TAINT_UNREACHABLE, Some("NoSchedule"), None)], &unreachable),
            Verdict::EvictAfter(Duration::ZERO)
        );
    }

    #[test]
    fn taints_follow_conditions_and_cordon() {
        let now = Time(jiff::Timestamp::now());
        let t = desired_taints(&node("Unknown", false), now.clone()).expect("changed");
        assert!(t.iter().any(|t| t.key == TAINT_UNREACHABLE && t.effect == "NoExecute" && t.time_added.is_some()));
        assert!(t.iter().any(|t| t.key == TAINT_UNREACHABLE && t.effect == "NoSchedule"));
        let t = desired_taints(&node("False", true), now.clone()).expect("changed");
        let keys: Vec<(&str, &str)> = t.iter().map(|t| (t.key.as_str(), t.effect.as_str())).collect();
        assert!(keys.contains(&(TAINT_NOT_READY, "NoExecute")) && keys.contains(&(TAINT_UNSCHEDULABLE, "NoSchedule")));
        assert_eq!(desired_taints(&node("True", false), now.clone()), None);
        // Recovery removes the controller's taints but keeps the user's.
        let mut n = node("True", false);
        n.spec.get_or_insert_with(Default::default).taints =
            Some(vec![taint(TAINT_UNREACHABLE, "NoExecute"), taint("dedicated", "NoSchedule")]);
        assert_eq!(desired_taints(&n, now), Some(vec![taint("dedicated", "NoSchedule")]));
    }

    #[test]
    fn stale_nodes_get_unknown_conditions() {
        let now = Time(jiff::Timestamp::now());
        let c = unknown_conditions(&node("True", false), now.clone()).expect("changed");
        let ready = c.iter().find(|c| c.type_ == "Ready").expect("ready");
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some(REASON_NODE_STATUS_UNKNOWN));
        assert_eq!(ready.message.as_deref(), Some(MESSAGE_NODE_STATUS_UNKNOWN));
        assert!(c.iter().any(|c| c.type_ == "MemoryPressure" && c.status == "Unknown"));
        let mut n = node("True", false);
        n.status.get_or_insert_with(Default::default).conditions = Some(c);
        assert_eq!(unknown_conditions(&n, now), None);
    }
}
