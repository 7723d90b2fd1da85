//! Tests of the rendered ruleset: its structure per Service shape.

use serde_json::json;

use super::*;
use crate::service_port::service_ports;
use crate::testing::{ServiceBuilder, SliceBuilder};

const NODE: &str = "node-a";

fn options() -> RenderOptions {
    RenderOptions {
        table: "berth-test".into(),
        node_ips: vec!["192.0.2.2".parse().unwrap()],
        service_cidr: "10.43.0.0/16".parse().unwrap(),
        cluster_cidr: Some("10.42.0.0/16".parse().unwrap()),
        masquerade_mark: 0x4000,
    }
}

fn render_one(svc: ServiceBuilder, slice: Option<SliceBuilder>) -> String {
    let svc = svc.build();
    let slices: Vec<_> = slice.into_iter().map(SliceBuilder::build).collect();
    let refs: Vec<_> = slices.iter().collect();
    render(&options(), &service_ports(&svc, &refs, NODE))
}

/// The body of chain `name`, or "" if absent.
fn chain<'a>(text: &'a str, name: &str) -> &'a str {
    let head = format!("\tchain {name} {{\n");
    let Some(start) = text.find(&head) else { return "" };
    let body = &text[start + head.len()..];
    &body[..body.find("\t}\n").unwrap_or(body.len())]
}

fn three_pods() -> SliceBuilder {
    SliceBuilder::new("default", "myapp", "myapp-1", 80)
        .ready("10.42.0.5", NODE)
        .ready("10.42.0.6", NODE)
        .ready("10.42.1.7", "node-b")
}

#[test]
fn cluster_ip_balances_over_ready_endpoints_through_verdict_maps() {
    let t = render_one(ServiceBuilder::new("default", "myapp", "10.43.0.10", 8081, 80), Some(three_pods()));
    assert!(t.starts_with("table inet berth-test {\n"), "{t}");
    assert!(t.contains("10.43.0.10 . tcp . 8081 : goto svc-default/myapp/tcp/8081"), "{t}");
    let svc = chain(&t, "svc-default/myapp/tcp/8081");
    assert!(svc.contains("ip saddr != 10.42.0.0/16 jump mark-for-masquerade"), "{svc}");
    assert!(
        svc.ends_with(
            "\t\tnumgen random mod 3 0 goto ep-default/myapp/tcp/8081/10.42.0.5/80\n\
             \t\tnumgen random mod 2 0 goto ep-default/myapp/tcp/8081/10.42.0.6/80\n\
             \t\tgoto ep-default/myapp/tcp/8081/10.42.1.7/80\n"
        ),
        "one in three, then one in two of the rest, then the last: {svc}"
    );
    let ep = chain(&t, "ep-default/myapp/tcp/8081/10.42.0.6/80");
    assert!(ep.contains("meta l4proto tcp dnat ip to 10.42.0.6:80"), "{ep}");
    assert!(ep.contains("ip saddr 10.42.0.0/16 jump mark-for-masquerade"), "pod-to-pod is masqueraded: {ep}");
    // Hooks: NAT in prerouting and output, masquerade in postrouting, reject ahead of NAT.
    for hook in [
        "type nat hook prerouting priority -100",
        "type nat hook output priority -100",
        "type nat hook postrouting priority 100",
        "type filter hook prerouting priority -110",
        "type filter hook output priority -110",
    ] {
        assert!(t.contains(hook), "{hook} missing");
    }
    assert!(chain(&t, "masquerading").contains("masquerade"));
    assert!(chain(&t, "nat-output").contains("ip daddr 10.43.0.0/16 goto reject-chain"));
    assert!(
        !t.contains("no-endpoint-services {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n\t\telements")
    );
}

