//! Deployment controller (k8s `pkg/controller/deployment`): rolls a Deployment's pod template out
//! through ReplicaSets named `NAME-<pod-template-hash>`, with RollingUpdate or Recreate, revision
//! history, pause, proportional scaling and progress conditions. Wiring and ReplicaSet claiming are
//! here; `sync` holds the shared machinery and `rollout` the two strategies.

mod rollout;
mod sync;
pub mod util;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::{TryStreamExt, stream};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ApplierConfig, ReconcileRequest, applier};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector as reflect};
use kube::{Api, Resource, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::error::is_status;
use crate::events::Recorder;
use crate::queue::{Backoff, drive, on_error};
use crate::util::{controller_ref, describe, matches, new_controller_ref, selector};
use crate::{ControllersConfig, Error};

/// Event source component, as upstream.
pub const COMPONENT: &str = "deployment-controller";

pub(crate) struct Ctx {
    pub client: kube::Client,
    pub deployments: Store<Deployment>,
    pub replica_sets: Store<ReplicaSet>,
    pub pods: Store<Pod>,
    pub recorder: Recorder,
    pub backoff: Backoff<ObjectRef<Deployment>>,
    pub resync: Duration,
}

/// Runs the Deployment controller until cancelled.
pub async fn run(client: kube::Client, config: ControllersConfig, cancel: CancellationToken) -> Result<(), Error> {
    let (deployments, d_writer) = reflector::store::<Deployment>();
    let (replica_sets, mut rs_writer) = reflector::store::<ReplicaSet>();
    let (pods, mut pod_writer) = reflector::store::<Pod>();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        deployments: deployments.clone(),
        replica_sets,
        pods,
        recorder: Recorder::new(client.clone(), COMPONENT),
        backoff: Backoff::default(),
        resync: config.resync,
    });
    let d_stream =
        reflect(d_writer, watcher::watcher(Api::<Deployment>::all(client.clone()), watcher::Config::default()))
            .default_backoff()
            .touched_objects()
            .map_ok(|d| ReconcileRequest::from(ObjectRef::from_obj(&d)));
    let rs_ctx = ctx.clone();
    let rs_stream = watcher::watcher(Api::<ReplicaSet>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .map_ok(move |ev| {
            let mut refs = Vec::new();
            for rs in event_objects(&ev) {
                if let Some(old) = rs_ctx.replica_sets.get(&ObjectRef::from_obj(rs)) {
                    refs.extend(deployments_for_rs(&rs_ctx, &old));
                }
                refs.extend(deployments_for_rs(&rs_ctx, rs));
            }
            rs_writer.apply_watcher_event(&ev);
            stream::iter(refs.into_iter().map(|r| Ok::<_, watcher::Error>(ReconcileRequest::from(r))))
        })
        .try_flatten();
    let pod_ctx = ctx.clone();
    let pod_stream = watcher::watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .map_ok(move |ev| {
            // Only Recreate waits on pods: a pod going away may unblock it.
            let mut refs = Vec::new();
            if let Event::Delete(pod) = &ev
                && let Some(r) = controller_ref(&pod.metadata)
                && r.kind == "ReplicaSet"
            {
                let key = ObjectRef::new(&r.name).within(pod.metadata.namespace.as_deref().unwrap_or(""));
                if let Some(rs) = pod_ctx.replica_sets.get(&key) {
                    refs.extend(deployments_for_rs(&pod_ctx, &rs));
                }
            }
            pod_writer.apply_watcher_event(&ev);
            stream::iter(refs.into_iter().map(|r| Ok::<_, watcher::Error>(ReconcileRequest::from(r))))
        })
        .try_flatten();
    let queue = stream::select(d_stream, stream::select(rs_stream, pod_stream));
    let err_ctx = ctx.clone();
    let applier = applier(
        |d: Arc<Deployment>, ctx: Arc<Ctx>| Box::pin(async move { sync::sync_deployment(&ctx, &d).await }),
        move |d: Arc<Deployment>, err: &Error, _| on_error(&err_ctx.backoff, ObjectRef::from_obj(&*d), err),
        ctx,
        deployments,
        queue,
        ApplierConfig::default().concurrency(config.concurrency),
    );
    drive(COMPONENT, applier, cancel).await;
    Ok(())
}

