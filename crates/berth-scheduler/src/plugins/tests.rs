//! Table-driven tests of the plugins' Filter and Score on hand-built snapshots (plain structs,
//! no API).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use super::*;
use crate::config::{ResourceWeight, Scoring};
use crate::framework::{Code, CycleState, Framework, Plugin, ScheduleError};
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

fn node(name: &str, labels: Value, spec: Value, cpu: &str, memory: &str) -> NodeInfo {
    let n: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110", "example.com/gpu": "2"}},
    }))
    .expect("node");
    NodeInfo::new(n)
}

fn pod(name: &str, labels: Value, spec: Value) -> PodInfo {
    let mut body = json!({"metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"containers": [{"name": "c"}]}});
    if let (Some(s), Some(extra)) = (body["spec"].as_object_mut(), spec.as_object()) {
        for (k, v) in extra {
            s.insert(k.clone(), v.clone());
        }
    }
    PodInfo::new(serde_json::from_value::<Pod>(body).expect("pod"))
}

/// The incoming pod `p`, unlabeled, with `spec` merged into its spec.
fn incoming(spec: Value) -> PodInfo {
    pod("p", json!({}), spec)
}

/// A 4-cpu, 8Gi node with labels and an empty spec.
fn labeled(name: &str, labels: Value) -> NodeInfo {
    node(name, labels, json!({}), "4", "8Gi")
}

/// A spec with one DoNotSchedule spread constraint over `zone` (maxSkew 1) for `app: s` pods.
fn zone_spread(min_domains: Option<i32>) -> Value {
    let mut c = json!({"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "s"}}});
    if let Some(m) = min_domains {
        c["minDomains"] = json!(m);
    }
    json!({"topologySpreadConstraints": [c]})
}

fn requests(cpu: &str, memory: &str) -> Value {
    json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]})
}

fn with_pods(mut n: NodeInfo, pods: Vec<PodInfo>) -> NodeInfo {
    for p in pods {
        n.add_pod(Arc::new(p));
    }
    n
}

/// Runs PreFilter and Filter of one plugin; `Success` when PreFilter skips.
fn run_filter(plugin: &dyn Plugin, pod: &PodInfo, nodes: &[NodeInfo], target: usize) -> (Code, String) {
    let snapshot = Snapshot::new(nodes.iter().cloned().map(Arc::new).collect());
    let mut state = CycleState::default();
    let pre = plugin.pre_filter(&mut state, pod, &snapshot);
    if pre.code == Code::Skip {
        return (Code::Success, String::new());
    }
    if !pre.is_success() {
        return (pre.code, pre.message());
    }
    let s = plugin.filter(&state, pod, &snapshot.nodes[target]);
    (s.code, s.message())
}

struct FilterCase {
    name: &'static str,
    plugin: Box<dyn Plugin>,
    pod: PodInfo,
    nodes: Vec<NodeInfo>,
    want: (Code, &'static str),
}

#[test]
fn filters_accept_and_reject_with_upstream_reasons() {
    let plain = || labeled("n", json!({}));
    let fit = || node_resources_fit::new(Scoring::LeastAllocated, Vec::new());
    let cases = vec![
        FilterCase {
            name: "cordoned node rejects",
            plugin: node_unschedulable::new(),
            pod: incoming(json!({})),
            nodes: vec![node("n", json!({}), json!({"unschedulable": true}), "4", "8Gi")],
            want: (Code::UnschedulableAndUnresolvable, "node(s) were unschedulable"),
        },
        FilterCase {
            name: "cordoned node accepts tolerating pod",
            plugin: node_unschedulable::new(),
            pod: incoming(json!({"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}]})),
            nodes: vec![node("n", json!({}), json!({"unschedulable": true}), "4", "8Gi")],
            want: (Code::Success, ""),
        },
        FilterCase {
            name: "insufficient cpu and memory in upstream order",
            plugin: fit(),
            pod: incoming(requests("5", "9Gi")),
            nodes: vec![plain()],
            want: (Code::Unschedulable, "Insufficient cpu, Insufficient memory"),
        },
        FilterCase {
            name: "existing pods use up the node",
            plugin: fit(),
            pod: incoming(requests("1", "1Gi")),
            nodes: vec![with_pods(plain(), vec![pod("q", json!({}), requests("3500m", "1Gi"))])],
            want: (Code::Unschedulable, "Insufficient cpu"),
        },
        FilterCase {
            name: "extended resource",
            plugin: fit(),
            pod: incoming(json!({"containers": [{"name": "c", "resources": {"requests": {"example.com/gpu": "3"}}}]})),
            nodes: vec![plain()],
            want: (Code::Unschedulable, "Insufficient example.com/gpu"),
        },
        FilterCase {
            name: "fits",
            plugin: fit(),
            pod: incoming(requests("4", "8Gi")),
            nodes: vec![plain()],
            want: (Code::Success, ""),
        },
        FilterCase {
            name: "node selector mismatch",
            plugin: node_affinity::new(),
            pod: incoming(json!({"nodeSelector": {"disk": "ssd"}})),
            nodes: vec![plain()],
            want: (Code::UnschedulableAndUnresolvable, "node(s) didn't match Pod's node affinity/selector"),
        },
        FilterCase {
            name: "affinity NotIn and DoesNotExist match",
            plugin: node_affinity::new(),
            pod: incoming(json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "zone", "operator": "NotIn", "values": ["b"]},
                    {"key": "spot", "operator": "DoesNotExist"}]}]}}}})),
            nodes: vec![labeled("n", json!({"zone": "a"}))],
            want: (Code::Success, ""),
        },
        FilterCase {
            name: "affinity Lt rejects larger value",
            plugin: node_affinity::new(),
            pod: incoming(json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["8"]}]}]}}}})),
            nodes: vec![labeled("n", json!({"cores": "16"}))],
            want: (Code::UnschedulableAndUnresolvable, "node(s) didn't match Pod's node affinity/selector"),
        },
        FilterCase {
            name: "untolerated NoExecute taint",
            plugin: taint_toleration::new(),
            pod: incoming(json!({"tolerations": [{"key": "a", "operator": "Exists", "effect": "NoSchedule"}]})),
            nodes: vec![node(
                "n",
                json!({}),
                json!({"taints": [{"key": "a", "value": "x", "effect": "NoExecute"}]}),
                "4",
                "8Gi",
            )],
            want: (Code::UnschedulableAndUnresolvable, "node(s) had untolerated taint {a: x}"),
        },
        FilterCase {
            name: "PreferNoSchedule taint does not filter",
            plugin: taint_toleration::new(),
            pod: incoming(json!({})),
            nodes: vec![node(
                "n",
                json!({}),
                json!({"taints": [{"key": "a", "effect": "PreferNoSchedule"}]}),
                "4",
                "8Gi",
            )],
            want: (Code::Success, ""),
        },
        FilterCase {
            name: "host port in use on the same protocol",
            plugin: node_ports::new(),
            pod: incoming(json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80}]}]})),
            nodes: vec![with_pods(
                plain(),
                vec![pod(
                    "q",
                    json!({}),
                    json!({"containers": [{"name": "c", "ports": [{"containerPort": 1, "hostPort": 80, "hostIP": "10.0.0.1"}]}]}),
                )],
            )],
            want: (Code::Unschedulable, "node(s) didn't have free ports for the requested pod ports"),
        },
        FilterCase {
            name: "host port on another protocol is free",
            plugin: node_ports::new(),
            pod: incoming(
                json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80, "protocol": "UDP"}]}]}),
            ),
            nodes: vec![with_pods(
                plain(),
                vec![pod(
                    "q",
                    json!({}),
                    json!({"containers": [{"name": "c", "ports": [{"containerPort": 1, "hostPort": 80}]}]}),
                )],
            )],
            want: (Code::Success, ""),
        },
        FilterCase {
            name: "pod affinity: first pod of a self-affine group may go anywhere",
            plugin: inter_pod_affinity::new(),
            pod: pod(
                "p",
                json!({"app": "db"}),
                json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}]}}}),
            ),
            nodes: vec![labeled("n", json!({"zone": "a"}))],
            want: (Code::Success, ""),
        },
        FilterCase {
            name: "pod affinity: matching pods elsewhere reject this zone",
            plugin: inter_pod_affinity::new(),
            pod: incoming(json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}]}}})),
            nodes: vec![
                labeled("n", json!({"zone": "a"})),
                with_pods(labeled("m", json!({"zone": "b"})), vec![pod("db", json!({"app": "db"}), json!({}))]),
            ],
            want: (Code::UnschedulableAndUnresolvable, "node(s) didn't match pod affinity rules"),
        },
        FilterCase {
            name: "existing pod's anti-affinity rejects the incoming pod",
            plugin: inter_pod_affinity::new(),
            pod: pod("p", json!({"app": "web"}), json!({})),
            nodes: vec![with_pods(
                labeled("n", json!({"kubernetes.io/hostname": "n"})),
                vec![pod(
                    "q",
                    json!({}),
                    json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                    "labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}}),
                )],
            )],
            want: (Code::Unschedulable, "node(s) didn't satisfy existing pods anti-affinity rules"),
        },
        FilterCase {
            name: "anti-affinity in another namespace does not count",
            plugin: inter_pod_affinity::new(),
            pod: pod(
                "p",
                json!({"app": "web"}),
                json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname", "namespaces": ["other"]}]}}}),
            ),
            nodes: vec![with_pods(
                labeled("n", json!({"kubernetes.io/hostname": "n"})),
                vec![pod("q", json!({"app": "web"}), json!({}))],
            )],
            want: (Code::Success, ""),
        },
        FilterCase {
            name: "topology spread: node without the key",
            plugin: pod_topology_spread::new(),
            pod: pod("p", json!({"app": "s"}), zone_spread(None)),
            nodes: vec![plain(), labeled("z", json!({"zone": "a"}))],
            want: (
                Code::UnschedulableAndUnresolvable,
                "node(s) didn't match pod topology spread constraints (missing required label)",
            ),
        },
        FilterCase {
            name: "topology spread: skew would exceed maxSkew",
            plugin: pod_topology_spread::new(),
            pod: pod("p", json!({"app": "s"}), zone_spread(None)),
            nodes: vec![
                with_pods(labeled("a", json!({"zone": "a"})), vec![pod("s1", json!({"app": "s"}), json!({}))]),
                labeled("b", json!({"zone": "b"})),
            ],
            want: (Code::Unschedulable, "node(s) didn't match pod topology spread constraints"),
        },
        FilterCase {
            name: "topology spread: minDomains counts missing domains as empty",
            plugin: pod_topology_spread::new(),
            pod: pod("p", json!({"app": "s"}), zone_spread(Some(3))),
            nodes: vec![
                with_pods(labeled("a", json!({"zone": "a"})), vec![pod("s1", json!({"app": "s"}), json!({}))]),
                with_pods(labeled("b", json!({"zone": "b"})), vec![pod("s2", json!({"app": "s"}), json!({}))]),
            ],
            want: (Code::Unschedulable, "node(s) didn't match pod topology spread constraints"),
        },
    ];
    for c in cases {
        let target = if c.name.contains("affinity rules") || c.name.starts_with("pod affinity: matching") {
            0
        } else {
            c.nodes.len() - 1
        };
        let target = if c.name.starts_with("topology spread: node without") { 0 } else { target };
        let target = if c.name.starts_with("topology spread: skew") { 0 } else { target };
        let (code, msg) = run_filter(c.plugin.as_ref(), &c.pod, &c.nodes, target);
        assert_eq!((code, msg.as_str()), c.want, "case {}", c.name);
    }
}

