//! The DNS server against the in-process apiserver: Services and EndpointSlices created through
//! the API are answered on 127.0.0.1 over UDP and TCP, changes show within a second, and other
//! names are forwarded to a fake upstream on loopback.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use berth_apiserver::testing::TestApiServer;
use berth_dns::{DnsConfig, DnsServer, Upstreams};
use common::{FakeUpstream, addresses, query, query_tcp};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A running DNS server over a test apiserver; everything stops on drop.
struct Fixture {
    api: TestApiServer,
    addr: SocketAddr,
    _upstream: FakeUpstream,
    cancel: CancellationToken,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Fixture {
    async fn start() -> Fixture {
        let api = TestApiServer::start().await;
        let upstream = FakeUpstream::start().await;
        let config = DnsConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            upstreams: Upstreams::Servers(vec![upstream.addr]),
            node_name: Some("node-a".into()),
            ..DnsConfig::default()
        };
        let server = DnsServer::bind(config).await.expect("bind");
        let addr = server.local_addr().expect("addr");
        let cancel = api.cancel.child_token();
        let client = api.client.clone();
        let token = cancel.clone();
        tokio::spawn(async move { server.run(client, token).await });
        Fixture { api, addr, _upstream: upstream, cancel }
    }

    async fn create_service(&self, ns: &str, service: Service) {
        Api::<Service>::namespaced(self.api.client.clone(), ns)
            .create(&PostParams::default(), &service)
            .await
            .expect("create service");
    }

    async fn create_slice(&self, ns: &str, slice: &EndpointSlice) {
        Api::<EndpointSlice>::namespaced(self.api.client.clone(), ns)
            .create(&PostParams::default(), slice)
            .await
            .expect("create endpointslice");
    }

