//! The scheduler process: informers for nodes, pods and PriorityClasses feed the cache and the
//! queue; one loop pops pods, runs the framework (and preemption) on a snapshot off the async
//! threads, assumes the chosen node and binds asynchronously through `pods/{name}/binding`.
//! Failures set `PodScheduled=False/Unschedulable` and emit `FailedScheduling` events; successes
//! emit `Scheduled`. Talks to the apiserver only through the kube client.

use std::collections::HashSet;
use std::pin::pin;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event as CoreEvent, EventSource, Node, ObjectReference, Pod};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch_fn};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::cache::Cache;
use crate::config::SchedulerConfig;
use crate::error::Error;
use crate::framework::{CycleState, Framework, ScheduleError};
use crate::plugins::default_plugins;
use crate::preemption::{Candidate, preempt};
use crate::queue::{QueuedPod, SchedulingQueue};
use crate::snapshot::PodInfo;

/// How long to wait for the PriorityClass informer before scheduling anyway.
const PRIORITY_CLASS_SYNC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

struct Shared {
    client: Client,
    config: SchedulerConfig,
    cache: Mutex<Cache>,
    queue: SchedulingQueue,
    framework: Arc<Framework>,
    priority_classes: Store<PriorityClass>,
}

fn pod_key(pod: &Pod) -> String {
    format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or("default"), pod.metadata.name.as_deref().unwrap_or(""))
}

impl Shared {
    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fills `spec.priority` from the PriorityClass when admission did not.
    fn resolve_priority(&self, pod: &mut Pod) {
        let Some(spec) = pod.spec.as_mut() else { return };
        if spec.priority.is_some() {
            return;
        }
        let value = match spec.priority_class_name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => self.priority_classes.get(&ObjectRef::new(name)).map(|pc| pc.value),
            None => self.priority_classes.state().iter().find(|pc| pc.global_default == Some(true)).map(|pc| pc.value),
        };
        spec.priority = Some(value.unwrap_or(0));
    }

    fn is_ours(&self, pod: &Pod) -> bool {
        let name = pod.spec.as_ref().and_then(|s| s.scheduler_name.as_deref()).unwrap_or("default-scheduler");
        name == self.config.scheduler_name
    }

    fn on_pod(&self, mut pod: Pod) {
        self.resolve_priority(&mut pod);
        let key = pod_key(&pod);
        let bound = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
        if bound {
            self.queue.delete(&key);
            let terminal = matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"));
            let new = self.cache().add_or_update_pod(pod);
            if new || terminal {
                self.queue.move_all_to_active_or_backoff();
            }
        } else if pod.metadata.deletion_timestamp.is_some() || !self.is_ours(&pod) {
            self.queue.delete(&key);
        } else if !self.cache().is_assumed(&key) {
            self.queue.add_or_update(pod);
        }
    }

    fn on_pod_deleted(&self, pod: &Pod) {
        let key = pod_key(pod);
        self.queue.delete(&key);
        if self.cache().remove_pod(&key) {
            self.queue.move_all_to_active_or_backoff();
        }
    }
}

