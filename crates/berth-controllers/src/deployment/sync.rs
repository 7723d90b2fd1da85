//! The Deployment sync machinery shared by both strategies (k8s `deployment_controller.go`
//! `syncDeployment`, `sync.go`, `progress.go`): finding and creating the new ReplicaSet, scaling
//! (including proportional scaling), history cleanup, status and conditions.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::util::{self as du, POD_TEMPLATE_HASH, REVISION, replicas, rs_replicas};
use super::{Ctx, claim_replica_sets, requeue, rollout};
use crate::Error;
use crate::error::is_status;
use crate::events::EventType;
use crate::util::{created_at, describe, new_controller_ref, selector};

pub(crate) const PROGRESSING: &str = "Progressing";
pub(crate) const AVAILABLE: &str = "Available";
pub(crate) const REPLICA_FAILURE: &str = "ReplicaFailure";
pub(crate) const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub(crate) const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub(crate) const PAUSED: &str = "DeploymentPaused";
pub(crate) const RESUMED: &str = "DeploymentResumed";

/// One reconcile of a Deployment (upstream `syncDeployment`).
pub(crate) async fn sync_deployment(ctx: &Ctx, obj: &Deployment) -> Result<Action, Error> {
    let key = ObjectRef::from_obj(obj);
    // Act only on complete caches, without blocking the queue that fills them.
    if !crate::queue::store_ready(&ctx.replica_sets) || !crate::queue::store_ready(&ctx.pods) {
        return Ok(Action::requeue(crate::queue::CACHE_WAIT));
    }
    let Some(d) = ctx.deployments.get(&key) else { return Ok(Action::await_change()) };
    // Deep-copy: never mutate the cache.
    let mut d = (*d).clone();
    let sel = selector(describe(&d), d.spec.as_ref().map(|s| &s.selector))?;
    if sel.is_none() {
        ctx.recorder
            .record(
                &d,
                EventType::Warning,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            )
            .await;
        return Ok(requeue(ctx, None));
    }
    let rss = claim_replica_sets(ctx, &d, &sel).await?;
    let after = if d.metadata.deletion_timestamp.is_some() {
        sync_status_only(ctx, &mut d, rss).await?
    } else {
        check_paused_conditions(ctx, &mut d).await?;
        let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        if paused || is_scaling_event(&d, &rss) {
            scale_sync(ctx, &mut d, rss).await?
        } else if du::is_rolling(&d) {
            rollout::rollout_rolling(ctx, &mut d, rss).await?
        } else {
            rollout::rollout_recreate(ctx, &mut d, rss).await?
        }
    };
    ctx.backoff.forget(&key);
    Ok(requeue(ctx, after))
}

/// Splits claimed ReplicaSets into the new one (template equal ignoring the hash label; oldest
/// wins) and the old ones.
pub(crate) fn split_new_old(d: &Deployment, mut rss: Vec<ReplicaSet>) -> (Option<ReplicaSet>, Vec<ReplicaSet>) {
    rss.sort_by_key(|rs| (created_at(&rs.metadata), rs.name_any()));
    let template = d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let idx = rss.iter().position(|rs| {
        rs.spec.as_ref().and_then(|s| s.template.as_ref()).is_some_and(|t| du::equal_ignore_hash(t, &template))
    });
    let new = idx.map(|i| rss.remove(i));
    (new, rss)
}

fn max_revision(rss: &[ReplicaSet]) -> i64 {
    rss.iter().map(|rs| du::revision(rs.metadata.annotations.as_ref())).max().unwrap_or(0)
}

pub(crate) fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).is_some_and(|s| s != i32::MAX)
}

pub(crate) fn get_condition<'a>(s: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    s.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

