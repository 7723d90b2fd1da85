//! The sim runtime against an in-process apiserver: sim Nodes register with their labels, capacity
//! and pod CIDRs, their Leases are renewed, pods bound to them run at once and graceful deletion
//! completes at once. No root, no processes.

use std::time::Duration;

use berth_agent::sim::{self, SimConfig};
use berth_apiserver::testing::TestApiServer;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `f` until it returns `Some` or the deadline passes.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(what: &str, mut f: impl FnMut() -> F) -> T {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pod(name: &str, node: Option<&str>) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox"}]},
    }))
    .expect("pod")
}

#[tokio::test]
async fn sim_nodes_register_with_labels_capacity_pod_cidrs_and_renewed_leases() {
    let api = TestApiServer::start().await;
    let config = SimConfig {
        nodes: 3,
        prefix: "simt-".into(),
        cpu: "16".into(),
        lease_interval: Duration::from_millis(500),
        ..Default::default()
    };
    let handle = sim::start(api.client.clone(), config, api.cancel.child_token()).await.expect("sim starts");
    assert_eq!(handle.nodes, vec!["simt-0", "simt-1", "simt-2"]);

    let nodes: Api<Node> = Api::all(api.client.clone());
    let list = nodes.list(&ListParams::default().labels("type=sim,node.berth.dev/sim=true")).await.expect("list");
    assert_eq!(list.items.len(), 3);
    let n1 = nodes.get("simt-1").await.expect("node");
    assert_eq!(n1.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()), Some("10.64.1.0/24"));
    let status = n1.status.expect("status");
    assert_eq!(status.allocatable.expect("allocatable")["cpu"].0, "16");
    assert!(status.conditions.expect("conditions").iter().any(|c| c.type_ == "Ready" && c.status == "True"));

    let leases: Api<Lease> = Api::namespaced(api.client.clone(), "kube-node-lease");
    let first = leases.get("simt-2").await.expect("lease").spec.and_then(|s| s.renew_time).expect("renewTime");
    eventually("the lease to be renewed", || {
        let (leases, first) = (leases.clone(), first.clone());
        async move {
            let now = leases.get("simt-2").await.ok()?.spec?.renew_time?;
            (now.0 > first.0).then_some(())
        }
    })
    .await;
    assert!(handle.stats.lease_renewals.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert_eq!(handle.stats.lease_failures.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[tokio::test]
async fn pods_on_sim_nodes_run_at_once_and_deletion_completes_at_once() {
    let api = TestApiServer::start().await;
    let config = SimConfig { nodes: 2, prefix: "simp-".into(), ..Default::default() };
    let _handle = sim::start(api.client.clone(), config, api.cancel.child_token()).await.expect("sim starts");
    let pods: Api<Pod> = Api::namespaced(api.client.clone(), "default");
    pods.create(&PostParams::default(), &pod("web", Some("simp-1"))).await.expect("create");
    pods.create(&PostParams::default(), &pod("pending", None)).await.expect("create");
    pods.create(&PostParams::default(), &pod("elsewhere", Some("real-node"))).await.expect("create");

    let running = eventually("the pod to run", || {
        let pods = pods.clone();
        async move {
            let p = pods.get("web").await.ok()?;
            (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(p)
        }
    })
    .await;
    let status = running.status.expect("status");
    let ip = status.pod_ip.expect("podIP");
    assert!(ip.starts_with("10.64.1."), "{ip} is not in the node's /24");
    assert_eq!(status.host_ip.as_deref(), Some("100.64.0.2"));
    let cs = status.container_statuses.expect("containerStatuses");
    assert!(cs[0].ready && cs[0].state.as_ref().and_then(|s| s.running.as_ref()).is_some());

    for name in ["pending", "elsewhere"] {
        let p = pods.get(name).await.expect("get");
        assert_ne!(p.status.and_then(|s| s.phase).as_deref(), Some("Running"), "{name} is not a sim pod");
    }

    pods.delete("web", &DeleteParams::default()).await.expect("graceful delete");
    eventually("the pod to be gone", || {
        let pods = pods.clone();
        async move { pods.get_opt("web").await.ok()?.is_none().then_some(()) }
    })
    .await;
    assert!(pods.get_opt("elsewhere").await.expect("get").is_some());
}

#[tokio::test]
async fn a_pod_annotated_with_a_run_time_succeeds_after_it() {
    let api = TestApiServer::start().await;
    let config = SimConfig { nodes: 1, prefix: "simj-".into(), ..Default::default() };
    let _handle = sim::start(api.client.clone(), config, api.cancel.child_token()).await.expect("sim starts");
    let pods: Api<Pod> = Api::namespaced(api.client.clone(), "default");
    let job: Pod = serde_json::from_value(json!({
        "metadata": {"name": "job", "annotations": {"sim.berth.dev/run-seconds": "0.2"}},
        "spec": {"nodeName": "simj-0", "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &job).await.expect("create");
    let done = eventually("the pod to succeed", || {
        let pods = pods.clone();
        async move {
            let p = pods.get("job").await.ok()?;
            (p.status.as_ref()?.phase.as_deref() == Some("Succeeded")).then_some(p)
        }
    })
    .await;
    let cs = done.status.and_then(|s| s.container_statuses).expect("containerStatuses");
    let terminated = cs[0].state.as_ref().and_then(|s| s.terminated.as_ref()).expect("terminated");
    assert_eq!(terminated.exit_code, 0);
}
