//! The HPA controller against the in-process apiserver: a Deployment whose pods run on a sim node
//! (usage from the `sim.berth.dev/cpu-usage` annotation, served by the apiserver's metrics API)
//! scales up to maxReplicas under load and back down to minReplicas without it; status,
//! conditions and Events follow upstream. A second test injects `FakeMetricsSource` to check the
//! error conditions.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use berth_apiserver::testing::TestApiServer;
use berth_controllers::ControllersConfig;
use berth_controllers::hpa::metrics::{MetricsError, MetricsSource};
use berth_controllers::hpa::replica_calculator::PodMetric;
use common::{active_pods, wait_for};
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

async fn start_server() -> TestApiServer {
    TestApiServer::start_with(|c| c.metrics_resolution = Duration::from_millis(200)).await
}

fn config(controllers: &[&str]) -> ControllersConfig {
    ControllersConfig {
        controllers: controllers.iter().map(|s| s.to_string()).collect(),
        concurrency: 4,
        horizontal_pod_autoscaler_sync_period: Duration::from_millis(300),
        ..Default::default()
    }
}

fn spawn_controllers(client: &Client, config: ControllersConfig, cancel: CancellationToken) {
    let c = client.clone();
    tokio::spawn(async move {
        if let Err(e) = berth_controllers::run(c, config, cancel).await {
            panic!("controllers failed: {e}");
        }
    });
}

/// A Ready sim node.
async fn create_sim_node(client: &Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"node.berth.dev/sim": "true"}},
    }))
    .expect("node");
    nodes.create(&PostParams::default(), &node).await.expect("create node");
    let status = json!({"status": {"conditions": [
        {"type": "Ready", "status": "True", "lastHeartbeatTime": jiff::Timestamp::now().to_string(),
         "lastTransitionTime": jiff::Timestamp::now().to_string(), "reason": "KubeletReady", "message": "ready"}]}});
    nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("node status");
}

/// Plays the sim kubelet: every active pod becomes Running and Ready, started ten minutes ago (past
/// the HPA's CPU initialization period).
fn play_kubelet(client: Client, sel: &'static str, cancel: CancellationToken) {
    tokio::spawn(async move {
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let started = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(600)).to_string();
        while !cancel.is_cancelled() {
            for p in active_pods(&client, "default", sel).await {
                if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                    continue;
                }
                let patch = json!({"status": {
                    "phase": "Running",
                    "startTime": started,
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": started}],
                }});
                let _ = pods.patch_status(&p.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

fn deployment(cpu_usage: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template(cpu_usage),
        },
    }))
    .expect("deployment")
}

fn template(cpu_usage: &str) -> serde_json::Value {
    json!({
        "metadata": {"labels": {"app": "web"}, "annotations": {"sim.berth.dev/cpu-usage": cpu_usage}},
        "spec": {
            "nodeName": "sim-1",
            "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}}],
        },
    })
}

fn hpa(min: i32, max: i32) -> HorizontalPodAutoscaler {
    serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": min,
            "maxReplicas": max,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50}}}],
            "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 1}]},
                "scaleDown": {"stabilizationWindowSeconds": 1, "policies": [{"type": "Percent", "value": 100, "periodSeconds": 1}]},
            },
        },
    }))
    .expect("hpa")
}

async fn replicas(client: &Client) -> i32 {
    let d: Api<Deployment> = Api::namespaced(client.clone(), "default");
    d.get("web").await.ok().and_then(|d| d.spec).and_then(|s| s.replicas).unwrap_or(-1)
}

fn condition<'a>(hpa: &'a HorizontalPodAutoscaler, t: &str) -> Option<(&'a str, &'a str)> {
    hpa.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status.as_str(), c.reason.as_deref().unwrap_or_default()))
}

