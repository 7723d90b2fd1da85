//! Disruption controller (k8s `pkg/controller/disruption`): keeps each PodDisruptionBudget's status
//! (`currentHealthy`, `desiredHealthy`, `expectedPods`, `disruptionsAllowed`, `disruptedPods`,
//! `observedGeneration` and the `DisruptionAllowed` condition) in line with the pods it selects,
//! using the pods' controllers' scale for percentages and `maxUnavailable`. The pods/eviction
//! subresource reads that status to allow or refuse evictions.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ListParams, PostParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::error::is_status;
use crate::events::{EventType, Recorder};
use crate::queue::{Backoff, on_error};
use crate::util::{controller_ref, is_pod_ready};
use crate::{ControllersConfig, Error};

/// How long a pod stays in `disruptedPods` waiting for its deletion to be observed (upstream
/// `DeletionTimeout`).
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

struct Ctx {
    client: kube::Client,
    recorder: Recorder,
    backoff: Backoff<ObjectRef<PodDisruptionBudget>>,
}

/// Runs the disruption controller until cancelled.
pub async fn run(client: kube::Client, config: ControllersConfig, cancel: CancellationToken) -> Result<(), Error> {
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), "controllermanager"),
        backoff: Backoff::default(),
    });
    let err_ctx = ctx.clone();
    let controller = Controller::new(Api::<PodDisruptionBudget>::all(client.clone()), watcher::Config::default());
    let pdbs = controller.store();
    controller
        .watches(Api::<Pod>::all(client), watcher::Config::default(), move |pod: Pod| {
            let ns = pod.namespace().unwrap_or_default();
            let labels = pod.labels().clone();
            pdbs.state()
                .into_iter()
                .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
                .filter(|p| pdb_selector(p).ok().flatten().is_some_and(|s| s.matches(&labels)))
                .map(|p| ObjectRef::from_obj(&*p))
                .collect::<Vec<_>>()
        })
        .with_config(kube::runtime::controller::Config::default().concurrency(config.concurrency))
        .graceful_shutdown_on(cancel.cancelled_owned())
        .run(
            |pdb: Arc<PodDisruptionBudget>, ctx: Arc<Ctx>| async move { sync_pdb(&ctx, &pdb).await },
            move |pdb: Arc<PodDisruptionBudget>, err: &Error, _| {
                on_error(&err_ctx.backoff, ObjectRef::from_obj(&*pdb), err)
            },
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
    Ok(())
}

/// The PDB's selector: `None` (nil) matches nothing; `{}` matches every pod (policy/v1).
fn pdb_selector(pdb: &PodDisruptionBudget) -> Result<Option<Selector>, Error> {
    let Some(sel) = pdb.spec.as_ref().and_then(|s| s.selector.clone()) else { return Ok(None) };
    Selector::try_from(sel).map(Some).map_err(|e| Error::InvalidSelector {
        object: format!("PodDisruptionBudget {}/{}", pdb.namespace().unwrap_or_default(), pdb.name_any()),
        message: e.to_string(),
    })
}

/// Upstream `GetScaledValueFromIntOrPercent`.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| "invalid value for IntOrString: invalid type: string is not a percentage".to_string())?;
            let prod = pct * i64::from(total);
            let v = if round_up { (prod + 99).div_euclid(100) } else { prod.div_euclid(100) };
            i32::try_from(v).map_err(|e| e.to_string())
        }
    }
}

/// The numbers of one budget: (expectedCount, desiredHealthy), upstream `getExpectedPodCount`.
/// `scale` is the summed scale of the pods' controllers, asked for only when needed.
pub fn expected_and_desired(
    min_available: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    pod_count: i32,
    scale: impl FnOnce() -> Result<i32, String>,
) -> Result<(i32, i32), String> {
    if let Some(max) = max_unavailable {
        let expected = scale()?;
        let max = scaled_value(max, expected, true)?;
        return Ok((expected, (expected - max).max(0)));
    }
    match min_available {
        Some(IntOrString::Int(i)) => Ok((pod_count, *i)),
        Some(min @ IntOrString::String(_)) => {
            let expected = scale()?;
            Ok((expected, scaled_value(min, expected, true)?))
        }
        None => Ok((0, 0)),
    }
}

/// `disruptionsAllowed` as upstream `updatePdbStatus` computes it (0 while no pod is expected).
pub fn disruptions_allowed(current_healthy: i32, desired_healthy: i32, expected: i32) -> i32 {
    let allowed = current_healthy - desired_healthy;
    if expected <= 0 || allowed <= 0 { 0 } else { allowed }
}

