//! Root tests against real nftables: rendered rulesets pass `nft -c` (check mode, nothing changes
//! on the host), and the proxy loop programs Services into a per-run network namespace, where
//! traffic is balanced, refused without endpoints, and everything is removed on exit (and kept
//! without the cleanup flag or after a crash); a second namespace wired by a veth plays an
//! external client of externalIPs, LoadBalancer ingress, NodePorts with externalTrafficPolicy
//! Local and ClientIP affinity, and internalTrafficPolicy Local is checked from the node.
//!
//! Every test works in its own namespace `bpx<pid><n>`, deleted on drop with the processes it ran.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_apiserver::testing::TestApiServer;
use berth_proxy::testing::{ServiceBuilder, SliceBuilder};
use berth_proxy::{Host, ProxyConfig, RenderOptions, render, ruleset, service_ports};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use ruleset::update_batch;
use serde_json::json;

/// Whether the test can run: root and the tools. Outside CI a missing prerequisite skips (with a
/// message); under CI=true it fails.
fn prerequisites(test: &str) -> bool {
    let root = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false);
    let tools = ["nft", "ip", "curl", "busybox"].iter().all(|t| {
        Command::new("sh").args(["-c", &format!("command -v {t}")]).output().is_ok_and(|o| o.status.success())
    });
    if root && tools {
        return true;
    }
    let why = format!("{test}: needs root and nft, ip, curl, busybox");
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
    eprintln!("skipping {why}");
    false
}

/// A network namespace with loopback up; deleted (with the processes started in it) on drop.
struct Netns {
    name: String,
    children: Vec<Child>,
    dir: tempfile::TempDir,
}

impl Netns {
    fn new(n: u32) -> Netns {
        let name = format!("bpx{:x}{n}", std::process::id());
        let dir = tempfile::Builder::new().prefix("berth-proxy-").tempdir().expect("temp dir");
        let ns = Netns { name, children: Vec::new(), dir };
        ns.ip(&["netns", "add", &ns.name]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        // Local traffic to a ClusterIP needs some route in the main table to start from.
        ns.exec(&["ip", "route", "add", "default", "dev", "lo"]);
        ns
    }

    fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip").args(args).output().expect("run ip");
        assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn exec(&self, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", &self.name];
        all.extend(args);
        self.ip(&all)
    }

    /// Serves `body` over HTTP at `ip:8080` (an address added to loopback).
    fn serve(&mut self, ip: &str, body: &str) {
        self.exec(&["ip", "addr", "add", &format!("{ip}/32"), "dev", "lo"]);
        let root: PathBuf = self.dir.path().join(ip);
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::write(root.join("index.html"), body).expect("write index");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name, "busybox", "httpd", "-f", "-p", &format!("{ip}:8080"), "-h"])
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start httpd");
        self.children.push(child);
    }

    /// `curl` in the namespace: the body, or curl's exit code and message.
    fn curl(&self, url: &str) -> Result<String, (i32, String)> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "curl", "-sS", "-m", "3", url])
            .output()
            .expect("run curl");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err((out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).trim().to_string()))
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// Polls `cond` until it holds or `timeout` passes.
fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn options(table: &str) -> RenderOptions {
    RenderOptions {
        table: table.into(),
        node_ips: vec!["192.0.2.2".parse().unwrap()],
        service_cidr: "10.43.0.0/16".parse().unwrap(),
        cluster_cidr: Some("10.42.0.0/16".parse().unwrap()),
        masquerade_mark: 0x4000,
    }
}