pub(crate) fn new_condition(type_: &str, status: &str, reason: &str, message: String) -> DeploymentCondition {
    let now = Time(jiff::Timestamp::now());
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// Upstream `SetDeploymentCondition`: same status and reason is a no-op; same status keeps the
/// transition time.
pub(crate) fn set_condition(s: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(cur) = get_condition(s, &c.type_) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    remove_condition(s, &c.type_);
    s.conditions.get_or_insert_with(Vec::new).push(c);
}

pub(crate) fn remove_condition(s: &mut DeploymentStatus, type_: &str) {
    if let Some(cs) = s.conditions.as_mut() {
        cs.retain(|c| c.type_ != type_);
        if cs.is_empty() {
            s.conditions = None;
        }
    }
}

/// Writes `d.status` (PUT status with the resourceVersion, so a stale view conflicts and retries).
pub(crate) async fn update_status(ctx: &Ctx, d: &mut Deployment) -> Result<(), Error> {
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default());
    let updated = api
        .replace_status(&d.name_any(), &PostParams::default(), d)
        .await
        .map_err(|e| Error::api(format!("update status of {}", describe(d)), e))?;
    d.metadata.resource_version = updated.metadata.resource_version;
    Ok(())
}

async fn check_paused_conditions(ctx: &Ctx, d: &mut Deployment) -> Result<(), Error> {
    if !has_progress_deadline(d) {
        return Ok(());
    }
    let status = d.status.get_or_insert_with(Default::default);
    let cond = get_condition(status, PROGRESSING);
    if cond.is_some_and(|c| c.reason.as_deref() == Some(TIMED_OUT)) {
        return Ok(());
    }
    let paused_exists = cond.is_some_and(|c| c.reason.as_deref() == Some(PAUSED));
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    let c = if paused && !paused_exists {
        new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused".into())
    } else if !paused && paused_exists {
        new_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed".into())
    } else {
        return Ok(());
    };
    set_condition(status, c);
    update_status(ctx, d).await
}

fn is_scaling_event(d: &Deployment, rss: &[ReplicaSet]) -> bool {
    let (new, old) = split_new_old(d, rss.to_vec());
    old.iter().chain(new.iter()).filter(|rs| rs_replicas(rs) > 0).any(|rs| {
        rs.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(du::DESIRED_REPLICAS))
            .and_then(|v| v.parse::<i32>().ok())
            .is_some_and(|desired| desired != replicas(d))
    })
}

