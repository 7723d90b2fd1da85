//! Deployment controller (with the ReplicaSet controller) against a real in-process apiserver.
//! No kubelet runs: the tests flip pods Ready through the status subresource.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use common::{Env, active_pods, mark_all_ready, template, wait_for};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

fn deployment(name: &str, replicas: i32, strategy: Value, extra: Value) -> Deployment {
    let mut spec = json!({
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": template(json!({"app": name}), "nginx:1"),
        "strategy": strategy,
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).expect("deployment")
}

fn rolling(surge: Value, unavailable: Value) -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
}

async fn set_image(api: &Api<Deployment>, name: &str, image: &str) {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("set image");
}

async fn rss_of(client: &Client, app: &str) -> Vec<ReplicaSet> {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default().labels(&format!("app={app}"))).await.map(|l| l.items).unwrap_or_default()
}

/// What `kubectl rollout status` waits for.
fn rollout_done(d: &Deployment) -> bool {
    let Some(s) = &d.status else { return false };
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    s.observed_generation >= d.metadata.generation
        && s.updated_replicas.unwrap_or(0) == want
        && s.replicas.unwrap_or(0) == want
        && s.available_replicas.unwrap_or(0) == want
}

/// Marks pods ready until the rollout is done.
async fn drive_rollout(env: &Env, name: &str) -> Deployment {
    let api: Api<Deployment> = Api::namespaced(env.client.clone(), "default");
    wait_for(60, "rollout complete", || async {
        mark_all_ready(&env.client, "default", &format!("app={name}")).await;
        let d = api.get(name).await.ok()?;
        rollout_done(&d).then_some(d)
    })
    .await
}

fn condition<'a>(d: &'a Deployment, t: &str) -> Option<&'a k8s_openapi::api::apps::v1::DeploymentCondition> {
    d.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == t)
}

#[tokio::test]
async fn creates_hashed_replica_set_with_revision_one_and_completes() {
    let env = Env::start(&["replicaset", "deployment"]).await;
    let api: Api<Deployment> = Api::namespaced(env.client.clone(), "default");
    api.create(&PostParams::default(), &deployment("web", 3, rolling(json!(1), json!(0)), json!({})))
        .await
        .expect("create");
    let rs = wait_for(20, "replicaset", || async { rss_of(&env.client, "web").await.into_iter().next() }).await;
    let hash = rs.labels().get("pod-template-hash").cloned().expect("hash label");
    assert_eq!(rs.name_any(), format!("web-{hash}"));
    let spec = rs.spec.clone().expect("spec");
    assert_eq!(spec.selector.match_labels.as_ref().and_then(|m| m.get("pod-template-hash")), Some(&hash));
    let tl = spec.template.and_then(|t| t.metadata).and_then(|m| m.labels).unwrap_or_default();
    assert_eq!(tl.get("pod-template-hash"), Some(&hash));
    let anns = rs.annotations();
    assert_eq!(anns.get("deployment.kubernetes.io/revision").map(String::as_str), Some("1"));
    assert_eq!(anns.get("deployment.kubernetes.io/desired-replicas").map(String::as_str), Some("3"));
    assert_eq!(anns.get("deployment.kubernetes.io/max-replicas").map(String::as_str), Some("4"));
    let d = drive_rollout(&env, "web").await;
    assert_eq!(d.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some("1"));
    let available = condition(&d, "Available").expect("Available");
    assert_eq!((available.status.as_str(), available.reason.as_deref()), ("True", Some("MinimumReplicasAvailable")));
    let d = wait_for(20, "NewReplicaSetAvailable", || async {
        let d = api.get("web").await.ok()?;
        (condition(&d, "Progressing")?.reason.as_deref() == Some("NewReplicaSetAvailable")).then_some(d)
    })
    .await;
    assert_eq!(
        condition(&d, "Progressing").and_then(|c| c.message.clone()),
        Some(format!("ReplicaSet \"web-{hash}\" has successfully progressed."))
    );
    let events: Api<Event> = Api::namespaced(env.client.clone(), "default");
    let evs = events.list(&ListParams::default()).await.expect("events");
    let want = format!("Scaled up replica set web-{hash} from 0 to 3");
    assert!(
        evs.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("ScalingReplicaSet") && e.message.as_deref() == Some(&want)),
        "no event {want:?}"
    );
}