/// Runs the scheduler until `cancel` fires.
///
/// # Errors
/// [`Error::Task`] if an internal task panics.
pub async fn run(client: Client, config: SchedulerConfig, cancel: CancellationToken) -> Result<(), Error> {
    let (reader, writer) = reflector::store::<PriorityClass>();
    let framework = Arc::new(Framework::new(default_plugins(&config), config.percentage_of_nodes_to_score));
    let shared = Arc::new(Shared {
        queue: SchedulingQueue::new(
            config.pod_initial_backoff,
            config.pod_max_backoff,
            config.unschedulable_flush_interval,
        ),
        client: client.clone(),
        config,
        cache: Mutex::default(),
        framework,
        priority_classes: reader.clone(),
    });
    let (nodes_synced_tx, mut nodes_synced) = watch::channel(false);
    let (pods_synced_tx, mut pods_synced) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let pc_stream =
        reflector::reflector(writer, watch_fn(Api::<PriorityClass>::all(client.clone()), watcher::Config::default()))
            .default_backoff();
    let c = cancel.clone();
    tasks.spawn(async move {
        let mut s = pin!(pc_stream);
        loop {
            tokio::select! {
                _ = c.cancelled() => return,
                ev = s.next() => match ev {
                    Some(Err(e)) => debug!(error = %e, "priorityclass watch error"),
                    Some(Ok(_)) => {}
                    None => return,
                },
            }
        }
    });
    tasks.spawn(watch_nodes(shared.clone(), nodes_synced_tx, cancel.clone()));
    tasks.spawn(watch_pods(shared.clone(), pods_synced_tx, cancel.clone()));

    let synced = async {
        let _ = nodes_synced.wait_for(|v| *v).await;
        let _ = pods_synced.wait_for(|v| *v).await;
        // PriorityClasses only refine priorities; do not hang if the API does not serve them.
        if tokio::time::timeout(PRIORITY_CLASS_SYNC_TIMEOUT, reader.wait_until_ready()).await.is_err() {
            warn!("PriorityClass cache not synced; pods without spec.priority count as priority 0");
        }
    };
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = synced => {
            info!(scheduler = %shared.config.scheduler_name, "scheduler caches synced");
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    queued = shared.queue.pop() => schedule_one(&shared, queued).await?,
                }
            }
        }
    }
    tasks.abort_all();
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r
            && !e.is_cancelled()
        {
            return Err(Error::Task(e));
        }
    }
    Ok(())
}

/// What a cluster-wide watch does with its events. Keys of the objects listed during a (re)list
/// are collected, so `relisted` can drop whatever the cache holds that the list no longer has.
struct WatchHandlers<K> {
    /// For the warning on a watch error (`node`, `pod`).
    kind: &'static str,
    key: fn(&K) -> String,
    apply: fn(&Shared, K),
    delete: fn(&Shared, &K),
    /// After a (re)list; `seen` holds the keys listed, `None` when no list started.
    relisted: fn(&Shared, Option<HashSet<String>>),
}

/// Watches all objects of `K`, feeding `handlers`, and reports `synced` after each full list.
async fn watch_all<K>(
    shared: Arc<Shared>,
    synced: watch::Sender<bool>,
    cancel: CancellationToken,
    handlers: WatchHandlers<K>,
) where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let mut stream = pin!(watch_fn(Api::<K>::all(shared.client.clone()), watcher::Config::default()).default_backoff());
    let mut seen: Option<HashSet<String>> = None;
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => return,
            ev = stream.next() => match ev { Some(ev) => ev, None => return },
        };
        match ev {
            Ok(Event::Init) => seen = Some(HashSet::new()),
            Ok(Event::InitApply(obj)) | Ok(Event::Apply(obj)) => {
                if let Some(s) = seen.as_mut() {
                    s.insert((handlers.key)(&obj));
                }
                (handlers.apply)(&shared, obj);
            }
            Ok(Event::Delete(obj)) => (handlers.delete)(&shared, &obj),
            Ok(Event::InitDone) => {
                (handlers.relisted)(&shared, seen.take());
                let _ = synced.send(true);
            }
            Err(e) => warn!(error = %e, "{} watch error", handlers.kind),
        }
    }
}

async fn watch_nodes(shared: Arc<Shared>, synced: watch::Sender<bool>, cancel: CancellationToken) {
    let handlers = WatchHandlers::<Node> {
        kind: "node",
        key: |node| node.metadata.name.clone().unwrap_or_default(),
        apply: |shared, node| {
            if shared.cache().add_or_update_node(node) {
                shared.queue.move_all_to_active_or_backoff();
            }
        },
        delete: |shared, node| shared.cache().remove_node(node.metadata.name.as_deref().unwrap_or("")),
        relisted: |shared, seen| {
            if let Some(s) = seen {
                let mut cache = shared.cache();
                for name in cache.node_names().into_iter().filter(|n| !s.contains(n)) {
                    cache.remove_node(&name);
                }
            }
            shared.queue.move_all_to_active_or_backoff();
        },
    };
    watch_all(shared, synced, cancel, handlers).await
}

