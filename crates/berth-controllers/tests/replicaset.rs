//! ReplicaSet controller against a real in-process apiserver.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Env, active_pods, template, wait_for};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Pod, ReplicationController};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;

fn rs(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": template(json!({"app": name}), "nginx"),
        },
    }))
    .expect("replicaset")
}

async fn scale(api: &Api<ReplicaSet>, name: &str, n: i32) {
    api.patch(name, &PatchParams::default(), &Patch::Merge(&json!({"spec": {"replicas": n}}))).await.expect("scale");
}

#[tokio::test]
async fn creates_pods_with_owner_refs_and_replaces_deleted_ones() {
    let env = Env::start(&["replicaset"]).await;
    let api: Api<ReplicaSet> = Api::namespaced(env.client.clone(), "default");
    let created = api.create(&PostParams::default(), &rs("web", 3)).await.expect("create rs");
    let pods = wait_for(20, "3 pods", || async {
        let p = active_pods(&env.client, "default", "app=web").await;
        (p.len() == 3).then_some(p)
    })
    .await;
    for p in &pods {
        let name = p.name_any();
        assert!(name.starts_with("web-") && name.len() == "web-".len() + 5, "name {name}");
        let r = &p.owner_references()[0];
        assert_eq!((r.kind.as_str(), r.name.as_str()), ("ReplicaSet", "web"));
        assert_eq!(r.uid, created.uid().unwrap_or_default());
        assert_eq!((r.controller, r.block_owner_deletion), (Some(true), Some(true)));
    }
    let pod_api: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let victim = pods[0].name_any();
    pod_api.delete(&victim, &DeleteParams::default()).await.expect("delete pod");
    wait_for(20, "replacement", || async {
        let p = active_pods(&env.client, "default", "app=web").await;
        (p.len() == 3 && p.iter().all(|p| p.name_any() != victim)).then_some(())
    })
    .await;
    wait_for(20, "status replicas 3", || async {
        let r = api.get("web").await.ok()?;
        let s = r.status?;
        (s.replicas == 3 && s.fully_labeled_replicas == Some(3) && s.observed_generation == r.metadata.generation)
            .then_some(())
    })
    .await;
    let events: Api<Event> = Api::namespaced(env.client.clone(), "default");
    let evs = events.list(&ListParams::default()).await.expect("events");
    assert!(evs.items.iter().any(|e| e.reason.as_deref() == Some("SuccessfulCreate")
        && e.message.as_deref().is_some_and(|m| m.starts_with("Created pod: web-"))
        && e.source.as_ref().and_then(|s| s.component.as_deref()) == Some("replicaset-controller")));
}

