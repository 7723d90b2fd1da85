//! ReplicaSet and ReplicationController controller (k8s `pkg/controller/replicaset`): keeps the
//! number of active pods matching an owner's selector at `spec.replicas`, adopting orphans and
//! releasing pods that no longer match, and reports status. ReplicationControllers run through the
//! same code via [`ReplicaOwner`].

pub mod rank;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::{TryStreamExt, stream};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config as ApplierConfig, ReconcileRequest, applier};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector as reflect};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::error::is_status;
use crate::events::{EventType, Recorder};
use crate::expectations::Expectations;
use crate::queue::{Backoff, drive, on_error};
use crate::util::{self, controller_ref, is_pod_active, is_pod_available, is_pod_ready, new_controller_ref};
use crate::{ControllersConfig, Error};

/// Most pods created or deleted in one sync (upstream `BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;

/// A replicated-pods owner: ReplicaSet or ReplicationController.
pub trait ReplicaOwner:
    Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The event source component.
    const COMPONENT: &'static str;
    /// `spec.replicas` (default 1).
    fn replicas(&self) -> i32;
    /// The pod selector as a LabelSelector.
    fn label_selector(&self) -> Option<LabelSelector>;
    /// The pod template.
    fn template(&self) -> Option<&PodTemplateSpec>;
    /// `spec.minReadySeconds`.
    fn min_ready_seconds(&self) -> i32;
}

impl ReplicaOwner for ReplicaSet {
    const COMPONENT: &'static str = "replicaset-controller";
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn label_selector(&self) -> Option<LabelSelector> {
        self.spec.as_ref().map(|s| s.selector.clone())
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
    }
}

impl ReplicaOwner for ReplicationController {
    const COMPONENT: &'static str = "replication-controller";
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn label_selector(&self) -> Option<LabelSelector> {
        let spec = self.spec.as_ref()?;
        let labels = spec
            .selector
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| spec.template.as_ref()?.metadata.as_ref()?.labels.clone())?;
        Some(LabelSelector { match_labels: Some(labels), match_expressions: None })
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
    }
}

