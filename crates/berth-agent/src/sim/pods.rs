//! The pods of the sim nodes: one watch of every bound pod (`spec.nodeName!=`), filtered to the
//! sim nodes here. A new pod becomes Running and Ready at once, with a podIP from its node's
//! /24; a pod with a `deletionTimestamp` is deleted at once (grace 0), which is what a kubelet
//! does once its containers are gone. A pod annotated `sim.berth.dev/run-seconds` (restartPolicy
//! Never or OnFailure) succeeds that long after it started. Events are handed to shards by pod
//! uid, so each pod is handled in order while different pods proceed in parallel (`SimConfig::concurrency` shards).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::node::SimNode;
use super::{SimConfig, SimStats};
use crate::kubelet::error_chain;

/// A pod with this annotation (seconds, e.g. `"5"`) and `restartPolicy` Never or OnFailure
/// succeeds that long after it started: its containers end with exit code 0 (for Jobs).
pub const RUN_SECONDS_ANNOTATION: &str = "sim.berth.dev/run-seconds";

/// Pod addresses handed out per node: host part (1..=254) by pod uid.
#[derive(Default)]
pub struct PodIps {
    by_node: HashMap<String, NodeIps>,
}

#[derive(Default)]
struct NodeIps {
    by_uid: HashMap<String, u8>,
    next: u8,
}

impl PodIps {
    /// The address of pod `uid` on `node` (the same one on every call), or None when the /24 is
    /// full.
    pub fn assign(&mut self, node: &SimNode, uid: &str) -> Option<Ipv4Addr> {
        let ips = self.by_node.entry(node.name.clone()).or_default();
        if let Some(host) = ips.by_uid.get(uid) {
            return Some(host_ip(node, *host));
        }
        let used: std::collections::HashSet<u8> = ips.by_uid.values().copied().collect();
        // .1 is the gateway of a real node's bridge; hand out .2 to .254 round-robin.
        for step in 0..253u16 {
            let host = u8::try_from(2 + (u16::from(ips.next) + step) % 253).unwrap_or(2);
            if !used.contains(&host) {
                ips.next = host.wrapping_sub(1);
                ips.by_uid.insert(uid.to_string(), host);
                return Some(host_ip(node, host));
            }
        }
        None
    }

    /// Remembers an address a pod already has (after a restart of the sim).
    pub fn adopt(&mut self, node: &SimNode, uid: &str, ip: Ipv4Addr) {
        let base = u32::from(node.pod_cidr_base);
        let ip = u32::from(ip);
        if ip & !0xff == base {
            let host = u8::try_from(ip & 0xff).unwrap_or(0);
            self.by_node.entry(node.name.clone()).or_default().by_uid.insert(uid.to_string(), host);
        }
    }

    /// Frees the address of pod `uid`.
    pub fn release(&mut self, node: &str, uid: &str) {
        if let Some(ips) = self.by_node.get_mut(node) {
            ips.by_uid.remove(uid);
        }
    }
}

fn host_ip(node: &SimNode, host: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(node.pod_cidr_base) + u32::from(host))
}

/// What a shard is told.
enum Work {
    Apply(Box<Pod>),
    Deleted(Box<Pod>),
}

struct Ctx {
    client: kube::Client,
    nodes: Arc<HashMap<String, SimNode>>,
    ips: Mutex<PodIps>,
    stats: Arc<SimStats>,
    /// Pods whose completion is scheduled.
    completing: Mutex<std::collections::HashSet<String>>,
}

fn node_of<'a>(ctx: &'a Ctx, pod: &Pod) -> Option<&'a SimNode> {
    let name = pod.spec.as_ref()?.node_name.as_deref()?;
    ctx.nodes.get(name)
}

fn shard_of(uid: &str, shards: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    uid.hash(&mut h);
    usize::try_from(h.finish() % shards.max(1) as u64).unwrap_or(0)
}