async fn watch_pods(shared: Arc<Shared>, synced: watch::Sender<bool>, cancel: CancellationToken) {
    let handlers = WatchHandlers::<Pod> {
        kind: "pod",
        key: pod_key,
        apply: |shared, pod| shared.on_pod(pod),
        delete: |shared, pod| shared.on_pod_deleted(pod),
        relisted: |shared, seen| {
            let Some(s) = seen else { return };
            for key in shared.cache().confirmed_pod_keys().into_iter().filter(|k| !s.contains(k)) {
                shared.cache().remove_pod(&key);
            }
            for key in shared.queue.keys().into_iter().filter(|k| !s.contains(k)) {
                shared.queue.delete(&key);
            }
        },
    };
    watch_all(shared, synced, cancel, handlers).await
}

/// What one scheduling cycle decided.
enum Decision {
    Bind(String),
    /// Fits nowhere; preemption found victims on `candidate.node`.
    Preempt {
        message: String,
        candidate: Candidate,
    },
    Unschedulable {
        message: String,
    },
}

fn decide(framework: &Framework, pod: &PodInfo, snapshot: &crate::snapshot::Snapshot) -> Decision {
    let mut state = CycleState::default();
    match framework.schedule_with_state(&mut state, pod, snapshot) {
        Ok(r) => Decision::Bind(r.node),
        Err(ScheduleError::NoNodes) => Decision::Unschedulable { message: ScheduleError::NoNodes.message() },
        Err(ScheduleError::Fit(mut fit)) => match preempt(framework, pod, snapshot, &fit) {
            Ok(candidate) => Decision::Preempt { message: fit.message(), candidate },
            Err(post) => {
                fit.post_filter_msg = Some(post);
                Decision::Unschedulable { message: fit.message() }
            }
        },
    }
}

async fn schedule_one(shared: &Arc<Shared>, queued: QueuedPod) -> Result<(), Error> {
    let pod = queued.pod;
    let key = pod_key(&pod);
    debug!(pod = %key, attempts = queued.attempts, "scheduling");
    let info = PodInfo::new(pod.clone());
    let mut snapshot = shared.cache().snapshot();
    add_nominated_pods(&mut snapshot, shared.queue.nominated_pods(&key, info.priority));
    let framework = shared.framework.clone();
    let decision =
        tokio::task::spawn_blocking(move || decide(&framework, &info, &snapshot)).await.map_err(Error::Task)?;
    match decision {
        Decision::Bind(node) => {
            shared.cache().assume(pod.clone(), &node);
            shared.queue.done(&key);
            let shared = shared.clone();
            tokio::spawn(async move { bind(&shared, pod, node).await });
        }
        Decision::Preempt { message, candidate } => {
            info!(pod = %key, node = %candidate.node, victims = candidate.victims.len(), "preempting");
            record_failure(shared, &pod, &message).await;
            let api: Api<Pod> =
                Api::namespaced(shared.client.clone(), pod.metadata.namespace.as_deref().unwrap_or("default"));
            let patch = json!({"status": {"nominatedNodeName": candidate.node}});
            let name = pod.metadata.name.clone().unwrap_or_default();
            let mut pod = pod;
            match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(updated) => pod.status = updated.status,
                Err(e) => warn!(pod = %key, error = %e, "setting nominatedNodeName failed"),
            }
            for victim in &candidate.victims {
                let vapi: Api<Pod> = Api::namespaced(shared.client.clone(), &victim.namespace);
                match vapi.delete(&victim.name, &DeleteParams::default()).await {
                    Ok(_) => {
                        let msg = format!(
                            "Preempted by pod {} on node {}",
                            pod.metadata.uid.as_deref().unwrap_or(""),
                            candidate.node
                        );
                        emit_event(shared, &victim.pod, "Normal", "Preempted", "Preempting", &msg).await;
                    }
                    Err(e) => warn!(victim = %victim.key, error = %e, "deleting preemption victim failed"),
                }
            }
            shared.queue.requeue(pod, true);
        }
        Decision::Unschedulable { message } => {
            debug!(pod = %key, %message, "unschedulable");
            record_failure(shared, &pod, &message).await;
            shared.queue.requeue(pod, true);
        }
    }
    Ok(())
}

