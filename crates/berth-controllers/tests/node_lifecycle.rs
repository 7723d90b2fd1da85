//! Node lifecycle controller and NoExecute taint manager against a real in-process apiserver, with
//! the real scheduler placing a Deployment's pods on two fake nodes whose Leases the test renews
//! (playing two agents).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use berth_controllers::ControllersConfig;
use common::{Env, active_pods, wait_for};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Creates a Ready node and its Lease.
async fn create_node(client: &Client, name: &str) {
    let api: Api<Node> = Api::all(client.clone());
    let status = json!({
        "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"},
        "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "kubelet is posting ready status", "lastHeartbeatTime": jiff::Timestamp::now().to_string()}],
    });
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": status,
    }))
    .expect("node");
    api.create(&PostParams::default(), &node).await.expect("create node");
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&json!({"status": status})))
        .await
        .expect("node status");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now_micro()},
    }))
    .expect("lease");
    Api::<Lease>::namespaced(client.clone(), "kube-node-lease")
        .create(&PostParams::default(), &lease)
        .await
        .expect("create lease");
}

fn now_micro() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Plays an agent: renews `name`'s Lease every 100 ms while `alive` is set, until `stop` fires.
fn heartbeat(client: Client, name: &'static str, alive: Arc<AtomicBool>, stop: CancellationToken) {
    tokio::spawn(async move {
        let api: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
        let nodes: Api<Node> = Api::all(client);
        loop {
            if alive.load(Ordering::SeqCst) {
                let _ = api
                    .patch(name, &PatchParams::default(), &Patch::Merge(&json!({"spec": {"renewTime": now_micro()}})))
                    .await;
                // A recovered agent posts Ready=True again, as the kubelet does.
                let node = nodes.get(name).await.ok();
                let ready = node
                    .and_then(|n| n.status?.conditions)
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                if !ready {
                    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True",
                        "reason": "KubeletReady", "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": jiff::Timestamp::now().to_string(),
                        "lastTransitionTime": jiff::Timestamp::now().to_string()}]}});
                    let _ = nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await;
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    });
}

fn node_of(p: &Pod) -> Option<String> {
    p.spec.as_ref()?.node_name.clone()
}

async fn taints(client: &Client, node: &str) -> Vec<(String, String)> {
    let n = Api::<Node>::all(client.clone()).get(node).await.expect("node");
    n.spec.and_then(|s| s.taints).unwrap_or_default().into_iter().map(|t| (t.key, t.effect)).collect()
}

