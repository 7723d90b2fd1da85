//! Cluster DNS benchmark (`cargo bench -p berth-dns`): queries per second and latency
//! percentiles for cluster names over UDP on loopback, with 1,000 Services in the zone; plus the
//! in-process zone lookup rate for reference. Prints a table; not a timed test.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use berth_dns::{ClusterDomain, DnsConfig, DnsServer, Upstreams, Zone};
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

const SERVICES: usize = 1_000;
const CLIENTS: usize = 8;
const QUERIES_PER_CLIENT: usize = 5_000;

fn services() -> Vec<Service> {
    (0..SERVICES)
        .map(|i| Service {
            metadata: ObjectMeta {
                namespace: Some(format!("ns{}", i % 10)),
                name: Some(format!("svc-{i}")),
                labels: Some(BTreeMap::new()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(format!("10.43.{}.{}", i / 250, i % 250 + 1)),
                ports: Some(vec![ServicePort { name: Some("http".into()), port: 80, ..Default::default() }]),
                ..Default::default()
            }),
            status: None,
        })
        .collect()
}

fn qname(i: usize) -> String {
    format!("svc-{i}.ns{}.svc.cluster.local.", i % 10)
}

/// One client: sequential queries over one socket; returns each query's latency.
async fn client(server: SocketAddr, offset: usize) -> Vec<Duration> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.connect(server).await.expect("connect");
    let mut buf = vec![0u8; 4096];
    let mut latencies = Vec::with_capacity(QUERIES_PER_CLIENT);
    for n in 0..QUERIES_PER_CLIENT {
        let i = (offset * 7919 + n * 31) % SERVICES;
        let mut message = Message::query();
        message.metadata.id = (n % 65_536) as u16;
        message.add_query(Query::query(Name::from_ascii(qname(i)).expect("name"), RecordType::A));
        let bytes = message.to_vec().expect("encode");
        let start = Instant::now();
        socket.send(&bytes).await.expect("send");
        let len = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf))
            .await
            .expect("answer within 2 s")
            .expect("recv");
        latencies.push(start.elapsed());
        let answer = Message::from_vec(&buf[..len]).expect("decode");
        assert_eq!(answer.answers.len(), 1, "{}", qname(i));
    }
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let domain: ClusterDomain = "cluster.local".parse().expect("domain");
    let services = services();

    // In-process lookups (no sockets), for reference.
    let zone = Zone::build(&domain, services.iter(), [], 1);
    let names: Vec<Name> = (0..SERVICES).map(|i| Name::from_ascii(qname(i)).expect("name")).collect();
    let start = Instant::now();
    let rounds = 200;
    for _ in 0..rounds {
        for name in &names {
            std::hint::black_box(zone.lookup(name, RecordType::A));
        }
    }
    let lookup_rate = (rounds * SERVICES) as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let builds = 20;
    for serial in 0..builds {
        std::hint::black_box(Zone::build(&domain, services.iter(), [], serial));
    }
    let build_time = start.elapsed() / builds;

    let (qps, p50, p99, max) = runtime.block_on(async {
        let config = DnsConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            upstreams: Upstreams::None,
            ..DnsConfig::default()
        };
        let server = DnsServer::bind(config).await.expect("bind");
        let addr = server.local_addr().expect("addr");
        server.zone().set(zone);
        let cancel = CancellationToken::new();
        let serving = tokio::spawn(server.serve(cancel.clone()));
        // Warm up.
        client(addr, 99).await;
        let start = Instant::now();
        let tasks: Vec<_> = (0..CLIENTS).map(|c| tokio::spawn(client(addr, c))).collect();
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.expect("client"));
        }
        let elapsed = start.elapsed();
        cancel.cancel();
        let _ = serving.await;
        latencies.sort();
        let qps = latencies.len() as f64 / elapsed.as_secs_f64();
        (qps, percentile(&latencies, 0.5), percentile(&latencies, 0.99), latencies[latencies.len() - 1])
    });

    println!(
        "berth-dns benchmark: {SERVICES} Services, {CLIENTS} UDP clients x {QUERIES_PER_CLIENT} A queries on loopback"
    );
    println!("{:<34} {:>14}", "measure", "value");
    println!("{:<34} {:>14.0}", "UDP queries/s", qps);
    println!("{:<34} {:>14?}", "UDP latency p50", p50);
    println!("{:<34} {:>14?}", "UDP latency p99", p99);
    println!("{:<34} {:>14?}", "UDP latency max", max);
    println!("{:<34} {:>14.0}", "in-process zone lookups/s", lookup_rate);
    println!("{:<34} {:>14?}", "zone rebuild (1,000 Services)", build_time);
}