/// Watches the pods bound to any sim node until cancelled.
pub async fn run(
    client: kube::Client,
    nodes: Arc<HashMap<String, SimNode>>,
    config: Arc<SimConfig>,
    stats: Arc<SimStats>,
    cancel: CancellationToken,
) {
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        nodes,
        ips: Mutex::new(PodIps::default()),
        stats,
        completing: Mutex::default(),
    });
    let count = config.concurrency.max(1);
    let mut shards = Vec::with_capacity(count);
    for _ in 0..count {
        let (tx, rx) = mpsc::channel::<Work>(1024);
        tokio::spawn(shard(ctx.clone(), rx));
        shards.push(tx);
    }
    let api: Api<Pod> = Api::all(client);
    let stream = watcher::watcher(api, watcher::Config::default().fields("spec.nodeName!=")).default_backoff();
    let mut stream = std::pin::pin!(stream);
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            event = stream.next() => event,
        };
        let work = match event {
            None => return,
            Some(Err(e)) => {
                tracing::warn!(error = %error_chain(&e), "sim pod watch failed; retrying");
                continue;
            }
            Some(Ok(Event::Apply(pod) | Event::InitApply(pod))) => Work::Apply(Box::new(pod)),
            Some(Ok(Event::Delete(pod))) => Work::Deleted(Box::new(pod)),
            Some(Ok(Event::Init | Event::InitDone)) => continue,
        };
        let pod = match &work {
            Work::Apply(p) | Work::Deleted(p) => p,
        };
        if node_of(&ctx, pod).is_none() {
            continue;
        }
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = shards[shard_of(uid, count)].send(work) => {}
        }
    }
}

/// Handles one shard's pods one event at a time, so each pod's events apply in order.
async fn shard(ctx: Arc<Ctx>, mut rx: mpsc::Receiver<Work>) {
    while let Some(work) = rx.recv().await {
        handle(&ctx, work).await;
    }
}

async fn handle(ctx: &Ctx, work: Work) {
    match work {
        Work::Deleted(pod) => {
            if let (Some(node), Some(uid)) = (node_of(ctx, &pod), pod.metadata.uid.as_deref()) {
                lock(&ctx.ips).release(&node.name, uid);
            }
        }
        Work::Apply(pod) => {
            if pod.metadata.deletion_timestamp.is_some() {
                delete(ctx, &pod).await;
                return;
            }
            if needs_start(&pod) {
                start(ctx, &pod).await;
            } else if let (Some(node), Some(uid), Some(ip)) = (
                node_of(ctx, &pod),
                pod.metadata.uid.as_deref(),
                pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()).and_then(|ip| ip.parse().ok()),
            ) {
                lock(&ctx.ips).adopt(node, uid, ip);
            }
            schedule_completion(ctx, &pod);
        }
    }
}

/// How long after its start a pod should succeed ([`RUN_SECONDS_ANNOTATION`]); None for pods
/// that run until deleted.
pub fn run_time(pod: &Pod) -> Option<std::time::Duration> {
    let policy = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always");
    if policy == "Always" {
        return None;
    }
    let secs: f64 = pod.metadata.annotations.as_ref()?.get(RUN_SECONDS_ANNOTATION)?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| std::time::Duration::from_secs_f64(secs))
}

/// The status of a pod whose containers all ended with exit code 0.
pub fn succeeded_status(pod: &Pod, now: Timestamp) -> Value {
    let now = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let started = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map_or_else(|| now.clone(), |t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    let containers: Vec<Value> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| {
            let image = c.image.clone().unwrap_or_default();
            json!({"name": c.name, "image": image, "imageID": format!("sim://{image}"),
                "containerID": format!("sim://{uid}-{}", c.name), "ready": false, "started": false,
                "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                    "startedAt": started, "finishedAt": now}}})
        })
        .collect();
    let cond =
        |t: &str, status: &str| json!({"type": t, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
    json!({
        "phase": "Succeeded",
        "conditions": [cond("PodReadyToStartContainers", "False"), cond("Initialized", "True"),
            cond("Ready", "False"), cond("ContainersReady", "False"), cond("PodScheduled", "True")],
        "containerStatuses": containers,
    })
}

/// Marks a pod that should finish as Succeeded once its run time is over (once per pod).
fn schedule_completion(ctx: &Ctx, pod: &Pod) {
    let Some(run) = run_time(pod) else { return };
    let Some(uid) = pod.metadata.uid.clone() else { return };
    if matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed")) {
        return;
    }
    if !lock_set(&ctx.completing).insert(uid.clone()) {
        return;
    }
    let started = pod.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0);
    let elapsed = started.map_or(std::time::Duration::ZERO, |t| Timestamp::now().duration_since(t).unsigned_abs());
    let wait = run.saturating_sub(elapsed);
    let (client, pod) = (ctx.client.clone(), pod.clone());
    tokio::spawn(async move {
        // The simulated run time of the workload; nothing waits on this for synchronisation.
        tokio::time::sleep(wait).await;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client, pod.metadata.namespace.as_deref().unwrap_or("default"));
        let patch = json!({"status": succeeded_status(&pod, Timestamp::now())});
        match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => tracing::warn!(pod = %name, error = %error_chain(&e), "sim pod completion failed"),
        }
    });
}

