//! EndpointSlice and Endpoints controllers against a real in-process apiserver: slices and their
//! conditions follow pod readiness, named target ports, publishNotReadyAddresses, more than 100
//! endpoints, terminating pods, selectorless Services left alone, Endpoints removed with their
//! Service.

mod common;

use std::time::{Duration, Instant};

use common::{Env, wait_for};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

const CONTROLLERS: &[&str] = &["endpointslice", "endpoint"];

async fn service(client: &Client, name: &str, spec: Value) {
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).expect("service");
    Api::<Service>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await
        .expect("create svc");
}

/// Creates a pod on node `n1` labelled `app=APP`, with a container port named `http` = `http_port`.
async fn pod(client: &Client, name: &str, app: &str, http_port: i32) {
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {
            "nodeName": "n1",
            "containers": [{"name": "c", "image": "busybox", "ports": [{"name": "http", "containerPort": http_port}]}],
        },
    }))
    .expect("pod");
    Api::<Pod>::namespaced(client.clone(), "default").create(&PostParams::default(), &p).await.expect("create pod");
}

/// Plays kubelet: Running with `ip`, Ready = `ready`.
async fn set_status(client: &Client, name: &str, ip: &str, ready: bool) {
    let now = jiff::Timestamp::now().to_string();
    let r = if ready { "True" } else { "False" };
    let patch = json!({"status": {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [
            {"type": "Ready", "status": r, "lastTransitionTime": now},
            {"type": "ContainersReady", "status": r, "lastTransitionTime": now},
        ],
    }});
    Api::<Pod>::namespaced(client.clone(), "default")
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch pod status");
}

