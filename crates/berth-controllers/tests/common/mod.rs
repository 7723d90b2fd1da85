//! Test harness: an in-process apiserver on 127.0.0.1:0 with a temporary data dir, the controllers
//! under test running against it, and helpers to wait for conditions and play kubelet (mark pods
//! Running/Ready through the status subresource). Dropping the harness stops everything.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use berth_apiserver::testing::TestApiServer;
use berth_controllers::ControllersConfig;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use tokio_util::sync::CancellationToken;

/// A running apiserver plus controllers; stopped (and its data dir removed) on drop.
pub struct Env {
    pub client: Client,
    /// The client configuration (to build clients with other settings).
    pub config: kube::Config,
    pub cancel: CancellationToken,
    _api: TestApiServer,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Env {
    /// Starts an apiserver and the named controllers.
    pub async fn start(controllers: &[&str]) -> Env {
        let env = Env::start_server().await;
        env.start_controllers(controllers);
        env
    }

    /// Starts an apiserver only.
    pub async fn start_server() -> Env {
        let api = TestApiServer::start().await;
        Env { client: api.client.clone(), config: api.config.clone(), cancel: api.cancel.clone(), _api: api }
    }

    /// Starts the named controllers against this apiserver (stopped with it).
    pub fn start_controllers(&self, controllers: &[&str]) {
        self.start_controllers_with(controllers, Duration::from_secs(30));
    }

    /// Starts the named controllers with a given resync period.
    pub fn start_controllers_with(&self, controllers: &[&str], resync: Duration) {
        let config = ControllersConfig {
            controllers: controllers.iter().map(|s| s.to_string()).collect(),
            concurrency: 4,
            resync,
            ..Default::default()
        };
        self.start_controllers_config(config);
    }

    /// Starts controllers with a full configuration (stopped with the apiserver).
    pub fn start_controllers_config(&self, config: ControllersConfig) {
        let c = self.client.clone();
        let token = self.cancel.child_token();
        tokio::spawn(async move {
            if let Err(e) = berth_controllers::run(c, config, token).await {
                panic!("controllers failed: {e}");
            }
        });
    }
}

/// Polls `f` every 50 ms until it returns `Some`, panicking with `what` after `secs` seconds.
pub async fn wait_for<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Active (not deleting) pods in `ns` with the label selector `sel`.
pub async fn active_pods(client: &Client, ns: &str, sel: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default().labels(sel))
        .await
        .map(|l| l.items.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect())
        .unwrap_or_default()
}

/// Plays kubelet for one pod: phase Running and the Ready condition True.
pub async fn mark_ready(client: &Client, ns: &str, name: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let now = jiff::Timestamp::now().to_string();
    let patch = serde_json::json!({"status": {
        "phase": "Running",
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
        ],
    }});
    // A pod that vanished meanwhile is fine.
    let _ = api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await;
}

/// Marks every not-yet-ready active pod matching `sel` ready; returns how many it marked.
pub async fn mark_all_ready(client: &Client, ns: &str, sel: &str) -> usize {
    let mut n = 0;
    for p in active_pods(client, ns, sel).await {
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if !ready {
            mark_ready(client, ns, &p.name_any()).await;
            n += 1;
        }
    }
    n
}

/// A minimal pod template JSON with labels and one container image.
pub fn template(labels: serde_json::Value, image: &str) -> serde_json::Value {
    serde_json::json!({
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "c", "image": image}]},
    })
}