/// Watches a deployment's ReplicaSets and pods, tracking the largest sum of RS replicas and the
/// fewest ready pods seen while `armed`.
struct Observer {
    max_spec: Arc<AtomicI32>,
    min_ready: Arc<AtomicI32>,
    armed: Arc<AtomicBool>,
    stores: (reflector::Store<ReplicaSet>, reflector::Store<Pod>),
}

impl Observer {
    fn start(client: &Client, app: &str) -> Observer {
        let o = Observer {
            max_spec: Arc::new(AtomicI32::new(0)),
            min_ready: Arc::new(AtomicI32::new(i32::MAX)),
            armed: Arc::new(AtomicBool::new(false)),
            stores: (reflector::store::<ReplicaSet>().0, reflector::store::<Pod>().0),
        };
        let mut o = o;
        let lp = watcher::Config::default().labels(&format!("app={app}"));
        let (rs_store, rs_writer) = reflector::store::<ReplicaSet>();
        o.stores.0 = rs_store.clone();
        let rs_stream = reflector::reflector(
            rs_writer,
            watcher(Api::<ReplicaSet>::namespaced(client.clone(), "default"), lp.clone()),
        )
        .default_backoff();
        let (max, armed) = (o.max_spec.clone(), o.armed.clone());
        tokio::spawn(rs_stream.for_each(move |_| {
            if armed.load(Ordering::SeqCst) {
                let sum: i32 = rs_store.state().iter().filter_map(|rs| rs.spec.as_ref()?.replicas).sum();
                max.fetch_max(sum, Ordering::SeqCst);
            }
            futures::future::ready(())
        }));
        let (pod_store, pod_writer) = reflector::store::<Pod>();
        o.stores.1 = pod_store.clone();
        let pod_stream =
            reflector::reflector(pod_writer, watcher(Api::<Pod>::namespaced(client.clone(), "default"), lp))
                .default_backoff();
        let (min, armed) = (o.min_ready.clone(), o.armed.clone());
        tokio::spawn(pod_stream.for_each(move |_| {
            if armed.load(Ordering::SeqCst) {
                let ready = pod_store
                    .state()
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .filter(|p| {
                        p.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                    })
                    .count() as i32;
                min.fetch_min(ready, Ordering::SeqCst);
            }
            futures::future::ready(())
        }));
        o
    }
}

#[tokio::test]
async fn rolling_update_stays_within_surge_and_unavailability() {
    let env = Env::start(&["replicaset", "deployment"]).await;
    let api: Api<Deployment> = Api::namespaced(env.client.clone(), "default");
    api.create(&PostParams::default(), &deployment("roll", 4, rolling(json!(1), json!(1)), json!({})))
        .await
        .expect("create");
    drive_rollout(&env, "roll").await;
    let obs = Observer::start(&env.client, "roll");
    // Let the observer's caches fill before arming it.
    let synced = async {
        obs.stores.0.wait_until_ready().await.ok();
        obs.stores.1.wait_until_ready().await.ok();
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), synced).await.expect("observer synced");
    obs.armed.store(true, Ordering::SeqCst);
    set_image(&api, "roll", "nginx:2").await;
    let d = drive_rollout(&env, "roll").await;
    obs.armed.store(false, Ordering::SeqCst);
    let evs =
        Api::<Event>::namespaced(env.client.clone(), "default").list(&ListParams::default()).await.expect("events");
    let mut msgs: Vec<(String, String)> = evs
        .items
        .iter()
        .map(|e| (e.metadata.resource_version.clone().unwrap_or_default(), e.message.clone().unwrap_or_default()))
        .collect();
    msgs.sort_by_key(|(rv, _)| rv.parse::<i64>().unwrap_or(0));
    assert!(
        obs.max_spec.load(Ordering::SeqCst) <= 5,
        "surge exceeded: {} {msgs:#?}",
        obs.max_spec.load(Ordering::SeqCst)
    );
    let min_ready = obs.min_ready.load(Ordering::SeqCst);
    assert!(min_ready >= 3, "too many unavailable: {min_ready} ready");
    let rss = rss_of(&env.client, "roll").await;
    assert_eq!(rss.len(), 2);
    let new = rss.iter().find(|rs| rs.spec.as_ref().and_then(|s| s.replicas) == Some(4)).expect("new rs");
    assert_eq!(new.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some("2"));
    assert_eq!(d.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some("2"));
    let old = rss.iter().find(|rs| rs.name_any() != new.name_any()).expect("old rs");
    assert_eq!(old.spec.as_ref().and_then(|s| s.replicas), Some(0));
}