/// The summed `spec.replicas` of the controllers of `pods` (upstream `getExpectedScale`): a pod of
/// a Deployment counts its Deployment's scale once; pods without a controller are skipped.
async fn expected_scale(client: &kube::Client, ns: &str, pods: &[Pod]) -> Result<i32, String> {
    // controller ref uid -> (uid of the object whose scale counts, its replicas)
    let mut owners: HashMap<String, (String, i32)> = HashMap::new();
    for pod in pods {
        let Some(r) = controller_ref(&pod.metadata) else { continue };
        if owners.contains_key(&r.uid) {
            continue;
        }
        let missing = || format!("found no controllers for pod {:?}", pod.name_any());
        let owner = match (r.api_version.as_str(), r.kind.as_str()) {
            ("apps/v1", "ReplicaSet") => {
                let rs = Api::<ReplicaSet>::namespaced(client.clone(), ns).get(&r.name).await.map_err(|_| missing())?;
                match controller_ref(&rs.metadata).filter(|o| o.kind == "Deployment") {
                    Some(d) => {
                        let dep = Api::<Deployment>::namespaced(client.clone(), ns)
                            .get(&d.name)
                            .await
                            .map_err(|_| missing())?;
                        (dep.uid().unwrap_or_default(), dep.spec.and_then(|s| s.replicas).unwrap_or(1))
                    }
                    None => (r.uid.clone(), rs.spec.and_then(|s| s.replicas).unwrap_or(1)),
                }
            }
            ("v1", "ReplicationController") => {
                let rc = Api::<ReplicationController>::namespaced(client.clone(), ns)
                    .get(&r.name)
                    .await
                    .map_err(|_| missing())?;
                (r.uid.clone(), rc.spec.and_then(|s| s.replicas).unwrap_or(1))
            }
            ("apps/v1", "StatefulSet") => {
                let ss =
                    Api::<StatefulSet>::namespaced(client.clone(), ns).get(&r.name).await.map_err(|_| missing())?;
                (r.uid.clone(), ss.spec.and_then(|s| s.replicas).unwrap_or(1))
            }
            _ => return Err(missing()),
        };
        owners.insert(r.uid.clone(), owner);
    }
    let unique: HashMap<String, i32> = owners.into_values().collect();
    Ok(unique.values().sum())
}

/// Upstream `UpdateDisruptionAllowedCondition`, keeping the transition time when unchanged.
fn allowed_condition(old: &[Condition], allowed: i32, generation: i64, failed: Option<&str>) -> Vec<Condition> {
    let (status, reason, message) = match failed {
        Some(m) => ("False", "SyncFailed", m.to_string()),
        None if allowed > 0 => ("True", "SufficientPods", String::new()),
        None => ("False", "InsufficientPods", String::new()),
    };
    let mut out: Vec<Condition> = old.iter().filter(|c| c.type_ != "DisruptionAllowed").cloned().collect();
    let prev = old.iter().find(|c| c.type_ == "DisruptionAllowed");
    let time = match prev {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Time(jiff::Timestamp::now()),
    };
    out.push(Condition {
        type_: "DisruptionAllowed".into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: Some(generation),
        last_transition_time: time,
    });
    out
}

