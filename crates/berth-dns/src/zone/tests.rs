//! Unit tests of the zone: one case per rule of the Kubernetes DNS specification.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint as SliceEndpoint, EndpointConditions, EndpointPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;

fn domain() -> ClusterDomain {
    "cluster.local".parse().expect("domain")
}

fn port(name: &str, protocol: &str, number: i32) -> ServicePort {
    ServicePort { name: Some(name.into()), protocol: Some(protocol.into()), port: number, ..Default::default() }
}

fn service(ns: &str, name: &str, spec: ServiceSpec) -> Service {
    Service {
        metadata: ObjectMeta { namespace: Some(ns.into()), name: Some(name.into()), ..Default::default() },
        spec: Some(spec),
        status: None,
    }
}

fn cluster_ip(ns: &str, name: &str, ip: &str) -> Service {
    service(
        ns,
        name,
        ServiceSpec {
            cluster_ip: Some(ip.into()),
            cluster_ips: Some(vec![ip.into()]),
            ports: Some(vec![port("http", "TCP", 80), port("dns", "UDP", 53)]),
            ..Default::default()
        },
    )
}

fn headless(ns: &str, name: &str) -> Service {
    service(
        ns,
        name,
        ServiceSpec {
            cluster_ip: Some("None".into()),
            ports: Some(vec![port("http", "TCP", 80)]),
            ..Default::default()
        },
    )
}

/// (ip, hostname, ready)
fn slice(ns: &str, service: &str, name: &str, endpoints: &[(&str, Option<&str>, Option<bool>)]) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(SERVICE_NAME_LABEL.to_string(), service.to_string())])),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: endpoints
            .iter()
            .map(|(ip, hostname, ready)| SliceEndpoint {
                addresses: vec![ip.to_string()],
                hostname: hostname.map(str::to_string),
                conditions: Some(EndpointConditions { ready: *ready, ..Default::default() }),
                ..Default::default()
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: Some("http".into()),
            protocol: Some("TCP".into()),
            port: Some(8080),
            ..Default::default()
        }]),
    }
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("name")
}

fn ips(answer: &Answer) -> Vec<String> {
    answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

fn srv(answer: &Answer) -> Vec<(u16, String)> {
    answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some((s.port, s.target.to_string())),
            _ => None,
        })
        .collect()
}

fn zone() -> Zone {
    let services = [
        cluster_ip("default", "web", "10.43.0.20"),
        headless("default", "db"),
        headless("default", "empty"),
        service(
            "default",
            "ext",
            ServiceSpec {
                type_: Some("ExternalName".into()),
                external_name: Some("example.test".into()),
                ..Default::default()
            },
        ),
        cluster_ip("other", "web", "10.43.0.30"),
    ];
    let slices = [
        slice("default", "db", "db-a", &[("10.42.0.5", Some("db-0"), Some(true)), ("10.42.0.6", None, None)]),
        slice("default", "db", "db-b", &[("10.42.0.7", None, Some(false)), ("10.42.0.5", Some("db-0"), Some(true))]),
        // Slices of ClusterIP services do not change their A records.
        slice("default", "web", "web-a", &[("10.42.0.9", None, Some(true))]),
    ];
    Zone::build(&domain(), services.iter(), slices.iter(), 7)
}

#[test]
fn cluster_ip_service_resolves_to_its_cluster_ip() {
    let answer = zone().lookup(&name("web.default.svc.cluster.local."), RecordType::A).expect("in zone");
    assert_eq!(answer.response_code, ResponseCode::NoError);
    assert_eq!(ips(&answer), ["10.43.0.20"]);
    assert_eq!(answer.answers[0].ttl, TTL);
    assert!(answer.authorities.is_empty());
}

#[test]
fn lookups_are_case_insensitive_and_per_namespace() {
    let zone = zone();
    let answer = zone.lookup(&name("WEB.Other.SVC.Cluster.Local."), RecordType::A).expect("in zone");
    assert_eq!(ips(&answer), ["10.43.0.30"]);
}