fn framework(scoring: Scoring) -> Framework {
    let config = crate::SchedulerConfig { scoring, ..Default::default() };
    Framework::new(default_plugins(&config), 100)
}

#[test]
fn scoring_picks_the_node_each_strategy_prefers() {
    struct Case {
        name: &'static str,
        scoring: Scoring,
        pod: PodInfo,
        nodes: Vec<NodeInfo>,
        want: &'static str,
    }
    let busy =
        || with_pods(node("busy", json!({}), json!({}), "4", "4Gi"), vec![pod("q", json!({}), requests("2", "2Gi"))]);
    let idle = || node("idle", json!({}), json!({}), "4", "4Gi");
    let cases = [
        Case {
            name: "least allocated prefers the idle node",
            scoring: Scoring::LeastAllocated,
            pod: incoming(requests("1", "1Gi")),
            nodes: vec![busy(), idle()],
            want: "idle",
        },
        Case {
            name: "most allocated prefers the busy node",
            scoring: Scoring::MostAllocated,
            pod: incoming(requests("1", "1Gi")),
            nodes: vec![busy(), idle()],
            want: "busy",
        },
        Case {
            name: "preferred node affinity outweighs resources",
            scoring: Scoring::LeastAllocated,
            pod: incoming(json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 100, "preference": {"matchExpressions": [{"key": "fast", "operator": "Exists"}]}}]}}})),
            nodes: vec![idle(), node("fastbusy", json!({"fast": "yes"}), json!({}), "4", "4Gi")],
            want: "fastbusy",
        },
        Case {
            name: "PreferNoSchedule taint is avoided",
            scoring: Scoring::LeastAllocated,
            pod: incoming(json!({})),
            nodes: vec![
                node("tainted", json!({}), json!({"taints": [{"key": "a", "effect": "PreferNoSchedule"}]}), "4", "4Gi"),
                node("clean", json!({}), json!({}), "4", "4Gi"),
            ],
            want: "clean",
        },
        Case {
            name: "preferred pod anti-affinity avoids the node with a match",
            scoring: Scoring::LeastAllocated,
            pod: incoming(
                json!({"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "x"}}, "topologyKey": "kubernetes.io/hostname"}}]}}}),
            ),
            nodes: vec![
                with_pods(
                    node("has-x", json!({"kubernetes.io/hostname": "has-x"}), json!({}), "4", "4Gi"),
                    vec![pod("x", json!({"app": "x"}), json!({}))],
                ),
                with_pods(
                    node("has-y", json!({"kubernetes.io/hostname": "has-y"}), json!({}), "4", "4Gi"),
                    vec![pod("y", json!({"app": "y"}), json!({}))],
                ),
            ],
            want: "has-y",
        },
    ];
    for c in cases {
        let fw = framework(c.scoring);
        let snapshot = Snapshot::new(c.nodes.into_iter().map(Arc::new).collect());
        for _ in 0..10 {
            let r = fw.schedule(&c.pod, &snapshot).expect("schedules");
            assert_eq!(r.node, c.want, "case {}", c.name);
        }
    }
}

