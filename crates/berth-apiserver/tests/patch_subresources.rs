//! Patch types (JSON, merge, strategic merge, apply), status and scale subresources, binding.

mod common;

use common::TestServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn json_merge_and_strategic_patches_apply() {
    let ts = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(ts.client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "p"}, "data": {"a": "1"}})).unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    let pp = PatchParams::default();
    let got = api.patch("p", &pp, &Patch::Merge(json!({"data": {"b": "2"}}))).await.unwrap();
    assert_eq!(got.data.as_ref().unwrap().len(), 2);
    let got = api.patch("p", &pp, &Patch::Strategic(json!({"data": {"c": "3"}}))).await.unwrap();
    assert_eq!(got.data.as_ref().unwrap()["c"], "3");
    let jp: json_patch::Patch = serde_json::from_value(json!([{"op": "remove", "path": "/data/a"}])).unwrap();
    let got = api.patch("p", &pp, &Patch::<()>::Json(jp)).await.unwrap();
    assert!(!got.data.as_ref().unwrap().contains_key("a"));
    // Patching a missing object is 404.
    match api.patch("missing", &pp, &Patch::Merge(json!({}))).await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!(s.code, 404),
        other => panic!("unexpected {other:?}"),
    }
    // An unknown patch content type is 415.
    let (code, body, _) = ts
        .raw("PATCH", "/api/v1/namespaces/default/configmaps/p", &[("content-type", "text/plain")], b"{}".to_vec())
        .await;
    assert_eq!(code, 415, "{body}");
}

#[tokio::test]
async fn server_side_apply_creates_then_updates() {
    let ts = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(ts.client.clone(), "default");
    let pp = PatchParams::apply("test-manager");
    let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"x": "1"}});
    let created = api.patch("ssa", &pp, &Patch::Apply(&obj)).await.unwrap();
    let managers: Vec<(String, String)> = created
        .metadata
        .managed_fields
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.manager.unwrap_or_default(), m.operation.unwrap_or_default()))
        .collect();
    assert!(managers.contains(&("test-manager".to_string(), "Apply".to_string())), "{managers:?}");
    assert_eq!(created.data.unwrap()["x"], "1");
    let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"x": "2"}});
    let updated = api.patch("ssa", &pp, &Patch::Apply(&obj)).await.unwrap();
    assert_eq!(updated.data.unwrap()["x"], "2");
}

#[tokio::test]
async fn status_subresource_separates_spec_and_status_writes() {
    let ts = TestServer::start().await;
    let api: Api<Deployment> = Api::namespaced(ts.client.clone(), "default");
    api.create(&PostParams::default(), &deployment("st")).await.unwrap();
    // A status patch changes only status.
    let got = api
        .patch_status(
            "st",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 9}, "status": {"replicas": 3, "observedGeneration": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(got.status.as_ref().unwrap().replicas, Some(3));
    assert_eq!(got.spec.as_ref().unwrap().replicas, Some(1));
    // A main-resource write keeps status.
    let got = api
        .patch(
            "st",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}, "status": {"replicas": 0}})),
        )
        .await
        .unwrap();
    assert_eq!(got.status.as_ref().unwrap().replicas, Some(3));
    assert_eq!(got.spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(got.metadata.generation, Some(2));
    let status = api.get_status("st").await.unwrap();
    assert_eq!(status.status.unwrap().replicas, Some(3));
}

#[tokio::test]
async fn scale_subresource_reads_and_writes_replicas() {
    let ts = TestServer::start().await;
    let api: Api<Deployment> = Api::namespaced(ts.client.clone(), "default");
    api.create(&PostParams::default(), &deployment("sc")).await.unwrap();
    let scale: Scale = api.get_scale("sc").await.unwrap();
    assert_eq!(scale.spec.as_ref().unwrap().replicas, Some(1));
    assert_eq!(scale.status.as_ref().unwrap().selector.as_deref(), Some("app=sc"));
    let scaled =
        api.patch_scale("sc", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 4}}))).await.unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(4));
    assert_eq!(api.get("sc").await.unwrap().spec.unwrap().replicas, Some(4));
}

#[tokio::test]
async fn scale_patches_succeed_while_others_write_the_same_object() {
    // A scale PATCH carries no resourceVersion precondition: a concurrent write (here, status
    // updates as a controller makes them) must make the server re-apply it, never answer 409.
    let ts = TestServer::start().await;
    let api: Api<Deployment> = Api::namespaced(ts.client.clone(), "default");
    api.create(&PostParams::default(), &deployment("busy")).await.unwrap();
    let writer = {
        let api = api.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                let status = json!({"status": {"observedGeneration": i}});
                api.patch_status("busy", &PatchParams::default(), &Patch::Merge(status)).await.unwrap();
            }
        })
    };
    for replicas in 1..=40 {
        let scale = api
            .patch_scale("busy", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": replicas}})))
            .await
            .unwrap_or_else(|e| panic!("scale to {replicas}: {e}"));
        assert_eq!(scale.spec.and_then(|s| s.replicas), Some(replicas));
    }
    writer.await.unwrap();
}

#[tokio::test]
async fn binding_assigns_a_node_once() {
    let ts = TestServer::start().await;
    let pods: Api<Pod> = Api::namespaced(ts.client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    let created = pods.create(&PostParams::default(), &pod).await.unwrap();
    let status = created.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}});
    let (code, body) = ts.post("/api/v1/namespaces/default/pods/p/binding", &binding).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(pods.get("p").await.unwrap().spec.unwrap().node_name.as_deref(), Some("n1"));
    let (code, body) = ts.post("/api/v1/namespaces/default/pods/p/binding", &binding).await;
    assert_eq!(code, 409, "{body}");
}

#[tokio::test]
async fn graceful_pod_delete_keeps_bound_pods_until_grace_zero() {
    let ts = TestServer::start().await;
    let pods: Api<Pod> = Api::namespaced(ts.client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "g"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    pods.delete("g", &Default::default()).await.unwrap();
    let still = pods.get("g").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());
    assert_eq!(still.metadata.deletion_grace_period_seconds, Some(30));
    pods.delete("g", &kube::api::DeleteParams::default().grace_period(0)).await.unwrap();
    assert!(pods.get_opt("g").await.unwrap().is_none());
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let ts = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(ts.client.clone(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "f", "finalizers": ["example.com/hold"]}})).unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    api.delete("f", &Default::default()).await.unwrap();
    let held = api.get("f").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    api.patch("f", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.unwrap();
    assert!(api.get_opt("f").await.unwrap().is_none());
    // Foreground deletion adds its finalizer.
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "fg"}})).unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    api.delete("fg", &kube::api::DeleteParams::foreground()).await.unwrap();
    let fg = api.get("fg").await.unwrap();
    assert_eq!(fg.metadata.finalizers.unwrap(), vec!["foregroundDeletion".to_string()]);
}