/// Finds (and if `create`, creates) the new ReplicaSet and syncs revision annotations (upstream
/// `getAllReplicaSetsAndSyncRevision` + `getNewReplicaSet`).
pub(crate) async fn get_all_and_sync_revision(
    ctx: &Ctx,
    d: &mut Deployment,
    rss: Vec<ReplicaSet>,
    create: bool,
) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), Error> {
    let (existing, old) = split_new_old(d, rss);
    let new_revision = max_revision(&old) + 1;
    let ns = d.namespace().unwrap_or_default();
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    if let Some(existing) = existing {
        let mut copy = existing.clone();
        let annotations_changed = du::set_new_rs_annotations(d, &mut copy, new_revision, true);
        let min_ready = d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        let min_ready_changed = copy.spec.as_ref().and_then(|s| s.min_ready_seconds) != min_ready;
        if annotations_changed || min_ready_changed {
            let patch = serde_json::json!({
                "metadata": {"annotations": copy.metadata.annotations},
                "spec": {"minReadySeconds": min_ready},
            });
            let updated = rs_api
                .patch(&copy.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| Error::api(format!("update replicaset {}", copy.name_any()), e))?;
            return Ok((Some(updated), old));
        }
        let rev = copy.metadata.annotations.as_ref().and_then(|a| a.get(REVISION)).cloned().unwrap_or_default();
        set_deployment_revision(ctx, d, &rev).await?;
        if has_progress_deadline(d) {
            let status = d.status.get_or_insert_with(Default::default);
            if get_condition(status, PROGRESSING).is_none() {
                let msg = format!("Found new replica set \"{}\"", copy.name_any());
                set_condition(status, new_condition(PROGRESSING, "True", "FoundNewReplicaSet", msg));
                update_status(ctx, d).await?;
            }
        }
        return Ok((Some(copy), old));
    }
    if !create {
        return Ok((None, old));
    }
    let spec = d.spec.clone().unwrap_or_default();
    let collision = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = du::compute_hash(&spec.template, collision);
    let mut template = spec.template.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    meta.labels.get_or_insert_with(BTreeMap::new).insert(POD_TEMPLATE_HASH.into(), hash.clone());
    let labels = meta.labels.clone();
    let mut sel = spec.selector.clone();
    sel.match_labels.get_or_insert_with(BTreeMap::new).insert(POD_TEMPLATE_HASH.into(), hash.clone());
    let name = format!("{}-{}", d.name_any(), hash);
    let mut new_rs = ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels,
            owner_references: Some(vec![new_controller_ref(d)]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(0),
            min_ready_seconds: spec.min_ready_seconds,
            selector: sel,
            template: Some(template),
        }),
        status: None,
    };
    let all: Vec<&ReplicaSet> = old.iter().chain(std::iter::once(&new_rs)).collect();
    let count = du::new_rs_new_replicas(d, &all, &new_rs);
    if let Some(s) = new_rs.spec.as_mut() {
        s.replicas = Some(count);
    }
    du::set_new_rs_annotations(d, &mut new_rs, new_revision, false);
    let created = match rs_api.create(&PostParams::default(), &new_rs).await {
        Ok(rs) => rs,
        Err(e) if is_status(&e, 409) => {
            let current = rs_api.get_opt(&name).await.map_err(|e| Error::api("get existing replicaset", e))?;
            let same = current.as_ref().is_some_and(|rs| {
                let owned = rs.owner_references().iter().any(|r| Some(&r.uid) == d.metadata.uid.as_ref());
                owned
                    && rs
                        .spec
                        .as_ref()
                        .and_then(|s| s.template.as_ref())
                        .is_some_and(|t| du::equal_ignore_hash(t, &spec.template))
            });
            if same {
                // Our cache was behind; the next sync sees it.
                return Err(Error::Retry(format!("replicaset {name} exists but is not yet in the cache")));
            }
            let status = d.status.get_or_insert_with(Default::default);
            status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
            update_status(ctx, d).await?;
            return Err(Error::Retry(format!("hash collision for replicaset {name}")));
        }
        Err(e) => {
            let msg = format!("Failed to create new replica set \"{name}\": {e}");
            if has_progress_deadline(d) {
                let status = d.status.get_or_insert_with(Default::default);
                set_condition(status, new_condition(PROGRESSING, "False", "ReplicaSetCreateError", msg.clone()));
                let _ = update_status(ctx, d).await;
            }
            ctx.recorder.record(d, EventType::Warning, "FailedCreate", &msg).await;
            return Err(Error::api(format!("create replicaset {name}"), e));
        }
    };
    if count > 0 {
        ctx.recorder
            .record(
                d,
                EventType::Normal,
                "ScalingReplicaSet",
                &format!("Scaled up replica set {name} from 0 to {count}"),
            )
            .await;
    }
    set_deployment_revision(ctx, d, &new_revision.to_string()).await?;
    if has_progress_deadline(d) {
        let status = d.status.get_or_insert_with(Default::default);
        let msg = format!("Created new replica set \"{name}\"");
        set_condition(status, new_condition(PROGRESSING, "True", "NewReplicaSetCreated", msg));
        update_status(ctx, d).await?;
    }
    Ok((Some(created), old))
}

async fn set_deployment_revision(ctx: &Ctx, d: &mut Deployment, rev: &str) -> Result<(), Error> {
    if rev.is_empty() || d.annotations().get(REVISION).map(String::as_str) == Some(rev) {
        return Ok(());
    }
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default());
    let patch = serde_json::json!({"metadata": {"annotations": {REVISION: rev}}});
    let updated = api
        .patch(&d.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| Error::api(format!("set revision of {}", describe(d)), e))?;
    d.metadata.annotations = updated.metadata.annotations;
    d.metadata.resource_version = updated.metadata.resource_version;
    Ok(())
}

