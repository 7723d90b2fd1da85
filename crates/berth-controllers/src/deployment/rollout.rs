//! The two rollout strategies (k8s `rolling.go`, `recreate.go`): RollingUpdate bounded by
//! maxSurge/maxUnavailable, and Recreate (old pods all gone before new ones start).

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::Ctx;
use super::sync::{cleanup, deployment_complete, get_all_and_sync_revision, scale_rs, sync_rollout_status};
use super::util::{self as du, replicas, rs_replicas};
use crate::Error;
use crate::util::{controller_ref, created_at};

/// Upstream `rolloutRolling`.
pub(crate) async fn rollout_rolling(
    ctx: &Ctx,
    d: &mut Deployment,
    rss: Vec<ReplicaSet>,
) -> Result<Option<Duration>, Error> {
    let (new, mut old) = get_all_and_sync_revision(ctx, d, rss, true).await?;
    let Some(mut new) = new else { return Ok(None) };
    if reconcile_new(ctx, d, &old, &mut new).await? {
        return sync_rollout_status(ctx, d, Some(&new), &old).await;
    }
    if reconcile_old(ctx, d, &mut old, &new).await? {
        return sync_rollout_status(ctx, d, Some(&new), &old).await;
    }
    let status = super::sync::calculate_status(d, Some(&new), &old);
    if deployment_complete(d, &status) {
        cleanup(ctx, d, &old).await?;
    }
    sync_rollout_status(ctx, d, Some(&new), &old).await
}

async fn reconcile_new(ctx: &Ctx, d: &Deployment, old: &[ReplicaSet], new: &mut ReplicaSet) -> Result<bool, Error> {
    let want = replicas(d);
    let cur = rs_replicas(new);
    if cur == want {
        return Ok(false);
    }
    if cur > want {
        return scale_rs(ctx, d, new, want).await;
    }
    let all: Vec<&ReplicaSet> = old.iter().chain(std::iter::once(&*new)).collect();
    let target = du::new_rs_new_replicas(d, &all, new);
    scale_rs(ctx, d, new, target).await
}

async fn reconcile_old(ctx: &Ctx, d: &Deployment, old: &mut [ReplicaSet], new: &ReplicaSet) -> Result<bool, Error> {
    let old_pods: i32 = old.iter().map(rs_replicas).sum();
    if old_pods == 0 {
        return Ok(false);
    }
    let all_pods = old_pods + rs_replicas(new);
    let min_available = replicas(d) - du::max_unavailable(d);
    let new_unavailable = rs_replicas(new) - du::rs_available(new);
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Ok(false);
    }
    old.sort_by_key(|rs| (created_at(&rs.metadata), kube::ResourceExt::name_any(rs)));
    // cleanupUnhealthyReplicas: scale down old RSs' unavailable pods first.
    let mut cleaned = 0;
    for rs in old.iter_mut() {
        if cleaned >= max_scaled_down {
            break;
        }
        let (spec, avail) = (rs_replicas(rs), du::rs_available(rs));
        if spec == 0 || spec == avail {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(spec - avail);
        if down < 0 {
            // A status from before a scale-down (more available than desired): never scale up here.
            return Err(Error::Retry(format!(
                "when cleaning up unhealthy replicas, got invalid request to scale down {} {} -> {}",
                kube::ResourceExt::name_any(rs),
                spec,
                spec - down
            )));
        }
        scale_rs(ctx, d, rs, spec - down).await?;
        cleaned += down;
    }
    // scaleDownOldReplicaSetsForRollingUpdate.
    let available: i32 = old.iter().map(du::rs_available).sum::<i32>() + du::rs_available(new);
    let mut scaled = 0;
    if available > min_available {
        let total_down = available - min_available;
        for rs in old.iter_mut() {
            if scaled >= total_down {
                break;
            }
            let spec = rs_replicas(rs);
            if spec == 0 {
                continue;
            }
            let down = spec.min(total_down - scaled);
            scale_rs(ctx, d, rs, spec - down).await?;
            scaled += down;
        }
    }
    Ok(cleaned + scaled > 0)
}

/// Upstream `rolloutRecreate`.
pub(crate) async fn rollout_recreate(
    ctx: &Ctx,
    d: &mut Deployment,
    rss: Vec<ReplicaSet>,
) -> Result<Option<Duration>, Error> {
    let (new, mut old) = get_all_and_sync_revision(ctx, d, rss, false).await?;
    let mut scaled_down = false;
    for rs in old.iter_mut().filter(|rs| rs_replicas(rs) > 0) {
        scaled_down |= scale_rs(ctx, d, rs, 0).await?;
    }
    if scaled_down {
        return sync_rollout_status(ctx, d, new.as_ref(), &old).await;
    }
    if old_pods_running(ctx, &old) {
        return sync_rollout_status(ctx, d, new.as_ref(), &old).await;
    }
    let mut new = match new {
        Some(n) => n,
        None => {
            let all: Vec<ReplicaSet> = old.to_vec();
            let (n, o) = get_all_and_sync_revision(ctx, d, all, true).await?;
            old = o;
            let Some(n) = n else { return Ok(None) };
            n
        }
    };
    scale_rs(ctx, d, &mut new, replicas(d)).await?;
    let status = super::sync::calculate_status(d, Some(&new), &old);
    if deployment_complete(d, &status) {
        cleanup(ctx, d, &old).await?;
    }
    sync_rollout_status(ctx, d, Some(&new), &old).await
}

/// Whether any pod of the old ReplicaSets may still run (upstream `oldPodsRunning`).
fn old_pods_running(ctx: &Ctx, old: &[ReplicaSet]) -> bool {
    if old.iter().map(du::rs_status_replicas).sum::<i32>() > 0 {
        return true;
    }
    let uids: Vec<&str> = old.iter().filter_map(|rs| rs.metadata.uid.as_deref()).collect();
    ctx.pods.state().iter().any(|p| {
        let owned = controller_ref(&p.metadata).is_some_and(|r| uids.contains(&r.uid.as_str()));
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        owned && !matches!(phase, Some("Failed" | "Succeeded"))
    })
}
