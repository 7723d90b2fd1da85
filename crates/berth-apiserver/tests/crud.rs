//! Create, get, list, update, conflict and delete through kube-rs against a real server.

mod common;

use common::TestServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn bootstrap_creates_namespaces_and_the_kubernetes_service() {
    let ts = TestServer::start().await;
    let nss: Api<Namespace> = Api::all(ts.client.clone());
    let names: Vec<String> =
        nss.list(&ListParams::default()).await.unwrap().items.into_iter().filter_map(|n| n.metadata.name).collect();
    for want in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(names.contains(&want.to_string()), "{want} missing from {names:?}");
    }
    let svcs: Api<Service> = Api::namespaced(ts.client.clone(), "default");
    let svc = svcs.get("kubernetes").await.unwrap();
    let spec = svc.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.43.0.1"));
    assert_eq!(spec.ports.unwrap()[0].port, 443);
    let (code, ep) = ts.get("/api/v1/namespaces/default/endpoints/kubernetes").await;
    assert_eq!(code, 200);
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], ts.server.as_ref().unwrap().local_addr().port());
}

#[tokio::test]
async fn deployment_create_get_list_update_conflict_delete() {
    let ts = TestServer::start().await;
    let api: Api<Deployment> = Api::namespaced(ts.client.clone(), "default");
    let created = api.create(&PostParams::default(), &deployment("web", 2)).await.unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.is_some());
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    let rv: i64 = meta.resource_version.as_deref().unwrap().parse().unwrap();
    assert!(rv > 0);

    let err = api.create(&PostParams::default(), &deployment("web", 2)).await.unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "AlreadyExists");
            assert_eq!(s.message, "deployments.apps \"web\" already exists");
        }
        other => panic!("unexpected {other:?}"),
    }

    let got = api.get("web").await.unwrap();
    assert_eq!(got.spec.as_ref().unwrap().replicas, Some(2));
    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert!(list.metadata.resource_version.is_some());

    let mut changed = got.clone();
    changed.spec.as_mut().unwrap().replicas = Some(5);
    let updated = api.replace("web", &PostParams::default(), &changed).await.unwrap();
    assert_eq!(updated.metadata.generation, Some(2));
    assert_ne!(updated.metadata.resource_version, got.metadata.resource_version);

    // A stale resourceVersion conflicts, with upstream's message.
    let err = api.replace("web", &PostParams::default(), &changed).await.unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
            assert_eq!(
                s.message,
                "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again"
            );
        }
        other => panic!("unexpected {other:?}"),
    }

    api.delete("web", &DeleteParams::default()).await.unwrap();
    match api.get("web").await.unwrap_err() {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 404);
            assert_eq!(s.message, "deployments.apps \"web\" not found");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn configmap_and_service_round_trip_and_namespace_rules() {
    let ts = TestServer::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(ts.client.clone(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "cfg-"}, "data": {"k": "v"}})).unwrap();
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    let name = created.metadata.name.clone().unwrap();
    assert!(name.starts_with("cfg-") && name.len() == 9, "{name}");
    assert_eq!(cms.get(&name).await.unwrap().data.unwrap()["k"], "v");

    // Creating in a namespace that does not exist is 404 for the namespace.
    let missing: Api<ConfigMap> = Api::namespaced(ts.client.clone(), "nope");
    match missing.create(&PostParams::default(), &cm).await.unwrap_err() {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 404);
            assert_eq!(s.message, "namespaces \"nope\" not found");
        }
        other => panic!("unexpected {other:?}"),
    }

    // A body namespace that disagrees with the path is a 400.
    let (code, status) = ts
        .post("/api/v1/namespaces/default/configmaps", &json!({"metadata": {"name": "x", "namespace": "other"}}))
        .await;
    assert_eq!(code, 400, "{status}");
    assert_eq!(status["kind"], "Status");

    let svcs: Api<Service> = Api::namespaced(ts.client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}
    }))
    .unwrap();
    svcs.create(&PostParams::default(), &svc).await.unwrap();
    let got = svcs.get("web").await.unwrap();
    assert_eq!(got.spec.unwrap().ports.unwrap()[0].port, 80);
    // Services answer a delete with the object.
    let deleted = svcs.delete("web", &DeleteParams::default()).await.unwrap();
    assert!(deleted.is_left());
}