/// Scales `rs` to `new_scale` and refreshes its replica annotations; records ScalingReplicaSet.
/// Returns whether the size changed (upstream `scaleReplicaSetAndRecordEvent`/`scaleReplicaSet`).
pub(crate) async fn scale_rs(ctx: &Ctx, d: &Deployment, rs: &mut ReplicaSet, new_scale: i32) -> Result<bool, Error> {
    let old = rs_replicas(rs);
    let size_changed = old != new_scale;
    let mut copy = rs.clone();
    let anns_changed = du::set_replicas_annotations(&mut copy, replicas(d), replicas(d) + du::max_surge(d));
    if !size_changed && !anns_changed {
        return Ok(false);
    }
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "metadata": {"annotations": copy.metadata.annotations},
        "spec": {"replicas": new_scale},
    });
    let updated = api
        .patch(&rs.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| Error::api(format!("scale replicaset {}", rs.name_any()), e))?;
    *rs = updated;
    if size_changed {
        let op = if old < new_scale { "up" } else { "down" };
        let msg = format!("Scaled {op} replica set {} from {old} to {new_scale}", rs.name_any());
        ctx.recorder.record(d, EventType::Normal, "ScalingReplicaSet", &msg).await;
    }
    Ok(size_changed)
}

/// Scaling without a rollout: paused Deployments and replica-count changes (upstream `sync`).
async fn scale_sync(ctx: &Ctx, d: &mut Deployment, rss: Vec<ReplicaSet>) -> Result<Option<Duration>, Error> {
    let (mut new, mut old) = get_all_and_sync_revision(ctx, d, rss, false).await?;
    scale(ctx, d, &mut new, &mut old).await?;
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    if paused {
        cleanup(ctx, d, &old).await?;
    }
    sync_deployment_status(ctx, d, new.as_ref(), &old).await?;
    Ok(None)
}

async fn sync_status_only(ctx: &Ctx, d: &mut Deployment, rss: Vec<ReplicaSet>) -> Result<Option<Duration>, Error> {
    let (new, old) = get_all_and_sync_revision(ctx, d, rss, false).await?;
    sync_deployment_status(ctx, d, new.as_ref(), &old).await?;
    Ok(None)
}

fn active(rs: &ReplicaSet) -> bool {
    rs_replicas(rs) > 0
}

/// Upstream `scale`: brings the active ReplicaSets to the Deployment's size, proportionally when
/// more than one is active.
async fn scale(ctx: &Ctx, d: &Deployment, new: &mut Option<ReplicaSet>, old: &mut [ReplicaSet]) -> Result<(), Error> {
    let want = replicas(d);
    // FindActiveOrLatest.
    old.sort_by_key(|rs| std::cmp::Reverse((created_at(&rs.metadata), rs.name_any())));
    let active_count = old.iter().chain(new.iter()).filter(|rs| active(rs)).count();
    if new.is_some() || !old.is_empty() {
        let target: Option<&mut ReplicaSet> = match active_count {
            0 => match new.as_mut() {
                Some(n) => Some(n),
                None => old.first_mut(),
            },
            1 => old.iter_mut().chain(new.iter_mut()).find(|rs| active(rs)),
            _ => None,
        };
        if let Some(rs) = target {
            if rs_replicas(rs) != want {
                scale_rs(ctx, d, rs, want).await?;
            }
            return Ok(());
        }
    }
    let saturated = new.as_ref().is_some_and(|n| {
        let desired = n.annotations().get(du::DESIRED_REPLICAS).and_then(|v| v.parse::<i32>().ok());
        rs_replicas(n) == want && desired == Some(want) && du::rs_available(n) == want
    });
    if saturated {
        for rs in old.iter_mut().filter(|rs| active(rs)) {
            scale_rs(ctx, d, rs, 0).await?;
        }
        return Ok(());
    }
    if !du::is_rolling(d) {
        return Ok(());
    }
    let status_replicas = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let mut all: Vec<&mut ReplicaSet> = old.iter_mut().chain(new.iter_mut()).filter(|rs| active(rs)).collect();
    let total: i32 = all.iter().map(|rs| rs_replicas(rs)).sum();
    let allowed = if want > 0 { want + du::max_surge(d) } else { 0 };
    let to_add = allowed - total;
    if to_add > 0 {
        // Larger first, newer first on ties.
        all.sort_by_key(|rs| (std::cmp::Reverse(rs_replicas(rs)), std::cmp::Reverse(created_at(&rs.metadata))));
    } else {
        all.sort_by_key(|rs| (std::cmp::Reverse(rs_replicas(rs)), created_at(&rs.metadata)));
    }
    let mut added = 0;
    let mut sizes = Vec::with_capacity(all.len());
    for rs in &all {
        if to_add != 0 {
            let p = du::proportion(rs, d, status_replicas, to_add, added);
            sizes.push(rs_replicas(rs) + p);
            added += p;
        } else {
            sizes.push(rs_replicas(rs));
        }
    }
    let leftover = to_add - added;
    if leftover != 0
        && let Some(first) = sizes.first_mut()
    {
        *first = (*first + leftover).max(0);
    }
    for (rs, size) in all.into_iter().zip(sizes) {
        scale_rs(ctx, d, rs, size).await?;
    }
    Ok(())
}

