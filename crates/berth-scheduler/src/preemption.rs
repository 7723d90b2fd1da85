//! Preemption (the DefaultPreemption PostFilter): when a pod fits nowhere, find a node where
//! evicting lower-priority pods makes it fit, keeping as many of them as possible (reprieve,
//! most important first), and pick the node whose victims matter least. Pure: the caller deletes
//! the victims and nominates the node.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::framework::{Code, CycleState, FitError, Framework, Status};
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

/// Upstream's status for nodes where preemption cannot help.
pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// Upstream's status for a node without lower-priority pods.
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// A node and the pods to evict there.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub node: String,
    pub victims: Vec<Arc<PodInfo>>,
}

fn fits(fw: &Framework, pod: &PodInfo, snapshot: &Snapshot, node: &NodeInfo) -> Status {
    let mut state = CycleState::default();
    let pre = fw.run_pre_filter(&mut state, pod, snapshot);
    if !pre.is_success() {
        return pre;
    }
    fw.run_filters(&state, pod, node)
}

/// The minimal victims on one node, or why there are none (upstream `SelectVictimsOnNode`).
fn select_victims_on_node(
    fw: &Framework,
    pod: &PodInfo,
    snapshot: &Snapshot,
    index: usize,
) -> Result<Vec<Arc<PodInfo>>, Status> {
    let original = &snapshot.nodes[index];
    let mut node = (**original).clone();
    let mut potential: Vec<Arc<PodInfo>> =
        original.pods.iter().filter(|p| p.priority < pod.priority).cloned().collect();
    if potential.is_empty() {
        return Err(Status::unresolvable(NO_VICTIMS));
    }
    for v in &potential {
        node.remove_pod(&v.key);
    }
    let mut snap = snapshot.clone();
    snap.nodes[index] = Arc::new(node.clone());
    let s = fits(fw, pod, &snap, &node);
    if !s.is_success() {
        return Err(s);
    }
    // Most important first: higher priority, then older.
    potential.sort_by(|a, b| {
        b.priority.cmp(&a.priority).then_with(|| {
            let start = |p: &PodInfo| p.pod.status.as_ref().and_then(|s| s.start_time.clone()).map(|t| t.0);
            start(a).cmp(&start(b))
        })
    });
    let mut victims = Vec::new();
    for v in potential {
        node.add_pod(v.clone());
        snap.nodes[index] = Arc::new(node.clone());
        if !fits(fw, pod, &snap, &node).is_success() {
            node.remove_pod(&v.key);
            victims.push(v);
        }
    }
    Ok(victims)
}

/// Why the pod may not preempt at all (upstream `PodEligibleToPreemptOthers`).
fn ineligible_reason(pod: &PodInfo, snapshot: &Snapshot) -> Option<&'static str> {
    let spec = pod.pod.spec.as_ref()?;
    if spec.preemption_policy.as_deref() == Some("Never") {
        return Some("not eligible due to preemptionPolicy=Never.");
    }
    let nominated = pod.pod.status.as_ref().and_then(|s| s.nominated_node_name.as_deref())?;
    let node = snapshot.get(nominated)?;
    node.pods
        .iter()
        .any(|p| p.is_terminating() && p.priority < pod.priority)
        .then_some("not eligible due to a terminating pod on the nominated node.")
}

/// Finds where preemption lets the pod fit.
///
/// # Errors
/// The PostFilter message (`preemption: 0/N nodes are available: ...`) when no node helps.
pub fn preempt(fw: &Framework, pod: &PodInfo, snapshot: &Snapshot, fit: &FitError) -> Result<Candidate, String> {
    if let Some(reason) = ineligible_reason(pod, snapshot) {
        return Err(format!("preemption: {reason}"));
    }
    let mut statuses: BTreeMap<String, Status> = BTreeMap::new();
    let mut candidates = Vec::new();
    for (i, node) in snapshot.nodes.iter().enumerate() {
        let resolvable = fit.pre_filter_msg.is_none()
            && fit.node_status.get(&node.name).is_some_and(|s| s.code == Code::Unschedulable);
        if !resolvable {
            continue;
        }
        match select_victims_on_node(fw, pod, snapshot, i) {
            Ok(victims) => candidates.push(Candidate { node: node.name.clone(), victims }),
            Err(s) => {
                statuses.insert(node.name.clone(), s);
            }
        }
    }
    let key = |c: &Candidate| {
        let highest = c.victims.iter().map(|v| v.priority).max().unwrap_or(i32::MIN);
        let sum: i64 = c.victims.iter().map(|v| i64::from(v.priority) - i64::from(i32::MIN)).sum();
        (highest, sum, c.victims.len())
    };
    if let Some(best) = candidates.into_iter().min_by_key(key) {
        return Ok(best);
    }
    for node in &snapshot.nodes {
        statuses.entry(node.name.clone()).or_insert_with(|| Status::unresolvable(NOT_HELPFUL));
    }
    let inner = FitError {
        num_all_nodes: snapshot.nodes.len(),
        pre_filter_msg: None,
        node_status: statuses,
        post_filter_msg: None,
    };
    Err(format!("preemption: {}", inner.message()))
}
