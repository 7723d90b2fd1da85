//! deletecollection, eviction, create-on-update, `/watch/` paths, version conversion (HPA v1 and
//! v2 of one stored object), bearer tokens with authorization, and /metrics.

mod common;

use common::TestServer;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn deletecollection_deletes_only_matching_objects() {
    let ts = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(ts.client.clone(), "default");
    for (name, app) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": app}}})).unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    api.delete_collection(&DeleteParams::default(), &ListParams::default().labels("app=x")).await.unwrap();
    let left: Vec<String> =
        api.list(&ListParams::default()).await.unwrap().items.into_iter().filter_map(|c| c.metadata.name).collect();
    assert!(left.contains(&"c".to_string()));
    assert!(!left.contains(&"a".to_string()) && !left.contains(&"b".to_string()));
}

#[tokio::test]
async fn eviction_deletes_an_unscheduled_pod() {
    let ts = TestServer::start().await;
    let pods: Api<Pod> = Api::namespaced(ts.client.clone(), "default");
    let pod: Pod = serde_json::from_value(
        json!({"metadata": {"name": "ev"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}),
    )
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let eviction =
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "ev", "namespace": "default"}});
    let (code, body) = ts.post("/api/v1/namespaces/default/pods/ev/eviction", &eviction).await;
    assert_eq!(code, 201, "{body}");
    assert!(pods.get_opt("ev").await.unwrap().is_none());
}

#[tokio::test]
async fn put_creates_endpoints_but_not_configmaps() {
    let ts = TestServer::start().await;
    let body =
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "e"}})).unwrap();
    let (code, v, _) =
        ts.raw("PUT", "/api/v1/namespaces/default/endpoints/e", &[("content-type", "application/json")], body).await;
    assert_eq!(code, 201, "{v}");
    let body =
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})).unwrap();
    let (code, v, _) =
        ts.raw("PUT", "/api/v1/namespaces/default/configmaps/c", &[("content-type", "application/json")], body).await;
    assert_eq!(code, 404, "{v}");
    // The name in the body must match the URL.
    let body = serde_json::to_vec(&json!({"metadata": {"name": "other"}})).unwrap();
    let (code, _, _) =
        ts.raw("PUT", "/api/v1/namespaces/default/endpoints/e", &[("content-type", "application/json")], body).await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn watch_prefix_paths_watch_one_object() {
    let ts = TestServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(ts.client.clone(), "default");
    for name in ["one", "two"] {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    let (code, body) = ts.get("/api/v1/watch/namespaces/default/configmaps/two?timeoutSeconds=1").await;
    assert_eq!(code, 200);
    let text = body.as_str().map(String::from).unwrap_or_else(|| body.to_string());
    let names: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["object"]["metadata"]["name"].to_string())
        .collect();
    assert_eq!(names, ["\"two\""]);
}

#[tokio::test]
async fn hpa_is_served_in_v1_and_v2_from_one_stored_object() {
    let ts = TestServer::start().await;
    let hpa = json!({
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 5,
            "targetCPUUtilizationPercentage": 60
        }
    });
    let (code, body) = ts.post("/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers", &hpa).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["apiVersion"], "autoscaling/v1");
    let (code, v2) = ts.get("/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/h").await;
    assert_eq!(code, 200);
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(v2["kind"], "HorizontalPodAutoscaler");
    assert_eq!(v2["spec"]["maxReplicas"], 5);
    let (_, v1) = ts.get("/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/h").await;
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60, "{v1}");
}

#[tokio::test]
async fn bearer_tokens_authenticate_and_authorization_denies_with_403() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "admintoken,root,1,\"system:masters\"\nbobtoken,bob,2\n").unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let _guard = cancel.clone().drop_guard();
    let mut config = common::test_config(dir.path());
    config.token_auth_file = Some(tokens);
    let server = berth_apiserver::Server::start(config, cancel.clone()).await.unwrap();
    let kc = kube::config::Kubeconfig::read_from(server.kubeconfig_path()).unwrap();
    let base = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
    let with_token = |t: &str| {
        let mut c = base.clone();
        c.auth_info = kube::config::AuthInfo { token: Some(t.to_string().into()), ..Default::default() };
        kube::Client::try_from(c).unwrap()
    };
    let admin: Api<ConfigMap> = Api::namespaced(with_token("admintoken"), "default");
    admin.list(&ListParams::default()).await.unwrap();
    let bob: Api<ConfigMap> = Api::namespaced(with_token("bobtoken"), "default");
    match bob.list(&ListParams::default()).await.unwrap_err() {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403);
            assert_eq!(s.reason, "Forbidden");
        }
        other => panic!("unexpected {other:?}"),
    }
    let nobody: Api<ConfigMap> = Api::namespaced(with_token("wrong"), "default");
    match nobody.list(&ListParams::default()).await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!(s.code, 401),
        other => panic!("unexpected {other:?}"),
    }
    drop(server);
}

#[tokio::test]
async fn metrics_count_requests() {
    let ts = TestServer::start().await;
    let _ = ts.get("/api/v1/namespaces/default/configmaps").await;
    let text = common::eventually(5, || async {
        let (code, body, _) = ts.raw("GET", "/metrics", &[], Vec::new()).await;
        let text = body.as_str().map(String::from).unwrap_or_default();
        (code == 200 && text.contains("apiserver_request")).then_some(text)
    })
    .await;
    assert!(text.contains("configmaps"), "{text}");
}
