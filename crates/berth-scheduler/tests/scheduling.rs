//! End-to-end scheduling against an in-process apiserver: binding, failure messages, cordon,
//! node selection, taints, affinity, topology spread, host ports.

mod common;

use common::{Cluster, pod_body};
use serde_json::json;

#[tokio::test]
async fn binds_a_pod_to_the_only_fitting_node_and_reports_scheduled() {
    let c = Cluster::with_scheduler().await;
    c.node("small", "1", "1Gi", json!({}), json!({})).await;
    c.node("big", "8", "16Gi", json!({}), json!({})).await;
    c.pod(pod_body("web-1", "2", "4Gi", json!({}), json!({}))).await;
    assert_eq!(c.wait_bound("web-1").await, "big");
    assert_eq!(c.wait_event("web-1", "Scheduled").await, "Successfully assigned default/web-1 to big");
}

#[tokio::test]
async fn insufficient_resources_message_matches_kube_scheduler() {
    let c = Cluster::with_scheduler().await;
    c.node("a", "1", "1Gi", json!({}), json!({})).await;
    c.node("b", "1", "8Gi", json!({}), json!({})).await;
    c.node("c", "4", "1Gi", json!({}), json!({})).await;
    c.pod(pod_body("huge", "2", "2Gi", json!({}), json!({}))).await;
    let (reason, message) = c.wait_unschedulable("huge").await;
    assert_eq!(reason, "Unschedulable");
    // a: cpu+memory, b: cpu, c: memory. Reasons are counted per reason and sorted as strings.
    assert_eq!(
        message,
        "0/3 nodes are available: 2 Insufficient cpu, 2 Insufficient memory. \
         preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.."
    );
    assert_eq!(c.wait_event("huge", "FailedScheduling").await, message);
}

#[tokio::test]
async fn cordoned_node_is_skipped_and_reported() {
    let c = Cluster::with_scheduler().await;
    c.node("cordoned", "8", "8Gi", json!({}), json!({"unschedulable": true})).await;
    c.node("open", "1", "1Gi", json!({}), json!({})).await;
    c.pod(pod_body("p", "100m", "10Mi", json!({}), json!({}))).await;
    assert_eq!(c.wait_bound("p").await, "open");
    c.pod(pod_body("big", "2", "10Mi", json!({}), json!({}))).await;
    let (_, message) = c.wait_unschedulable("big").await;
    assert_eq!(
        message,
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) were unschedulable. \
         preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, \
         1 Preemption is not helpful for scheduling.."
    );
}

#[tokio::test]
async fn node_selector_and_required_affinity_choose_matching_nodes() {
    let c = Cluster::with_scheduler().await;
    c.node("ssd", "4", "4Gi", json!({"disk": "ssd", "zone": "z1"}), json!({})).await;
    c.node("hdd", "4", "4Gi", json!({"disk": "hdd", "zone": "z2"}), json!({})).await;
    c.node("gpu", "4", "4Gi", json!({"disk": "hdd", "gpu-count": "4"}), json!({})).await;
    c.pod(pod_body("sel", "100m", "10Mi", json!({}), json!({"nodeSelector": {"disk": "ssd"}}))).await;
    let affinity = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu-count", "operator": "Gt", "values": ["2"]}]}]}}}});
    c.pod(pod_body("aff", "100m", "10Mi", json!({}), affinity)).await;
    let by_name = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["hdd"]}]}]}}}});
    c.pod(pod_body("field", "100m", "10Mi", json!({}), by_name)).await;
    assert_eq!(c.wait_bound("sel").await, "ssd");
    assert_eq!(c.wait_bound("aff").await, "gpu");
    assert_eq!(c.wait_bound("field").await, "hdd");
    c.pod(pod_body("none", "100m", "10Mi", json!({}), json!({"nodeSelector": {"disk": "nvme"}}))).await;
    let (_, message) = c.wait_unschedulable("none").await;
    assert_eq!(
        message,
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."
    );
}

#[tokio::test]
async fn taints_repel_pods_without_tolerations() {
    let c = Cluster::with_scheduler().await;
    let taint = json!({"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]});
    c.node("tainted", "4", "4Gi", json!({}), taint).await;
    c.pod(pod_body("plain", "100m", "10Mi", json!({}), json!({}))).await;
    let (_, message) = c.wait_unschedulable("plain").await;
    assert_eq!(
        message,
        "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}. \
         preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.."
    );
    let toleration =
        json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]});
    c.pod(pod_body("tolerant", "100m", "10Mi", json!({}), toleration)).await;
    assert_eq!(c.wait_bound("tolerant").await, "tainted");
}