    /// Queries until `check` accepts the answer; panics with the last answer after `within`.
    async fn wait_for(&self, qname: &str, qtype: RecordType, within: Duration, check: impl Fn(&Message) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            let answer = query(self.addr, qname, qtype).await;
            if check(&answer) {
                return;
            }
            assert!(Instant::now() < deadline, "{qname} {qtype}: no expected answer within {within:?}: {answer:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn port(name: &str, protocol: &str, number: i32) -> ServicePort {
    ServicePort { name: Some(name.into()), protocol: Some(protocol.into()), port: number, ..Default::default() }
}

fn service(name: &str, spec: ServiceSpec) -> Service {
    Service { metadata: ObjectMeta { name: Some(name.into()), ..Default::default() }, spec: Some(spec), status: None }
}

fn cluster_ip(name: &str, ip: &str) -> Service {
    service(
        name,
        ServiceSpec {
            cluster_ip: Some(ip.into()),
            ports: Some(vec![port("http", "TCP", 8081)]),
            selector: Some(BTreeMap::from([("app".to_string(), name.to_string())])),
            ..Default::default()
        },
    )
}

fn slice(name: &str, service: &str, ips: &[&str]) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([("kubernetes.io/service-name".to_string(), service.to_string())])),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: ips
            .iter()
            .enumerate()
            .map(|(i, ip)| Endpoint {
                addresses: vec![ip.to_string()],
                hostname: (i == 0).then(|| format!("{service}-0")),
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

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn cluster_names_are_answered_from_services_and_endpoint_slices() {
    let fx = Fixture::start().await;
    fx.create_service("default", cluster_ip("myapp-service", "10.43.0.50")).await;
    let mut headless = cluster_ip("db", "None");
    headless.spec.as_mut().expect("spec").cluster_ip = Some("None".into());
    fx.create_service("default", headless).await;
    fx.create_slice("default", &slice("db-abc", "db", &["10.42.0.5", "10.42.0.6"])).await;
    fx.create_service(
        "default",
        service(
            "ext",
            ServiceSpec {
                type_: Some("ExternalName".into()),
                external_name: Some("www.upstream.test".into()),
                ..Default::default()
            },
        ),
    )
    .await;

    let web = "myapp-service.default.svc.cluster.local.";
    fx.wait_for(web, RecordType::A, WAIT, |m| addresses(m) == ["10.43.0.50"]).await;
    let answer = query(fx.addr, web, RecordType::A).await;
    assert!(answer.metadata.authoritative);
    assert_eq!(answer.answers[0].ttl, 5);

    // Headless: the endpoints, and each endpoint by hostname.
    let db = "db.default.svc.cluster.local.";
    fx.wait_for(db, RecordType::A, WAIT, |m| addresses(m) == ["10.42.0.5", "10.42.0.6"]).await;
    let answer = query(fx.addr, "db-0.db.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(addresses(&answer), ["10.42.0.5"]);

    // SRV for a named port: the service, or each endpoint of a headless service.
    let answer = query(fx.addr, "_http._tcp.myapp-service.default.svc.cluster.local.", RecordType::SRV).await;
    let srv: Vec<_> = answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some((s.port, s.target.to_string())),
            _ => None,
        })
        .collect();
    assert_eq!(srv, [(8081, web.to_string())]);
    let answer = query(fx.addr, "_http._tcp.db.default.svc.cluster.local.", RecordType::SRV).await;
    assert_eq!(answer.answers.len(), 2);
    assert!(answer.answers.iter().all(|r| matches!(&r.data, RData::SRV(s) if s.port == 8080)));

    // ExternalName: a CNAME, chased through the upstream.
    let answer = query(fx.addr, "ext.default.svc.cluster.local.", RecordType::A).await;
    assert!(
        matches!(&answer.answers[0].data, RData::CNAME(c) if c.0.to_string() == "www.upstream.test."),
        "{answer:?}"
    );
    assert_eq!(addresses(&answer), [common::UPSTREAM_IP.to_string()]);

    // Unknown names in the zone: NXDOMAIN with the zone's SOA.
    let answer = query(fx.addr, "nope.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    assert!(matches!(answer.authorities.first().map(|r| &r.data), Some(RData::SOA(_))));

    // Pod names and TCP.
    let answer = query_tcp(fx.addr, "10-42-0-9.default.pod.cluster.local.", RecordType::A).await;
    assert_eq!(addresses(&answer), ["10.42.0.9"]);
    let answer = query_tcp(fx.addr, web, RecordType::A).await;
    assert_eq!(addresses(&answer), ["10.43.0.50"]);
}

#[tokio::test]
async fn changes_are_answered_within_a_second() {
    let fx = Fixture::start().await;
    fx.create_service("default", cluster_ip("first", "10.43.0.60")).await;
    fx.wait_for("first.default.svc.cluster.local.", RecordType::A, WAIT, |m| !m.answers.is_empty()).await;

    // A new Service...
    fx.create_service("default", cluster_ip("second", "10.43.0.61")).await;
    fx.wait_for("second.default.svc.cluster.local.", RecordType::A, Duration::from_secs(1), |m| {
        addresses(m) == ["10.43.0.61"]
    })
    .await;
    // ...and a deleted one.
    Api::<Service>::namespaced(fx.api.client.clone(), "default")
        .delete("first", &Default::default())
        .await
        .expect("delete");
    fx.wait_for("first.default.svc.cluster.local.", RecordType::A, Duration::from_secs(1), |m| {
        m.metadata.response_code == ResponseCode::NXDomain
    })
    .await;
}

#[tokio::test]
async fn other_names_are_forwarded_upstream() {
    let fx = Fixture::start().await;
    let answer = query(fx.addr, "api.upstream.test.", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(!answer.metadata.authoritative);
    assert_eq!(addresses(&answer), [common::UPSTREAM_IP.to_string()]);
    let answer = query(fx.addr, "missing.example.test.", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test]
async fn kube_dns_service_and_node_endpoint_slice_point_at_the_server() {
    let fx = Fixture::start().await;
    let ip = "10.43.0.10".parse().expect("ip");
    berth_dns::kube_dns::ensure_service(&fx.api.client, ip).await.expect("create kube-dns");
    berth_dns::kube_dns::ensure_service(&fx.api.client, ip).await.expect("idempotent");
    let svc = Api::<Service>::namespaced(fx.api.client.clone(), "kube-system").get("kube-dns").await.expect("get");
    let spec = svc.spec.expect("spec");
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.43.0.10"));
    assert!(spec.selector.unwrap_or_default().is_empty());
    let ports: Vec<_> =
        spec.ports.unwrap_or_default().into_iter().map(|p| (p.name.unwrap_or_default(), p.port)).collect();
    assert_eq!(ports, [("dns".to_string(), 53), ("dns-tcp".to_string(), 53), ("metrics".to_string(), 9153)]);

    let slices: Api<EndpointSlice> = Api::namespaced(fx.api.client.clone(), "kube-system");
    let deadline = Instant::now() + WAIT;
    let slice = loop {
        if let Some(slice) = slices.get_opt("kube-dns-node-a").await.expect("get slice") {
            break slice;
        }
        assert!(Instant::now() < deadline, "no kube-dns EndpointSlice");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(slice.endpoints[0].addresses, ["127.0.0.1"]);
    let ports = slice.ports.unwrap_or_default();
    assert!(ports.iter().all(|p| p.port == Some(i32::from(fx.addr.port()))), "{ports:?}");
    // The kube-dns Service itself resolves like any other.
    fx.wait_for("kube-dns.kube-system.svc.cluster.local.", RecordType::A, WAIT, |m| addresses(m) == ["10.43.0.10"])
        .await;

    // A stopped server takes its endpoint out of the Service.
    fx.cancel.cancel();
    let deadline = Instant::now() + WAIT;
    while slices.get_opt("kube-dns-node-a").await.expect("get slice").is_some() {
        assert!(Instant::now() < deadline, "the kube-dns EndpointSlice outlived its server");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn headless_answers_follow_endpoint_readiness_within_a_second() {
    let fx = Fixture::start().await;
    fx.create_service("default", cluster_ip("web", "None")).await;
    fx.create_slice("default", &slice("web-abc", "web", &["10.42.0.5", "10.42.0.6"])).await;
    let name = "web.default.svc.cluster.local.";
    fx.wait_for(name, RecordType::A, WAIT, |m| addresses(m) == ["10.42.0.5", "10.42.0.6"]).await;
    let slices: Api<EndpointSlice> = Api::namespaced(fx.api.client.clone(), "default");

    // One endpoint turns unready: it leaves the answer within a second.
    let patch = serde_json::json!({"endpoints": [
        {"addresses": ["10.42.0.5"], "conditions": {"ready": true}},
        {"addresses": ["10.42.0.6"], "conditions": {"ready": false}},
    ]});
    slices.patch("web-abc", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch");
    fx.wait_for(name, RecordType::A, Duration::from_secs(1), |m| addresses(m) == ["10.42.0.5"]).await;

    // A second slice of the Service adds its endpoints within a second.
    fx.create_slice("default", &slice("web-def", "web", &["10.42.1.7"])).await;
    fx.wait_for(name, RecordType::A, Duration::from_secs(1), |m| addresses(m) == ["10.42.0.5", "10.42.1.7"]).await;

    // No ready endpoint left: NXDOMAIN (as CoreDNS' kubernetes plugin), within a second.
    slices.delete("web-def", &Default::default()).await.expect("delete");
    let patch = serde_json::json!({"endpoints": [{"addresses": ["10.42.0.5"], "conditions": {"ready": false}}]});
    slices.patch("web-abc", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch");
    fx.wait_for(name, RecordType::A, Duration::from_secs(1), |m| m.metadata.response_code == ResponseCode::NXDomain)
        .await;
}