async fn slices(client: &Client, svc: &str) -> Vec<EndpointSlice> {
    Api::<EndpointSlice>::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={svc}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// `(pod name, ip, ready, serving, terminating)` of every endpoint of the Service, sorted.
async fn endpoint_rows(client: &Client, svc: &str) -> Vec<(String, String, bool, bool, bool)> {
    let mut rows: Vec<_> = slices(client, svc)
        .await
        .into_iter()
        .flat_map(|s| s.endpoints)
        .map(|e| {
            let c = e.conditions.unwrap_or_default();
            (
                e.target_ref.and_then(|r| r.name).unwrap_or_default(),
                e.addresses.first().cloned().unwrap_or_default(),
                c.ready.unwrap_or(false),
                c.serving.unwrap_or(false),
                c.terminating.unwrap_or(false),
            )
        })
        .collect();
    rows.sort();
    rows
}

fn row(name: &str, ip: &str, ready: bool, serving: bool, terminating: bool) -> (String, String, bool, bool, bool) {
    (name.into(), ip.into(), ready, serving, terminating)
}

#[tokio::test]
async fn slices_follow_pod_readiness_quickly_with_labels_and_owner() {
    let env = Env::start(CONTROLLERS).await;
    let c = &env.client;
    service(c, "web", json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]})).await;
    pod(c, "web-a", "web", 8080).await;
    pod(c, "web-b", "web", 8080).await;
    set_status(c, "web-a", "10.42.0.2", true).await;
    set_status(c, "web-b", "10.42.0.3", false).await;
    let want = vec![row("web-a", "10.42.0.2", true, true, false), row("web-b", "10.42.0.3", false, false, false)];
    wait_for(10, "two endpoints", || async { (endpoint_rows(c, "web").await == want).then_some(()) }).await;

    let all = slices(c, "web").await;
    assert_eq!(all.len(), 1, "one slice, no leftover placeholder");
    let s = &all[0];
    assert_eq!(s.address_type, "IPv4");
    assert_eq!(
        s.labels().get("endpointslice.kubernetes.io/managed-by").map(String::as_str),
        Some("endpointslice-controller.k8s.io")
    );
    let svc = Api::<Service>::namespaced(c.clone(), "default").get("web").await.expect("svc");
    let owner = s.metadata.owner_references.clone().unwrap_or_default();
    assert!(
        owner
            .iter()
            .any(|o| o.kind == "Service" && Some(&o.uid) == svc.metadata.uid.as_ref() && o.controller == Some(true))
    );
    let ports = s.ports.clone().unwrap_or_default();
    assert_eq!((ports[0].port, ports[0].protocol.as_deref()), (Some(8080), Some("TCP")));
    assert_eq!(s.endpoints[0].node_name.as_deref(), Some("n1"));

    // A readiness flip shows up well within a second or two (status watch, no resync).
    let started = Instant::now();
    set_status(c, "web-b", "10.42.0.3", true).await;
    let want = vec![row("web-a", "10.42.0.2", true, true, false), row("web-b", "10.42.0.3", true, true, false)];
    wait_for(10, "web-b ready", || async { (endpoint_rows(c, "web").await == want).then_some(()) }).await;
    assert!(started.elapsed() < Duration::from_secs(2), "readiness change took {:?}", started.elapsed());

    // A pod whose labels no longer match leaves the slice.
    Api::<Pod>::namespaced(c.clone(), "default")
        .patch("web-a", &PatchParams::default(), &Patch::Merge(&json!({"metadata": {"labels": {"app": "other"}}})))
        .await
        .expect("relabel");
    let want = vec![row("web-b", "10.42.0.3", true, true, false)];
    wait_for(10, "web-a gone", || async { (endpoint_rows(c, "web").await == want).then_some(()) }).await;

    // Steady state: the controllers do not keep rewriting what they wrote (no update loop against
    // server-side defaults). Another Service's objects appearing is the clock.
    let eps: Api<Endpoints> = Api::namespaced(c.clone(), "default");
    let versions = |s: Vec<EndpointSlice>| s.iter().map(|s| s.resource_version()).collect::<Vec<_>>();
    wait_for(10, "endpoints of web", || async {
        let ep = eps.get("web").await.ok()?;
        (ep.subsets.unwrap_or_default().iter().flat_map(|s| s.addresses.clone().unwrap_or_default()).count() == 1)
            .then_some(())
    })
    .await;
    let before = (versions(slices(c, "web").await), eps.get("web").await.expect("ep").resource_version());
    service(c, "clock", json!({"selector": {"app": "web"}, "ports": [{"port": 81}]})).await;
    wait_for(10, "clock objects", || async {
        (endpoint_rows(c, "clock").await.len() == 1 && eps.get("clock").await.is_ok()).then_some(())
    })
    .await;
    let after = (versions(slices(c, "web").await), eps.get("web").await.expect("ep").resource_version());
    assert_eq!(before, after, "steady objects were rewritten");
}

