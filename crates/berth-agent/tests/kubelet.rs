//! The kubelet against an in-process apiserver, without containers: Node registration (capacity,
//! addresses, node info, conditions), the apiserver's pod CIDR assignment, and the Lease. Needs no
//! root: no pod is bound to the node, so nothing touches the host beyond a temp dir.

use std::time::Duration;

use berth_agent::kubelet::{self, KubeletConfig};
use berth_apiserver::testing::TestApiServer;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(20);

/// An in-process apiserver and a temp dir for the agent; cancelled on drop.
struct Cluster {
    client: Client,
    cancel: CancellationToken,
    /// The agent's data dir.
    dir: tempfile::TempDir,
    _api: TestApiServer,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn cluster() -> Cluster {
    let api = TestApiServer::start_with(|cfg| cfg.cluster_cidr = "10.99.0.0/16".into()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    Cluster { client: api.client.clone(), cancel: api.cancel.clone(), dir, _api: api }
}

/// Polls `f` until it returns `Some` or the deadline passes.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(what: &str, mut f: impl FnMut() -> F) -> T {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_kubelet_registers_its_node_with_capacity_a_pod_cidr_and_a_lease() {
    let c = cluster().await;
    let mut config = KubeletConfig::new(c.dir.path().join("agent"));
    config.node_name = "kubelet-test-node".into();
    config.node_ip = "127.0.0.1".parse().expect("ip");
    config.netns_dir = c.dir.path().join("netns");
    config.bridge = "btunused0".into();
    let task = tokio::spawn(kubelet::run(c.client.clone(), config, c.cancel.child_token()));

    let nodes: Api<Node> = Api::all(c.client.clone());
    let node = eventually("the node to be registered with conditions", || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get_opt("kubelet-test-node").await.ok().flatten()?;
            n.status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                .then_some(n)
        }
    })
    .await;
    let spec = node.spec.clone().unwrap_or_default();
    assert_eq!(spec.pod_cidr.as_deref(), Some("10.99.0.0/24"));
    let status = node.status.clone().unwrap_or_default();
    let capacity = status.capacity.unwrap_or_default();
    for key in ["cpu", "memory", "pods", "ephemeral-storage"] {
        assert!(capacity.contains_key(key), "capacity {key} missing: {capacity:?}");
    }
    assert_eq!(capacity.get("pods").map(|q| q.0.as_str()), Some("110"));
    let info = status.node_info.unwrap_or_default();
    assert_eq!(info.kubelet_version, "v1.33.0+berth");
    assert_eq!(info.operating_system, "linux");
    assert!(info.container_runtime_version.contains("://"), "{}", info.container_runtime_version);
    let addresses = status.addresses.unwrap_or_default();
    assert!(addresses.iter().any(|a| a.type_ == "InternalIP" && a.address == "127.0.0.1"), "{addresses:?}");
    assert!(addresses.iter().any(|a| a.type_ == "Hostname" && a.address == "kubelet-test-node"));
    let conds = status.conditions.unwrap_or_default();
    for t in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert!(conds.iter().any(|c| c.type_ == t), "condition {t} missing");
    }
    assert_eq!(status.daemon_endpoints.and_then(|d| d.kubelet_endpoint).map(|e| e.port), Some(10250));

    let leases: Api<Lease> = Api::namespaced(c.client.clone(), "kube-node-lease");
    let lease = eventually("the node lease", || {
        let leases = leases.clone();
        async move { leases.get_opt("kubelet-test-node").await.ok().flatten() }
    })
    .await;
    let lease_spec = lease.spec.unwrap_or_default();
    assert_eq!(lease_spec.holder_identity.as_deref(), Some("kubelet-test-node"));
    assert!(lease_spec.renew_time.is_some());

    c.cancel.cancel();
    let result = tokio::time::timeout(DEADLINE, task).await.expect("kubelet stops on cancel").expect("no panic");
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn nodes_get_distinct_pod_cidrs_and_a_deleted_nodes_range_is_reused() {
    let c = cluster().await;
    let nodes: Api<Node> = Api::all(c.client.clone());
    let create = |name: &str| {
        let nodes = nodes.clone();
        let node: Node = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).expect("node");
        async move { nodes.create(&PostParams::default(), &node).await.expect("create node") }
    };
    let cidr = |n: &Node| n.spec.as_ref().and_then(|s| s.pod_cidr.clone()).unwrap_or_default();
    let a = create("a").await;
    let b = create("b").await;
    assert_eq!((cidr(&a).as_str(), cidr(&b).as_str()), ("10.99.0.0/24", "10.99.1.0/24"));
    assert_eq!(b.spec.as_ref().and_then(|s| s.pod_cidrs.clone()), Some(vec!["10.99.1.0/24".to_string()]));
    let explicit: Node = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "explicit"}, "spec": {"podCIDR": "10.99.7.0/24", "podCIDRs": ["10.99.7.0/24"]}
    }))
    .expect("node");
    let explicit = nodes.create(&PostParams::default(), &explicit).await.expect("create");
    assert_eq!(cidr(&explicit), "10.99.7.0/24");
    nodes.delete("a", &DeleteParams::default()).await.expect("delete a");
    eventually("node a to be gone", || {
        let nodes = nodes.clone();
        async move { nodes.get_opt("a").await.ok().and_then(|n| n.is_none().then_some(())) }
    })
    .await;
    let d = create("d").await;
    assert_eq!(cidr(&d), "10.99.0.0/24", "the freed range is handed out again");
}
