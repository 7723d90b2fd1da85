//! The autoscaler's decisions, pure: which node group grows and by how much so that pending pods
//! fit (the scheduler's own filters run against template nodes), and which nodes are unneeded
//! (under the utilization threshold, with every pod able to move elsewhere). No API, no clock.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_scheduler::framework::CycleState;
use berth_scheduler::{Framework, NodeInfo, PodInfo, Snapshot};
use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeSpec, NodeStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::config::{Expander, NODE_GROUP_LABEL, NodeGroupConfig};

/// A node group as the planner sees it: its config and how many nodes it has (or has asked for).
#[derive(Clone, Debug)]
pub struct GroupState {
    pub config: NodeGroupConfig,
    pub size: usize,
}

/// The Node object a group's new node `name` will register as (labels, taints, capacity).
pub fn template_node(group: &NodeGroupConfig, name: &str) -> Node {
    let mut labels = group.template.labels.clone();
    labels.insert(NODE_GROUP_LABEL.to_string(), group.name.clone());
    labels.insert("kubernetes.io/hostname".to_string(), name.to_string());
    labels.insert("kubernetes.io/os".to_string(), "linux".to_string());
    let mut capacity: BTreeMap<String, Quantity> =
        group.template.capacity.iter().map(|(k, v)| (k.clone(), Quantity(v.clone()))).collect();
    capacity.entry("pods".to_string()).or_insert_with(|| Quantity("110".to_string()));
    Node {
        metadata: ObjectMeta { name: Some(name.to_string()), labels: Some(labels), ..Default::default() },
        spec: Some(NodeSpec {
            taints: (!group.template.taints.is_empty()).then(|| group.template.taints.clone()),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            allocatable: Some(capacity.clone()),
            capacity: Some(capacity),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".to_string(),
                status: "True".to_string(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

/// Whether `pod` passes every filter on `node`, with `snapshot` as the cluster for the
/// pre-filters (topology spread and inter-pod affinity look at other nodes).
fn fits(framework: &Framework, snapshot: &Snapshot, pod: &PodInfo, node: &NodeInfo) -> bool {
    let mut state = CycleState::default();
    if !framework.run_pre_filter(&mut state, pod, snapshot).is_success() {
        return false;
    }
    framework.run_filters(&state, pod, node).is_success()
}

/// Places `pod` on the first node of `nodes[from..]` it fits, accounting it there; returns the
/// index. The pre-filters see all of `nodes`.
fn place(framework: &Framework, nodes: &mut [Arc<NodeInfo>], from: usize, pod: &Arc<PodInfo>) -> Option<usize> {
    let snapshot = Snapshot::new(nodes.to_vec());
    let mut state = CycleState::default();
    if !framework.run_pre_filter(&mut state, pod, &snapshot).is_success() {
        return None;
    }
    let i = from + nodes[from..].iter().position(|n| framework.run_filters(&state, pod, n).is_success())?;
    Arc::make_mut(&mut nodes[i]).add_pod(pod.clone());
    Some(i)
}

/// What one group's growth would achieve.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupGrowth {
    pub group: String,
    /// New nodes needed.
    pub nodes: usize,
    /// `namespace/name` of the pending pods the new nodes would take.
    pub pods: Vec<String>,
    /// Idle fraction of the new nodes' cpu and memory, averaged (least-waste's score).
    pub waste: f64,
}

/// The scale-up decision.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScaleUpPlan {
    /// The chosen group's growth, if any group helps.
    pub chosen: Option<GroupGrowth>,
    /// Pending pods that fit on existing nodes already (the scheduler will place them).
    pub schedulable: Vec<String>,
    /// Pending pods no group can help, with why (for NotTriggerScaleUp events).
    pub unhelpable: Vec<(String, String)>,
}

/// Decides a scale-up for `pending` pods: drops those that fit on the existing nodes, simulates
/// each group with room on its template nodes (first fit, at most up to its max size), and
/// chooses one group with `expander`.
pub fn plan_scale_up(
    framework: &Framework,
    existing: &[NodeInfo],
    pending: &[Arc<PodInfo>],
    groups: &[GroupState],
    expander: Expander,
) -> ScaleUpPlan {
    let mut plan = ScaleUpPlan::default();
    let mut nodes: Vec<Arc<NodeInfo>> = existing.iter().cloned().map(Arc::new).collect();
    let mut still: Vec<Arc<PodInfo>> = Vec::new();
    let mut order: Vec<&Arc<PodInfo>> = pending.iter().collect();
    // Larger and more important pods first, as a packer would.
    order.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(b.requests.milli_cpu.cmp(&a.requests.milli_cpu))
            .then(b.requests.memory.cmp(&a.requests.memory))
            .then(a.key.cmp(&b.key))
    });
    for pod in order {
        if place(framework, &mut nodes, 0, pod).is_some() {
            plan.schedulable.push(pod.key.clone());
        } else {
            still.push(pod.clone());
        }
    }
    if still.is_empty() {
        return plan;
    }
    let mut options = Vec::new();
    let mut helped_by_any = std::collections::HashSet::new();
    for group in groups {
        let room = group.config.max_size.saturating_sub(group.size);
        if room == 0 {
            continue;
        }
        let mut sim: Vec<Arc<NodeInfo>> = nodes.clone();
        let first_new = sim.len();
        let mut pods = Vec::new();
        for pod in &still {
            if place(framework, &mut sim, first_new, pod).is_some() {
                pods.push(pod.key.clone());
                continue;
            }
            if sim.len() - first_new >= room {
                continue;
            }
            let name = format!("template-{}-{}", group.config.name, sim.len() - first_new);
            sim.push(Arc::new(NodeInfo::new(template_node(&group.config, &name))));
            let last = sim.len() - 1;
            if place(framework, &mut sim, last, pod).is_some() {
                pods.push(pod.key.clone());
            } else {
                sim.pop();
            }
        }
        if pods.is_empty() {
            continue;
        }
        helped_by_any.extend(pods.iter().cloned());
        let new_nodes = &sim[first_new..];
        let waste = new_nodes.iter().map(|n| idle_fraction(n)).sum::<f64>() / new_nodes.len() as f64;
        options.push(GroupGrowth { group: group.config.name.clone(), nodes: new_nodes.len(), pods, waste });
    }
    for pod in &still {
        if helped_by_any.contains(&pod.key) {
            continue;
        }
        let fitting: Vec<&GroupState> = groups
            .iter()
            .filter(|g| {
                let empty = NodeInfo::new(template_node(&g.config, &format!("template-{}", g.config.name)));
                let snapshot = Snapshot::new(nodes.iter().cloned().chain([Arc::new(empty.clone())]).collect());
                fits(framework, &snapshot, pod, &empty)
            })
            .collect();
        if fitting.is_empty() {
            plan.unhelpable.push((pod.key.clone(), format!("{} node group(s) would not fit the pod", groups.len())));
        } else if fitting.iter().all(|g| g.size >= g.config.max_size) {
            plan.unhelpable.push((pod.key.clone(), "max node group size reached".to_string()));
        }
    }
    plan.chosen = choose(options, expander);
    plan
}

/// The expander's pick.
fn choose(mut options: Vec<GroupGrowth>, expander: Expander) -> Option<GroupGrowth> {
    match expander {
        Expander::Priority => options.into_iter().next(),
        Expander::MostPods => {
            options.sort_by(|a, b| b.pods.len().cmp(&a.pods.len()).then(a.nodes.cmp(&b.nodes)));
            options.into_iter().next()
        }
        Expander::LeastWaste => {
            options.sort_by(|a, b| {
                a.waste.total_cmp(&b.waste).then(b.pods.len().cmp(&a.pods.len())).then(a.nodes.cmp(&b.nodes))
            });
            options.into_iter().next()
        }
    }
}

/// The idle fraction of a node's cpu and memory after its pods, averaged (0 = full).
fn idle_fraction(node: &NodeInfo) -> f64 {
    let frac = |used: i64, total: i64| if total > 0 { 1.0 - (used as f64 / total as f64).min(1.0) } else { 0.0 };
    (frac(node.requested.milli_cpu, node.allocatable.milli_cpu) + frac(node.requested.memory, node.allocatable.memory))
        / 2.0
}

/// Whether the autoscaler ignores a pod when judging a node: mirror (static) pods and DaemonSet
/// pods stay with their node.
pub fn stays_with_node(pod: &PodInfo) -> bool {
    let meta = &pod.pod.metadata;
    meta.annotations.as_ref().is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"))
        || meta.owner_references.iter().flatten().any(|o| o.controller == Some(true) && o.kind == "DaemonSet")
}

/// A node's utilization as upstream computes it: the larger of requested cpu and memory over
/// allocatable, not counting mirror and DaemonSet pods.
pub fn utilization(node: &NodeInfo) -> f64 {
    let (mut cpu, mut mem) = (0i64, 0i64);
    for pod in node.pods.iter().filter(|p| !stays_with_node(p) && !p.is_terminating()) {
        cpu += pod.requests.milli_cpu;
        mem += pod.requests.memory;
    }
    let frac = |used: i64, total: i64| if total > 0 { used as f64 / total as f64 } else { 0.0 };
    frac(cpu, node.allocatable.milli_cpu).max(frac(mem, node.allocatable.memory))
}

/// Why a node cannot be removed, or `None` when every pod it has can move.
fn blocking_pod(pod: &PodInfo) -> Option<String> {
    if stays_with_node(pod) || pod.is_terminating() {
        return None;
    }
    let controlled = pod.pod.metadata.owner_references.iter().flatten().any(|o| o.controller == Some(true));
    (!controlled).then(|| format!("pod {} is not managed by a controller", pod.key))
}

/// Nodes of `candidates` (names) that are under `threshold` and whose pods all fit on the other
/// nodes, chosen greedily: pods of a node chosen earlier are accounted where they would go.
/// Returns the names, and for the rest why they stay.
pub fn unneeded_nodes(
    framework: &Framework,
    nodes: &[NodeInfo],
    candidates: &[String],
    threshold: f64,
) -> (Vec<String>, BTreeMap<String, String>) {
    let mut removable = Vec::new();
    let mut kept = BTreeMap::new();
    let mut sim: Vec<Arc<NodeInfo>> = nodes.iter().cloned().map(Arc::new).collect();
    for name in candidates {
        let Some(node) = sim.iter().find(|n| &n.name == name).cloned() else { continue };
        let used = utilization(&node);
        if used >= threshold {
            kept.insert(name.clone(), format!("utilization {used:.2} is not below {threshold}"));
            continue;
        }
        if let Some(why) = node.pods.iter().find_map(|p| blocking_pod(p)) {
            kept.insert(name.clone(), why);
            continue;
        }
        let mut others: Vec<Arc<NodeInfo>> =
            sim.iter().filter(|n| &n.name != name && !removable.contains(&n.name)).cloned().collect();
        let movable: Vec<Arc<PodInfo>> =
            node.pods.iter().filter(|p| !stays_with_node(p) && !p.is_terminating()).cloned().collect();
        let mut stuck = None;
        for pod in &movable {
            let mut moved = (*pod.as_ref()).clone();
            let mut p = (*moved.pod).clone();
            if let Some(spec) = p.spec.as_mut() {
                spec.node_name = None;
            }
            moved.pod = Arc::new(p);
            if place(framework, &mut others, 0, &Arc::new(moved)).is_none() {
                stuck = Some(pod.key.clone());
                break;
            }
        }
        match stuck {
            Some(pod) => {
                kept.insert(name.clone(), format!("pod {pod} fits on no other node"));
            }
            None => {
                // The pods now live on the other nodes in the simulation.
                let mut next: Vec<Arc<NodeInfo>> = others;
                next.extend(sim.iter().filter(|n| removable.contains(&n.name)).cloned());
                sim = next;
                removable.push(name.clone());
            }
        }
    }
    (removable, kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NodeTemplate, ProviderKind};
    use berth_scheduler::SchedulerConfig;
    use berth_scheduler::plugins::default_plugins;
    use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn framework() -> Framework {
        Framework::new(default_plugins(&SchedulerConfig::default()), 100)
    }

    fn group(name: &str, cpu: &str, memory: &str, max: usize) -> NodeGroupConfig {
        NodeGroupConfig {
            name: name.into(),
            provider: ProviderKind::Sim,
            min_size: 0,
            max_size: max,
            template: NodeTemplate {
                capacity: [("cpu".into(), cpu.into()), ("memory".into(), memory.into())].into(),
                ..Default::default()
            },
            agent_args: Vec::new(),
        }
    }

    fn pod(name: &str, cpu: &str, memory: &str, node: Option<&str>, owned: bool) -> Arc<PodInfo> {
        let requests = [("cpu".to_string(), Quantity(cpu.into())), ("memory".to_string(), Quantity(memory.into()))];
        Arc::new(PodInfo::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                owner_references: owned.then(|| {
                    vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "ReplicaSet".into(),
                        name: "rs".into(),
                        uid: "u".into(),
                        controller: Some(true),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(String::from),
                containers: vec![Container {
                    name: "c".into(),
                    resources: Some(ResourceRequirements { requests: Some(requests.into()), ..Default::default() }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        }))
    }

    fn node(name: &str, cpu: &str, memory: &str, pods: &[Arc<PodInfo>]) -> NodeInfo {
        let mut n = NodeInfo::new(template_node(&group("existing", cpu, memory, 1), name));
        for p in pods {
            n.add_pod(p.clone());
        }
        n
    }

    #[test]
    fn pods_that_fit_existing_nodes_trigger_no_scale_up() {
        let existing = [node("n1", "4", "8Gi", &[])];
        let pending = [pod("a", "1", "1Gi", None, true)];
        let groups = [GroupState { config: group("g", "4", "8Gi", 3), size: 0 }];
        let plan = plan_scale_up(&framework(), &existing, &pending, &groups, Expander::LeastWaste);
        assert_eq!(plan.chosen, None);
        assert_eq!(plan.schedulable, vec!["default/a"]);
    }

    #[test]
    fn enough_template_nodes_are_asked_for_and_no_more_than_max() {
        let existing = [node("n1", "2", "4Gi", &[pod("busy", "2", "1Gi", Some("n1"), true)])];
        let pending: Vec<_> = (0..5).map(|i| pod(&format!("p{i}"), "1500m", "1Gi", None, true)).collect();
        let groups = [GroupState { config: group("g", "2", "4Gi", 4), size: 1 }];
        let plan = plan_scale_up(&framework(), &existing, &pending, &groups, Expander::LeastWaste);
        let chosen = plan.chosen.expect("a scale-up");
        // One 1.5-cpu pod per 2-cpu node; the group has room for 3 more nodes.
        assert_eq!((chosen.group.as_str(), chosen.nodes, chosen.pods.len()), ("g", 3, 3));
        assert_eq!(plan.unhelpable.len(), 0, "two pods wait for a later round, not unhelpable");
    }

    #[test]
    fn least_waste_picks_the_group_whose_nodes_the_pods_fill_best() {
        let pending: Vec<_> = (0..2).map(|i| pod(&format!("p{i}"), "1800m", "3Gi", None, true)).collect();
        let groups = [
            GroupState { config: group("big", "16", "64Gi", 5), size: 0 },
            GroupState { config: group("snug", "2", "4Gi", 5), size: 0 },
        ];
        let plan = plan_scale_up(&framework(), &[], &pending, &groups, Expander::LeastWaste);
        let chosen = plan.chosen.expect("scale-up");
        assert_eq!((chosen.group.as_str(), chosen.nodes), ("snug", 2));
        let most = plan_scale_up(&framework(), &[], &pending, &groups[..1], Expander::MostPods);
        assert_eq!(most.chosen.map(|c| c.nodes), Some(1), "both fit on one big node");
    }

    #[test]
    fn a_pod_bigger_than_any_template_is_reported_unhelpable() {
        let pending = [pod("huge", "64", "1Gi", None, true)];
        let groups = [GroupState { config: group("g", "4", "8Gi", 3), size: 0 }];
        let plan = plan_scale_up(&framework(), &[], &pending, &groups, Expander::LeastWaste);
        assert_eq!(plan.chosen, None);
        assert_eq!(plan.unhelpable[0].0, "default/huge");
        let full = [GroupState { config: group("g", "4", "8Gi", 3), size: 3 }];
        let plan = plan_scale_up(&framework(), &[], &[pod("p", "1", "1Gi", None, true)], &full, Expander::LeastWaste);
        assert_eq!(plan.unhelpable[0].1, "max node group size reached");
    }

    #[test]
    fn an_underused_node_is_unneeded_only_if_its_pods_fit_elsewhere() {
        let small = pod("small", "500m", "512Mi", Some("n2"), true);
        let nodes = [
            node("n1", "4", "8Gi", &[pod("big", "2", "2Gi", Some("n1"), true)]),
            node("n2", "4", "8Gi", std::slice::from_ref(&small)),
        ];
        let (gone, kept) = unneeded_nodes(&framework(), &nodes, &["n1".into(), "n2".into()], 0.5);
        // n1 is at 0.5 (not below); n2's pod fits on n1.
        assert_eq!(gone, vec!["n2"]);
        assert!(kept["n1"].contains("utilization"), "{kept:?}");

        let tight = [node("n1", "1", "8Gi", &[pod("big", "900m", "1Gi", Some("n1"), true)]), nodes[1].clone()];
        let (gone, kept) = unneeded_nodes(&framework(), &tight, &["n2".into()], 0.5);
        assert!(gone.is_empty());
        assert!(kept["n2"].contains("fits on no other node"), "{kept:?}");
    }

    #[test]
    fn a_bare_pod_blocks_removal_and_two_empty_nodes_cannot_both_take_each_others_pods() {
        let nodes = [node("n1", "4", "8Gi", &[pod("bare", "100m", "64Mi", Some("n1"), false)])];
        let (gone, kept) = unneeded_nodes(&framework(), &nodes, &["n1".into()], 0.5);
        assert!(gone.is_empty() && kept["n1"].contains("not managed by a controller"));

        let nodes = [
            node("n1", "4", "8Gi", &[pod("a", "1", "1Gi", Some("n1"), true)]),
            node("n2", "4", "8Gi", &[pod("b", "1", "1Gi", Some("n2"), true)]),
        ];
        let (gone, _) = unneeded_nodes(&framework(), &nodes, &["n1".into(), "n2".into()], 0.5);
        assert_eq!(gone, vec!["n1"], "n1's pod moves to n2, so n2 must stay");
    }
}
