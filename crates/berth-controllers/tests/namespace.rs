//! Namespace controller against a real in-process apiserver: deleting a namespace removes its
//! contents of every kind, then the namespace itself.

mod common;

use common::{Env, template, wait_for};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

async fn create<K>(client: &Client, ns: &str, obj: serde_json::Value)
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let obj: K = serde_json::from_value(obj).expect("object");
    api.create(&PostParams::default(), &obj).await.expect("create");
}

#[tokio::test]
async fn deleting_a_namespace_removes_contents_and_then_the_namespace() {
    let env = Env::start(&["namespace", "replicaset", "garbagecollector"]).await;
    let c = &env.client;
    let nss: Api<Namespace> = Api::all(c.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "doomed"}})).expect("ns");
    nss.create(&PostParams::default(), &ns).await.expect("create ns");
    create::<ConfigMap>(c, "doomed", json!({"metadata": {"name": "cm"}, "data": {"a": "b"}})).await;
    create::<Secret>(c, "doomed", json!({"metadata": {"name": "s"}, "stringData": {"a": "b"}})).await;
    create::<Service>(c, "doomed", json!({"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}})).await;
    create::<ReplicaSet>(
        c,
        "doomed",
        json!({"metadata": {"name": "rs"}, "spec": {
            "replicas": 2, "selector": {"matchLabels": {"app": "x"}}, "template": template(json!({"app": "x"}), "nginx"),
        }}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "doomed");
    wait_for(20, "pods", || async { (pods.list(&ListParams::default()).await.ok()?.items.len() == 2).then_some(()) })
        .await;
    nss.delete("doomed", &DeleteParams::default()).await.expect("delete ns");
    wait_for(30, "namespace gone", || async { nss.get_opt("doomed").await.ok()?.is_none().then_some(()) }).await;
    // Nothing survives in the (now gone) namespace.
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "doomed");
    assert!(cms.list(&ListParams::default()).await.map(|l| l.items.is_empty()).unwrap_or(true));
    assert!(pods.list(&ListParams::default()).await.map(|l| l.items.is_empty()).unwrap_or(true));
    // Other namespaces are untouched.
    let default_ns = nss.get("default").await.expect("default ns");
    assert!(default_ns.metadata.deletion_timestamp.is_none());
}

#[tokio::test]
async fn terminating_namespace_reports_remaining_content() {
    let env = Env::start(&["namespace"]).await;
    let c = &env.client;
    let nss: Api<Namespace> = Api::all(c.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "sticky"}})).expect("ns");
    nss.create(&PostParams::default(), &ns).await.expect("create ns");
    // A finalizer nobody removes keeps the ConfigMap (and so the namespace) around.
    create::<ConfigMap>(c, "sticky", json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})).await;
    nss.delete("sticky", &DeleteParams::default()).await.expect("delete ns");
    let cond = wait_for(20, "NamespaceContentRemaining", || async {
        let ns = nss.get("sticky").await.ok()?;
        ns.status?.conditions?.into_iter().find(|c| c.type_ == "NamespaceContentRemaining" && c.status == "True")
    })
    .await;
    assert!(cond.message.as_deref().is_some_and(|m| m.contains("configmaps has 1 resource instances")), "{cond:?}");
    // Releasing the finalizer lets the namespace go.
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "sticky");
    let patch = json!({"metadata": {"finalizers": null}});
    cms.patch("held", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.expect("release");
    wait_for(30, "namespace gone", || async { nss.get_opt("sticky").await.ok()?.is_none().then_some(()) }).await;
}