/// One status condition (same shape for ReplicaSet and ReplicationController).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type (`ReplicaFailure`).
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`/`False`/`Unknown`.
    pub status: String,
    /// When the status last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Machine-readable reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// ReplicaSet/ReplicationController status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// Active pods owned.
    #[serde(default)]
    pub replicas: i32,
    /// Owned pods whose labels include all template labels.
    #[serde(default)]
    pub fully_labeled_replicas: i32,
    /// Ready pods.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Pods ready for at least minReadySeconds.
    #[serde(default)]
    pub available_replicas: i32,
    /// The generation this status is about.
    #[serde(default)]
    pub observed_generation: i64,
    /// Conditions (`ReplicaFailure`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Reads the status of an owner (both kinds serialize it identically).
pub fn status_of<K: Serialize>(obj: &K) -> ReplicaStatus {
    serde_json::to_value(obj)
        .ok()
        .and_then(|v| v.get("status").cloned())
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default()
}

struct Ctx<K: ReplicaOwner> {
    client: kube::Client,
    owners: Store<K>,
    pods: Store<Pod>,
    expectations: Expectations<ObjectRef<K>>,
    recorder: Recorder,
    backoff: Backoff<ObjectRef<K>>,
    resync: Duration,
}

/// Runs the controller for owners of kind `K` until cancelled.
pub async fn run<K: ReplicaOwner>(
    client: kube::Client,
    config: ControllersConfig,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let (owners, owner_writer) = reflector::store::<K>();
    let (pods, mut pod_writer) = reflector::store::<Pod>();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        owners: owners.clone(),
        pods: pods.clone(),
        expectations: Expectations::default(),
        recorder: Recorder::new(client.clone(), K::COMPONENT),
        backoff: Backoff::default(),
        resync: config.resync,
    });
    let owner_stream = reflect(owner_writer, watcher(Api::<K>::all(client.clone())))
        .default_backoff()
        .touched_objects()
        .map_ok(|o| ReconcileRequest::from(ObjectRef::from_obj(&o)));
    let pod_ctx = ctx.clone();
    let pod_stream = watcher(Api::<Pod>::all(client.clone()))
        .default_backoff()
        .map_ok(move |ev| {
            let refs = pod_event_triggers(&pod_ctx, &ev);
            pod_writer.apply_watcher_event(&ev);
            stream::iter(refs.into_iter().map(|r| Ok::<_, watcher::Error>(ReconcileRequest::from(r))))
        })
        .try_flatten();
    let queue = stream::select(owner_stream, pod_stream);
    let err_ctx = ctx.clone();
    let applier = applier(
        |obj: Arc<K>, ctx: Arc<Ctx<K>>| Box::pin(async move { sync_replica_set(&ctx, &obj).await }),
        move |obj: Arc<K>, err: &Error, _| on_error(&err_ctx.backoff, ObjectRef::from_obj(&*obj), err),
        ctx,
        owners,
        queue,
        ApplierConfig::default().concurrency(config.concurrency),
    );
    drive(K::COMPONENT, applier, cancel).await;
    Ok(())
}

fn watcher<K: Resource + Clone + DeserializeOwned + Debug + Send + 'static>(
    api: Api<K>,
) -> impl futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send {
    watcher::watcher(api, watcher::Config::default())
}

/// Owners a pod event concerns, with expectations bookkeeping (upstream addPod/updatePod/deletePod).
fn pod_event_triggers<K: ReplicaOwner>(ctx: &Ctx<K>, ev: &Event<Pod>) -> Vec<ObjectRef<K>> {
    let mut out = Vec::new();
    match ev {
        Event::Apply(pod) | Event::InitApply(pod) => {
            let old = ctx.pods.get(&ObjectRef::from_obj(pod));
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let owner = owner_ref_of::<K>(pod);
            if let Some(key) = &owner {
                let newly_deleting = pod.metadata.deletion_timestamp.is_some()
                    && old.as_ref().is_none_or(|o| o.metadata.deletion_timestamp.is_none());
                if old.is_none() && pod.metadata.deletion_timestamp.is_none() {
                    ctx.expectations.creation_observed(key);
                } else if newly_deleting {
                    ctx.expectations.deletion_observed(key, &uid);
                }
                out.push(key.clone());
            } else {
                out.extend(matching_owners(ctx, pod));
            }
            if let Some(old) = old
                && let Some(old_owner) = owner_ref_of::<K>(&old)
                && Some(&old_owner) != owner.as_ref()
            {
                out.push(old_owner);
            }
        }
        Event::Delete(pod) => {
            if let Some(key) = owner_ref_of::<K>(pod) {
                ctx.expectations.deletion_observed(&key, pod.metadata.uid.as_deref().unwrap_or(""));
                out.push(key);
            }
        }
        Event::Init | Event::InitDone => {}
    }
    out
}

fn owner_ref_of<K: ReplicaOwner>(pod: &Pod) -> Option<ObjectRef<K>> {
    let r = controller_ref(&pod.metadata)?;
    if r.kind != K::kind(&()) || r.api_version != K::api_version(&()) {
        return None;
    }
    Some(ObjectRef::new(&r.name).within(pod.metadata.namespace.as_deref().unwrap_or("")))
}

fn matching_owners<K: ReplicaOwner>(ctx: &Ctx<K>, pod: &Pod) -> Vec<ObjectRef<K>> {
    let labels = pod.labels().clone();
    ctx.owners
        .state()
        .into_iter()
        .filter(|o| o.namespace() == pod.namespace())
        .filter(|o| {
            let sel = util::selector(util::describe(&**o), o.label_selector().as_ref()).ok().flatten();
            util::matches(&sel, &labels)
        })
        .map(|o| ObjectRef::from_obj(&*o))
        .collect()
}

/// One reconcile of a ReplicaSet/ReplicationController (upstream `syncReplicaSet`).
async fn sync_replica_set<K: ReplicaOwner>(ctx: &Ctx<K>, obj: &K) -> Result<Action, Error> {
    let key = ObjectRef::from_obj(obj);
    // Never act on a partial pod cache. Do not block waiting for it either: the pod watch is
    // polled by the same queue that runs this reconcile.
    if !crate::queue::store_ready(&ctx.pods) {
        return Ok(Action::requeue(crate::queue::CACHE_WAIT));
    }
    let Some(rs) = ctx.owners.get(&key) else {
        ctx.expectations.delete(&key);
        return Ok(Action::await_change());
    };
    let rs = (*rs).clone();
    let ns = rs.namespace().unwrap_or_default();
    let sel = util::selector(util::describe(&rs), rs.label_selector().as_ref())?;
    let all: Vec<Arc<Pod>> = ctx.pods.state().into_iter().filter(|p| p.namespace().as_deref() == Some(&ns)).collect();
    let active_uids: HashSet<String> =
        all.iter().filter(|p| is_pod_active(p)).filter_map(|p| p.metadata.uid.clone()).collect();
    let active: Vec<&Pod> = all.iter().map(|p| &**p).filter(|p| is_pod_active(p)).collect();
    let claimed = claim_pods(ctx, &rs, &sel, &active).await?;
    let needs_sync = ctx.expectations.satisfied(&key, |uid| active_uids.contains(uid));
    let mut manage_err = None;
    if needs_sync
        && rs.meta().deletion_timestamp.is_none()
        && let Err(e) = manage_replicas(ctx, &key, &rs, &claimed, &active).await
    {
        manage_err = Some(e);
    }
    let now = jiff::Timestamp::now();
    let status = calculate_status(&rs, &claimed, manage_err.as_ref(), now);
    update_status(ctx, &rs, status.clone()).await?;
    if let Some(e) = manage_err {
        return Err(e);
    }
    ctx.backoff.forget(&key);
    let min_ready = rs.min_ready_seconds();
    if min_ready > 0 && status.ready_replicas != status.available_replicas {
        return Ok(Action::requeue(Duration::from_secs(min_ready as u64)));
    }
    Ok(Action::requeue(ctx.resync))
}

/// Adopts matching orphans and releases owned pods that stopped matching; returns the owned,
/// matching, active pods (upstream `PodControllerRefManager.ClaimPods`).
async fn claim_pods<'a, K: ReplicaOwner>(
    ctx: &Ctx<K>,
    rs: &K,
    sel: &Option<kube::core::Selector>,
    pods: &[&'a Pod],
) -> Result<Vec<&'a Pod>, Error> {
    let uid = rs.meta().uid.clone().unwrap_or_default();
    let deleting = rs.meta().deletion_timestamp.is_some();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    let mut out = Vec::new();
    let mut can_adopt: Option<bool> = None;
    for pod in pods {
        let matches = util::matches(sel, pod.labels());
        match controller_ref(&pod.metadata) {
            Some(r) if r.uid == uid => {
                if matches {
                    out.push(*pod);
                } else if !deleting {
                    let refs: Vec<_> = pod.owner_references().iter().filter(|r| r.uid != uid).cloned().collect();
                    let patch = serde_json::json!({"metadata": {"ownerReferences": refs, "uid": pod.metadata.uid}});
                    match api.patch(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
                        Ok(_) => {}
                        Err(e) if is_status(&e, 404) => {}
                        Err(e) => return Err(Error::api(format!("release pod {}", pod.name_any()), e)),
                    }
                }
            }
            Some(_) => {}
            None => {
                if !matches || deleting || pod.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                if can_adopt.is_none() {
                    // Recheck with a live read that the owner still exists and is not being deleted.
                    let owners: Api<K> = Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
                    let fresh = owners.get_opt(&rs.name_any()).await.map_err(|e| Error::api("recheck owner", e))?;
                    can_adopt = Some(fresh.is_some_and(|f| {
                        f.meta().uid.as_deref() == Some(&uid) && f.meta().deletion_timestamp.is_none()
                    }));
                }
                if can_adopt != Some(true) {
                    continue;
                }
                let mut refs = pod.owner_references().to_vec();
                refs.push(new_controller_ref(rs));
                let patch = serde_json::json!({"metadata": {
                    "ownerReferences": refs,
                    "resourceVersion": pod.metadata.resource_version,
                }});
                match api.patch(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
                    Ok(_) => out.push(*pod),
                    Err(e) if is_status(&e, 404) => {}
                    Err(e) => return Err(Error::api(format!("adopt pod {}", pod.name_any()), e)),
                }
            }
        }
    }
    Ok(out)
}

/// Creates or deletes pods to reach `spec.replicas` (upstream `manageReplicas`).
async fn manage_replicas<K: ReplicaOwner>(
    ctx: &Ctx<K>,
    key: &ObjectRef<K>,
    rs: &K,
    pods: &[&Pod],
    namespace_pods: &[&Pod],
) -> Result<(), Error> {
    let diff = pods.len() as i64 - i64::from(rs.replicas());
    let ns = rs.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    if diff < 0 {
        let count = ((-diff) as usize).min(BURST_REPLICAS);
        let template =
            rs.template().ok_or_else(|| Error::MissingField { object: util::describe(rs), field: "spec.template" })?;
        ctx.expectations.expect_creations(key, count);
        let pod = pod_from_template(rs, template);
        let (created, err) = slow_start_batch(count, |_| {
            let api = api.clone();
            let pod = pod.clone();
            async move {
                match api.create(&PostParams::default(), &pod).await {
                    Ok(p) => {
                        ctx.recorder
                            .record(
                                rs,
                                EventType::Normal,
                                "SuccessfulCreate",
                                &format!("Created pod: {}", p.name_any()),
                            )
                            .await;
                        Ok(())
                    }
                    Err(e) => {
                        ctx.recorder
                            .record(rs, EventType::Warning, "FailedCreate", &format!("Error creating: {e}"))
                            .await;
                        Err(Error::api(format!("create pod for {}", util::describe(rs)), e))
                    }
                }
            }
        })
        .await;
        if created < count {
            ctx.expectations.lower_creations(key, count - created);
        }
        return err.map_or(Ok(()), Err);
    }
    if diff > 0 {
        let count = (diff as usize).min(BURST_REPLICAS);
        let now = jiff::Timestamp::now().as_second();
        let related = related_pods(ctx, rs, namespace_pods);
        let victims = rank::pods_to_delete(pods, &related, count, now);
        ctx.expectations.expect_deletions(key, victims.iter().filter_map(|p| p.metadata.uid.clone()));
        let results = futures::future::join_all(victims.iter().map(|pod| {
            let api = api.clone();
            async move {
                let name = pod.name_any();
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => {
                        ctx.recorder
                            .record(rs, EventType::Normal, "SuccessfulDelete", &format!("Deleted pod: {name}"))
                            .await;
                        Ok(())
                    }
                    Err(e) if is_status(&e, 404) => Ok(()),
                    Err(e) => {
                        ctx.expectations.deletion_observed(key, pod.metadata.uid.as_deref().unwrap_or(""));
                        ctx.recorder
                            .record(rs, EventType::Warning, "FailedDelete", &format!("Error deleting: {e}"))
                            .await;
                        Err(Error::api(format!("delete pod {name}"), e))
                    }
                }
            }
        }))
        .await;
        let errors: Vec<Error> = results.into_iter().filter_map(Result::err).collect();
        return first_error(errors);
    }
    Ok(())
}

/// Pods of this owner and of its siblings (owners with the same controller, e.g. the ReplicaSets
/// of one Deployment), for "doubled up on a node" ranks (upstream `getIndirectlyRelatedPods`).
fn related_pods<'a, K: ReplicaOwner>(ctx: &Ctx<K>, rs: &K, namespace_pods: &[&'a Pod]) -> Vec<&'a Pod> {
    let mut owners: HashSet<String> = rs.meta().uid.iter().cloned().collect();
    if let Some(parent) = controller_ref(rs.meta()) {
        for sibling in ctx.owners.state() {
            if sibling.namespace() == rs.namespace()
                && controller_ref(sibling.meta()).is_some_and(|r| r.uid == parent.uid)
                && let Some(uid) = sibling.meta().uid.clone()
            {
                owners.insert(uid);
            }
        }
    }
    namespace_pods
        .iter()
        .copied()
        .filter(|p| controller_ref(&p.metadata).is_some_and(|r| owners.contains(&r.uid)))
        .collect()
}

fn first_error(mut errors: Vec<Error>) -> Result<(), Error> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        n => Err(Error::Multiple { count: n, first: Box::new(errors.remove(0)) }),
    }
}

/// Runs `count` calls in batches of 1, 2, 4, ... stopping after the first batch with a failure
/// (upstream `slowStartBatch`); returns how many succeeded and the first error.
pub async fn slow_start_batch<F, Fut>(count: usize, f: F) -> (usize, Option<Error>)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    let mut done = 0;
    let mut ok = 0;
    let mut batch = 1;
    while done < count {
        let size = batch.min(count - done);
        let results = futures::future::join_all((done..done + size).map(&f)).await;
        done += size;
        let mut errors = Vec::new();
        for r in results {
            match r {
                Ok(()) => ok += 1,
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return (ok, first_error(errors).err());
        }
        batch *= 2;
    }
    (ok, None)
}

/// The pod a ReplicaSet creates from its template (upstream `GetPodFromTemplate`).
pub fn pod_from_template<K: ReplicaOwner>(owner: &K, template: &PodTemplateSpec) -> Pod {
    let tm = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", owner.name_any())),
            namespace: owner.namespace(),
            labels: tm.labels,
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![new_controller_ref(owner)]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Status from the claimed pods (upstream `calculateStatus`).
pub fn calculate_status<K: ReplicaOwner>(
    rs: &K,
    pods: &[&Pod],
    manage_err: Option<&Error>,
    now: jiff::Timestamp,
) -> ReplicaStatus {
    let template_labels: BTreeMap<String, String> =
        rs.template().and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.clone()).unwrap_or_default();
    let min_ready = rs.min_ready_seconds();
    let mut status = status_of(rs);
    status.replicas = pods.len() as i32;
    status.fully_labeled_replicas =
        pods.iter().filter(|p| template_labels.iter().all(|(k, v)| p.labels().get(k) == Some(v))).count() as i32;
    status.ready_replicas = pods.iter().filter(|p| is_pod_ready(p)).count() as i32;
    status.available_replicas = pods.iter().filter(|p| is_pod_available(p, min_ready, now)).count() as i32;
    status.observed_generation = rs.meta().generation.unwrap_or(0);
    let has_failure = status.conditions.iter().any(|c| c.type_ == "ReplicaFailure");
    match manage_err {
        Some(e) if !has_failure => {
            let diff = pods.len() as i64 - i64::from(rs.replicas());
            let reason = if diff < 0 { "FailedCreate" } else { "FailedDelete" };
            status.conditions.push(Condition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                last_transition_time: Some(Time(now)),
                reason: Some(reason.into()),
                message: Some(e.to_string()),
            });
        }
        None if has_failure => status.conditions.retain(|c| c.type_ != "ReplicaFailure"),
        _ => {}
    }
    status
}

async fn update_status<K: ReplicaOwner>(ctx: &Ctx<K>, rs: &K, status: ReplicaStatus) -> Result<(), Error> {
    if status_of(rs) == status {
        return Ok(());
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    let patch = serde_json::json!({"status": {
        "replicas": status.replicas,
        "fullyLabeledReplicas": status.fully_labeled_replicas,
        "readyReplicas": status.ready_replicas,
        "availableReplicas": status.available_replicas,
        "observedGeneration": status.observed_generation,
        "conditions": if status.conditions.is_empty() { serde_json::Value::Null } else { serde_json::to_value(&status.conditions).unwrap_or_default() },
    }});
    match api.patch_status(&rs.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(Error::api(format!("update status of {}", util::describe(rs)), e)),
    }
}
