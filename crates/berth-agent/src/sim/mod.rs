//! The sim runtime: many fake nodes in one process, as kwok does for Kubernetes. Each sim node is a
//! real Node object with a real heartbeat Lease; pods bound to it become Running and Ready at once
//! (no processes, no network), and graceful deletion completes at once. For scale tests of the
//! control plane (scheduler, controllers, apiserver) with thousands of nodes on one machine.
//! An API client like the kubelet; never touches the host.
//!
//! | module | what it does |
//! |---|---|
//! | [`node`] | the Node objects: names, labels, capacity, pod CIDRs, registration |
//! | [`lease`] | Lease renewal for all nodes, spread evenly over the renew interval |
//! | [`pods`] | one watch for the pods of every sim node: Running at once, deletion at once |

pub mod lease;
pub mod node;
pub mod pods;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The label every sim node carries (`node.berth.dev/sim=true`), beside `type=sim`.
pub const SIM_LABEL: &str = "node.berth.dev/sim";

/// Settings of the sim nodes (`--sim-nodes` and friends).
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// How many nodes.
    pub nodes: usize,
    /// Node names are `<prefix><index>`.
    pub prefix: String,
    /// The index of the first node (the cluster autoscaler adds nodes one at a time).
    pub first_index: usize,
    /// Labels on every node besides the sim's own (e.g. a node group).
    pub labels: std::collections::BTreeMap<String, String>,
    /// Taints on every node.
    pub taints: Vec<k8s_openapi::api::core::v1::Taint>,
    /// Capacity (and allocatable) of every node, as Kubernetes quantities.
    pub cpu: String,
    pub memory: String,
    pub pods: String,
    /// The range the nodes' `spec.podCIDR` come from: node `i` gets the `i`-th /24. Separate from
    /// the server's cluster CIDR so thousands of sim nodes never exhaust the real nodes' ranges.
    pub pod_cidr: String,
    /// How often each node's Lease is renewed (upstream kubelet: 10 s).
    pub lease_interval: Duration,
    /// At most this many API calls in flight at once (Lease renewals, pod status, deletions).
    pub concurrency: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 0,
            prefix: "sim-".into(),
            first_index: 0,
            labels: std::collections::BTreeMap::new(),
            taints: Vec::new(),
            cpu: "32".into(),
            memory: "256Gi".into(),
            pods: "110".into(),
            pod_cidr: "10.64.0.0/10".into(),
            lease_interval: crate::kubelet::LEASE_RENEW_INTERVAL,
            concurrency: 64,
        }
    }
}

/// Errors of the sim nodes; each names what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("failed to {what} {name}")]
    Api {
        what: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("invalid sim pod CIDR {cidr:?}: {reason}")]
    PodCidr { cidr: String, reason: String },
}

/// Counters the sim keeps while it runs (for benchmarks and tests).
#[derive(Debug, Default)]
pub struct SimStats {
    /// Lease renewals that succeeded.
    pub lease_renewals: AtomicU64,
    /// Lease renewals that failed.
    pub lease_failures: AtomicU64,
    /// The longest time between two successful renewals of one node's Lease, in milliseconds.
    pub max_lease_gap_ms: AtomicU64,
    /// Pods moved to Running.
    pub pods_started: AtomicU64,
    /// Pods whose deletion was completed.
    pub pods_deleted: AtomicU64,
}

impl SimStats {
    pub fn max_lease_gap(&self) -> Duration {
        Duration::from_millis(self.max_lease_gap_ms.load(Ordering::Relaxed))
    }
}

/// Sim nodes running in the background.
pub struct SimHandle {
    pub stats: Arc<SimStats>,
    /// The names of the nodes.
    pub nodes: Vec<String>,
    task: tokio::task::JoinHandle<()>,
}

impl SimHandle {
    /// Waits until the sim stops (after its cancellation token fired).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// Registers the nodes and their Leases, then renews the Leases and serves the pods in the
/// background until `cancel` fires. Returns once every Node and Lease exists.
///
/// # Errors
/// [`SimError`] when a Node or Lease cannot be created, or the pod CIDR is invalid.
pub async fn start(client: kube::Client, config: SimConfig, cancel: CancellationToken) -> Result<SimHandle, SimError> {
    let config = Arc::new(config);
    let nodes = node::register_all(&client, &config).await?;
    lease::create_all(&client, &nodes, &config).await?;
    let stats = Arc::new(SimStats::default());
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    tracing::info!(nodes = nodes.len(), prefix = %config.prefix, "sim nodes registered");
    let by_name: Arc<HashMap<String, node::SimNode>> =
        Arc::new(nodes.iter().map(|n| (n.name.clone(), n.clone())).collect());
    let leases = tokio::spawn(lease::renew_loop(client.clone(), nodes, config.clone(), stats.clone(), cancel.clone()));
    let pods = tokio::spawn(pods::run(client, by_name, config, stats.clone(), cancel));
    let task = tokio::spawn(async move {
        let _ = leases.await;
        let _ = pods.await;
    });
    Ok(SimHandle { stats, nodes: names, task })
}

/// Runs the sim nodes until `cancel` fires.
///
/// # Errors
/// As [`start`].
pub async fn run(client: kube::Client, config: SimConfig, cancel: CancellationToken) -> Result<(), SimError> {
    start(client, config, cancel).await?.join().await;
    Ok(())
}