/// Deletes old, fully scaled-down ReplicaSets beyond `revisionHistoryLimit`, oldest revision
/// first (upstream `cleanupDeployment`).
pub(crate) async fn cleanup(ctx: &Ctx, d: &Deployment, old: &[ReplicaSet]) -> Result<(), Error> {
    let Some(limit) = d.spec.as_ref().and_then(|s| s.revision_history_limit) else { return Ok(()) };
    let mut cleanable: Vec<&ReplicaSet> = old.iter().filter(|rs| rs.metadata.deletion_timestamp.is_none()).collect();
    let diff = cleanable.len() as i64 - i64::from(limit);
    if diff <= 0 {
        return Ok(());
    }
    cleanable.sort_by_key(|rs| (du::revision(rs.metadata.annotations.as_ref()), created_at(&rs.metadata)));
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default());
    for rs in cleanable.into_iter().take(diff as usize) {
        let status = rs.status.as_ref();
        let observed = status.and_then(|s| s.observed_generation).unwrap_or(0);
        if du::rs_status_replicas(rs) != 0 || rs_replicas(rs) != 0 || rs.metadata.generation.unwrap_or(0) > observed {
            continue;
        }
        match api.delete(&rs.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(Error::api(format!("delete old replicaset {}", rs.name_any()), e)),
        }
    }
    Ok(())
}

fn opt(v: i32) -> Option<i32> {
    (v != 0).then_some(v)
}

/// Status from the ReplicaSets (upstream `calculateStatus`).
pub(crate) fn calculate_status(d: &Deployment, new: Option<&ReplicaSet>, old: &[ReplicaSet]) -> DeploymentStatus {
    let all: Vec<&ReplicaSet> = old.iter().chain(new).collect();
    let available: i32 = all.iter().map(|rs| du::rs_available(rs)).sum();
    let total: i32 = all.iter().map(|rs| rs_replicas(rs)).sum();
    let prev = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: opt(all.iter().map(|rs| du::rs_status_replicas(rs)).sum()),
        updated_replicas: opt(new.map_or(0, du::rs_status_replicas)),
        ready_replicas: opt(all.iter().map(|rs| du::rs_ready(rs)).sum()),
        available_replicas: opt(available),
        unavailable_replicas: opt((total - available).max(0)),
        collision_count: prev.collision_count,
        conditions: prev.conditions.clone(),
        terminating_replicas: prev.terminating_replicas,
    };
    let c = if available >= replicas(d) - du::max_unavailable(d) {
        new_condition(AVAILABLE, "True", "MinimumReplicasAvailable", "Deployment has minimum availability.".into())
    } else {
        new_condition(
            AVAILABLE,
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
        )
    };
    set_condition(&mut status, c);
    status
}

async fn sync_deployment_status(
    ctx: &Ctx,
    d: &mut Deployment,
    new: Option<&ReplicaSet>,
    old: &[ReplicaSet],
) -> Result<(), Error> {
    let status = calculate_status(d, new, old);
    if d.status.as_ref() == Some(&status) {
        return Ok(());
    }
    d.status = Some(status);
    update_status(ctx, d).await
}