async fn sync_pdb(ctx: &Ctx, pdb: &PodDisruptionBudget) -> Result<Action, Error> {
    let ns = pdb.namespace().unwrap_or_default();
    let name = pdb.name_any();
    let generation = pdb.metadata.generation.unwrap_or(0);
    let old = pdb.status.clone().unwrap_or_default();
    let sel = pdb_selector(pdb);
    let pods: Vec<Pod> = match &sel {
        Ok(Some(s)) => Api::<Pod>::namespaced(ctx.client.clone(), &ns)
            .list(&ListParams::default())
            .await
            .map_err(|e| Error::api(format!("list pods for poddisruptionbudget {ns}/{name}"), e))?
            .items
            .into_iter()
            .filter(|p| s.matches(p.labels()))
            .collect(),
        _ => Vec::new(),
    };
    if pods.is_empty() && sel.is_ok() {
        ctx.recorder.record(pdb, EventType::Normal, "NoPods", "No matching pods found").await;
    }
    let spec = pdb.spec.clone().unwrap_or_default();
    let count = i32::try_from(pods.len()).unwrap_or(i32::MAX);
    let numbers = match &sel {
        Err(e) => Err(e.to_string()),
        Ok(_) => {
            let scale = if spec.max_unavailable.is_some() || matches!(spec.min_available, Some(IntOrString::String(_)))
            {
                Some(expected_scale(&ctx.client, &ns, &pods).await)
            } else {
                None
            };
            expected_and_desired(spec.min_available.as_ref(), spec.max_unavailable.as_ref(), count, || {
                scale.unwrap_or(Ok(0))
            })
        }
    };
    let now = jiff::Timestamp::now();
    // Upstream `buildDisruptedPodMap`: entries of pods still alive and not yet expired.
    let mut disrupted: BTreeMap<String, Time> = BTreeMap::new();
    let mut next_expiry: Option<Duration> = None;
    for (pod_name, at) in old.disrupted_pods.clone().unwrap_or_default() {
        let Some(pod) = pods.iter().find(|p| p.name_any() == pod_name) else { continue };
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let age = Duration::from_secs(u64::try_from(now.as_second() - at.0.as_second()).unwrap_or(0));
        if age >= DELETION_TIMEOUT {
            let msg = format!("Pod {ns}/{pod_name} was expected to be deleted but it wasn't");
            ctx.recorder.record(pdb, EventType::Warning, "NotDeleted", &msg).await;
            continue;
        }
        let left = DELETION_TIMEOUT - age;
        next_expiry = Some(next_expiry.map_or(left, |n| n.min(left)));
        disrupted.insert(pod_name, at);
    }
    let current_healthy = i32::try_from(
        pods.iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| !disrupted.contains_key(&p.name_any()))
            .filter(|p| is_pod_ready(p))
            .count(),
    )
    .unwrap_or(i32::MAX);
    let old_conditions = old.conditions.clone().unwrap_or_default();
    let status = match numbers {
        Ok((expected, desired)) => {
            let allowed = disruptions_allowed(current_healthy, desired, expected);
            PodDisruptionBudgetStatus {
                current_healthy,
                desired_healthy: desired,
                expected_pods: expected,
                disruptions_allowed: allowed,
                disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
                observed_generation: Some(generation),
                conditions: Some(allowed_condition(&old_conditions, allowed, generation, None)),
            }
        }
        // Upstream `failSafe`: no disruptions while the budget cannot be computed.
        Err(msg) => PodDisruptionBudgetStatus {
            disruptions_allowed: 0,
            observed_generation: Some(generation),
            conditions: Some(allowed_condition(&old_conditions, 0, generation, Some(&msg))),
            ..old.clone()
        },
    };
    ctx.backoff.forget(&ObjectRef::from_obj(pdb));
    if normalized(&status) != normalized(&old) {
        let mut body = pdb.clone();
        body.status = Some(status);
        let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &ns);
        match api.replace_status(&name, &PostParams::default(), &body).await {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => return Ok(Action::await_change()),
            Err(e) if is_status(&e, 409) => return Ok(Action::requeue(Duration::from_millis(50))),
            Err(e) => return Err(Error::api(format!("update status of poddisruptionbudget {ns}/{name}"), e)),
        }
    }
    Ok(next_expiry.map_or_else(Action::await_change, Action::requeue))
}

/// A status with an empty `disruptedPods` map and no map treated alike.
fn normalized(s: &PodDisruptionBudgetStatus) -> PodDisruptionBudgetStatus {
    let mut s = s.clone();
    if s.disrupted_pods.as_ref().is_some_and(BTreeMap::is_empty) {
        s.disrupted_pods = None;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> IntOrString {
        IntOrString::String(v.into())
    }

    #[test]
    fn percentages_round_up() {
        assert_eq!(scaled_value(&s("50%"), 5, true), Ok(3));
        assert_eq!(scaled_value(&s("10%"), 1, true), Ok(1));
        assert_eq!(scaled_value(&IntOrString::Int(2), 5, true), Ok(2));
        assert!(scaled_value(&s("x"), 5, true).is_err());
    }

    #[test]
    fn budget_math_matches_upstream() {
        let int = IntOrString::Int;
        // minAvailable int: expected = pods matched, desired = the number.
        assert_eq!(expected_and_desired(Some(&int(2)), None, 3, || Err("unused".into())), Ok((3, 2)));
        // minAvailable percent: from the controllers' scale.
        assert_eq!(expected_and_desired(Some(&s("50%")), None, 3, || Ok(5)), Ok((5, 3)));
        // maxUnavailable: expected - ceil(max).
        assert_eq!(expected_and_desired(None, Some(&int(1)), 3, || Ok(4)), Ok((4, 3)));
        assert_eq!(expected_and_desired(None, Some(&s("30%")), 3, || Ok(4)), Ok((4, 2)));
        assert_eq!(expected_and_desired(None, Some(&int(9)), 3, || Ok(4)), Ok((4, 0)));
        assert!(expected_and_desired(None, Some(&int(1)), 3, || Err("no controller".into())).is_err());
        assert_eq!(disruptions_allowed(3, 2, 3), 1);
        assert_eq!(disruptions_allowed(1, 2, 3), 0);
        assert_eq!(disruptions_allowed(0, 0, 0), 0);
    }
}
