//! The cluster autoscaler against a real apiserver, scheduler and controller-manager, with the
//! `sim` provider: a Deployment too big for the one node makes a node group grow and the pending
//! pod run on the new node; scaling the Deployment down makes that node unneeded, and after the
//! (shortened) delay its pod is moved and the node removed.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use berth_agent::sim::{self, SimConfig};
use berth_apiserver::testing::TestApiServer;
use berth_autoscaler::config::{NODE_GROUP_LABEL, ProviderKind};
use berth_autoscaler::provider::sim::SimProvider;
use berth_autoscaler::{AutoscalerConfig, NodeProvider};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Polls `check` until it returns `Some`, or panics with `what` after the deadline.
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn running_pods(client: &Client) -> Vec<(String, String)> {
    let pods = Api::<Pod>::namespaced(client.clone(), "default").list(&ListParams::default()).await.expect("list pods");
    pods.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .map(|p| (p.metadata.name.unwrap_or_default(), p.spec.and_then(|s| s.node_name).unwrap_or_default()))
        .collect()
}

const CONFIG: &str = r#"
scanInterval: 300ms
scaleDownUnneededTime: 2s
scaleDownDelayAfterAdd: 1s
nodeGroups:
- name: pool
  provider: sim
  minSize: 0
  maxSize: 3
  template:
    labels: {pool: autoscaled}
    capacity: {cpu: "2", memory: 4Gi, pods: "110"}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_grows_for_a_pending_pod_and_shrinks_when_its_node_is_unneeded() {
    let server = TestApiServer::start().await;
    let client = server.client.clone();
    let cancel = server.cancel.child_token();

    // One fixed 2-cpu node outside any group.
    let base =
        SimConfig { nodes: 1, prefix: "base-".into(), cpu: "2".into(), memory: "4Gi".into(), ..Default::default() };
    sim::start(client.clone(), base, cancel.clone()).await.expect("base node");
    let (c, k) = (client.clone(), cancel.clone());
    tokio::spawn(async move {
        let _ = berth_scheduler::run(c, berth_scheduler::SchedulerConfig::default(), k).await;
    });
    let controllers = berth_controllers::ControllersConfig {
        controllers: vec!["replicaset".into(), "deployment".into(), "garbagecollector".into()],
        ..Default::default()
    };
    let (c, k) = (client.clone(), cancel.clone());
    tokio::spawn(async move {
        let _ = berth_controllers::run(c, controllers, k).await;
    });
    let config = AutoscalerConfig::parse(CONFIG).expect("config");
    let provider: Arc<dyn NodeProvider> =
        Arc::new(SimProvider::new(client.clone(), "10.96.0.0/16".into(), cancel.clone()));
    let providers = HashMap::from([(ProviderKind::Sim, provider)]);
    tokio::spawn(berth_autoscaler::run(client.clone(), config, providers, cancel.clone()));

    // Three pods of 900m: two fit the base node, the third needs a new one.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c",
                "image": "busybox", "resources": {"requests": {"cpu": "900m", "memory": "256Mi"}}}]}}},
    }))
    .expect("deployment");
    deployments.create(&PostParams::default(), &deployment).await.expect("create deployment");

    let placed = wait_for("3 pods running on 2 nodes", || async {
        let pods = running_pods(&client).await;
        (pods.len() == 3).then_some(pods)
    })
    .await;
    assert!(placed.iter().any(|(_, n)| n == "pool-0"), "one pod on the new node: {placed:?}");
    let nodes: Api<Node> = Api::all(client.clone());
    let node = nodes.get("pool-0").await.expect("the new node");
    assert_eq!(node.metadata.labels.as_ref().and_then(|l| l.get(NODE_GROUP_LABEL)).map(String::as_str), Some("pool"));
    assert_eq!(node.metadata.labels.as_ref().and_then(|l| l.get("pool")).map(String::as_str), Some("autoscaled"));
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let triggered = wait_for("a TriggeredScaleUp event", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|e| e.reason.as_deref() == Some("TriggeredScaleUp"))
    })
    .await;
    assert!(triggered.message.unwrap_or_default().contains("pool 0->1 (max: 3)"));
    let status: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    let text = status.get("cluster-autoscaler-status").await.expect("status ConfigMap").data.unwrap_or_default();
    assert!(text["status"].contains("Name:        pool"), "{}", text["status"]);
    assert_eq!(nodes.list(&ListParams::default()).await.expect("nodes").items.len(), 2, "exactly one node added");

    // Two replicas fit the base node: the group's node becomes unneeded and goes, its pod moved.
    let patch = json!({"spec": {"replicas": 2}});
    deployments.patch("web", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("scale down");
    wait_for("pool-0 removed", || async {
        matches!(nodes.get("pool-0").await, Err(kube::Error::Api(e)) if e.code == 404).then_some(())
    })
    .await;
    let pods = wait_for("2 pods running on the base node", || async {
        let pods = running_pods(&client).await;
        (pods.len() == 2 && pods.iter().all(|(_, n)| n == "base-0")).then_some(pods)
    })
    .await;
    assert_eq!(pods.len(), 2);
}