#[test]
fn schedule_reports_every_failing_node_and_no_nodes() {
    let fw = framework(Scoring::LeastAllocated);
    let p = incoming(requests("8", "1Gi"));
    let nodes = vec![labeled("a", json!({})), node("b", json!({}), json!({"unschedulable": true}), "4", "8Gi")];
    let snapshot = Snapshot::new(nodes.into_iter().map(Arc::new).collect());
    match fw.schedule(&p, &snapshot) {
        Err(ScheduleError::Fit(f)) => {
            assert_eq!(f.message(), "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) were unschedulable.")
        }
        other => panic!("expected a fit error, got {other:?}"),
    }
    match fw.schedule(&p, &Snapshot::default()) {
        Err(e @ ScheduleError::NoNodes) => assert_eq!(e.message(), "no nodes available to schedule pods"),
        other => panic!("expected no nodes, got {other:?}"),
    }
}

#[test]
fn preemption_picks_the_node_with_the_least_important_victims() {
    let fw = framework(Scoring::LeastAllocated);
    let prio_cpu = |name: &str, p: i32, cpu: &str| {
        let mut spec = requests(cpu, "1Gi");
        spec["priority"] = json!(p);
        pod(name, json!({}), spec)
    };
    let prio = |name: &str, p: i32| prio_cpu(name, p, "2");
    let nodes = vec![
        with_pods(labeled("mid", json!({})), vec![prio("m1", 50), prio("m2", 50)]),
        with_pods(labeled("low", json!({})), vec![prio_cpu("l1", 10, "1"), prio_cpu("l2", 100, "3")]),
        with_pods(labeled("high", json!({})), vec![prio("h1", 2000), prio("h2", 2000)]),
    ];
    let snapshot = Snapshot::new(nodes.into_iter().map(Arc::new).collect());
    let preemptor = prio("p", 1000);
    let Err(ScheduleError::Fit(fit)) = fw.schedule(&preemptor, &snapshot) else { panic!("must not fit") };
    let c = crate::preemption::preempt(&fw, &preemptor, &snapshot, &fit).expect("candidate");
    assert_eq!(c.node, "mid", "its highest victim priority, 50, beats 100 (low must evict l2)");
    assert_eq!(c.victims.len(), 1, "one victim is enough (reprieve)");

    let never = {
        let mut p = prio("n", 1000);
        Arc::make_mut(&mut p.pod).spec.as_mut().expect("spec").preemption_policy = Some("Never".to_string());
        p
    };
    let err = crate::preemption::preempt(&fw, &never, &snapshot, &fit).expect_err("not eligible");
    assert_eq!(err, "preemption: not eligible due to preemptionPolicy=Never.");

    let lowest = prio("z", 1);
    let Err(ScheduleError::Fit(fit)) = fw.schedule(&lowest, &snapshot) else { panic!("must not fit") };
    let err = crate::preemption::preempt(&fw, &lowest, &snapshot, &fit).expect_err("no victims");
    assert_eq!(err, "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.");
}

#[test]
fn resource_weights_change_least_allocated_choice() {
    // cpu-heavy weighting prefers the node with more free cpu even if memory is tighter.
    let config = crate::SchedulerConfig {
        resource_weights: vec![
            ResourceWeight { name: "cpu".into(), weight: 10 },
            ResourceWeight { name: "memory".into(), weight: 1 },
        ],
        ..Default::default()
    };
    let fw = Framework::new(default_plugins(&config), 100);
    let nodes = vec![
        with_pods(node("cpu-free", json!({}), json!({}), "8", "8Gi"), vec![pod("q", json!({}), requests("1", "6Gi"))]),
        with_pods(node("mem-free", json!({}), json!({}), "8", "8Gi"), vec![pod("r", json!({}), requests("6", "1Gi"))]),
    ];
    let snapshot = Snapshot::new(nodes.into_iter().map(Arc::new).collect());
    let r = fw.schedule(&incoming(requests("1", "1Gi")), &snapshot).expect("fits");
    assert_eq!(r.node, "cpu-free");
}