fn lock_set(
    set: &Mutex<std::collections::HashSet<String>>,
) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
    set.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn lock(ips: &Mutex<PodIps>) -> std::sync::MutexGuard<'_, PodIps> {
    ips.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether the pod still has to be moved to Running (a finished pod stays finished).
pub fn needs_start(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return false;
    }
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    !(phase == Some("Running") && ready && status.and_then(|s| s.pod_ip.as_ref()).is_some())
}

/// The status of a pod running on `node` with address `ip`.
pub fn running_status(pod: &Pod, node: &SimNode, ip: Ipv4Addr, now: Timestamp) -> Value {
    let now = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let container_status = |c: &k8s_openapi::api::core::v1::Container, state: Value, ready: bool| {
        let image = c.image.clone().unwrap_or_default();
        json!({
            "name": c.name, "image": image, "imageID": format!("sim://{image}"),
            "containerID": format!("sim://{uid}-{}", c.name), "ready": ready, "started": ready,
            "restartCount": 0, "state": state,
        })
    };
    let running = json!({"running": {"startedAt": now}});
    let completed = json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}});
    let init: Vec<Value> =
        spec.init_containers.iter().flatten().map(|c| container_status(c, completed.clone(), false)).collect();
    let containers: Vec<Value> = spec.containers.iter().map(|c| container_status(c, running.clone(), true)).collect();
    let cond = |t: &str| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
    let start_time = pod.status.as_ref().and_then(|s| s.start_time.clone()).map_or_else(|| json!(now), |t| json!(t));
    let mut status = json!({
        "phase": "Running",
        "conditions": [cond("PodReadyToStartContainers"), cond("Initialized"), cond("Ready"),
            cond("ContainersReady"), cond("PodScheduled")],
        "hostIP": node.internal_ip.to_string(),
        "hostIPs": [{"ip": node.internal_ip.to_string()}],
        "podIP": ip.to_string(),
        "podIPs": [{"ip": ip.to_string()}],
        "startTime": start_time,
        "containerStatuses": containers,
    });
    if !init.is_empty() {
        status["initContainerStatuses"] = json!(init);
    }
    status
}

async fn start(ctx: &Ctx, pod: &Pod) {
    let (Some(node), Some(uid)) = (node_of(ctx, pod), pod.metadata.uid.as_deref()) else { return };
    let name = pod.metadata.name.clone().unwrap_or_default();
    let Some(ip) = lock(&ctx.ips).assign(node, uid) else {
        tracing::warn!(pod = %name, node = %node.name, "sim node has no free pod address");
        return;
    };
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), pod.metadata.namespace.as_deref().unwrap_or("default"));
    let patch = json!({"status": running_status(pod, node, ip, Timestamp::now())});
    match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => {
            ctx.stats.pods_started.fetch_add(1, Ordering::Relaxed);
        }
        Err(kube::Error::Api(e)) if e.code == 404 => lock(&ctx.ips).release(&node.name, uid),
        Err(e) => tracing::warn!(pod = %name, error = %error_chain(&e), "sim pod status update failed"),
    }
}