#[tokio::test]
async fn named_target_ports_resolve_per_pod() {
    let env = Env::start(CONTROLLERS).await;
    let c = &env.client;
    service(
        c,
        "named",
        json!({"selector": {"app": "named"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}),
    )
    .await;
    pod(c, "named-a", "named", 8080).await;
    pod(c, "named-b", "named", 9090).await;
    set_status(c, "named-a", "10.42.0.2", true).await;
    set_status(c, "named-b", "10.42.0.3", true).await;
    let got = wait_for(10, "two slices by port", || async {
        let mut v: Vec<(i32, Vec<String>)> = slices(c, "named")
            .await
            .into_iter()
            .map(|s| {
                let port = s.ports.unwrap_or_default().first().and_then(|p| p.port).unwrap_or(0);
                (port, s.endpoints.iter().flat_map(|e| e.addresses.clone()).collect())
            })
            .collect();
        v.sort();
        (v.len() == 2 && v.iter().all(|(_, a)| a.len() == 1)).then_some(v)
    })
    .await;
    assert_eq!(got, vec![(8080, vec!["10.42.0.2".to_string()]), (9090, vec!["10.42.0.3".to_string()])]);
    let s = slices(c, "named").await;
    assert!(s.iter().all(|s| s.ports.clone().unwrap_or_default()[0].name.as_deref() == Some("web")));
}

#[tokio::test]
async fn publish_not_ready_addresses_and_endpoints_object() {
    let env = Env::start(CONTROLLERS).await;
    let c = &env.client;
    service(c, "pub", json!({"selector": {"app": "pub"}, "publishNotReadyAddresses": true, "ports": [{"port": 80}]}))
        .await;
    service(c, "plain", json!({"selector": {"app": "pub"}, "ports": [{"port": 80}]})).await;
    pod(c, "pub-a", "pub", 80).await;
    pod(c, "pub-b", "pub", 80).await;
    set_status(c, "pub-a", "10.42.0.2", true).await;
    set_status(c, "pub-b", "10.42.0.3", false).await;
    let want = vec![row("pub-a", "10.42.0.2", true, true, false), row("pub-b", "10.42.0.3", true, false, false)];
    wait_for(10, "published not-ready", || async { (endpoint_rows(c, "pub").await == want).then_some(()) }).await;

    // Legacy Endpoints: ready under addresses, the other under notReadyAddresses.
    let eps: Api<Endpoints> = Api::namespaced(c.clone(), "default");
    let (ready, not_ready) = wait_for(10, "endpoints of plain", || async {
        let ep = eps.get("plain").await.ok()?;
        let subset = ep.subsets?.into_iter().next()?;
        let ips = |l: Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>| {
            l.unwrap_or_default().into_iter().map(|a| a.ip).collect::<Vec<_>>()
        };
        let got = (ips(subset.addresses), ips(subset.not_ready_addresses));
        (got.0.len() + got.1.len() == 2).then_some(got)
    })
    .await;
    assert_eq!(ready, vec!["10.42.0.2"]);
    assert_eq!(not_ready, vec!["10.42.0.3"]);
    let published = wait_for(10, "endpoints of pub", || async {
        let ep = eps.get("pub").await.ok()?;
        let addrs = ep.subsets?.into_iter().next()?.addresses?;
        (addrs.len() == 2).then_some(addrs.len())
    })
    .await;
    assert_eq!(published, 2);

    // Deleting the Service deletes its Endpoints.
    Api::<Service>::namespaced(c.clone(), "default").delete("plain", &DeleteParams::default()).await.expect("delete");
    wait_for(10, "endpoints removed", || async { eps.get("plain").await.is_err().then_some(()) }).await;
}

#[tokio::test]
async fn more_than_100_endpoints_are_split_into_slices() {
    let env = Env::start(CONTROLLERS).await;
    let c = &env.client;
    service(c, "big", json!({"selector": {"app": "big"}, "ports": [{"port": 80}]})).await;
    for i in 0..130 {
        let name = format!("big-{i:03}");
        pod(c, &name, "big", 80).await;
        set_status(c, &name, &format!("10.42.{}.{}", i / 100, i % 100 + 2), true).await;
    }
    let sizes = wait_for(30, "130 endpoints in two slices", || async {
        let mut sizes: Vec<usize> = slices(c, "big").await.iter().map(|s| s.endpoints.len()).collect();
        sizes.sort();
        (sizes.iter().sum::<usize>() == 130).then_some(sizes)
    })
    .await;
    assert_eq!(sizes, vec![30, 100]);
}

#[tokio::test]
async fn terminating_pods_are_kept_not_ready_and_no_pods_leave_a_placeholder() {
    let env = Env::start(CONTROLLERS).await;
    let c = &env.client;
    service(c, "term", json!({"selector": {"app": "term"}, "ports": [{"port": 80}]})).await;
    // Before any pod: one empty placeholder slice.
    wait_for(10, "placeholder", || async {
        let s = slices(c, "term").await;
        (s.len() == 1 && s[0].endpoints.is_empty()).then_some(())
    })
    .await;
    pod(c, "term-a", "term", 80).await;
    set_status(c, "term-a", "10.42.0.2", true).await;
    wait_for(10, "ready endpoint", || async {
        (endpoint_rows(c, "term").await == vec![row("term-a", "10.42.0.2", true, true, false)]).then_some(())
    })
    .await;
    // The pod is bound to a node, so deletion is graceful: it stays, terminating, until a kubelet
    // would remove it.
    Api::<Pod>::namespaced(c.clone(), "default").delete("term-a", &DeleteParams::default()).await.expect("delete");
    wait_for(10, "terminating endpoint", || async {
        (endpoint_rows(c, "term").await == vec![row("term-a", "10.42.0.2", false, true, true)]).then_some(())
    })
    .await;
    // The legacy Endpoints drop terminating pods.
    let eps: Api<Endpoints> = Api::namespaced(c.clone(), "default");
    wait_for(10, "endpoints empty", || async {
        let ep = eps.get("term").await.ok()?;
        ep.subsets.is_none_or(|s| s.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn services_without_selector_are_left_alone() {
    let env = Env::start(CONTROLLERS).await;
    let c = &env.client;
    service(c, "manual", json!({"ports": [{"port": 80}]})).await;
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "manual-1", "labels": {"kubernetes.io/service-name": "manual"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["192.0.2.10"]}],
        "ports": [{"port": 80}],
    }))
    .expect("slice");
    Api::<EndpointSlice>::namespaced(c.clone(), "default")
        .create(&PostParams::default(), &slice)
        .await
        .expect("create");
    // A second Service with a selector is a marker: once its slice exists, the first was seen too.
    service(c, "marker", json!({"selector": {"app": "x"}, "ports": [{"port": 80}]})).await;
    wait_for(10, "marker slice", || async { (!slices(c, "marker").await.is_empty()).then_some(()) }).await;
    let s = slices(c, "manual").await;
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].name_any(), "manual-1");
    assert_eq!(s[0].endpoints[0].addresses, vec!["192.0.2.10"]);
    assert!(Api::<Endpoints>::namespaced(c.clone(), "default").get("manual").await.is_err());
    // The kubernetes Service's bootstrap objects stay as the apiserver wrote them.
    let k = slices(c, "kubernetes").await;
    assert_eq!(k.len(), 1);
    assert_eq!(k[0].name_any(), "kubernetes");
}

