//! Discovery: kube's Discovery::run, legacy documents with subresources, aggregated discovery
//! content negotiation, OpenAPI and unknown paths.

mod common;

use common::TestServer;
use kube::discovery::{Discovery, Scope};

#[tokio::test]
async fn kube_discovery_finds_core_and_apps_kinds() {
    let ts = TestServer::start().await;
    let discovery = Discovery::new(ts.client.clone()).run().await.unwrap();
    let apps = discovery.get("apps").expect("apps group");
    let (ar, caps) = apps.recommended_kind("Deployment").expect("deployment");
    assert_eq!(ar.plural, "deployments");
    assert_eq!(caps.scope, Scope::Namespaced);
    let core = discovery.get("").expect("core group");
    let (ns, caps) = core.recommended_kind("Namespace").expect("namespace");
    assert_eq!(ns.plural, "namespaces");
    assert_eq!(caps.scope, Scope::Cluster);
}

#[tokio::test]
async fn legacy_resource_lists_include_subresources_and_short_names() {
    let ts = TestServer::start().await;
    let (code, v1) = ts.get("/api/v1").await;
    assert_eq!(code, 200);
    assert_eq!(v1["kind"], "APIResourceList");
    let res = v1["resources"].as_array().unwrap();
    let pods = res.iter().find(|r| r["name"] == "pods").unwrap();
    assert!(pods["shortNames"].as_array().unwrap().contains(&"po".into()));
    assert!(pods["verbs"].as_array().unwrap().contains(&"watch".into()));
    assert!(res.iter().any(|r| r["name"] == "pods/log"));
    assert!(res.iter().any(|r| r["name"] == "pods/status"));
    let (_, apps) = ts.get("/apis/apps/v1").await;
    let scale = apps["resources"].as_array().unwrap().iter().find(|r| r["name"] == "deployments/scale").unwrap();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["group"], "autoscaling");
    let (_, api) = ts.get("/api").await;
    assert_eq!(api["kind"], "APIVersions");
    let (_, apis) = ts.get("/apis").await;
    assert_eq!(apis["kind"], "APIGroupList");
    assert!(apis["groups"].as_array().unwrap().iter().any(|g| g["name"] == "apps"));
}

#[tokio::test]
async fn aggregated_discovery_echoes_the_requested_content_type() {
    let ts = TestServer::start().await;
    for v in ["v2", "v2beta1"] {
        let accept = format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList,application/json");
        let (code, body, ct) = ts.raw("GET", "/apis", &[("accept", &accept)], Vec::new()).await;
        assert_eq!(code, 200);
        assert_eq!(ct, format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"));
        assert_eq!(body["kind"], "APIGroupDiscoveryList");
        let apps = body["items"].as_array().unwrap().iter().find(|g| g["metadata"]["name"] == "apps").unwrap();
        let deps = apps["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap();
        assert_eq!(deps["scope"], "Namespaced");
        assert_eq!(deps["singularResource"], "deployment");
        assert_eq!(deps["responseKind"]["kind"], "Deployment");
        assert!(deps["subresources"].as_array().unwrap().iter().any(|s| s["subresource"] == "scale"));
    }
    let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
    let (_, body, _) = ts.raw("GET", "/api", &[("accept", accept)], Vec::new()).await;
    assert_eq!(body["items"][0]["metadata"]["name"], "");
}

#[tokio::test]
async fn unknown_paths_and_cluster_scoped_namespaced_paths_are_404_status() {
    let ts = TestServer::start().await;
    for path in [
        "/nope",
        "/api/v1/nothings",
        "/apis/apps/v1/namespaces/default/nodes",
        "/api/v1/namespaces/default/namespaces/x",
    ] {
        let (code, body) = ts.get(path).await;
        assert_eq!(code, 404, "{path}");
        assert_eq!(body["kind"], "Status", "{path}");
        assert_eq!(body["reason"], "NotFound", "{path}");
    }
}

#[tokio::test]
async fn version_and_openapi_are_served() {
    let ts = TestServer::start().await;
    let (code, v) = ts.get("/version").await;
    assert_eq!(code, 200);
    assert_eq!(v["major"], "1");
    let (code, idx) = ts.get("/openapi/v3").await;
    assert_eq!(code, 200);
    assert!(idx["paths"].is_object());
    let (code, _) = ts.get("/openapi/v2").await;
    assert_eq!(code, 200);
}