async fn delete(ctx: &Ctx, pod: &Pod) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), pod.metadata.namespace.as_deref().unwrap_or("default"));
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions { uid: uid.clone(), resource_version: None }),
        ..Default::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => {
            ctx.stats.pods_deleted.fetch_add(1, Ordering::Relaxed);
        }
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => {
            tracing::warn!(pod = %name, error = %error_chain(&e), "sim pod deletion failed");
            return;
        }
    }
    if let (Some(node), Some(uid)) = (node_of(ctx, pod), uid) {
        lock(&ctx.ips).release(&node.name, &uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> SimNode {
        SimNode {
            name: "sim-0".into(),
            index: 0,
            pod_cidr_base: Ipv4Addr::new(10, 64, 3, 0),
            internal_ip: Ipv4Addr::new(100, 64, 0, 1),
            uid: None,
        }
    }

    #[test]
    fn pod_addresses_are_stable_unique_and_reused_after_release() {
        let n = node();
        let mut ips = PodIps::default();
        let a = ips.assign(&n, "a").expect("a");
        assert_eq!(a, Ipv4Addr::new(10, 64, 3, 2));
        assert_eq!(ips.assign(&n, "a"), Some(a));
        let b = ips.assign(&n, "b").expect("b");
        assert_ne!(a, b);
        ips.release("sim-0", "a");
        let mut seen = std::collections::HashSet::from([b]);
        for i in 0..252 {
            let ip = ips.assign(&n, &format!("p{i}")).expect("room");
            assert!(seen.insert(ip), "{ip} handed out twice");
        }
        assert_eq!(ips.assign(&n, "full"), None, "a /24 holds 253 pods");
    }

    #[test]
    fn only_pods_that_may_finish_and_ask_to_get_a_run_time() {
        let pod = |policy: &str, ann: Option<&str>| -> Pod {
            let mut p = json!({"metadata": {"name": "j", "uid": "u"},
                "spec": {"restartPolicy": policy, "containers": [{"name": "c", "image": "busybox"}]}});
            if let Some(a) = ann {
                p["metadata"]["annotations"] = json!({RUN_SECONDS_ANNOTATION: a});
            }
            serde_json::from_value(p).expect("pod")
        };
        assert_eq!(run_time(&pod("Never", Some("2.5"))), Some(std::time::Duration::from_millis(2500)));
        assert_eq!(run_time(&pod("OnFailure", Some("0"))), Some(std::time::Duration::ZERO));
        assert_eq!(run_time(&pod("Always", Some("1"))), None, "a pod restarted forever never finishes");
        assert_eq!(run_time(&pod("Never", None)), None);
        assert_eq!(run_time(&pod("Never", Some("soon"))), None);
        let done = succeeded_status(&pod("Never", Some("1")), Timestamp::UNIX_EPOCH);
        assert_eq!(done["phase"], "Succeeded");
        assert_eq!(done["containerStatuses"][0]["state"]["terminated"]["exitCode"], 0);
        assert_eq!(done["containerStatuses"][0]["state"]["terminated"]["reason"], "Completed");
    }

    #[test]
    fn adopted_addresses_are_not_handed_out_again() {
        let n = node();
        let mut ips = PodIps::default();
        ips.adopt(&n, "old", Ipv4Addr::new(10, 64, 3, 2));
        ips.adopt(&n, "elsewhere", Ipv4Addr::new(10, 99, 0, 3));
        assert_eq!(ips.assign(&n, "new"), Some(Ipv4Addr::new(10, 64, 3, 3)));
    }

    #[test]
    fn a_running_pod_gets_ip_conditions_and_container_states() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"nodeName": "sim-0", "initContainers": [{"name": "i", "image": "busybox"}],
                "containers": [{"name": "c", "image": "busybox"}]},
        }))
        .expect("pod");
        assert!(needs_start(&pod));
        let status = running_status(&pod, &node(), Ipv4Addr::new(10, 64, 3, 7), Timestamp::UNIX_EPOCH);
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["podIP"], "10.64.3.7");
        assert_eq!(status["hostIP"], "100.64.0.1");
        assert_eq!(status["containerStatuses"][0]["ready"], true);
        assert!(status["containerStatuses"][0]["state"]["running"].is_object());
        assert_eq!(status["initContainerStatuses"][0]["state"]["terminated"]["reason"], "Completed");
        let ready = status["conditions"].as_array().expect("conditions").iter().any(|c| c["type"] == "Ready");
        assert!(ready);
        let mut started = pod.clone();
        started.status = Some(serde_json::from_value(status).expect("status"));
        assert!(!needs_start(&started), "a pod already running is left alone");
    }
}