#[tokio::test]
#[ignore = "needs root: nftables"]
async fn rendered_rulesets_pass_nft_check_mode() {
    if !prerequisites("rendered_rulesets_pass_nft_check_mode") {
        return;
    }
    let pods = || {
        SliceBuilder::new("default", "web", "web-1", 80)
            .ready("10.42.0.5", "node-a")
            .ready("10.42.1.6", "node-b")
            .endpoint("10.42.0.7", "node-a", false, true, true)
    };
    let services = [
        ServiceBuilder::new("default", "web", "10.43.0.10", 8081, 80).build(),
        ServiceBuilder::new("default", "web", "10.43.0.10", 8081, 80)
            .load_balancer(32002, &["192.0.2.80"])
            .spec("externalIPs", json!(["198.51.100.9"]))
            .spec("sessionAffinity", json!("ClientIP"))
            .spec("externalTrafficPolicy", json!("Local"))
            .spec("internalTrafficPolicy", json!("Local"))
            .build(),
        ServiceBuilder::new("default", "web", "10.43.0.10", 8081, 80).node_port(32003).build(),
    ];
    let slice = pods().build();
    let table = format!("berth-check-{}", std::process::id());
    for (i, svc) in services.iter().enumerate() {
        for slices in [vec![], vec![&slice]] {
            let mut o = options(&table);
            if i == 2 {
                o.node_ips.clear();
                o.cluster_cidr = None;
            }
            let text = render(&o, &service_ports(svc, &slices, "node-a"));
            Host::new().nft_check(&ruleset::batch(&table, &text)).await.unwrap_or_else(|e| panic!("{e}\n{text}"));
        }
    }
    // Check mode changed nothing.
    assert!(!Host::new().table_exists(&table).await.expect("nft list"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: nftables, netns"]
async fn proxy_balances_rejects_and_cleans_up_in_a_netns() {
    if !prerequisites("proxy_balances_rejects_and_cleans_up_in_a_netns") {
        return;
    }
    let mut ns = Netns::new(1);
    ns.serve("10.250.0.1", "one");
    ns.serve("10.250.0.2", "two");
    let api = TestApiServer::start().await;
    let services: Api<Service> = Api::namespaced(api.client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(api.client.clone(), "default");
    let web = ServiceBuilder::new("default", "web", "10.43.0.10", 80, 8080).node_port(30080).build();
    services.create(&PostParams::default(), &web).await.expect("create web");
    let empty = ServiceBuilder::new("default", "empty", "10.43.0.11", 80, 8080).build();
    services.create(&PostParams::default(), &empty).await.expect("create empty");
    let slice = SliceBuilder::new("default", "web", "web-1", 8080)
        .ready("10.250.0.1", "node-a")
        .ready("10.250.0.2", "node-b")
        .build();
    slices.create(&PostParams::default(), &slice).await.expect("create slice");

    let table = format!("berth-t{:x}", std::process::id());
    let mut config = ProxyConfig::new("node-a");
    config.table = table.clone();
    config.cleanup_on_exit = true;
    let host = Host::in_netns(&ns.name);
    let cancel = api.cancel.child_token();
    let proxy = tokio::spawn(berth_proxy::run_on(api.client.clone(), config, host.clone(), cancel.clone()));

    let seen = tokio::task::block_in_place(|| {
        let mut seen = std::collections::BTreeSet::new();
        wait_until(Duration::from_secs(15), || {
            if let Ok(body) = ns.curl("http://10.43.0.10/") {
                seen.insert(body);
            }
            seen.len() == 2
        });
        seen
    });
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["one", "two"], "ClusterIP balances over both endpoints");
    tokio::task::block_in_place(|| {
        assert!(ns.curl("http://127.0.0.1:30080/").is_ok(), "NodePort at 127.0.0.1");
        for url in ["http://10.43.0.11/", "http://10.43.0.99/"] {
            let started = Instant::now();
            let err = ns.curl(url).expect_err("no endpoints");
            assert_eq!(err.0, 7, "{url} refused (curl exit 7), not timed out: {err:?}");
            assert!(started.elapsed() < Duration::from_secs(2), "{url} answered at once");
        }
    });
    let routes = ns.ip(&["-n", &ns.name, "route", "show", "table", "4043"]);
    assert!(routes.contains("blackhole 10.43.0.0/16"), "{routes}");
    assert!(ns.ip(&["-n", &ns.name, "rule"]).contains("to 10.43.0.0/16 lookup 4043"));

    // Endpoint "two" stops being ready: it gets no more traffic after the next sync.
    let patch = json!({ "endpoints": [
        { "addresses": ["10.250.0.1"], "nodeName": "node-a", "conditions": { "ready": true } },
        { "addresses": ["10.250.0.2"], "nodeName": "node-b", "conditions": { "ready": false } },
    ]});
    slices.patch("web-1", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch slice");
    let synced = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(5), || {
            let list = std::process::Command::new("ip")
                .args(["netns", "exec", &ns.name, "nft", "list", "table", "inet", &table])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            !list.contains("10.250.0.2")
        })
    });
    assert!(synced, "the table dropped the unready endpoint within 5 s");
    tokio::task::block_in_place(|| {
        for _ in 0..10 {
            assert_eq!(ns.curl("http://10.43.0.10/").as_deref(), Ok("one"));
        }
    });

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), proxy).await.expect("proxy stops").expect("join").expect("run");
    assert!(!host.table_exists(&table).await.expect("nft list"), "table removed on exit");
    assert!(!ns.ip(&["-n", &ns.name, "route", "show", "table", "4043"]).contains("blackhole"));
    assert!(!ns.ip(&["-n", &ns.name, "rule"]).contains("10.43.0.0/16"));
}

