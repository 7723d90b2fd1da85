//! CustomResourceDefinitions: a CRD is established and its kind served (CRUD, discovery,
//! status subresource); deleting the CRD removes the kind and its objects.

mod common;

use common::TestServer;
use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::{ApiResource, Discovery};
use serde_json::json;

fn widget_crd() -> serde_json::Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList", "shortNames": ["wd"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
            }]
        }
    })
}

#[tokio::test]
async fn a_crd_is_established_and_its_kind_served_until_it_is_deleted() {
    let ts = TestServer::start().await;
    let (code, body) = ts.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", &widget_crd()).await;
    assert_eq!(code, 201, "{body}");
    let (_, crd) = ts.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com").await;
    let conds = crd["status"]["conditions"].as_array().expect("conditions");
    assert!(conds.iter().any(|c| c["type"] == "Established" && c["status"] == "True"), "{crd}");

    let discovery = Discovery::new(ts.client.clone()).run().await.unwrap();
    let (ar, _) = discovery.get("example.com").expect("group discovered").recommended_kind("Widget").expect("kind");
    assert_eq!(ar.plural, "widgets");

    let api: Api<DynamicObject> = Api::namespaced_with(
        ts.client.clone(),
        "default",
        &ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("example.com", "v1", "Widget"),
            "widgets",
        ),
    );
    let w: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(created.data["spec"]["size"], 3);
    let (code, _) = ts.get("/apis/example.com/v1/namespaces/default/widgets/w1/status").await;
    assert_eq!(code, 200);
    assert_eq!(api.list(&Default::default()).await.unwrap().items.len(), 1);

    let (code, _, _) = ts
        .raw("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com", &[], Vec::new())
        .await;
    assert_eq!(code, 200);
    let (code, _) = ts.get("/apis/example.com/v1/namespaces/default/widgets").await;
    assert_eq!(code, 404);
    // Re-creating the CRD does not bring the old objects back.
    let (code, _) = ts.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", &widget_crd()).await;
    assert_eq!(code, 201);
    assert!(api.list(&Default::default()).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn crds_survive_a_restart() {
    let ts = TestServer::start().await;
    let (code, _) = ts.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", &widget_crd()).await;
    assert_eq!(code, 201);
    let (code, body) = ts
        .post(
            "/apis/example.com/v1/namespaces/default/widgets",
            &json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "keep"}}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let dir = ts.stop().await;
    let ts = TestServer::start_in(dir).await;
    let (code, body) = ts.get("/apis/example.com/v1/namespaces/default/widgets/keep").await;
    assert_eq!(code, 200, "{body}");
}