fn n(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// Upstream `DeploymentComplete`.
pub(crate) fn deployment_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let want = replicas(d);
    n(s.updated_replicas) == want
        && n(s.replicas) == want
        && n(s.available_replicas) == want
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

fn deployment_progressing(d: &Deployment, s: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(s.replicas) - n(s.updated_replicas);
    n(s.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(s.ready_replicas) > n(old.ready_replicas)
        || n(s.available_replicas) > n(old.available_replicas)
}

fn deadline(d: &Deployment) -> i64 {
    i64::from(d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).unwrap_or(600))
}

fn timed_out(d: &Deployment, s: &DeploymentStatus, now: i64) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(c) = get_condition(s, PROGRESSING) else { return false };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => false,
        Some(TIMED_OUT) => true,
        _ => c.last_update_time.as_ref().is_some_and(|t| t.0.as_second() + deadline(d) < now),
    }
}

/// Updates status and the Progressing condition after a rollout step; returns when to look again
/// for a stuck rollout (upstream `syncRolloutStatus` + `requeueStuckDeployment`).
pub(crate) async fn sync_rollout_status(
    ctx: &Ctx,
    d: &mut Deployment,
    new: Option<&ReplicaSet>,
    old: &[ReplicaSet],
) -> Result<Option<Duration>, Error> {
    let mut status = calculate_status(d, new, old);
    if !has_progress_deadline(d) {
        remove_condition(&mut status, PROGRESSING);
    }
    let prev = d.status.clone().unwrap_or_default();
    let current = get_condition(&prev, PROGRESSING).cloned();
    let complete_already = n(status.replicas) == n(status.updated_replicas)
        && current.as_ref().is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE));
    let now = jiff::Timestamp::now().as_second();
    if has_progress_deadline(d) && !complete_already {
        let subject = |what: &str| match new {
            Some(rs) => format!("ReplicaSet \"{}\" {what}", rs.name_any()),
            None => format!("Deployment \"{}\" {what}", d.name_any()),
        };
        if deployment_complete(d, &status) {
            let c = new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, subject("has successfully progressed."));
            set_condition(&mut status, c);
        } else if deployment_progressing(d, &status) {
            let mut c = new_condition(PROGRESSING, "True", "ReplicaSetUpdated", subject("is progressing."));
            if let Some(cur) = &current {
                if cur.status == "True" {
                    c.last_transition_time = cur.last_transition_time.clone();
                }
                remove_condition(&mut status, PROGRESSING);
            }
            set_condition(&mut status, c);
        } else if timed_out(d, &status, now) {
            let c = new_condition(PROGRESSING, "False", TIMED_OUT, subject("has timed out progressing."));
            set_condition(&mut status, c);
        }
    }
    let failure = old.iter().chain(new).find_map(|rs| {
        rs.status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == REPLICA_FAILURE && c.status == "True")
            .cloned()
    });
    match failure {
        Some(f) => set_condition(
            &mut status,
            DeploymentCondition {
                type_: REPLICA_FAILURE.into(),
                status: f.status,
                reason: f.reason,
                message: f.message,
                last_transition_time: f.last_transition_time.clone(),
                last_update_time: f.last_transition_time,
            },
        ),
        None => remove_condition(&mut status, REPLICA_FAILURE),
    }
    if d.status.as_ref() == Some(&status) {
        // requeueStuckDeployment
        let Some(c) = get_condition(&status, PROGRESSING) else { return Ok(None) };
        if !has_progress_deadline(d) || deployment_complete(d, &status) || c.reason.as_deref() == Some(TIMED_OUT) {
            return Ok(None);
        }
        let last = c.last_update_time.as_ref().map_or(now, |t| t.0.as_second());
        let after = last + deadline(d) - now;
        return Ok(Some(Duration::from_secs(after.max(0) as u64 + 1)));
    }
    d.status = Some(status);
    update_status(ctx, d).await?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, ReplicaSetStatus};
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};

    fn template(image: &str, hash: Option<&str>) -> PodTemplateSpec {
        let mut labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        if let Some(h) = hash {
            labels.insert(POD_TEMPLATE_HASH.into(), h.into());
        }
        PodTemplateSpec {
            metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
            spec: Some(PodSpec {
                containers: vec![Container { name: "c".into(), image: Some(image.into()), ..Default::default() }],
                ..Default::default()
            }),
        }
    }

    fn dep(replicas: i32, image: &str) -> Deployment {
        Deployment {
            metadata: ObjectMeta { name: Some("web".into()), generation: Some(2), ..Default::default() },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                template: template(image, None),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn rs(name: &str, image: &str, created: i64, spec: i32, available: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(jiff::Timestamp::from_second(created).unwrap_or_default())),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(spec),
                template: Some(template(image, Some(name))),
                ..Default::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas: spec,
                available_replicas: Some(available),
                ready_replicas: Some(available),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn new_replica_set_is_the_oldest_with_an_equal_template_ignoring_hash() {
        let d = dep(3, "nginx:2");
        let (new, old) = split_new_old(
            &d,
            vec![rs("c", "nginx:2", 30, 0, 0), rs("a", "nginx:1", 10, 3, 3), rs("b", "nginx:2", 20, 1, 0)],
        );
        assert_eq!(new.map(|r| r.name_any()), Some("b".to_string()));
        assert_eq!(old.iter().map(|r| r.name_any()).collect::<Vec<_>>(), vec!["a", "c"]);
    }

    #[test]
    fn status_counts_and_available_condition() {
        let d = dep(4, "nginx:2");
        let new = rs("n", "nginx:2", 20, 2, 1);
        let old = vec![rs("o", "nginx:1", 10, 3, 3)];
        let s = calculate_status(&d, Some(&new), &old);
        assert_eq!(s.replicas, Some(5));
        assert_eq!(s.updated_replicas, Some(2));
        assert_eq!(s.available_replicas, Some(4));
        assert_eq!(s.unavailable_replicas, Some(1));
        assert_eq!(s.observed_generation, Some(2));
        let a = get_condition(&s, AVAILABLE).expect("Available");
        // maxUnavailable 25% of 4 = 1: 4 available >= 3.
        assert_eq!((a.status.as_str(), a.reason.as_deref()), ("True", Some("MinimumReplicasAvailable")));
        assert!(!deployment_complete(&d, &s));
        let done = calculate_status(&d, Some(&rs("n", "nginx:2", 20, 4, 4)), &[]);
        assert!(deployment_complete(&d, &done));
    }

    #[test]
    fn progress_deadline_is_measured_from_the_last_update() {
        let mut d = dep(1, "nginx:1");
        if let Some(s) = d.spec.as_mut() {
            s.progress_deadline_seconds = Some(10);
        }
        let mut status = DeploymentStatus::default();
        let mut c = new_condition(PROGRESSING, "True", "ReplicaSetUpdated", "x".into());
        c.last_update_time = Some(Time(jiff::Timestamp::from_second(1_000).unwrap_or_default()));
        set_condition(&mut status, c);
        assert!(!timed_out(&d, &status, 1_005));
        assert!(timed_out(&d, &status, 1_011));
        let done = new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, "y".into());
        set_condition(&mut status, done);
        assert!(!timed_out(&d, &status, 99_999));
    }

    #[test]
    fn set_condition_keeps_transition_time_when_status_unchanged() {
        let mut status = DeploymentStatus::default();
        let mut first = new_condition(PROGRESSING, "True", "NewReplicaSetCreated", "a".into());
        first.last_transition_time = Some(Time(jiff::Timestamp::from_second(5).unwrap_or_default()));
        set_condition(&mut status, first);
        set_condition(&mut status, new_condition(PROGRESSING, "True", "ReplicaSetUpdated", "b".into()));
        let c = get_condition(&status, PROGRESSING).expect("cond");
        assert_eq!(c.reason.as_deref(), Some("ReplicaSetUpdated"));
        assert_eq!(c.last_transition_time.as_ref().map(|t| t.0.as_second()), Some(5));
        assert_eq!(status.conditions.as_ref().map(Vec::len), Some(1));
    }
}