/// Reserves room for pods that preempted others and wait for their victims to go: a pod of
/// equal or higher priority nominated to a node counts as running there (upstream
/// `addNominatedPods`), so lower-priority pods do not take the space freed for it.
fn add_nominated_pods(snapshot: &mut crate::snapshot::Snapshot, nominated: Vec<(String, Pod)>) {
    for (node, mut pod) in nominated {
        let Some(i) = snapshot.nodes.iter().position(|n| n.name == node) else { continue };
        pod.spec.get_or_insert_with(Default::default).node_name = Some(node);
        let info = Arc::new(PodInfo::new(pod));
        if snapshot.nodes[i].pods.iter().all(|p| p.key != info.key) {
            Arc::make_mut(&mut snapshot.nodes[i]).add_pod(info);
        }
    }
}

/// The binding cycle: POST the Binding; on failure forget the assumed pod and retry later.
async fn bind(shared: &Arc<Shared>, pod: Pod, node: String) {
    let key = pod_key(&pod);
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &ns);
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "namespace": ns, "uid": pod.metadata.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    match api.create_subresource::<_, serde_json::Value>("binding", &name, &PostParams::default(), &binding).await {
        Ok(_) => {
            let msg = format!("Successfully assigned {ns}/{name} to {node}");
            emit_event(shared, &pod, "Normal", "Scheduled", "Binding", &msg).await;
        }
        Err(e) => {
            warn!(pod = %key, %node, error = %e, "binding failed");
            shared.cache().forget(&key);
            if matches!(&e, kube::Error::Api(s) if s.code == 404) {
                return;
            }
            let message = format!("Binding rejected: {e}");
            emit_event(shared, &pod, "Warning", "FailedScheduling", "Scheduling", &message).await;
            shared.queue.add_backoff(pod);
        }
    }
}

/// Sets `PodScheduled=False` (reason Unschedulable) and emits `FailedScheduling`.
async fn record_failure(shared: &Shared, pod: &Pod, message: &str) {
    emit_event(shared, pod, "Warning", "FailedScheduling", "Scheduling", message).await;
    let current = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
    if current.is_some_and(|c| {
        c.status == "False" && c.reason.as_deref() == Some("Unschedulable") && c.message.as_deref() == Some(message)
    }) {
        return;
    }
    let now = Time(jiff::Timestamp::now());
    let patch = json!({"status": {"conditions": [{
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastProbeTime": null,
        "lastTransitionTime": now,
    }]}});
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), pod.metadata.namespace.as_deref().unwrap_or("default"));
    let name = pod.metadata.name.as_deref().unwrap_or("");
    if let Err(e) = api.patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch)).await {
        warn!(pod = %pod_key(pod), error = %e, "updating PodScheduled condition failed");
    }
}

/// Creates a core/v1 Event about a pod, as the scheduler's event recorder does.
async fn emit_event(shared: &Shared, pod: &Pod, type_: &str, reason: &str, action: &str, message: &str) {
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let now = jiff::Timestamp::now();
    let component = shared.config.scheduler_name.clone();
    let event = CoreEvent {
        metadata: ObjectMeta {
            name: Some(format!("{pod_name}.{:x}", now.as_nanosecond())),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".to_string()),
            kind: Some("Pod".to_string()),
            name: Some(pod_name),
            namespace: Some(ns.clone()),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            ..Default::default()
        },
        reason: Some(reason.to_string()),
        message: Some(truncate_message(message)),
        type_: Some(type_.to_string()),
        action: Some(action.to_string()),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        source: Some(EventSource { component: Some(component.clone()), host: None }),
        reporting_component: Some(component.clone()),
        reporting_instance: Some(component),
        ..Default::default()
    };
    let api: Api<CoreEvent> = Api::namespaced(shared.client.clone(), &ns);
    if let Err(e) = api.create(&PostParams::default(), &event).await {
        debug!(error = %e, "creating event failed");
    }
}

/// Upstream caps event messages at 1024 bytes (`truncateMessage`), marking the cut with `...`.
fn truncate_message(message: &str) -> String {
    const MAX: usize = 1024;
    if message.len() <= MAX {
        return message.to_string();
    }
    let mut end = MAX - 3;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}
