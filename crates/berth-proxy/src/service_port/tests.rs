//! Tests of Service + EndpointSlice → ServicePort.

use serde_json::json;

use super::*;
use crate::testing::{ServiceBuilder, SliceBuilder};

const NODE: &str = "node-a";

fn ports_of(svc: &Service, slices: &[EndpointSlice]) -> Vec<ServicePort> {
    let refs: Vec<&EndpointSlice> = slices.iter().collect();
    service_ports(svc, &refs, NODE)
}

#[test]
fn headless_and_external_name_services_get_no_ports() {
    let headless = ServiceBuilder::new("default", "h", "None", 80, 80).build();
    let external = ServiceBuilder::new("default", "e", "10.43.0.9", 80, 80).spec("type", json!("ExternalName")).build();
    let v6 = ServiceBuilder::new("default", "v6", "fd00::1", 80, 80).build();
    for svc in [headless, external, v6] {
        assert!(ports_of(&svc, &[]).is_empty(), "{:?}", svc.metadata.name);
    }
}

#[test]
fn endpoints_come_from_the_services_own_slices_and_named_port() {
    let svc = ServiceBuilder::new("default", "web", "10.43.0.10", 8081, 80).build();
    let own = SliceBuilder::new("default", "web", "web-1", 80).ready("10.42.0.5", NODE).ready("10.42.0.6", "b").build();
    let other_service = SliceBuilder::new("default", "db", "db-1", 5432).ready("10.42.0.9", NODE).build();
    let other_namespace = SliceBuilder::new("prod", "web", "web-2", 80).ready("10.42.0.7", NODE).build();
    let mut wrong_port = SliceBuilder::new("default", "web", "web-3", 9090).ready("10.42.0.8", NODE).build();
    wrong_port.ports.as_mut().unwrap()[0].name = Some("metrics".into());
    let ports = ports_of(&svc, &[own, other_service, other_namespace, wrong_port]);
    assert_eq!(ports.len(), 1);
    let p = &ports[0];
    assert_eq!((p.protocol, p.port, p.cluster_ip), (Protocol::Tcp, 8081, "10.43.0.10".parse().unwrap()));
    let ips: Vec<String> = p.endpoints.iter().map(|e| format!("{}:{} local={}", e.ip, e.port, e.local)).collect();
    assert_eq!(ips, ["10.42.0.5:80 local=true", "10.42.0.6:80 local=false"]);
    assert_eq!(p.id(), "default/web/tcp/8081");
}

#[test]
fn only_ready_endpoints_unless_none_is_ready() {
    let svc = ServiceBuilder::new("default", "web", "10.43.0.10", 80, 80).build();
    let slice = SliceBuilder::new("default", "web", "w", 80)
        .ready("10.42.0.1", NODE)
        .endpoint("10.42.0.2", NODE, false, true, true) // terminating, still serving
        .endpoint("10.42.0.3", NODE, false, false, false) // not ready
        .build();
    let p = &ports_of(&svc, &[slice])[0];
    let cluster: Vec<String> = p.cluster_endpoints().iter().map(|e| e.ip.to_string()).collect();
    assert_eq!(cluster, ["10.42.0.1"]);

    let slice = SliceBuilder::new("default", "web", "w", 80)
        .endpoint("10.42.0.2", NODE, false, true, true)
        .endpoint("10.42.0.3", NODE, false, false, false)
        .endpoint("10.42.0.4", NODE, false, false, true) // terminating, no longer serving
        .build();
    let p = &ports_of(&svc, &[slice])[0];
    let cluster: Vec<String> = p.cluster_endpoints().iter().map(|e| e.ip.to_string()).collect();
    assert_eq!(cluster, ["10.42.0.2"], "falls back to serving+terminating");
}

#[test]
fn traffic_policies_pick_local_endpoints() {
    let svc = ServiceBuilder::new("default", "web", "10.43.0.10", 80, 80)
        .node_port(30080)
        .spec("externalTrafficPolicy", json!("Local"))
        .spec("internalTrafficPolicy", json!("Local"))
        .build();
    let slice =
        SliceBuilder::new("default", "web", "w", 80).ready("10.42.0.1", "other").ready("10.42.0.2", NODE).build();
    let p = &ports_of(&svc, &[slice])[0];
    assert!(p.external_local && p.internal_local);
    assert_eq!(p.node_port, Some(30080));
    assert_eq!(p.internal_endpoints().len(), 1);
    assert_eq!(p.external_endpoints()[0].ip.to_string(), "10.42.0.2");
    assert_eq!(p.cluster_endpoints().len(), 2);
}

#[test]
fn external_ips_load_balancer_ingress_and_affinity() {
    let svc = ServiceBuilder::new("default", "web", "10.43.0.10", 80, 80)
        .load_balancer(30080, &["192.0.2.50", "192.0.2.51"])
        .spec("externalIPs", json!(["198.51.100.7", "192.0.2.50"]))
        .spec("sessionAffinity", json!("ClientIP"))
        .build();
    let p = &ports_of(&svc, &[])[0];
    let ips: Vec<String> = p.external_ips.iter().map(ToString::to_string).collect();
    assert_eq!(ips, ["192.0.2.50", "192.0.2.51", "198.51.100.7"]);
    assert_eq!(p.affinity_timeout, Some(DEFAULT_AFFINITY_TIMEOUT));
    let svc = ServiceBuilder::new("default", "web", "10.43.0.10", 80, 80)
        .spec("sessionAffinity", json!("ClientIP"))
        .spec("sessionAffinityConfig", json!({ "clientIP": { "timeoutSeconds": 60 } }))
        .build();
    assert_eq!(ports_of(&svc, &[])[0].affinity_timeout, Some(60));
}

#[test]
fn a_node_port_on_a_cluster_ip_service_is_ignored() {
    let mut svc = ServiceBuilder::new("default", "web", "10.43.0.10", 80, 80).build();
    svc.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = Some(30001);
    assert_eq!(ports_of(&svc, &[])[0].node_port, None);
}