#[tokio::test]
async fn hpa_scales_a_deployment_up_to_max_under_load_and_down_to_min_without() {
    let api = start_server().await;
    let client = api.client.clone();
    create_sim_node(&client, "sim-1").await;
    play_kubelet(client.clone(), "app=web", api.cancel.child_token());
    spawn_controllers(
        &client,
        config(&["replicaset", "deployment", "horizontalpodautoscaling"]),
        api.cancel.child_token(),
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deployments.create(&PostParams::default(), &deployment("90m")).await.expect("create deployment");
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
    hpas.create(&PostParams::default(), &hpa(1, 3)).await.expect("create hpa");

    // 90% of requests against a 50% target: one pod per second up to maxReplicas 3, never more.
    wait_for(60, "3 replicas", || async { (replicas(&client).await == 3).then_some(()) }).await;
    let h = wait_for(30, "status at max", || async {
        let h = hpas.get("web").await.ok()?;
        let s = h.status.as_ref()?;
        let limited = condition(&h, "ScalingLimited") == Some(("True", "TooManyReplicas"));
        (s.current_replicas == Some(3) && limited).then_some(h)
    })
    .await;
    let status = h.status.as_ref().expect("status");
    assert_eq!(status.desired_replicas, 3);
    assert!(status.last_scale_time.is_some());
    let current = &status.current_metrics.as_ref().expect("currentMetrics")[0];
    assert_eq!(current.resource.as_ref().map(|r| r.current.average_utilization), Some(Some(90)));
    assert_eq!(condition(&h, "ScalingActive"), Some(("True", "ValidMetricFound")));
    assert_eq!(condition(&h, "AbleToScale").map(|c| c.0), Some("True"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(replicas(&client).await, 3, "maxReplicas holds");

    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let rescales: Vec<String> = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("SuccessfulRescale"))
        .filter_map(|e| e.message)
        .collect();
    assert!(
        rescales.contains(
            &"New size: 2; reason: cpu resource utilization (percentage of request) above target".to_string()
        ),
        "{rescales:?}"
    );

    // The load goes away (a new template at 10%): down to minReplicas 1.
    let patch = json!({"spec": {"template": template("10m")}});
    deployments.patch("web", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch");
    wait_for(60, "1 replica", || async { (replicas(&client).await == 1).then_some(()) }).await;
    let h = wait_for(30, "status at min", || async {
        let h = hpas.get("web").await.ok()?;
        (h.status.as_ref()?.current_replicas == Some(1)).then_some(h)
    })
    .await;
    assert_eq!(h.status.as_ref().map(|s| s.desired_replicas), Some(1));
}

/// Per-pod CPU usage set by the test (the only fake: the controller's metrics source).
struct FakeMetricsSource {
    millicores: i64,
}

impl MetricsSource for FakeMetricsSource {
    fn pod_metrics<'a>(
        &'a self,
        _namespace: &'a str,
        _selector: &'a str,
        _resource: &'a str,
    ) -> BoxFuture<'a, Result<BTreeMap<String, PodMetric>, MetricsError>> {
        Box::pin(async move {
            if self.millicores < 0 {
                return Err(MetricsError::Empty);
            }
            let pods: Vec<String> = (0..8).map(|i| format!("unused-{i}")).collect();
            Ok(pods
                .into_iter()
                .map(|p| {
                    (
                        p,
                        PodMetric {
                            value_milli: self.millicores,
                            timestamp: jiff::Timestamp::now(),
                            window: Duration::from_secs(15),
                        },
                    )
                })
                .collect())
        })
    }
}

#[tokio::test]
async fn hpa_reports_failed_metrics_and_missing_targets_in_its_conditions() {
    let api = start_server().await;
    let client = api.client.clone();
    let source = Arc::new(FakeMetricsSource { millicores: -1 });
    {
        let (c, token) = (client.clone(), api.cancel.child_token());
        tokio::spawn(async move {
            let _ =
                berth_controllers::hpa::run_with_metrics(c, config(&["horizontalpodautoscaling"]), token, source).await;
        });
    }
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
    // No target Deployment yet: AbleToScale False, FailedGetScale.
    hpas.create(&PostParams::default(), &hpa(1, 3)).await.expect("create hpa");
    wait_for(30, "FailedGetScale", || async {
        let h = hpas.get("web").await.ok()?;
        (condition(&h, "AbleToScale") == Some(("False", "FailedGetScale"))).then_some(())
    })
    .await;
    // With the target but no metrics: ScalingActive False, FailedGetResourceMetric.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deployments.create(&PostParams::default(), &deployment("90m")).await.expect("create deployment");
    let h = wait_for(30, "FailedGetResourceMetric", || async {
        let h = hpas.get("web").await.ok()?;
        (condition(&h, "ScalingActive") == Some(("False", "FailedGetResourceMetric"))).then_some(h)
    })
    .await;
    assert_eq!(condition(&h, "AbleToScale"), Some(("True", "SucceededGetScale")));
    // The events follow the status write: wait for them rather than race it.
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    wait_for(30, "FailedGetScale and FailedComputeMetricsReplicas events", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        let reasons: Vec<String> = list.items.into_iter().filter_map(|e| e.reason).collect();
        (reasons.iter().any(|r| r == "FailedGetScale") && reasons.iter().any(|r| r == "FailedComputeMetricsReplicas"))
            .then_some(())
    })
    .await;
}