#[tokio::test]
async fn recreate_never_runs_old_and_new_pods_together() {
    let env = Env::start(&["replicaset", "deployment"]).await;
    let api: Api<Deployment> = Api::namespaced(env.client.clone(), "default");
    api.create(&PostParams::default(), &deployment("rec", 3, json!({"type": "Recreate"}), json!({})))
        .await
        .expect("create");
    let first = drive_rollout(&env, "rec").await;
    let old_hash = rss_of(&env.client, "rec").await[0].labels().get("pod-template-hash").cloned().expect("hash");
    let mixed = Arc::new(AtomicBool::new(false));
    let (store, writer) = reflector::store::<Pod>();
    let stream = reflector::reflector(
        writer,
        watcher(Api::<Pod>::namespaced(env.client.clone(), "default"), watcher::Config::default().labels("app=rec")),
    )
    .default_backoff();
    let m = mixed.clone();
    let oh = old_hash.clone();
    tokio::spawn(stream.for_each(move |_| {
        let hashes: std::collections::BTreeSet<String> = store
            .state()
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.labels().get("pod-template-hash").cloned())
            .collect();
        if hashes.len() > 1 && hashes.contains(&oh) {
            m.store(true, Ordering::SeqCst);
        }
        futures::future::ready(())
    }));
    set_image(&api, "rec", "nginx:2").await;
    let d = drive_rollout(&env, "rec").await;
    assert!(d.metadata.generation > first.metadata.generation);
    let pods = active_pods(&env.client, "default", "app=rec").await;
    assert_eq!(pods.len(), 3);
    assert!(pods.iter().all(|p| p.labels().get("pod-template-hash") != Some(&old_hash)));
    assert!(!mixed.load(Ordering::SeqCst), "old and new pods coexisted");
}

#[tokio::test]
async fn progress_deadline_exceeded_when_pods_never_become_ready() {
    let env = Env::start(&["replicaset", "deployment"]).await;
    let api: Api<Deployment> = Api::namespaced(env.client.clone(), "default");
    api.create(
        &PostParams::default(),
        &deployment("stuck", 2, rolling(json!(1), json!(0)), json!({"progressDeadlineSeconds": 2})),
    )
    .await
    .expect("create");
    let d = wait_for(30, "ProgressDeadlineExceeded", || async {
        let d = api.get("stuck").await.ok()?;
        let c = condition(&d, "Progressing")?;
        (c.reason.as_deref() == Some("ProgressDeadlineExceeded")).then_some(d)
    })
    .await;
    let c = condition(&d, "Progressing").expect("cond");
    assert_eq!(c.status, "False");
    assert!(c.message.as_deref().is_some_and(|m| m.ends_with("has timed out progressing.")));
    let a = condition(&d, "Available").expect("Available");
    assert_eq!((a.status.as_str(), a.reason.as_deref()), ("False", Some("MinimumReplicasUnavailable")));
}