/// Registers a Ready node with an InternalIP, as a kubelet would.
async fn ready_node(client: &Client, name: &str, ip: &str) {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let node = serde_json::from_value(json!({"metadata": {"name": name}})).expect("node");
    nodes.create(&PostParams::default(), &node).await.expect("create node");
    let status = json!({"status": {
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
    }});
    nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("node status");
}

async fn ingress(client: &Client, name: &str) -> Vec<String> {
    Api::<Service>::namespaced(client.clone(), "default")
        .get(name)
        .await
        .ok()
        .and_then(|s| s.status?.load_balancer?.ingress)
        .map(|i| i.into_iter().filter_map(|i| i.ip).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn load_balancer_services_get_the_node_addresses_and_lose_them_as_cluster_ip() {
    let env = Env::start(&["servicelb"]).await;
    let c = &env.client;
    ready_node(c, "n2", "192.0.2.12").await;
    ready_node(c, "n1", "192.0.2.11").await;
    service(c, "lb", json!({"type": "LoadBalancer", "selector": {"app": "lb"}, "ports": [{"port": 80}]})).await;
    let got = wait_for(10, "ingress", || async {
        let i = ingress(c, "lb").await;
        (i.len() == 2).then_some(i)
    })
    .await;
    assert_eq!(got, vec!["192.0.2.11", "192.0.2.12"]);
    // A plain ClusterIP Service gets nothing; turning the LoadBalancer into one clears it.
    service(c, "plain", json!({"selector": {"app": "lb"}, "ports": [{"port": 80}]})).await;
    let patch = json!({"spec": {"type": "ClusterIP", "externalTrafficPolicy": null,
        "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]}});
    Api::<Service>::namespaced(c.clone(), "default")
        .patch("lb", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("to ClusterIP");
    wait_for(10, "ingress cleared", || async { ingress(c, "lb").await.is_empty().then_some(()) }).await;
    assert!(ingress(c, "plain").await.is_empty());
}

#[tokio::test]
async fn load_balancer_addresses_come_from_the_pool_one_per_service() {
    let env = Env::start_server().await;
    env.start_controllers_config(berth_controllers::ControllersConfig {
        controllers: vec!["servicelb".into()],
        servicelb_pool: berth_controllers::servicelb::Pool::parse("198.51.100.0/30"),
        ..Default::default()
    });
    let c = &env.client;
    for name in ["lb-a", "lb-b", "lb-c"] {
        service(c, name, json!({"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}]})).await;
    }
    let (a, b) = wait_for(10, "two pool addresses", || async {
        let (a, b) = (ingress(c, "lb-a").await, ingress(c, "lb-b").await);
        (a.len() == 1 && b.len() == 1).then(|| (a[0].clone(), b[0].clone()))
    })
    .await;
    let mut got = vec![a, b];
    got.sort();
    assert_eq!(got, vec!["198.51.100.1", "198.51.100.2"], "distinct pool addresses");
    // The pool holds two addresses: the third Service stays pending until one is released.
    assert!(ingress(c, "lb-c").await.is_empty());
    Api::<Service>::namespaced(c.clone(), "default").delete("lb-a", &DeleteParams::default()).await.expect("delete");
    let c3 = wait_for(10, "released address reused", || async {
        let i = ingress(c, "lb-c").await;
        (i.len() == 1).then(|| i[0].clone())
    })
    .await;
    assert!(c3.starts_with("198.51.100."));
}

/// Creates a Service and returns the apiserver's answer (the 422 cause as `(field, message)`).
async fn try_service(client: &Client, name: &str, spec: Value) -> Result<Service, (String, String)> {
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).expect("service");
    Api::<Service>::namespaced(client.clone(), "default").create(&PostParams::default(), &svc).await.map_err(
        |e| match e {
            kube::Error::Api(s) => {
                assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{}", s.message);
                let cause = s.details.and_then(|d| d.causes.into_iter().next()).expect("a cause");
                (cause.field, cause.message)
            }
            other => panic!("unexpected error {other}"),
        },
    )
}

fn cluster_ip(svc: &Service) -> String {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.clone()).unwrap_or_default()
}

#[tokio::test]
async fn cluster_ips_and_node_ports_are_honoured_checked_and_released() {
    let env = Env::start_server().await;
    let c = &env.client;
    let port = || json!([{"port": 80}]);
    let first = try_service(c, "fixed", json!({"clusterIP": "10.43.0.50", "ports": port()})).await.expect("fixed ip");
    assert_eq!(cluster_ip(&first), "10.43.0.50");
    assert_eq!(first.spec.as_ref().and_then(|s| s.cluster_ips.clone()), Some(vec!["10.43.0.50".to_string()]));
    let (field, msg) =
        try_service(c, "dup", json!({"clusterIP": "10.43.0.50", "ports": port()})).await.expect_err("taken");
    assert_eq!(field, "spec.clusterIPs");
    assert!(msg.contains("provided IP is already allocated"), "{msg}");
    let (field, msg) =
        try_service(c, "far", json!({"clusterIP": "192.168.7.7", "ports": port()})).await.expect_err("range");
    assert_eq!(field, "spec.clusterIPs");
    assert!(msg.contains("not in the valid range. The range of valid IPs is 10.43.0.0/16"), "{msg}");
    let (field, _) = try_service(c, "bad", json!({"clusterIP": "10.43.0", "ports": port()})).await.expect_err("syntax");
    assert_eq!(field, "spec.clusterIPs[0]");

    let np = try_service(c, "np", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}))
        .await
        .expect("np");
    assert_eq!(np.spec.and_then(|s| s.ports).map(|p| p[0].node_port), Some(Some(30080)));
    let (field, msg) = try_service(c, "np2", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}))
        .await
        .expect_err("port taken");
    assert_eq!(
        (field.as_str(), msg.as_str()),
        ("spec.ports[0].nodePort", "Invalid value: 30080: provided port is already allocated")
    );
    let (field, msg) = try_service(c, "np3", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}))
        .await
        .expect_err("out of range");
    assert_eq!(field, "spec.ports[0].nodePort");
    assert!(msg.contains("provided port is not in the valid range. The range of valid ports is 30000-32767"), "{msg}");
    let auto = try_service(c, "auto", json!({"type": "LoadBalancer", "ports": [{"port": 80}]})).await.expect("auto");
    let auto_port = auto.spec.and_then(|s| s.ports).and_then(|p| p[0].node_port).unwrap_or(0);
    assert!((30000..=32767).contains(&auto_port), "{auto_port}");

    // Headless, bad ports, duplicate names, a selector on ExternalName.
    let headless =
        try_service(c, "headless", json!({"clusterIP": "None", "selector": {"app": "x"}})).await.expect("headless");
    assert_eq!(cluster_ip(&headless), "None");
    let (field, _) = try_service(c, "p0", json!({"ports": [{"port": 0}]})).await.expect_err("port 0");
    assert_eq!(field, "spec.ports[0].port");
    let (field, _) = try_service(c, "names", json!({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}))
        .await
        .expect_err("duplicate names");
    assert_eq!(field, "spec.ports[1].name");
    let (field, _) =
        try_service(c, "ext", json!({"type": "ExternalName", "externalName": "example.com", "selector": {"app": "x"}}))
            .await
            .expect_err("selector");
    assert_eq!(field, "spec.selector");

    // The address is immutable, and free again once its Service is gone.
    let svcs: Api<Service> = Api::namespaced(c.clone(), "default");
    let err = svcs
        .patch("fixed", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"clusterIP": "10.43.0.51"}})))
        .await
        .expect_err("immutable");
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 422 && s.message.contains("immutable")), "{err}");
    svcs.delete("fixed", &DeleteParams::default()).await.expect("delete");
    svcs.delete("np", &DeleteParams::default()).await.expect("delete");
    let again = try_service(
        c,
        "again",
        json!({"clusterIP": "10.43.0.50", "type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
    )
    .await
    .expect("released values are free");
    assert_eq!(cluster_ip(&again), "10.43.0.50");
}

#[tokio::test]
async fn concurrent_creates_never_share_an_address_or_node_port() {
    // 29 usable addresses (.1 is the kubernetes Service's): random picks would collide often.
    let api = berth_apiserver::testing::TestApiServer::start_with(|c| c.service_cidr = "10.96.0.0/27".into()).await;
    let c = api.client.clone();
    let creates = (0..25).map(|i| {
        let c = c.clone();
        async move {
            try_service(&c, &format!("s{i}"), json!({"type": "NodePort", "ports": [{"port": 80}]}))
                .await
                .expect("create")
        }
    });
    let made = futures::future::join_all(creates).await;
    let mut ips: Vec<String> = made.iter().map(cluster_ip).collect();
    let mut ports: Vec<i32> = made.iter().filter_map(|s| s.spec.as_ref()?.ports.as_ref()?[0].node_port).collect();
    ips.sort();
    ips.dedup();
    ports.sort();
    ports.dedup();
    assert_eq!((ips.len(), ports.len()), (25, 25), "duplicates among {ips:?} / {ports:?}");
    assert!(!ips.contains(&"10.96.0.1".to_string()));
}

#[tokio::test]
async fn allocations_survive_a_restart_without_double_use() {
    berth_apiserver::testing::TestApiServer::start().await; // installs the crypto provider
    let dir = tempfile::tempdir().expect("tempdir");
    let start = |dir: std::path::PathBuf| async move {
        let mut cfg = berth_apiserver::Config::new(dir);
        cfg.https_port = 0;
        cfg.service_cidr = "10.96.0.0/28".into();
        let cancel = tokio_util::sync::CancellationToken::new();
        let server = berth_apiserver::Server::start(cfg, cancel.clone()).await.expect("server");
        let kc = kube::config::Kubeconfig::read_from(server.kubeconfig_path()).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("config");
        (server, cancel, Client::try_from(config).expect("client"))
    };
    let (server, cancel, c) = start(dir.path().to_path_buf()).await;
    let mut before = Vec::new();
    for i in 0..6 {
        before.push(cluster_ip(&try_service(&c, &format!("a{i}"), json!({"ports": [{"port": 80}]})).await.expect("a")));
    }
    cancel.cancel();
    server.wait().await;
    let (server, cancel, c) = start(dir.path().to_path_buf()).await;
    // 13 usable addresses, .1 and six taken: the next seven fill the range without reusing one.
    let mut after = Vec::new();
    for i in 0..7 {
        after.push(cluster_ip(&try_service(&c, &format!("b{i}"), json!({"ports": [{"port": 80}]})).await.expect("b")));
    }
    assert!(after.iter().all(|ip| !before.contains(ip)), "{before:?} reused in {after:?}");
    let (field, msg) = try_service(&c, "full", json!({"ports": [{"port": 80}]})).await.expect_err("range full");
    assert_eq!(field, "spec.clusterIPs");
    assert!(msg.contains("range is full"), "{msg}");
    cancel.cancel();
    server.wait().await;
}

#[tokio::test]
async fn node_ports_survive_a_restart_and_are_released_after_it() {
    berth_apiserver::testing::TestApiServer::start().await; // installs the crypto provider
    let dir = tempfile::tempdir().expect("tempdir");
    let start = |dir: std::path::PathBuf| async move {
        let mut cfg = berth_apiserver::Config::new(dir);
        cfg.https_port = 0;
        let cancel = tokio_util::sync::CancellationToken::new();
        let server = berth_apiserver::Server::start(cfg, cancel.clone()).await.expect("server");
        let kc = kube::config::Kubeconfig::read_from(server.kubeconfig_path()).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("config");
        (server, cancel, Client::try_from(config).expect("client"))
    };
    let node_port = |s: &Service| s.spec.as_ref().and_then(|s| s.ports.as_ref()?[0].node_port).unwrap_or(0);
    let (server, cancel, c) = start(dir.path().to_path_buf()).await;
    let fixed = try_service(&c, "fixed", json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 32002}]}))
        .await
        .expect("fixed");
    assert_eq!(node_port(&fixed), 32002);
    let auto = try_service(&c, "auto", json!({"type": "LoadBalancer", "ports": [{"port": 80}]})).await.expect("auto");
    let (auto_port, auto_ip) = (node_port(&auto), cluster_ip(&auto));
    cancel.cancel();
    server.wait().await;

    let (server, cancel, c) = start(dir.path().to_path_buf()).await;
    // Both node ports and the address are still taken after the restart.
    for (name, port) in [("again", 32002), ("again-auto", auto_port)] {
        let (field, msg) =
            try_service(&c, name, json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": port}]}))
                .await
                .expect_err("taken across the restart");
        assert_eq!(field, "spec.ports[0].nodePort");
        assert!(msg.contains("provided port is already allocated"), "{msg}");
    }
    let (_, msg) =
        try_service(&c, "same-ip", json!({"clusterIP": auto_ip, "ports": [{"port": 80}]})).await.expect_err("ip");
    assert!(msg.contains("provided IP is already allocated"), "{msg}");
    // Deleting after the restart frees them.
    let svcs: Api<Service> = Api::namespaced(c.clone(), "default");
    svcs.delete("fixed", &DeleteParams::default()).await.expect("delete");
    svcs.delete("auto", &DeleteParams::default()).await.expect("delete");
    let reused = try_service(
        &c,
        "reused",
        json!({"type": "NodePort", "clusterIP": auto_ip, "ports": [{"name": "a", "port": 80, "nodePort": 32002}, {"name": "b", "port": 81, "nodePort": auto_port}]}),
    )
    .await;
    let reused = match reused {
        Ok(s) => s,
        Err(e) => panic!("released values are free again: {e:?}"),
    };
    assert_eq!(node_port(&reused), 32002);
    cancel.cancel();
    server.wait().await;
}