#[test]
fn a_service_without_ready_endpoints_is_rejected_not_dropped() {
    let not_ready =
        SliceBuilder::new("default", "myapp", "myapp-1", 80).endpoint("10.42.0.5", NODE, false, false, false);
    let t =
        render_one(ServiceBuilder::new("default", "myapp", "10.43.0.10", 8081, 80).node_port(32002), Some(not_ready));
    assert!(t.contains("10.43.0.10 . tcp . 8081 : goto reject-chain"), "{t}");
    assert!(t.contains("tcp . 32002 : goto reject-chain"), "{t}");
    assert!(!t.contains("svc-default/myapp"), "no service chain: {t}");
    assert!(!t.contains("ep-default/myapp"), "no endpoint chain: {t}");
    let reject = chain(&t, "reject-chain");
    assert!(reject.contains("meta l4proto tcp reject with tcp reset"), "{reject}");
    assert!(reject.contains("reject with icmpx port-unreachable"), "{reject}");
    assert!(chain(&t, "endpoints-check").contains("vmap @no-endpoint-services"));
}

#[test]
fn node_ports_listen_on_node_ips_and_localhost() {
    let t = render_one(
        ServiceBuilder::new("default", "myapp", "10.43.0.10", 8081, 80).node_port(32002),
        Some(three_pods()),
    );
    assert!(t.contains("tcp . 32002 : goto ext-default/myapp/tcp/8081"), "{t}");
    assert!(t.contains("elements = { 127.0.0.1, 192.0.2.2 }"), "{t}");
    assert!(chain(&t, "services").contains("ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports"));
    let ext = chain(&t, "ext-default/myapp/tcp/8081");
    assert!(ext.starts_with("\t\tjump mark-for-masquerade\n"), "cluster policy masquerades: {ext}");
    assert!(ext.contains("numgen random mod 3 0 goto"), "{ext}");

    let mut o = options();
    o.node_ips.clear();
    let svc = ServiceBuilder::new("default", "myapp", "10.43.0.10", 8081, 80).node_port(32002).build();
    let t = render(&o, &service_ports(&svc, &[], NODE));
    assert!(!t.contains("nodeport-ips"), "{t}");
    assert!(chain(&t, "services").contains("fib daddr type local meta l4proto . th dport vmap @service-nodeports"));
}

#[test]
fn external_and_load_balancer_ips_use_the_external_chain() {
    let svc = ServiceBuilder::new("default", "myapp", "10.43.0.10", 8081, 80)
        .load_balancer(32003, &["192.0.2.80"])
        .spec("externalIPs", json!(["198.51.100.9"]));
    let t = render_one(svc, Some(three_pods()));
    assert!(t.contains("192.0.2.80 . tcp . 8081 : goto ext-default/myapp/tcp/8081"), "{t}");
    assert!(t.contains("198.51.100.9 . tcp . 8081 : goto ext-default/myapp/tcp/8081"), "{t}");
    assert!(t.contains("tcp . 32003 : goto ext-default/myapp/tcp/8081"), "{t}");
}

#[test]
fn session_affinity_remembers_the_client_per_endpoint() {
    let svc = ServiceBuilder::new("default", "myapp", "10.43.0.10", 8081, 80)
        .spec("sessionAffinity", json!("ClientIP"))
        .spec("sessionAffinityConfig", json!({ "clientIP": { "timeoutSeconds": 300 } }));
    let t = render_one(svc, Some(three_pods()));
    let set = "aff-default/myapp/tcp/8081/10.42.0.5/80";
    assert!(
        t.contains(&format!("set {set} {{\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout 300s\n")),
        "{t}"
    );
    let svc = chain(&t, "svc-default/myapp/tcp/8081");
    let lookup = svc.find(&format!("ip saddr @{set} goto ep-default/myapp/tcp/8081/10.42.0.5/80")).expect("lookup");
    assert!(lookup < svc.find("numgen").expect("numgen"), "affinity is checked before balancing: {svc}");
    assert!(chain(&t, "ep-default/myapp/tcp/8081/10.42.0.5/80").contains(&format!("update @{set} {{ ip saddr }}")));
}