#[test]
fn known_name_without_data_of_the_type_is_nodata_with_soa() {
    let answer = zone().lookup(&name("web.default.svc.cluster.local."), RecordType::AAAA).expect("in zone");
    assert_eq!(answer.response_code, ResponseCode::NoError);
    assert!(answer.answers.is_empty());
    assert!(matches!(&answer.authorities[0].data, RData::SOA(soa) if soa.serial == 7 && soa.minimum == TTL));
}

#[test]
fn unknown_names_in_the_zone_are_nxdomain_with_soa() {
    let zone = zone();
    for unknown in [
        "nope.default.svc.cluster.local.",
        "web.nope.svc.cluster.local.",
        "nope.svc.cluster.local.",
        "x.y.z.w.v.svc.cluster.local.",
        "whatever.cluster.local.",
        "db-9.db.default.svc.cluster.local.",
        "x.web.default.svc.cluster.local.",
    ] {
        let answer = zone.lookup(&name(unknown), RecordType::A).expect("in zone");
        assert_eq!(answer.response_code, ResponseCode::NXDomain, "{unknown}");
        assert!(matches!(&answer.authorities[0].data, RData::SOA(_)), "{unknown}");
    }
}

#[test]
fn names_outside_the_zone_are_not_answered() {
    let zone = zone();
    assert!(zone.lookup(&name("example.com."), RecordType::A).is_none());
    assert!(zone.lookup(&name("local."), RecordType::A).is_none());
    assert!(zone.lookup(&name("notcluster.local."), RecordType::A).is_none());
}

#[test]
fn headless_service_resolves_to_ready_endpoints_deduplicated() {
    let answer = zone().lookup(&name("db.default.svc.cluster.local."), RecordType::A).expect("in zone");
    assert_eq!(ips(&answer), ["10.42.0.5", "10.42.0.6"]);
}

#[test]
fn headless_service_without_ready_endpoints_is_nxdomain() {
    let answer = zone().lookup(&name("empty.default.svc.cluster.local."), RecordType::A).expect("in zone");
    assert_eq!(answer.response_code, ResponseCode::NXDomain);
}

#[test]
fn publish_not_ready_addresses_includes_unready_endpoints() {
    let mut svc = headless("default", "db");
    svc.spec.as_mut().expect("spec").publish_not_ready_addresses = Some(true);
    let s = slice("default", "db", "db-a", &[("10.42.0.7", None, Some(false))]);
    let zone = Zone::build(&domain(), [&svc], [&s], 1);
    let answer = zone.lookup(&name("db.default.svc.cluster.local."), RecordType::A).expect("in zone");
    assert_eq!(ips(&answer), ["10.42.0.7"]);
}

#[test]
fn headless_endpoints_resolve_by_hostname_and_dashed_ip() {
    let zone = zone();
    let answer = zone.lookup(&name("db-0.db.default.svc.cluster.local."), RecordType::A).expect("in zone");
    assert_eq!(ips(&answer), ["10.42.0.5"]);
    let answer = zone.lookup(&name("10-42-0-6.db.default.svc.cluster.local."), RecordType::A).expect("in zone");
    assert_eq!(ips(&answer), ["10.42.0.6"]);
}

#[test]
fn srv_of_a_cluster_ip_service_targets_the_service() {
    let zone = zone();
    let answer = zone.lookup(&name("_http._tcp.web.default.svc.cluster.local."), RecordType::SRV).expect("in zone");
    assert_eq!(srv(&answer), [(80, "web.default.svc.cluster.local.".to_string())]);
    assert_eq!(ips(&Answer { answers: answer.additionals.clone(), ..answer.clone() }), ["10.43.0.20"]);
    let answer = zone.lookup(&name("_dns._udp.web.default.svc.cluster.local."), RecordType::SRV).expect("in zone");
    assert_eq!(srv(&answer), [(53, "web.default.svc.cluster.local.".to_string())]);
    // Wrong protocol for the port name.
    let answer = zone.lookup(&name("_dns._tcp.web.default.svc.cluster.local."), RecordType::SRV).expect("in zone");
    assert_eq!(answer.response_code, ResponseCode::NXDomain);
    // SRV at the service name lists every named port.
    let answer = zone.lookup(&name("web.default.svc.cluster.local."), RecordType::SRV).expect("in zone");
    assert_eq!(srv(&answer).len(), 2);
}

