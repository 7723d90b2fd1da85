//! Garbage collector against a real in-process apiserver: Background, Orphan and Foreground
//! propagation through Deployment -> ReplicaSet -> Pod, and dangling references on any kind.

mod common;

use common::{Env, active_pods, template, wait_for};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

const CONTROLLERS: &[&str] = &["garbagecollector", "replicaset", "deployment"];

async fn make_deployment(client: &Client, name: &str) -> (Api<Deployment>, Api<ReplicaSet>) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}}, "template": template(json!({"app": name}), "nginx")},
    }))
    .expect("deployment");
    api.create(&PostParams::default(), &d).await.expect("create deployment");
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    wait_for(20, "2 pods", || async {
        (active_pods(client, "default", &format!("app={name}")).await.len() == 2).then_some(())
    })
    .await;
    (api, rs_api)
}

async fn rss(api: &Api<ReplicaSet>, app: &str) -> Vec<ReplicaSet> {
    api.list(&ListParams::default().labels(&format!("app={app}"))).await.map(|l| l.items).unwrap_or_default()
}

#[tokio::test]
async fn background_deletion_removes_replica_sets_and_pods() {
    let env = Env::start(CONTROLLERS).await;
    let (api, rs_api) = make_deployment(&env.client, "bg").await;
    api.delete("bg", &DeleteParams::background()).await.expect("delete");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    wait_for(30, "replica sets and pods gone", || async {
        let p = pods.list(&ListParams::default().labels("app=bg")).await.ok()?;
        (rss(&rs_api, "bg").await.is_empty() && p.items.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn orphan_deletion_keeps_replica_sets_without_owner_refs() {
    let env = Env::start(CONTROLLERS).await;
    let (api, rs_api) = make_deployment(&env.client, "orph").await;
    api.delete("orph", &DeleteParams::orphan()).await.expect("delete");
    wait_for(30, "deployment gone", || async { api.get_opt("orph").await.ok()?.is_none().then_some(()) }).await;
    let left = rss(&rs_api, "orph").await;
    assert_eq!(left.len(), 1);
    assert!(left[0].owner_references().is_empty(), "owner refs left: {:?}", left[0].owner_references());
    assert!(left[0].metadata.deletion_timestamp.is_none());
    // The ReplicaSet keeps its pods.
    let pods = active_pods(&env.client, "default", "app=orph").await;
    assert_eq!(pods.len(), 2);
    assert!(pods.iter().all(|p| p.owner_references().iter().any(|r| r.uid == left[0].uid().unwrap_or_default())));
}

#[tokio::test]
async fn foreground_deletion_removes_owner_only_after_dependents() {
    let env = Env::start(CONTROLLERS).await;
    let (api, rs_api) = make_deployment(&env.client, "fg").await;
    api.delete("fg", &DeleteParams::foreground()).await.expect("delete");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let saw_finalizer = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    wait_for(30, "deployment gone", || {
        let (api, rs_api, pods) = (api.clone(), rs_api.clone(), pods.clone());
        let saw = saw_finalizer.clone();
        async move {
            match api.get_opt("fg").await.ok()? {
                Some(d) => {
                    if d.finalizers().iter().any(|f| f == "foregroundDeletion")
                        && d.metadata.deletion_timestamp.is_some()
                    {
                        saw.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    None
                }
                None => {
                    let rs_left = rss(&rs_api, "fg").await;
                    let pods_left = pods.list(&ListParams::default().labels("app=fg")).await.ok()?.items;
                    assert!(rs_left.is_empty() && pods_left.is_empty(), "owner gone before its dependents");
                    Some(())
                }
            }
        }
    })
    .await;
    assert!(
        saw_finalizer.load(std::sync::atomic::Ordering::SeqCst),
        "the deployment was never seen waiting on foregroundDeletion"
    );
}

#[tokio::test]
async fn dependents_of_a_missing_owner_are_collected_on_any_kind() {
    let env = Env::start(&["garbagecollector"]).await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let owner: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "owner"}})).expect("cm");
    let owner = cms.create(&PostParams::default(), &owner).await.expect("owner");
    let dep: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "dep", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.uid().unwrap_or_default()}
    ]}}))
    .expect("cm");
    cms.create(&PostParams::default(), &dep).await.expect("dep");
    let ghost: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "ghost-dep", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "never-existed", "uid": "00000000-0000-0000-0000-000000000001"}
    ]}}))
    .expect("cm");
    cms.create(&PostParams::default(), &ghost).await.expect("ghost");
    wait_for(20, "dangling dependent collected", || async {
        cms.get_opt("ghost-dep").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(cms.get_opt("dep").await.expect("get").is_some(), "dependent of a live owner was deleted");
    cms.delete(
        "owner",
        &DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() },
    )
    .await
    .expect("delete owner");
    wait_for(20, "dependent collected", || async { cms.get_opt("dep").await.ok()?.is_none().then_some(()) }).await;
}

#[tokio::test]
async fn custom_resources_defined_later_are_collected_too() {
    let env = Env::start_server().await;
    env.start_controllers_with(&["garbagecollector"], std::time::Duration::from_millis(500));
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(env.client.clone());
    let crd = serde_json::from_value(json!({
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object", "x-kubernetes-preserve-unknown-fields": true,
            }}}],
        },
    }))
    .expect("crd");
    crds.create(&PostParams::default(), &crd).await.expect("create crd");
    let ar = kube::discovery::ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    let widgets: Api<kube::api::DynamicObject> = Api::namespaced_with(env.client.clone(), "default", &ar);
    let orphan: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "gone", "uid": "00000000-0000-0000-0000-000000000002"}
        ]},
    }))
    .expect("widget");
    wait_for(20, "widget created", || async { widgets.create(&PostParams::default(), &orphan).await.ok() }).await;
    wait_for(30, "widget collected", || async { widgets.get_opt("w").await.ok()?.is_none().then_some(()) }).await;
}