#[test]
fn external_traffic_policy_local_uses_only_local_endpoints_and_keeps_the_source() {
    let svc = ServiceBuilder::new("default", "myapp", "10.43.0.10", 8081, 80)
        .node_port(32002)
        .spec("externalTrafficPolicy", json!("Local"));
    let t = render_one(svc, Some(three_pods()));
    let ext = chain(&t, "ext-default/myapp/tcp/8081");
    let last = ext.lines().last().unwrap_or_default().trim();
    assert_eq!(last, "goto ep-default/myapp/tcp/8081/10.42.0.6/80");
    assert!(ext.contains("\n\t\tnumgen random mod 2 0 goto ep-default/myapp/tcp/8081/10.42.0.5/80\n"), "{ext}");
    let external: Vec<&str> =
        ext.lines().map(str::trim).filter(|l| !l.starts_with("fib") && !l.starts_with("ip saddr")).collect();
    assert!(
        !external.iter().any(|l| l.contains("10.42.1.7")),
        "external clients never reach the remote endpoint: {ext}"
    );
    assert!(ext.contains("fib saddr type local goto ep-default/myapp/tcp/8081/10.42.1.7/80"), "the host may: {ext}");
    assert!(!ext.lines().any(|l| l.trim() == "jump mark-for-masquerade"), "external clients keep their address: {ext}");
    assert!(ext.contains("fib saddr type local jump mark-for-masquerade"), "{ext}");

    // No local endpoint: external traffic is dropped, the ClusterIP still works.
    let remote_only = SliceBuilder::new("default", "myapp", "myapp-1", 80).ready("10.42.1.7", "node-b");
    let svc = ServiceBuilder::new("default", "myapp", "10.43.0.10", 8081, 80)
        .node_port(32002)
        .spec("externalTrafficPolicy", json!("Local"));
    let t = render_one(svc, Some(remote_only));
    assert_eq!(chain(&t, "ext-default/myapp/tcp/8081").lines().last().map(str::trim), Some("drop"));
    assert!(t.contains("10.43.0.10 . tcp . 8081 : goto svc-default/myapp/tcp/8081"));
}

#[test]
fn internal_traffic_policy_local_drops_without_local_endpoints() {
    let svc =
        ServiceBuilder::new("default", "myapp", "10.43.0.10", 8081, 80).spec("internalTrafficPolicy", json!("Local"));
    let t = render_one(svc, Some(three_pods()));
    let svc = chain(&t, "svc-default/myapp/tcp/8081");
    assert!(svc.contains("numgen random mod 2 0 goto") && !svc.contains("10.42.1.7"), "{svc}");

    let remote_only = SliceBuilder::new("default", "myapp", "myapp-1", 80).ready("10.42.1.7", "node-b");
    let svc =
        ServiceBuilder::new("default", "myapp", "10.43.0.10", 8081, 80).spec("internalTrafficPolicy", json!("Local"));
    let t = render_one(svc, Some(remote_only));
    assert!(t.contains("10.43.0.10 . tcp . 8081 : drop"), "{t}");
    assert!(!t.contains("svc-default/myapp"), "{t}");
}

#[test]
fn headless_services_and_hairpin() {
    let t = render_one(ServiceBuilder::new("default", "myapp", "None", 8081, 80), Some(three_pods()));
    assert!(!t.contains("myapp"), "{t}");
    // Without a cluster CIDR every endpoint masquerades at least its own traffic (hairpin).
    let mut o = options();
    o.cluster_cidr = None;
    let svc = ServiceBuilder::new("default", "myapp", "10.43.0.10", 8081, 80).build();
    let slice = three_pods().build();
    let t = render(&o, &service_ports(&svc, &[&slice], NODE));
    assert!(
        chain(&t, "ep-default/myapp/tcp/8081/10.42.0.5/80").contains("ip saddr 10.42.0.5 jump mark-for-masquerade")
    );
    assert!(chain(&t, "svc-default/myapp/tcp/8081").starts_with("\t\tjump mark-for-masquerade\n"));
}