#[tokio::test]
#[ignore = "needs root: nftables, netns"]
async fn in_place_updates_keep_affinity_and_remove_deleted_services() {
    if !prerequisites("in_place_updates_keep_affinity_and_remove_deleted_services") {
        return;
    }
    let ns = Netns::new(2);
    let host = Host::in_netns(&ns.name);
    let table = format!("berth-u{:x}", std::process::id());
    let web = ServiceBuilder::new("default", "web", "10.43.0.10", 80, 8080)
        .spec("sessionAffinity", json!("ClientIP"))
        .build();
    let slice = SliceBuilder::new("default", "web", "web-1", 8080).ready("10.250.0.1", "node-a").build();
    let db = ServiceBuilder::new("default", "db", "10.43.0.11", 5432, 5432).build();
    let o = options(&table);
    let first = render(&o, &service_ports(&web, &[&slice], "node-a"));
    host.apply_table(&table, &first).await.expect("apply");
    let set = "aff-default/web/tcp/80/10.250.0.1/8080";
    host.nft(&format!("add element inet {table} {set} {{ 192.0.2.77 }}\n")).await.expect("a client");

    // Another Service appears: the table is updated in place; the client is remembered.
    let mut ports = service_ports(&web, &[&slice], "node-a");
    ports.extend(service_ports(&db, &[], "node-a"));
    let second = render(&o, &ports);
    host.nft(&update_batch(&table, &first, &second)).await.expect("update");
    let listed = host.list_table(&table).await.expect("list");
    assert!(listed.contains("192.0.2.77"), "affinity kept: {listed}");
    assert!(listed.contains("10.43.0.11 . tcp . 5432"), "{listed}");

    // web goes away: its chains and set go with it.
    let third = render(&o, &service_ports(&db, &[], "node-a"));
    host.nft(&update_batch(&table, &second, &third)).await.expect("update");
    let listed = host.list_table(&table).await.expect("list");
    assert!(!listed.contains("default/web"), "{listed}");
    host.delete_table(&table).await.expect("delete");
    assert!(!host.table_exists(&table).await.expect("list"));
}

/// A second namespace `client` wired to `node` by a veth pair (node 192.0.2.2/24, client
/// 192.0.2.100/24, the client's default route via the node): traffic from off the node. The
/// veth goes with the namespaces.
fn wire_client(node: &Netns, client: &Netns, n: u32) {
    let (a, b) = (format!("bpv{:x}{n}a", std::process::id()), format!("bpv{:x}{n}b", std::process::id()));
    node.ip(&["link", "add", &a, "netns", &node.name, "type", "veth", "peer", "name", &b, "netns", &client.name]);
    node.exec(&["ip", "addr", "add", "192.0.2.2/24", "dev", &a]);
    node.exec(&["ip", "link", "set", &a, "up"]);
    client.exec(&["ip", "addr", "add", "192.0.2.100/24", "dev", &b]);
    client.exec(&["ip", "link", "set", &b, "up"]);
    client.exec(&["ip", "route", "replace", "default", "via", "192.0.2.2"]);
}

/// Starts the proxy for `node-a` in `ns` with `table`; returns its task and cancel token.
fn start_proxy(
    api: &TestApiServer,
    ns: &Netns,
    table: &str,
    cleanup: bool,
) -> (tokio::task::JoinHandle<Result<(), berth_proxy::Error>>, tokio_util::sync::CancellationToken) {
    let mut config = ProxyConfig::new("node-a");
    config.table = table.to_string();
    config.cleanup_on_exit = cleanup;
    config.node_ips = vec!["192.0.2.2".parse().expect("ip")];
    let cancel = api.cancel.child_token();
    let task = tokio::spawn(berth_proxy::run_on(api.client.clone(), config, Host::in_netns(&ns.name), cancel.clone()));
    (task, cancel)
}

