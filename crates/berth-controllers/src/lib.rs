//! berth-controllers: the controller-manager. Each controller is a module with a level-triggered,
//! idempotent reconcile over a watch-driven work queue; all of them are API clients (kube-rs) and
//! never touch the store.
#![forbid(unsafe_code)]

pub mod deployment;
pub mod discovery;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod error;
pub mod events;
pub mod expectations;
pub mod gc;
pub mod hpa;
pub mod namespace;
pub mod node_lifecycle;
pub mod queue;
pub mod replicaset;
pub mod root_ca_publisher;
pub mod serviceaccount;
pub mod servicelb;
pub mod util;

use std::time::Duration;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

pub use error::Error;

/// Names of the controllers this crate runs, as kube-controller-manager's `--controllers` spells them.
pub const ALL_CONTROLLERS: &[&str] = &[
    "garbagecollector",
    "replicaset",
    "replicationcontroller",
    "deployment",
    "namespace",
    "nodelifecycle",
    "disruption",
    "endpointslice",
    "endpoint",
    "servicelb",
    "horizontalpodautoscaling",
    serviceaccount::NAME,
    root_ca_publisher::NAME,
];

/// Which controllers run and how.
#[derive(Clone, Debug)]
pub struct ControllersConfig {
    /// Enabled controllers, kube-controller-manager style: names, `*` for all, `-name` to disable one.
    pub controllers: Vec<String>,
    /// Maximum number of objects reconciled concurrently per controller.
    pub concurrency: u16,
    /// How often every object is reconciled even without changes.
    pub resync: Duration,
    /// How long a node may go without renewing its Lease before it is marked Unknown
    /// (`--node-monitor-grace-period`, default 40 s).
    pub node_monitor_grace_period: Duration,
    /// How often node health is checked (`--node-monitor-period`, default 5 s).
    pub node_monitor_period: Duration,
    /// Addresses for LoadBalancer Services (`--servicelb-pool`); `None` publishes the nodes' InternalIPs.
    pub servicelb_pool: Option<servicelb::Pool>,
    /// How often each HorizontalPodAutoscaler is reconciled
    /// (`--horizontal-pod-autoscaler-sync-period`, default 15 s).
    pub horizontal_pod_autoscaler_sync_period: Duration,
    /// The cluster CA certificate (PEM) published as `kube-root-ca.crt` in every namespace;
    /// `None` leaves the root CA publisher idle.
    pub root_ca_pem: Option<String>,
}

impl Default for ControllersConfig {
    fn default() -> Self {
        ControllersConfig {
            controllers: vec!["*".into()],
            concurrency: 5,
            resync: Duration::from_secs(300),
            node_monitor_grace_period: Duration::from_secs(40),
            node_monitor_period: Duration::from_secs(5),
            servicelb_pool: None,
            horizontal_pod_autoscaler_sync_period: hpa::DEFAULT_SYNC_PERIOD,
            root_ca_pem: None,
        }
    }
}

impl ControllersConfig {
    /// Whether the controller `name` is enabled (`-name` wins over `*`).
    pub fn enabled(&self, name: &str) -> bool {
        if self.controllers.iter().any(|c| c.strip_prefix('-') == Some(name)) {
            return false;
        }
        self.controllers.iter().any(|c| c == name || c == "*")
    }
}

/// Runs every enabled controller until `cancel` fires, or until one of them fails.
pub async fn run(client: kube::Client, config: ControllersConfig, cancel: CancellationToken) -> Result<(), Error> {
    for name in &config.controllers {
        let bare = name.trim_start_matches('-');
        if bare != "*" && !ALL_CONTROLLERS.contains(&bare) {
            return Err(Error::UnknownController(bare.to_string()));
        }
    }
    let mut tasks: Vec<BoxFuture<'static, Result<(), Error>>> = Vec::new();
    if config.enabled("replicaset") {
        tasks.push(Box::pin(replicaset::run::<k8s_openapi::api::apps::v1::ReplicaSet>(
            client.clone(),
            config.clone(),
            cancel.clone(),
        )));
    }
    if config.enabled("replicationcontroller") {
        tasks.push(Box::pin(replicaset::run::<k8s_openapi::api::core::v1::ReplicationController>(
            client.clone(),
            config.clone(),
            cancel.clone(),
        )));
    }
    if config.enabled("deployment") {
        tasks.push(Box::pin(deployment::run(client.clone(), config.clone(), cancel.clone())));
    }
    if config.enabled("garbagecollector") {
        tasks.push(Box::pin(gc::run(client.clone(), config.clone(), cancel.clone())));
    }
    if config.enabled("namespace") {
        tasks.push(Box::pin(namespace::run(client.clone(), config.clone(), cancel.clone())));
    }
    if config.enabled("nodelifecycle") {
        tasks.push(Box::pin(node_lifecycle::run(client.clone(), config.clone(), cancel.clone())));
    }
    if config.enabled("disruption") {
        tasks.push(Box::pin(disruption::run(client.clone(), config.clone(), cancel.clone())));
    }
    if config.enabled(endpointslice::NAME) {
        tasks.push(Box::pin(endpointslice::run(client.clone(), config.clone(), cancel.clone())));
    }
    if config.enabled(endpoints::NAME) {
        tasks.push(Box::pin(endpoints::run(client.clone(), config.clone(), cancel.clone())));
    }
    if config.enabled(servicelb::NAME) {
        tasks.push(Box::pin(servicelb::run(client.clone(), config.clone(), cancel.clone())));
    }
    if config.enabled("horizontalpodautoscaling") {
        tasks.push(Box::pin(hpa::run(client.clone(), config.clone(), cancel.clone())));
    }
    if config.enabled(serviceaccount::NAME) {
        tasks.push(Box::pin(serviceaccount::run(client.clone(), config.clone(), cancel.clone())));
    }
    if config.enabled(root_ca_publisher::NAME) {
        tasks.push(Box::pin(root_ca_publisher::run(client.clone(), config.clone(), cancel.clone())));
    }
    // The first failure stops the rest (dropping their futures); otherwise all run until cancelled.
    // Cancellation drops every controller's future at once, so a controller still waiting on a
    // request (discovery, a first list) can never hold up the server's shutdown.
    tokio::select! {
        result = futures::future::try_join_all(tasks) => result.map(|_| ()),
        () = cancel.cancelled() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_follows_kube_controller_manager_syntax() {
        let c = ControllersConfig { controllers: vec!["*".into(), "-namespace".into()], ..Default::default() };
        assert!(c.enabled("replicaset") && c.enabled("garbagecollector"));
        assert!(!c.enabled("namespace"));
        let c = ControllersConfig { controllers: vec!["deployment".into()], ..Default::default() };
        assert!(c.enabled("deployment") && !c.enabled("replicaset"));
    }

    #[tokio::test]
    async fn unknown_controller_names_are_rejected() {
        // The name check happens before any request, so a client to nowhere is fine.
        let cfg = kube::Config::new("http://127.0.0.1:9".parse().expect("uri"));
        let client = kube::Client::try_from(cfg).expect("client");
        let config = ControllersConfig { controllers: vec!["nope".into()], ..Default::default() };
        let err = run(client, config, CancellationToken::new()).await.expect_err("rejected");
        assert!(matches!(err, Error::UnknownController(n) if n == "nope"));
    }
}