#[test]
fn rendering_is_deterministic_and_batches_replace_the_table() {
    let a = ServiceBuilder::new("default", "a", "10.43.0.10", 80, 80).build();
    let b = ServiceBuilder::new("kube-system", "b", "10.43.0.11", 53, 53).build();
    let mut pa = service_ports(&a, &[], NODE);
    let pb = service_ports(&b, &[], NODE);
    let forward = render(&options(), &[pa.clone(), pb.clone()].concat());
    pa.splice(0..0, pb);
    assert_eq!(forward, render(&options(), &pa));
    let batch = batch("berth-test", &forward);
    assert!(batch.starts_with("add table inet berth-test\ndelete table inet berth-test\ntable inet berth-test {"));
}

#[test]
fn many_endpoints_use_one_numgen_verdict_map() {
    let mut slice = SliceBuilder::new("default", "myapp", "myapp-1", 80);
    for i in 0..NUMGEN_MAP_MIN_ENDPOINTS {
        slice = slice.ready(&format!("10.42.0.{}", i + 1), NODE);
    }
    let t = render_one(ServiceBuilder::new("default", "myapp", "10.43.0.10", 8081, 80), Some(slice));
    let svc = chain(&t, "svc-default/myapp/tcp/8081");
    let n = NUMGEN_MAP_MIN_ENDPOINTS;
    assert!(svc.contains(&format!("numgen random mod {n} vmap {{ 0 : goto ep-default/myapp/tcp/8081/10.42.0.1/80, ")));
    assert!(svc.contains(&format!("{} : goto ep-default/myapp/tcp/8081/10.42.0.{n}/80 }}", n - 1)), "{svc}");
}

#[test]
fn updates_flush_and_refill_in_place_and_delete_what_is_gone() {
    let affinity = |svc: ServiceBuilder| svc.spec("sessionAffinity", json!("ClientIP"));
    let web = affinity(ServiceBuilder::new("default", "web", "10.43.0.10", 80, 80));
    let before = render_one(web, Some(SliceBuilder::new("default", "web", "w", 80).ready("10.42.0.5", NODE)));
    let db = ServiceBuilder::new("default", "db", "10.43.0.11", 5432, 5432).build();
    let after = render(&options(), &service_ports(&db, &[], NODE));

    let batch = update_batch("berth-test", &before, &after);
    let lines: Vec<&str> = batch.lines().take_while(|l| !l.starts_with("table ")).collect();
    assert!(lines.contains(&"flush map inet berth-test services"), "{batch}");
    assert!(!lines.contains(&"flush chain inet berth-test nat-output"), "unchanged chains stay: {batch}");
    assert!(!batch.contains("\tchain nat-output {"), "and are not re-added: {batch}");
    assert!(lines.contains(&"flush chain inet berth-test svc-default/web/tcp/80"), "{batch}");
    assert!(lines.contains(&"delete chain inet berth-test svc-default/web/tcp/80"), "{batch}");
    assert!(lines.contains(&"delete chain inet berth-test ep-default/web/tcp/80/10.42.0.5/80"), "{batch}");
    assert!(lines.contains(&"delete set inet berth-test aff-default/web/tcp/80/10.42.0.5/80"), "{batch}");
    assert!(!lines.iter().any(|l| l.starts_with("delete chain inet berth-test nat-")), "hooks stay: {batch}");
    assert!(batch.contains("10.43.0.11 . tcp . 5432 : goto reject-chain"), "the new Service: {batch}");

    // No change: only the maps are refilled; sets keep their elements.
    let batch = update_batch("berth-test", &before, &before);
    assert!(!batch.contains("delete") && !batch.contains("flush chain") && !batch.contains("\tchain "), "{batch}");
    assert!(batch.contains("flush map inet berth-test services") && batch.contains("10.43.0.10 . tcp . 80 : goto"));
}
