//! Test harness: an in-process apiserver on 127.0.0.1:0 with a temporary data dir, the scheduler
//! running against it, and helpers to create nodes and pods and wait for outcomes. Dropping the
//! harness cancels both and removes the dir.
#![allow(dead_code)]

use std::time::Duration;

use berth_apiserver::testing::TestApiServer;
use berth_scheduler::SchedulerConfig;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A running apiserver and scheduler; both stop on drop.
pub struct Cluster {
    pub client: Client,
    pub cancel: CancellationToken,
    _api: TestApiServer,
    scheduler: Option<tokio::task::JoinHandle<Result<(), berth_scheduler::Error>>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(h) = self.scheduler.take() {
            h.abort();
        }
    }
}

pub const DEADLINE: Duration = Duration::from_secs(20);

impl Cluster {
    /// Starts the apiserver only; call [`Cluster::start_scheduler`] after creating fixtures.
    pub async fn new() -> Cluster {
        let api = TestApiServer::start().await;
        Cluster { client: api.client.clone(), cancel: api.cancel.clone(), _api: api, scheduler: None }
    }

    /// Starts the scheduler with `config`.
    pub fn start_scheduler(&mut self, config: SchedulerConfig) {
        let client = self.client.clone();
        let cancel = self.cancel.child_token();
        self.scheduler = Some(tokio::spawn(berth_scheduler::run(client, config, cancel)));
    }

    /// An apiserver with the default scheduler already running.
    pub async fn with_scheduler() -> Cluster {
        let mut c = Cluster::new().await;
        c.start_scheduler(SchedulerConfig::default());
        c
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Creates a Ready node with `cpu`/`memory` allocatable and the given labels, taints and
    /// `spec.unschedulable`.
    pub async fn node(&self, name: &str, cpu: &str, memory: &str, labels: Value, spec: Value) {
        let mut labels = labels;
        if let Some(m) = labels.as_object_mut() {
            m.insert("kubernetes.io/hostname".to_string(), json!(name));
        }
        let status = json!({
            "capacity": {"cpu": cpu, "memory": memory, "pods": "110", "ephemeral-storage": "100Gi"},
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110", "ephemeral-storage": "100Gi"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready"}],
        });
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels},
            "spec": spec,
            "status": status,
        }))
        .expect("node json");
        let api: Api<Node> = Api::all(self.client.clone());
        let created = api.create(&PostParams::default(), &node).await.expect("create node");
        if created.status.as_ref().and_then(|s| s.allocatable.as_ref()).is_none() {
            // The apiserver dropped status on create (as upstream may); set it like a kubelet.
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(&json!({"status": status})))
                .await
                .expect("patch node status");
        }
    }

    /// Creates a pod in `default` from a JSON body (apiVersion/kind/namespace filled in).
    pub async fn pod(&self, body: Value) -> Pod {
        let mut body = body;
        body["apiVersion"] = json!("v1");
        body["kind"] = json!("Pod");
        let pod: Pod = serde_json::from_value(body).expect("pod json");
        self.pods().create(&PostParams::default(), &pod).await.expect("create pod")
    }

    /// Waits until the pod is bound and returns its node.
    pub async fn wait_bound(&self, name: &str) -> String {
        let api = self.pods();
        let start = tokio::time::Instant::now();
        loop {
            if let Ok(p) = api.get(name).await
                && let Some(n) = p.spec.and_then(|s| s.node_name)
            {
                return n;
            }
            assert!(start.elapsed() < DEADLINE, "pod {name} was not bound in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the first event with `reason` about the pod and returns its message.
    pub async fn wait_event(&self, pod: &str, reason: &str) -> String {
        let api: Api<Event> = Api::namespaced(self.client.clone(), "default");
        let start = tokio::time::Instant::now();
        loop {
            if let Ok(list) = api.list(&ListParams::default()).await
                && let Some(e) = list
                    .items
                    .iter()
                    .find(|e| e.involved_object.name.as_deref() == Some(pod) && e.reason.as_deref() == Some(reason))
            {
                return e.message.clone().unwrap_or_default();
            }
            assert!(start.elapsed() < DEADLINE, "no {reason} event for {pod} in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the pod's PodScheduled condition to be False and returns (reason, message).
    pub async fn wait_unschedulable(&self, name: &str) -> (String, String) {
        let api = self.pods();
        let start = tokio::time::Instant::now();
        loop {
            if let Ok(p) = api.get(name).await
                && let Some(c) = p
                    .status
                    .and_then(|s| s.conditions)
                    .and_then(|cs| cs.into_iter().find(|c| c.type_ == "PodScheduled" && c.status == "False"))
            {
                return (c.reason.unwrap_or_default(), c.message.unwrap_or_default());
            }
            assert!(start.elapsed() < DEADLINE, "pod {name} never marked unschedulable");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A pod body with one container requesting `cpu` and `memory`, plus extra spec fields.
pub fn pod_body(name: &str, cpu: &str, memory: &str, labels: Value, extra_spec: Value) -> Value {
    let mut spec = json!({
        "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": cpu, "memory": memory}}}],
    });
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        for (k, v) in extra {
            s.insert(k.clone(), v.clone());
        }
    }
    json!({"metadata": {"name": name, "namespace": "default", "labels": labels}, "spec": spec})
}