/// The bodies of `n` requests to `url` from `ns` (errors as `error <code>`).
fn bodies(ns: &Netns, url: &str, n: usize) -> std::collections::BTreeMap<String, usize> {
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..n {
        let body = ns.curl(url).unwrap_or_else(|(code, _)| format!("error {code}"));
        *seen.entry(body).or_insert(0) += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: nftables, netns"]
async fn external_clients_reach_external_ips_load_balancers_and_local_node_ports_with_affinity() {
    if !prerequisites("external_clients_reach_external_ips_load_balancers_and_local_node_ports_with_affinity") {
        return;
    }
    let mut ns = Netns::new(3);
    let client = Netns::new(4);
    wire_client(&ns, &client, 3);
    ns.serve("10.250.0.1", "one"); // on node-a, this node
    ns.serve("10.250.0.2", "two"); // on node-b
    let api = TestApiServer::start().await;
    let services: Api<Service> = Api::namespaced(api.client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(api.client.clone(), "default");
    let both = |svc: &str| {
        SliceBuilder::new("default", svc, &format!("{svc}-1"), 8080)
            .ready("10.250.0.1", "node-a")
            .ready("10.250.0.2", "node-b")
            .build()
    };
    let made = [
        ServiceBuilder::new("default", "ext", "10.43.0.21", 80, 8080).spec("externalIPs", json!(["198.51.100.9"])),
        ServiceBuilder::new("default", "lb", "10.43.0.22", 80, 8080).load_balancer(30082, &[]),
        ServiceBuilder::new("default", "etp", "10.43.0.23", 80, 8080)
            .node_port(30083)
            .spec("externalTrafficPolicy", json!("Local")),
        ServiceBuilder::new("default", "aff", "10.43.0.24", 80, 8080)
            .spec("externalIPs", json!(["198.51.100.11"]))
            .spec("sessionAffinity", json!("ClientIP"))
            .spec("sessionAffinityConfig", json!({"clientIP": {"timeoutSeconds": 600}})),
        ServiceBuilder::new("default", "itp", "10.43.0.25", 80, 8080).spec("internalTrafficPolicy", json!("Local")),
    ];
    for (svc, name) in made.into_iter().zip(["ext", "lb", "etp", "aff", "itp"]) {
        services.create(&PostParams::default(), &svc.build()).await.expect("create service");
        slices.create(&PostParams::default(), &both(name)).await.expect("create slice");
    }
    // internalTrafficPolicy Local with only a remote endpoint.
    let remote = ServiceBuilder::new("default", "itp-remote", "10.43.0.26", 80, 8080)
        .spec("internalTrafficPolicy", json!("Local"))
        .build();
    services.create(&PostParams::default(), &remote).await.expect("create service");
    let remote = SliceBuilder::new("default", "itp-remote", "itp-remote-1", 8080).ready("10.250.0.2", "node-b").build();
    slices.create(&PostParams::default(), &remote).await.expect("create slice");
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.10"}]}}});
    services.patch_status("lb", &PatchParams::default(), &Patch::Merge(&status)).await.expect("lb status");
    let table = format!("berth-x{:x}", std::process::id());
    let (proxy, cancel) = start_proxy(&api, &ns, &table, true);

    tokio::task::block_in_place(|| {
        // externalIPs and the LoadBalancer's ingress IP (and its NodePort on the node address),
        // from off the node: both endpoints answer.
        for url in ["http://198.51.100.9/", "http://198.51.100.10/", "http://192.0.2.2:30082/"] {
            let mut seen = Default::default();
            let both = wait_until(Duration::from_secs(15), || {
                seen = bodies(&client, url, 10);
                seen.contains_key("one") && seen.contains_key("two")
            });
            assert!(both, "{url} from the client: {seen:?}");
        }
        // externalTrafficPolicy Local: an external client only ever reaches this node's endpoint.
        let seen = bodies(&client, "http://192.0.2.2:30083/", 20);
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), [("one".to_string(), 20)], "ETP Local");
        // sessionAffinity ClientIP: every request of the client goes to the endpoint it got first,
        // and the proxy remembers the client (with the configured timeout).
        let seen = bodies(&client, "http://198.51.100.11/", 20);
        assert_eq!(seen.len(), 1, "one endpoint for one client: {seen:?}");
        assert!(seen.keys().all(|k| k == "one" || k == "two"), "{seen:?}");
        let listed = ns.exec(&["nft", "list", "table", "inet", &table]);
        assert!(listed.contains("192.0.2.100 timeout 10m") || listed.contains("192.0.2.100 expires"), "{listed}");
        // internalTrafficPolicy Local: traffic from the node itself only reaches local endpoints.
        let seen = bodies(&ns, "http://10.43.0.25/", 20);
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), [("one".to_string(), 20)], "ITP Local");
        // ...and without a local endpoint it is dropped (curl times out: 28), not sent off-node.
        let err = ns.curl("http://10.43.0.26/").expect_err("no local endpoint");
        assert_eq!(err.0, 28, "ITP Local without local endpoints drops: {err:?}");
    });

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), proxy).await.expect("proxy stops").expect("join").expect("run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: nftables, netns"]
async fn without_the_cleanup_flag_or_after_a_crash_the_rules_stay_and_traffic_flows() {
    if !prerequisites("without_the_cleanup_flag_or_after_a_crash_the_rules_stay_and_traffic_flows") {
        return;
    }
    let mut ns = Netns::new(5);
    ns.serve("10.250.0.1", "one");
    let api = TestApiServer::start().await;
    let web = ServiceBuilder::new("default", "web", "10.43.0.10", 80, 8080).node_port(30080).build();
    Api::<Service>::namespaced(api.client.clone(), "default")
        .create(&PostParams::default(), &web)
        .await
        .expect("create web");
    let slice = SliceBuilder::new("default", "web", "web-1", 8080).ready("10.250.0.1", "node-a").build();
    Api::<EndpointSlice>::namespaced(api.client.clone(), "default")
        .create(&PostParams::default(), &slice)
        .await
        .expect("create slice");
    let table = format!("berth-k{:x}", std::process::id());
    let host = Host::in_netns(&ns.name);
    let serving = |ns: &Netns| {
        ns.curl("http://10.43.0.10/").as_deref() == Ok("one")
            && ns.curl("http://127.0.0.1:30080/").as_deref() == Ok("one")
    };

    // A clean stop without --proxy-cleanup-on-exit leaves table and route.
    let (proxy, cancel) = start_proxy(&api, &ns, &table, false);
    assert!(tokio::task::block_in_place(|| wait_until(Duration::from_secs(15), || serving(&ns))), "never served");
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), proxy).await.expect("proxy stops").expect("join").expect("run");
    assert!(host.table_exists(&table).await.expect("nft list"), "table kept without the flag");
    assert!(ns.ip(&["-n", &ns.name, "route", "show", "table", "4043"]).contains("blackhole 10.43.0.0/16"));
    assert!(tokio::task::block_in_place(|| serving(&ns)), "traffic flows with the proxy stopped");

    // A crash (the task dropped mid-run, no exit path) with the flag set: nothing is removed.
    let (proxy, _cancel) = start_proxy(&api, &ns, &table, true);
    let resynced = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(15), || {
            // The restarted proxy owns the table again: wait for its (identical) first sync.
            host_table_listed(&ns, &table).contains("10.250.0.1")
        })
    });
    assert!(resynced, "restarted proxy never synced");
    proxy.abort();
    assert!(proxy.await.expect_err("aborted").is_cancelled());
    assert!(host.table_exists(&table).await.expect("nft list"), "table kept after a crash");
    assert!(ns.ip(&["-n", &ns.name, "route", "show", "table", "4043"]).contains("blackhole 10.43.0.0/16"));
    assert!(tokio::task::block_in_place(|| serving(&ns)), "traffic flows after the crash");
    host.delete_table(&table).await.expect("delete"); // the namespace takes route and rules
}

/// `nft list table inet TABLE` in the namespace (empty if absent).
fn host_table_listed(ns: &Netns, table: &str) -> String {
    Command::new("ip")
        .args(["netns", "exec", &ns.name, "nft", "list", "table", "inet", table])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}