#[tokio::test]
async fn anti_affinity_spreads_three_replicas_over_three_nodes() {
    let c = Cluster::with_scheduler().await;
    for n in ["n1", "n2", "n3"] {
        c.node(n, "4", "8Gi", json!({}), json!({})).await;
    }
    let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
        "labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    let mut nodes = Vec::new();
    for i in 0..3 {
        let name = format!("web-{i}");
        c.pod(pod_body(&name, "100m", "10Mi", json!({"app": "web"}), anti.clone())).await;
        nodes.push(c.wait_bound(&name).await);
    }
    nodes.sort();
    assert_eq!(nodes, ["n1", "n2", "n3"]);
    c.pod(pod_body("web-3", "100m", "10Mi", json!({"app": "web"}), anti)).await;
    let (_, message) = c.wait_unschedulable("web-3").await;
    assert!(
        message.starts_with("0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."),
        "{message}"
    );
}

#[tokio::test]
async fn topology_spread_with_max_skew_one_balances_zones() {
    let c = Cluster::with_scheduler().await;
    c.node("a1", "8", "8Gi", json!({"zone": "a"}), json!({})).await;
    c.node("a2", "8", "8Gi", json!({"zone": "a"}), json!({})).await;
    c.node("b1", "8", "8Gi", json!({"zone": "b"}), json!({})).await;
    let spread = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "s"}}}]});
    let mut zones = std::collections::BTreeMap::<String, i32>::new();
    for i in 0..6 {
        let name = format!("s-{i}");
        c.pod(pod_body(&name, "100m", "10Mi", json!({"app": "s"}), spread.clone())).await;
        let node = c.wait_bound(&name).await;
        *zones.entry(node[..1].to_string()).or_default() += 1;
        let (a, b) = (zones.get("a").copied().unwrap_or(0), zones.get("b").copied().unwrap_or(0));
        assert!((a - b).abs() <= 1, "skew exceeded after {name}: {zones:?}");
    }
    assert_eq!(zones.get("a"), Some(&3));
    assert_eq!(zones.get("b"), Some(&3));
}

#[tokio::test]
async fn host_port_conflict_sends_second_pod_elsewhere_then_nowhere() {
    let c = Cluster::with_scheduler().await;
    c.node("h1", "4", "4Gi", json!({}), json!({})).await;
    c.node("h2", "4", "4Gi", json!({}), json!({})).await;
    let port = |name: &str| {
        let mut b = pod_body(name, "100m", "10Mi", json!({}), json!({}));
        b["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80, "hostPort": 8080}]);
        b
    };
    c.pod(port("p1")).await;
    let first = c.wait_bound("p1").await;
    c.pod(port("p2")).await;
    let second = c.wait_bound("p2").await;
    assert_ne!(first, second);
    c.pod(port("p3")).await;
    let (_, message) = c.wait_unschedulable("p3").await;
    assert_eq!(
        message,
        "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports. \
         preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.."
    );
}

#[tokio::test]
async fn pending_pod_is_scheduled_when_a_node_is_added() {
    let c = Cluster::with_scheduler().await;
    c.pod(pod_body("early", "100m", "10Mi", json!({}), json!({}))).await;
    let (reason, message) = c.wait_unschedulable("early").await;
    assert_eq!((reason.as_str(), message.as_str()), ("Unschedulable", "no nodes available to schedule pods"));
    c.node("late", "1", "1Gi", json!({}), json!({})).await;
    assert_eq!(c.wait_bound("early").await, "late");
}

#[tokio::test]
async fn deleting_a_pod_frees_room_for_a_pending_one() {
    let c = Cluster::with_scheduler().await;
    c.node("n", "1", "1Gi", json!({}), json!({})).await;
    c.pod(pod_body("first", "800m", "10Mi", json!({}), json!({}))).await;
    c.wait_bound("first").await;
    c.pod(pod_body("second", "800m", "10Mi", json!({}), json!({}))).await;
    c.wait_unschedulable("second").await;
    let grace0 = kube::api::DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
    c.pods().delete("first", &grace0).await.expect("delete first");
    assert_eq!(c.wait_bound("second").await, "n");
}