#[tokio::test]
async fn revision_history_is_cleaned_up_and_change_cause_copied() {
    let env = Env::start(&["replicaset", "deployment"]).await;
    let api: Api<Deployment> = Api::namespaced(env.client.clone(), "default");
    api.create(
        &PostParams::default(),
        &deployment("hist", 1, rolling(json!(1), json!(0)), json!({"revisionHistoryLimit": 1})),
    )
    .await
    .expect("create");
    drive_rollout(&env, "hist").await;
    for (i, image) in ["nginx:2", "nginx:3", "nginx:4"].iter().enumerate() {
        let patch = json!({"metadata": {"annotations": {"kubernetes.io/change-cause": format!("step {i}")}}});
        api.patch("hist", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("annotate");
        set_image(&api, "hist", image).await;
        drive_rollout(&env, "hist").await;
    }
    let rss = wait_for(20, "history trimmed to 1 old", || async {
        let rss = rss_of(&env.client, "hist").await;
        (rss.len() == 2).then_some(rss)
    })
    .await;
    let revs: BTreeMap<String, String> = rss
        .iter()
        .map(|rs| {
            let a = rs.annotations();
            (
                a.get("deployment.kubernetes.io/revision").cloned().unwrap_or_default(),
                a.get("kubernetes.io/change-cause").cloned().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(revs.get("4").map(String::as_str), Some("step 2"), "{revs:?}");
    assert!(revs.contains_key("3"), "{revs:?}");
}

#[tokio::test]
async fn scaling_mid_rollout_is_proportional() {
    let env = Env::start(&["replicaset", "deployment"]).await;
    let api: Api<Deployment> = Api::namespaced(env.client.clone(), "default");
    api.create(&PostParams::default(), &deployment("prop", 10, rolling(json!(3), json!(2)), json!({})))
        .await
        .expect("create");
    drive_rollout(&env, "prop").await;
    // Start a rollout whose new pods never become ready, then scale up.
    set_image(&api, "prop", "nginx:2").await;
    // The stuck rollout settles at old 8 (minAvailable 10-2) and new 5 (13 - 8).
    let sizes = |rss: &[ReplicaSet]| {
        let mut v: Vec<(i64, i32)> = rss
            .iter()
            .map(|rs| {
                let rev = rs.annotations().get("deployment.kubernetes.io/revision").and_then(|r| r.parse().ok());
                (rev.unwrap_or(0), rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0))
            })
            .collect();
        v.sort();
        v.into_iter().map(|(_, n)| n).collect::<Vec<i32>>()
    };
    wait_for(20, "stuck rollout at 8 old + 5 new", || async {
        (sizes(&rss_of(&env.client, "prop").await) == vec![8, 5]).then_some(())
    })
    .await;
    api.patch("prop", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"replicas": 20}}))).await.expect("scale");
    let rss = wait_for(20, "proportional scale to 23", || async {
        let rss = rss_of(&env.client, "prop").await;
        let sum: i32 = rss.iter().filter_map(|rs| rs.spec.as_ref()?.replicas).sum();
        let annotated = rss.iter().all(|rs| {
            rs.annotations().get("deployment.kubernetes.io/desired-replicas").map(String::as_str) == Some("20")
        });
        (sum == 23 && annotated).then_some(rss)
    })
    .await;
    // 23 * 8/13 = 14.2 -> 14 and 23 * 5/13 = 8.8 -> 9 (upstream getReplicaSetFraction).
    assert_eq!(sizes(&rss), vec![14, 9]);
}

#[tokio::test]
async fn paused_deployment_does_not_roll_out_until_resumed() {
    let env = Env::start(&["replicaset", "deployment"]).await;
    let api: Api<Deployment> = Api::namespaced(env.client.clone(), "default");
    api.create(&PostParams::default(), &deployment("pause", 2, rolling(json!(1), json!(0)), json!({})))
        .await
        .expect("create");
    drive_rollout(&env, "pause").await;
    api.patch("pause", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"paused": true}})))
        .await
        .expect("pause");
    wait_for(20, "DeploymentPaused", || async {
        let d = api.get("pause").await.ok()?;
        (condition(&d, "Progressing")?.reason.as_deref() == Some("DeploymentPaused")).then_some(())
    })
    .await;
    set_image(&api, "pause", "nginx:2").await;
    wait_for(20, "paused generation observed", || async {
        let d = api.get("pause").await.ok()?;
        (d.status?.observed_generation == d.metadata.generation).then_some(())
    })
    .await;
    assert_eq!(rss_of(&env.client, "pause").await.len(), 1, "a paused deployment created a replica set");
    api.patch("pause", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"paused": false}})))
        .await
        .expect("resume");
    drive_rollout(&env, "pause").await;
    assert_eq!(rss_of(&env.client, "pause").await.len(), 2);
}

#[tokio::test]
async fn rollback_to_an_old_template_reuses_its_replica_set_with_a_new_revision() {
    let env = Env::start(&["replicaset", "deployment"]).await;
    let api: Api<Deployment> = Api::namespaced(env.client.clone(), "default");
    api.create(&PostParams::default(), &deployment("undo", 2, rolling(json!(1), json!(0)), json!({})))
        .await
        .expect("create");
    drive_rollout(&env, "undo").await;
    let first = rss_of(&env.client, "undo").await.pop().expect("rs").name_any();
    set_image(&api, "undo", "nginx:2").await;
    drive_rollout(&env, "undo").await;
    // What `kubectl rollout undo` does: put revision 1's template back.
    set_image(&api, "undo", "nginx:1").await;
    let d = drive_rollout(&env, "undo").await;
    let rss = rss_of(&env.client, "undo").await;
    assert_eq!(rss.len(), 2, "no third replica set");
    let reused = rss.iter().find(|rs| rs.name_any() == first).expect("first rs");
    let a = reused.annotations();
    assert_eq!(reused.spec.as_ref().and_then(|s| s.replicas), Some(2));
    assert_eq!(a.get("deployment.kubernetes.io/revision").map(String::as_str), Some("3"));
    assert_eq!(a.get("deployment.kubernetes.io/revision-history").map(String::as_str), Some("1"));
    assert_eq!(d.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some("3"));
}