#[tokio::test]
async fn system_namespaces_may_not_be_deleted() {
    let ts = TestServer::start().await;
    let nss: Api<Namespace> = Api::all(ts.client.clone());
    match nss.delete("kube-system", &DeleteParams::default()).await.unwrap_err() {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403);
            assert_eq!(s.message, "namespaces \"kube-system\" is forbidden: this namespace may not be deleted");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn namespace_delete_goes_through_terminating_and_blocks_new_content() {
    let ts = TestServer::start().await;
    let nss: Api<Namespace> = Api::all(ts.client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    nss.create(&PostParams::default(), &ns).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(ts.client.clone(), "team");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "a"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    nss.delete("team", &DeleteParams::default()).await.unwrap();
    match nss.get("team").await {
        Ok(n) => {
            assert!(n.metadata.deletion_timestamp.is_some());
            let cm2: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "b"}})).unwrap();
            match cms.create(&PostParams::default(), &cm2).await.unwrap_err() {
                kube::Error::Api(s) => assert_eq!(s.code, 403, "{s:?}"),
                other => panic!("unexpected {other:?}"),
            }
        }
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404),
        Err(other) => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn restart_on_the_same_data_dir_keeps_objects() {
    let ts = TestServer::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(ts.client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "keep"}, "data": {"a": "1"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let dir = ts.stop().await;
    let ts = TestServer::start_in(dir).await;
    let cms: Api<ConfigMap> = Api::namespaced(ts.client.clone(), "default");
    assert_eq!(cms.get("keep").await.unwrap().data.unwrap()["a"], "1");
    let svcs: Api<Service> = Api::namespaced(ts.client.clone(), "default");
    assert!(svcs.get("kubernetes").await.is_ok());
}

#[tokio::test]
async fn services_get_cluster_ips_and_node_ports_allocated() {
    let ts = TestServer::start().await;
    let svcs: Api<Service> = Api::namespaced(ts.client.clone(), "default");
    let mk = |name: &str, extra: serde_json::Value| -> Service {
        let mut spec = json!({"selector": {"app": name}, "ports": [{"port": 80}]});
        spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
    };
    let a = svcs.create(&PostParams::default(), &mk("a", json!({}))).await.unwrap();
    let ip = a.spec.as_ref().unwrap().cluster_ip.clone().unwrap();
    assert!(ip.starts_with("10.43.") && ip != "10.43.0.1", "{ip}");
    assert_eq!(a.spec.as_ref().unwrap().cluster_ips.as_ref().unwrap(), &vec![ip.clone()]);
    let np = svcs.create(&PostParams::default(), &mk("np", json!({"type": "NodePort"}))).await.unwrap();
    let port = np.spec.unwrap().ports.unwrap()[0].node_port.unwrap();
    assert!((30000..=32767).contains(&port));
    let headless = svcs.create(&PostParams::default(), &mk("h", json!({"clusterIP": "None"}))).await.unwrap();
    assert_eq!(headless.spec.unwrap().cluster_ip.as_deref(), Some("None"));
    match svcs.create(&PostParams::default(), &mk("dup", json!({"clusterIP": ip}))).await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!(s.code, 422, "{s:?}"),
        other => panic!("unexpected {other:?}"),
    }
    // A replace that omits the allocated address keeps it.
    let mut again = svcs.get("a").await.unwrap();
    again.spec.as_mut().unwrap().cluster_ip = None;
    again.spec.as_mut().unwrap().cluster_ips = None;
    let replaced = svcs.replace("a", &PostParams::default(), &again).await.unwrap();
    assert_eq!(replaced.spec.unwrap().cluster_ip, Some(ip));
}