#[tokio::test]
async fn unreachable_node_is_tainted_and_its_pods_move_to_the_other_node() {
    let env = Env::start_server().await;
    let client = env.client.clone();
    create_node(&client, "node-a").await;
    create_node(&client, "node-b").await;
    let alive_a = Arc::new(AtomicBool::new(true));
    let alive_b = Arc::new(AtomicBool::new(true));
    heartbeat(client.clone(), "node-a", alive_a.clone(), env.cancel.child_token());
    heartbeat(client.clone(), "node-b", alive_b.clone(), env.cancel.child_token());
    env.start_controllers_config(ControllersConfig {
        controllers: vec!["replicaset".into(), "deployment".into(), "nodelifecycle".into()],
        concurrency: 4,
        node_monitor_grace_period: Duration::from_secs(2),
        node_monitor_period: Duration::from_millis(200),
        ..Default::default()
    });
    let sched_cancel = env.cancel.child_token();
    let sched_client = client.clone();
    tokio::spawn(async move {
        let _ = berth_scheduler::run(sched_client, berth_scheduler::SchedulerConfig::default(), sched_cancel).await;
    });

    // A Deployment spread over both nodes, tolerating unreachable for 1 s only.
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{"name": "c", "image": "nginx",
                        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}],
                    "tolerations": [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}],
                    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "web"}}}],
                },
            },
        },
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &deploy)
        .await
        .expect("create deployment");
    // A bare pod on node-a tolerating unreachable forever stays.
    let keeper: Pod = serde_json::from_value(json!({
        "metadata": {"name": "keeper", "labels": {"app": "keeper"}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "nginx"}],
            "tolerations": [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]},
    }))
    .expect("pod");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &keeper).await.expect("create keeper");
    common::mark_ready(&client, "default", "keeper").await;
    let placed = wait_for(30, "4 pods bound to both nodes", || async {
        let p = active_pods(&client, "default", "app=web").await;
        let on_a = p.iter().filter(|p| node_of(p).as_deref() == Some("node-a")).count();
        let on_b = p.iter().filter(|p| node_of(p).as_deref() == Some("node-b")).count();
        (p.len() == 4 && on_a > 0 && on_b > 0 && on_a + on_b == 4).then_some(p)
    })
    .await;
    let on_a: Vec<String> =
        placed.iter().filter(|p| node_of(p).as_deref() == Some("node-a")).map(|p| p.name_any()).collect();
    // The defaulting kept the explicit unreachable toleration and added not-ready with 300 s.
    let tol = placed[0].spec.as_ref().and_then(|s| s.tolerations.clone()).unwrap_or_default();
    assert!(tol.iter().any(|t| t.key.as_deref() == Some(UNREACHABLE) && t.toleration_seconds == Some(1)));
    assert!(
        tol.iter()
            .any(|t| t.key.as_deref() == Some("node.kubernetes.io/not-ready") && t.toleration_seconds == Some(300))
    );
    assert!(taints(&client, "node-a").await.is_empty(), "healthy node has no taints");

    // node-a's agent dies.
    alive_a.store(false, Ordering::SeqCst);
    let nodes: Api<Node> = Api::all(client.clone());
    wait_for(15, "node-a Ready=Unknown with the unreachable taint", || async {
        let n = nodes.get("node-a").await.ok()?;
        let c = n.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?.clone();
        let tainted = n.spec.as_ref()?.taints.as_ref()?.iter().any(|t| t.key == UNREACHABLE && t.effect == "NoExecute");
        (c.status == "Unknown"
            && c.reason.as_deref() == Some("NodeStatusUnknown")
            && c.message.as_deref() == Some("Kubelet stopped posting node status.")
            && tainted)
            .then_some(())
    })
    .await;
    // node-b stays healthy while its lease is renewed.
    assert!(taints(&client, "node-b").await.is_empty());
    // node-a's Deployment pods are evicted and replaced on node-b.
    // (a soft spread constraint: a hard one would still count the tainted node's empty domain)
    wait_for(30, "all web pods on node-b", || async {
        let p = active_pods(&client, "default", "app=web").await;
        (p.len() == 4
            && p.iter().all(|p| node_of(p).as_deref() == Some("node-b"))
            && p.iter().all(|p| !on_a.contains(&p.name_any())))
        .then_some(())
    })
    .await;
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let evs = events.list(&ListParams::default()).await.expect("events");
    for name in &on_a {
        let msg = format!("Marking for deletion Pod default/{name}");
        assert!(
            evs.items
                .iter()
                .any(|e| e.reason.as_deref() == Some("TaintManagerEviction")
                    && e.message.as_deref() == Some(msg.as_str())),
            "no eviction event for {name}"
        );
    }
    // The pod tolerating the taint forever stays, now marked not Ready.
    let keeper = wait_for(10, "keeper marked not ready", || async {
        let p = pods.get("keeper").await.ok()?;
        let ready = p.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?.status.clone();
        (ready == "False").then_some(p)
    })
    .await;
    assert!(keeper.metadata.deletion_timestamp.is_none(), "tolerating pod stays");

    // The agent comes back: Ready again and the taint is removed.
    alive_a.store(true, Ordering::SeqCst);
    wait_for(15, "node-a untainted", || async {
        let t = taints(&client, "node-a").await;
        t.is_empty().then_some(())
    })
    .await;
    assert!(pods.get("keeper").await.expect("keeper").metadata.deletion_timestamp.is_none());
}

#[tokio::test]
async fn unschedulable_taint_mirrors_cordon() {
    let env = Env::start_server().await;
    let client = env.client.clone();
    create_node(&client, "n1").await;
    heartbeat(client.clone(), "n1", Arc::new(AtomicBool::new(true)), env.cancel.child_token());
    env.start_controllers_config(ControllersConfig {
        controllers: vec!["nodelifecycle".into()],
        node_monitor_grace_period: Duration::from_secs(5),
        node_monitor_period: Duration::from_millis(100),
        ..Default::default()
    });
    let nodes: Api<Node> = Api::all(client.clone());
    let cordon = |on: bool| json!({"spec": {"unschedulable": on}});
    nodes.patch("n1", &PatchParams::default(), &Patch::Merge(&cordon(true))).await.expect("cordon");
    wait_for(10, "unschedulable taint", || async {
        let t = taints(&client, "n1").await;
        (t == vec![("node.kubernetes.io/unschedulable".to_string(), "NoSchedule".to_string())]).then_some(())
    })
    .await;
    nodes.patch("n1", &PatchParams::default(), &Patch::Merge(&cordon(false))).await.expect("uncordon");
    wait_for(10, "taint removed", || async { taints(&client, "n1").await.is_empty().then_some(()) }).await;
}