#[test]
fn srv_of_a_headless_service_targets_each_endpoint() {
    let answer = zone().lookup(&name("_http._tcp.db.default.svc.cluster.local."), RecordType::SRV).expect("in zone");
    assert_eq!(
        srv(&answer),
        [
            (8080, "db-0.db.default.svc.cluster.local.".to_string()),
            (8080, "10-42-0-6.db.default.svc.cluster.local.".to_string()),
        ]
    );
    assert_eq!(answer.additionals.len(), 2);
}

#[test]
fn external_name_is_a_cname_for_every_type() {
    let zone = zone();
    for qtype in [RecordType::A, RecordType::AAAA, RecordType::CNAME] {
        let answer = zone.lookup(&name("ext.default.svc.cluster.local."), qtype).expect("in zone");
        assert_eq!(answer.cname_target(), Some(&name("example.test.")), "{qtype}");
    }
}

#[test]
fn pod_records_resolve_the_dashed_ip() {
    let zone = zone();
    let answer = zone.lookup(&name("10-42-0-12.default.pod.cluster.local."), RecordType::A).expect("in zone");
    assert_eq!(ips(&answer), ["10.42.0.12"]);
    let answer = zone.lookup(&name("fd00--1.default.pod.cluster.local."), RecordType::AAAA).expect("in zone");
    assert_eq!(ips(&answer), ["fd00::1"]);
    let answer = zone.lookup(&name("not-an-ip.default.pod.cluster.local."), RecordType::A).expect("in zone");
    assert_eq!(answer.response_code, ResponseCode::NXDomain);
}

#[test]
fn schema_version_and_apex_records() {
    let zone = zone();
    let answer = zone.lookup(&name("dns-version.cluster.local."), RecordType::TXT).expect("in zone");
    assert!(matches!(&answer.answers[0].data, RData::TXT(txt) if txt.to_string().contains("1.1.0")));
    let answer = zone.lookup(&name("cluster.local."), RecordType::SOA).expect("in zone");
    assert!(matches!(&answer.answers[0].data, RData::SOA(_)));
    let answer = zone.lookup(&name("default.svc.cluster.local."), RecordType::A).expect("in zone");
    assert_eq!((answer.response_code, answer.answers.len()), (ResponseCode::NoError, 0));
}

#[test]
fn reverse_lookups_name_services_and_headless_endpoints() {
    let zone = zone();
    let answer = zone.lookup_reverse(&name("20.0.43.10.in-addr.arpa."), RecordType::PTR).expect("known ip");
    assert!(matches!(&answer.answers[0].data, RData::PTR(p) if p.0 == name("web.default.svc.cluster.local.")));
    let answer = zone.lookup_reverse(&name("5.0.42.10.in-addr.arpa."), RecordType::PTR).expect("known ip");
    assert!(matches!(&answer.answers[0].data, RData::PTR(p) if p.0 == name("db-0.db.default.svc.cluster.local.")));
    assert!(zone.lookup_reverse(&name("1.1.168.192.in-addr.arpa."), RecordType::PTR).is_none());
}

#[test]
fn custom_cluster_domains_work_and_bad_ones_are_rejected() {
    let domain: ClusterDomain = "Example.Internal.".parse().expect("domain");
    assert_eq!(domain.as_str(), "example.internal");
    let svc = cluster_ip("default", "web", "10.43.0.20");
    let zone = Zone::build(&domain, [&svc], [], 1);
    assert!(zone.lookup(&name("web.default.svc.cluster.local."), RecordType::A).is_none());
    let answer = zone.lookup(&name("web.default.svc.example.internal."), RecordType::A).expect("in zone");
    assert_eq!(ips(&answer), ["10.43.0.20"]);
    assert!("".parse::<ClusterDomain>().is_err());
    assert!("bad..domain".parse::<ClusterDomain>().is_err());
}

#[test]
fn dashed_ips_round_trip() {
    for ip in ["10.1.2.3", "fd00::1", "2001:db8::a:b"] {
        let ip: IpAddr = ip.parse().expect("ip");
        assert_eq!(parse_dashed_ip(&dashed_ip(ip)), Some(ip));
    }
    assert_eq!(parse_dashed_ip("web"), None);
}