fn event_objects<K>(ev: &Event<K>) -> Vec<&K> {
    match ev {
        Event::Apply(o) | Event::InitApply(o) | Event::Delete(o) => vec![o],
        Event::Init | Event::InitDone => vec![],
    }
}

/// Deployments a ReplicaSet concerns: its controller, or for an orphan every Deployment whose
/// selector matches it.
fn deployments_for_rs(ctx: &Ctx, rs: &ReplicaSet) -> Vec<ObjectRef<Deployment>> {
    let ns = rs.namespace().unwrap_or_default();
    if let Some(r) = controller_ref(&rs.metadata) {
        if r.kind == "Deployment" {
            return vec![ObjectRef::new(&r.name).within(&ns)];
        }
        return vec![];
    }
    ctx.deployments
        .state()
        .into_iter()
        .filter(|d| d.namespace().as_deref() == Some(&ns))
        .filter(|d| {
            let sel = selector(describe(&**d), d.spec.as_ref().map(|s| &s.selector)).ok().flatten();
            matches(&sel, rs.labels())
        })
        .map(|d| ObjectRef::from_obj(&*d))
        .collect()
}

/// The Deployment's ReplicaSets: owned ones that still match, plus adopted matching orphans;
/// owned ones that stopped matching are released (upstream `ClaimReplicaSets`).
pub(crate) async fn claim_replica_sets(
    ctx: &Ctx,
    d: &Deployment,
    sel: &Option<kube::core::Selector>,
) -> Result<Vec<ReplicaSet>, Error> {
    let ns = d.namespace().unwrap_or_default();
    let uid = d.meta().uid.clone().unwrap_or_default();
    let deleting = d.meta().deletion_timestamp.is_some();
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let mut out = Vec::new();
    let mut can_adopt: Option<bool> = None;
    for rs in ctx.replica_sets.state() {
        if rs.namespace().as_deref() != Some(&ns) {
            continue;
        }
        let is_match = matches(sel, rs.labels());
        match controller_ref(&rs.metadata) {
            Some(r) if r.uid == uid => {
                if is_match {
                    out.push((*rs).clone());
                } else if !deleting {
                    let refs: Vec<_> = rs.owner_references().iter().filter(|r| r.uid != uid).cloned().collect();
                    let patch = serde_json::json!({"metadata": {"ownerReferences": refs, "uid": rs.metadata.uid}});
                    match api.patch(&rs.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
                        Ok(_) => {}
                        Err(e) if is_status(&e, 404) => {}
                        Err(e) => return Err(Error::api(format!("release replicaset {}", rs.name_any()), e)),
                    }
                }
            }
            Some(_) => {}
            None => {
                if !is_match || deleting || rs.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                if can_adopt.is_none() {
                    let dapi: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
                    let fresh = dapi.get_opt(&d.name_any()).await.map_err(|e| Error::api("recheck deployment", e))?;
                    can_adopt = Some(fresh.is_some_and(|f| {
                        f.meta().uid.as_deref() == Some(&uid) && f.meta().deletion_timestamp.is_none()
                    }));
                }
                if can_adopt != Some(true) {
                    continue;
                }
                let mut refs = rs.owner_references().to_vec();
                refs.push(new_controller_ref(d));
                let patch = serde_json::json!({"metadata": {
                    "ownerReferences": refs,
                    "resourceVersion": rs.metadata.resource_version,
                }});
                match api.patch(&rs.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
                    Ok(adopted) => out.push(adopted),
                    Err(e) if is_status(&e, 404) => {}
                    Err(e) => return Err(Error::api(format!("adopt replicaset {}", rs.name_any()), e)),
                }
            }
        }
    }
    Ok(out)
}

/// Reconcile result helper: requeue after `after`, or resync.
pub(crate) fn requeue(ctx: &Ctx, after: Option<Duration>) -> Action {
    Action::requeue(after.unwrap_or(ctx.resync).min(ctx.resync))
}

impl Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deployment::Ctx")
    }
}