#[tokio::test]
async fn scale_down_deletes_unready_pods_first_and_status_counts_ready() {
    let env = Env::start(&["replicaset"]).await;
    let api: Api<ReplicaSet> = Api::namespaced(env.client.clone(), "default");
    api.create(&PostParams::default(), &rs("db", 4)).await.expect("create rs");
    let pods = wait_for(20, "4 pods", || async {
        let p = active_pods(&env.client, "default", "app=db").await;
        (p.len() == 4).then_some(p)
    })
    .await;
    let ready: Vec<String> = pods.iter().take(2).map(|p| p.name_any()).collect();
    for n in &ready {
        common::mark_ready(&env.client, "default", n).await;
    }
    wait_for(20, "readyReplicas 2", || async {
        let s = api.get("db").await.ok()?.status?;
        (s.ready_replicas == Some(2) && s.available_replicas == Some(2)).then_some(())
    })
    .await;
    scale(&api, "db", 2).await;
    let left = wait_for(20, "2 pods", || async {
        let p = active_pods(&env.client, "default", "app=db").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    let mut names: Vec<String> = left.iter().map(|p| p.name_any()).collect();
    names.sort();
    let mut want = ready.clone();
    want.sort();
    assert_eq!(names, want, "the ready pods survive");
}

#[tokio::test]
async fn adopts_orphans_and_releases_non_matching() {
    let env = Env::start(&["replicaset"]).await;
    let pod_api: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "orphan", "labels": {"app": "api"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }))
    .expect("pod");
    pod_api.create(&PostParams::default(), &orphan).await.expect("create orphan");
    let api: Api<ReplicaSet> = Api::namespaced(env.client.clone(), "default");
    api.create(&PostParams::default(), &rs("api", 2)).await.expect("create rs");
    wait_for(20, "orphan adopted and one more pod", || async {
        let p = pod_api.get("orphan").await.ok()?;
        let owned = p.owner_references().iter().any(|r| r.name == "api" && r.controller == Some(true));
        (owned && active_pods(&env.client, "default", "app=api").await.len() == 2).then_some(())
    })
    .await;
    // Relabel the adopted pod: it is released and replaced.
    pod_api
        .patch("orphan", &PatchParams::default(), &Patch::Merge(&json!({"metadata": {"labels": {"app": "other"}}})))
        .await
        .expect("relabel");
    wait_for(20, "released and replaced", || async {
        let p = pod_api.get("orphan").await.ok()?;
        (p.owner_references().is_empty() && active_pods(&env.client, "default", "app=api").await.len() == 2)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn rapid_scale_changes_never_overshoot() {
    let env = Env::start(&["replicaset"]).await;
    // Watch every pod of the ReplicaSet (terminating ones included) and track the most at once.
    let max_seen = Arc::new(AtomicUsize::new(0));
    let (store, writer) = reflector::store::<Pod>();
    let stream = reflector::reflector(
        writer,
        watcher(Api::<Pod>::namespaced(env.client.clone(), "default"), watcher::Config::default().labels("app=burst")),
    )
    .default_backoff();
    let (m, s) = (max_seen.clone(), store.clone());
    tokio::spawn(stream.for_each(move |_| {
        m.fetch_max(s.state().len(), Ordering::SeqCst);
        futures::future::ready(())
    }));
    tokio::time::timeout(Duration::from_secs(10), store.wait_until_ready()).await.expect("watch synced").ok();
    let api: Api<ReplicaSet> = Api::namespaced(env.client.clone(), "default");
    api.create(&PostParams::default(), &rs("burst", 1)).await.expect("create rs");
    for n in [5, 2, 8, 3, 6] {
        scale(&api, "burst", n).await;
    }
    wait_for(30, "settled at 6 pods", || async {
        let r = api.get("burst").await.ok()?;
        let settled = r.status?.observed_generation == r.metadata.generation;
        (settled && active_pods(&env.client, "default", "app=burst").await.len() == 6).then_some(())
    })
    .await;
    // A 10-replica burst never makes more than 10 pods, however stale the cache is.
    scale(&api, "burst", 10).await;
    wait_for(30, "10 pods", || async {
        (active_pods(&env.client, "default", "app=burst").await.len() == 10).then_some(())
    })
    .await;
    let r = wait_for(30, "status 10", || async {
        let r = api.get("burst").await.ok()?;
        (r.status.as_ref()?.replicas == 10 && r.status.as_ref()?.observed_generation == r.metadata.generation)
            .then_some(r)
    })
    .await;
    assert_eq!(r.status.map(|s| s.replicas), Some(10));
    let max = max_seen.load(Ordering::SeqCst);
    assert!(max <= 10, "{max} pods existed at once");
    assert_eq!(active_pods(&env.client, "default", "app=burst").await.len(), 10);
}

#[tokio::test]
async fn replication_controller_uses_the_same_code() {
    let env = Env::start(&["replicationcontroller"]).await;
    let api: Api<ReplicationController> = Api::namespaced(env.client.clone(), "default");
    let rc: ReplicationController = serde_json::from_value(json!({
        "metadata": {"name": "legacy"},
        "spec": {"replicas": 2, "selector": {"app": "legacy"}, "template": template(json!({"app": "legacy"}), "nginx")},
    }))
    .expect("rc");
    api.create(&PostParams::default(), &rc).await.expect("create rc");
    let pods = wait_for(20, "2 pods", || async {
        let p = active_pods(&env.client, "default", "app=legacy").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    assert!(pods.iter().all(|p| p.owner_references()[0].kind == "ReplicationController"));
    wait_for(20, "rc status", || async { (api.get("legacy").await.ok()?.status?.replicas == 2).then_some(()) }).await;
}

#[tokio::test]
async fn create_failures_set_replica_failure_condition() {
    // Only the ReplicaSet controller runs, so a deleted namespace stays Terminating and refuses
    // new pods: every create fails.
    let env = Env::start(&["replicaset"]).await;
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(env.client.clone());
    let ns = serde_json::from_value(json!({"metadata": {"name": "closing"}})).expect("ns");
    nss.create(&PostParams::default(), &ns).await.expect("create ns");
    let api: Api<ReplicaSet> = Api::namespaced(env.client.clone(), "closing");
    api.create(&PostParams::default(), &rs("fail", 0)).await.expect("create rs");
    nss.delete("closing", &DeleteParams::default()).await.expect("delete ns");
    scale(&api, "fail", 2).await;
    let cond = wait_for(20, "ReplicaFailure", || async {
        let r = api.get("fail").await.ok()?;
        r.status?.conditions?.into_iter().find(|c| c.type_ == "ReplicaFailure")
    })
    .await;
    assert_eq!((cond.status.as_str(), cond.reason.as_deref()), ("True", Some("FailedCreate")));
    assert!(cond.message.as_deref().is_some_and(|m| m.contains("being terminated")), "{cond:?}");
    // (The FailedCreate Warning event cannot be stored either: Events are content of the
    // terminating namespace too, as upstream.)
}

#[tokio::test]
async fn many_replica_sets_present_at_startup_all_converge() {
    // More ReplicaSets than concurrency slots exist before the controller starts, so reconciles
    // begin before the pod cache is synced.
    let env = Env::start_server().await;
    let api: Api<ReplicaSet> = Api::namespaced(env.client.clone(), "default");
    for i in 0..8 {
        api.create(&PostParams::default(), &rs(&format!("pre{i}"), 2)).await.expect("create rs");
    }
    env.start_controllers(&["replicaset"]);
    for i in 0..8 {
        let sel = format!("app=pre{i}");
        wait_for(30, "2 pods each", || async {
            (active_pods(&env.client, "default", &sel).await.len() == 2).then_some(())
        })
        .await;
    }
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    assert_eq!(pods.list(&ListParams::default()).await.expect("list").items.len(), 16);
}
