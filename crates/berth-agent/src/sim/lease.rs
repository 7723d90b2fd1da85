//! The sim nodes' heartbeat Leases in `kube-node-lease`. One merge patch per node per interval (as
//! a kubelet does), spread evenly over the interval in small time slots, so 1,000 nodes cost a
//! steady 100 small writes a second instead of a burst of 1,000 every ten seconds.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::node::SimNode;
use super::{SimConfig, SimError, SimStats};
use crate::kubelet::lease::{DURATION_SECONDS, NAMESPACE};

/// The nodes of one slot, each with the time of its last successful renewal.
type Slot = Arc<tokio::sync::Mutex<Vec<(SimNode, Instant)>>>;

/// The width of one renewal slot: each slot renews the nodes whose turn falls in it.
const SLOT: Duration = Duration::from_millis(100);

fn lease_object(node: &SimNode) -> Lease {
    let mut owner = json!(null);
    if let Some(uid) = &node.uid {
        owner = json!([{"apiVersion": "v1", "kind": "Node", "name": node.name, "uid": uid}]);
    }
    serde_json::from_value(json!({
        "metadata": {"name": node.name, "namespace": NAMESPACE, "ownerReferences": owner},
        "spec": {"holderIdentity": node.name, "leaseDurationSeconds": DURATION_SECONDS,
            "renewTime": MicroTime(Timestamp::now())},
    }))
    .expect("a sim Lease is a valid Lease")
}

async fn create(api: &Api<Lease>, node: &SimNode) -> Result<(), SimError> {
    match api.create(&PostParams::default(), &lease_object(node)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(source) => Err(SimError::Api { what: "create lease", name: node.name.clone(), source }),
    }
}

/// Creates the lease namespace (if missing) and every node's Lease.
pub async fn create_all(client: &kube::Client, nodes: &[SimNode], config: &SimConfig) -> Result<(), SimError> {
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).expect("a Namespace is a valid Namespace");
    match ns_api.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        // 403: a node identity (join token) may not create namespaces; bootstrap made this one.
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 => {}
        Err(source) => return Err(SimError::Api { what: "create namespace", name: NAMESPACE.into(), source }),
    }
    let api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    // Owned items and futures: a stream of borrowing closures is not `Send` for every lifetime.
    futures::stream::iter(nodes.to_vec())
        .map(|n| {
            let api = api.clone();
            async move { create(&api, &n).await }
        })
        .buffer_unordered(config.concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Renews one Lease (recreating it when it is gone).
async fn renew(api: &Api<Lease>, node: &SimNode) -> Result<(), SimError> {
    let patch = json!({"spec": {"renewTime": MicroTime(Timestamp::now()), "holderIdentity": node.name}});
    match api.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => create(api, node).await,
        Err(source) => Err(SimError::Api { what: "renew lease", name: node.name.clone(), source }),
    }
}

/// Which slot of the interval node `index` of `count` renews in.
pub fn slot_of(index: usize, slots: usize) -> usize {
    index % slots.max(1)
}

/// Renews every node's Lease once per `config.lease_interval` until cancelled. Node `i` renews in
/// slot `i % slots`; a slot's renewals run in a task of their own, so a slow API delays no other
/// slot's start.
pub async fn renew_loop(
    client: kube::Client,
    nodes: Vec<SimNode>,
    config: Arc<SimConfig>,
    stats: Arc<SimStats>,
    cancel: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, NAMESPACE);
    let slots = usize::try_from(config.lease_interval.as_millis() / SLOT.as_millis()).unwrap_or(1).max(1);
    let mut by_slot: Vec<Vec<(SimNode, Instant)>> = vec![Vec::new(); slots];
    let created = Instant::now();
    for n in nodes {
        by_slot[slot_of(n.index, slots)].push((n, created));
    }
    let by_slot: Vec<Slot> = by_slot.into_iter().map(|v| Arc::new(tokio::sync::Mutex::new(v))).collect();
    let limit = Arc::new(tokio::sync::Semaphore::new(config.concurrency.max(1)));
    let mut tick = tokio::time::interval(config.lease_interval / u32::try_from(slots).unwrap_or(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut slot = 0usize;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let group = by_slot[slot].clone();
        slot = (slot + 1) % slots;
        let (api, stats, limit) = (api.clone(), stats.clone(), limit.clone());
        tokio::spawn(async move {
            // A slot still busy from the previous round is skipped rather than doubled up.
            let Ok(mut group) = group.try_lock() else { return };
            futures::stream::iter(group.iter_mut())
                .for_each_concurrent(None, |(node, last)| {
                    let (api, stats, limit) = (&api, &stats, &limit);
                    async move {
                        let Ok(_permit) = limit.acquire().await else { return };
                        match renew(api, node).await {
                            Ok(()) => {
                                let now = Instant::now();
                                let gap = u64::try_from(now.duration_since(*last).as_millis()).unwrap_or(u64::MAX);
                                stats.max_lease_gap_ms.fetch_max(gap, Ordering::Relaxed);
                                stats.lease_renewals.fetch_add(1, Ordering::Relaxed);
                                *last = now;
                            }
                            Err(e) => {
                                stats.lease_failures.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(error = %crate::kubelet::error_chain(&e), "sim lease renewal failed");
                            }
                        }
                    }
                })
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_spread_evenly_over_the_slots() {
        let slots = 100;
        let mut counts = vec![0usize; slots];
        for i in 0..1000 {
            counts[slot_of(i, slots)] += 1;
        }
        assert!(counts.iter().all(|&c| c == 10), "{counts:?}");
        assert_eq!(slot_of(5, 0), 0);
    }
}
