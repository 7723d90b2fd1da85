//! Status errors (422 with causes, 400 for undecodable bodies, 401 without credentials, 413,
//! 405) and Table / PartialObjectMetadata output.

mod common;

use common::TestServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::json;

#[tokio::test]
async fn invalid_objects_get_422_with_causes() {
    let ts = TestServer::start().await;
    let api: Api<Deployment> = Api::namespaced(ts.client.clone(), "default");
    let bad: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": -1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
        }
    }))
    .unwrap();
    match api.create(&PostParams::default(), &bad).await.unwrap_err() {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422);
            assert_eq!(s.reason, "Invalid");
            assert!(s.message.starts_with("Deployment.apps \"web\" is invalid: "), "{}", s.message);
            assert!(s.message.contains("spec.replicas: Invalid value: -1"), "{}", s.message);
        }
        other => panic!("unexpected {other:?}"),
    }
    let (code, body) = ts
        .post(
            "/apis/apps/v1/namespaces/default/deployments",
            &json!({"metadata": {"name": "web"}, "spec": {"replicas": -1, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}),
        )
        .await;
    assert_eq!(code, 422);
    let causes = body["details"]["causes"].as_array().unwrap();
    assert!(causes.iter().any(|c| c["field"] == "spec.replicas" && c["reason"] == "FieldValueInvalid"), "{body}");
    assert_eq!(body["details"]["kind"], "Deployment");
    // Without a name.
    let (code, body) = ts.post("/api/v1/namespaces/default/configmaps", &json!({"metadata": {}})).await;
    assert_eq!(code, 422, "{body}");
}

#[tokio::test]
async fn undecodable_bodies_are_400_and_huge_ones_413() {
    let ts = TestServer::start().await;
    let (code, body, _) = ts
        .raw(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            &[("content-type", "application/json")],
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(code, 400);
    assert_eq!(body["reason"], "BadRequest");
    let big = format!("{{\"metadata\":{{\"name\":\"big\"}},\"data\":{{\"x\":\"{}\"}}}}", "a".repeat(4 * 1024 * 1024));
    let (code, body, _) = ts
        .raw("POST", "/api/v1/namespaces/default/configmaps", &[("content-type", "application/json")], big.into_bytes())
        .await;
    assert_eq!(code, 413, "{body}");
    let (code, _, _) = ts.raw("PUT", "/api/v1/namespaces/default/configmaps", &[], b"{}".to_vec()).await;
    assert_eq!(code, 405);
    let (code, body, _) = ts
        .raw(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            &[("content-type", "application/yaml")],
            b"metadata:\n  name: from-yaml\n".to_vec(),
        )
        .await;
    assert_eq!(code, 201, "{body}");
}

#[tokio::test]
async fn requests_without_credentials_are_401() {
    let ts = TestServer::start().await;
    let tls = reqwest_like_client(&ts).await;
    let resp = tls.get("/api/v1/namespaces").await;
    assert_eq!(resp.0, 401);
    assert_eq!(resp.1["reason"], "Unauthorized");
}

/// A kube client with the cluster CA but no client certificate.
async fn reqwest_like_client(ts: &TestServer) -> AnonClient {
    let kc = kube::config::Kubeconfig::read_from(ts.server.as_ref().unwrap().kubeconfig_path()).unwrap();
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await.unwrap();
    cfg.auth_info = kube::config::AuthInfo::default();
    AnonClient(kube::Client::try_from(cfg).unwrap())
}

struct AnonClient(kube::Client);

impl AnonClient {
    async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let req = http::Request::get(path).body(kube::client::Body::empty()).unwrap();
        let resp = self.0.send(req).await.unwrap();
        let code = resp.status().as_u16();
        let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
        (code, serde_json::from_slice(&bytes).unwrap_or_default())
    }
}

const TABLE: &str =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

#[tokio::test]
async fn table_output_for_get_list_and_watch() {
    let ts = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(ts.client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "t", "labels": {"a": "b"}}})).unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    let (code, table, ct) =
        ts.raw("GET", "/api/v1/namespaces/default/configmaps", &[("accept", TABLE)], Vec::new()).await;
    assert_eq!(code, 200);
    assert_eq!(ct, "application/json;as=Table;v=v1;g=meta.k8s.io");
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
    assert!(table["metadata"]["resourceVersion"].is_string());
    let cols = table["columnDefinitions"].as_array().unwrap();
    assert_eq!(cols[0]["name"], "Name");
    assert_eq!(cols[0]["format"], "name");
    let row = &table["rows"][0];
    assert_eq!(row["cells"][0], "t");
    assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(row["object"]["metadata"]["labels"]["a"], "b");

    let (_, one, _) = ts
        .raw("GET", "/api/v1/namespaces/default/configmaps/t?includeObject=Object", &[("accept", TABLE)], Vec::new())
        .await;
    assert_eq!(one["rows"].as_array().unwrap().len(), 1);
    assert_eq!(one["rows"][0]["object"]["kind"], "ConfigMap");

    let (code, watch, _) = ts
        .raw(
            "GET",
            "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1",
            &[("accept", TABLE)],
            Vec::new(),
        )
        .await;
    assert_eq!(code, 200);
    let text = watch.as_str().map(String::from).unwrap_or_else(|| watch.to_string());
    let ev: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["kind"], "Table");
    assert_eq!(ev["object"]["rows"][0]["cells"][0], "t");

    let pom = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
    let (_, list, _) = ts.raw("GET", "/api/v1/namespaces/default/configmaps", &[("accept", pom)], Vec::new()).await;
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["items"][0]["metadata"]["name"], "t");
}

#[tokio::test]
async fn dry_run_creates_nothing() {
    let ts = TestServer::start().await;
    let (code, body) =
        ts.post("/api/v1/namespaces/default/configmaps?dryRun=All", &json!({"metadata": {"name": "dry"}})).await;
    assert_eq!(code, 201, "{body}");
    let (code, _) = ts.get("/api/v1/namespaces/default/configmaps/dry").await;
    assert_eq!(code, 404);
}
