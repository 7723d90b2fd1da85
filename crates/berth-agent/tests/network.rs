//! Host tests of pod networking: network namespaces and the CNI `bridge`, `host-local`,
//! `portmap` and `loopback` plugins (Debian's containernetworking-plugins in `/usr/lib/cni`).
//!
//! They need root and the plugins, so they are `#[ignore]`d; run them with
//! `cargo nextest run -p berth-agent --run-ignored all`. Without a prerequisite they fail under
//! `CI=true` and print a skip otherwise.
//!
//! Safety on a shared machine: every name carries a per-run prefix (`bt<pid-hex><n>` for
//! bridges), each test picks a 10.244.<n>.0/24 pod CIDR no route or address on the host uses,
//! the netns dir and host-local's dataDir live in a temp dir, masquerading is off, and the tests
//! own their bridge: they create it with the gateway address themselves and run the plugin with
//! `isGateway: false`, so the plugin never flips the host's `net.ipv4.ip_forward`. Traffic goes
//! only from the host to our own namespaces over that bridge. A drop guard tears down pods (CNI
//! DEL), deletes netns files, the bridge, the run-dir bind mount and the temp dir, also when a
//! test fails, and each test ends by asserting that nothing of it is left.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_agent::network::netns::{self, NetNs};
use berth_agent::network::{
    BridgeNetworkOptions, CniConfig, CniNetwork, PodCidr, PodNetwork, PodNetworkRequest, PodNetworkStatus, PortMapping,
};
use berth_agent::testing::Prerequisites;

const PLUGIN_DIR: &str = "/usr/lib/cni";
const PLUGINS: &[&str] = &["bridge", "host-local", "portmap", "loopback"];

// ---------------------------------------------------------------------------------------------
// prerequisites and host inspection

/// Whether this machine can run the tests (see `berth_agent::testing::Prerequisites::check`).
fn prerequisites(test: &str) -> bool {
    Prerequisites::new().root().pod_network(PLUGIN_DIR, PLUGINS, "Debian containernetworking-plugins").check(test)
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd} {args:?}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether any host route or address mentions 10.244.<n>.
fn subnet_in_use(n: u8) -> bool {
    let needle = format!("10.244.{n}.");
    let routes = run("ip", &["-4", "route", "show", "table", "all"]);
    let addrs = run("ip", &["-4", "-o", "addr", "show"]);
    routes.contains(&needle) || addrs.contains(&needle)
}

fn link_exists(name: &str) -> bool {
    Command::new("ip").args(["link", "show", "dev", name]).output().is_ok_and(|o| o.status.success())
}

/// Host-side veths enslaved to `bridge`.
fn bridge_ports(bridge: &str) -> Vec<String> {
    let out = Command::new("ip").args(["-o", "link", "show", "master", bridge]).output().expect("ip link");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// `ip -o addr show` as seen from inside `ns` (the child inherits the thread's netns).
fn addrs_in(ns: &NetNs) -> String {
    ns.run_in(|| run("ip", &["-o", "addr", "show"])).expect("run_in")
}

/// The IPv4 addresses (with prefix length) of `eth0` in `ip -o addr show` output.
fn eth0_inet(ip_o_addr: &str) -> Vec<String> {
    ip_o_addr
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace().skip(1);
            let name = words.next()?;
            let family = words.next()?;
            let addr = words.next()?;
            (name.split('@').next() == Some("eth0") && family == "inet").then(|| addr.to_string())
        })
        .collect()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

// ---------------------------------------------------------------------------------------------
// fixture

/// One test's private world: temp dir (netns dir, IPAM and record state), bridge, CIDR, pods.
struct Fixture {
    tmp: Option<tempfile::TempDir>,
    netns_dir: PathBuf,
    bridge: String,
    cidr: PodCidr,
    network: CniNetwork,
    pods: Vec<PodNetworkRequest>,
    prefix: String,
}

impl Fixture {
    /// `index` keeps tests of one run apart: it picks the bridge suffix and the CIDR's start.
    /// `ipam` may adjust host-local's config (e.g. narrow its range).
    fn new(index: u8, ipam: impl FnOnce(&mut serde_json::Value)) -> Fixture {
        let prefix = format!("bt{:x}{index:x}", std::process::id());
        assert!(prefix.len() <= 15, "bridge name {prefix} too long");
        let base = 100 + (std::process::id() % 16) as u8 * 8 + index;
        let n = (0..64u8)
            .map(|k| base.wrapping_add(k.wrapping_mul(16)))
            .find(|&n| n >= 100 && !subnet_in_use(n))
            .expect("a free 10.244.x.0/24");
        let cidr: PodCidr = format!("10.244.{n}.0/24").parse().unwrap();
        let tmp = tempfile::Builder::new().prefix(&format!("berth-{prefix}-")).tempdir().unwrap();
        let netns_dir = tmp.path().join("netns");
        let mut options = BridgeNetworkOptions::new(cidr);
        options.name = format!("berth-{prefix}");
        options.bridge = prefix.clone();
        options.is_gateway = false;
        options.ip_masq = false;
        options.ipam_data_dir = Some(tmp.path().join("ipam"));
        let mut conflist = options.conflist();
        ipam(&mut conflist["plugins"][0]["ipam"]);
        let config = CniConfig::from_conflist(&conflist.to_string()).unwrap().with_plugin_dirs(vec![PLUGIN_DIR.into()]);
        let fixture = Fixture {
            network: CniNetwork::new(config, &netns_dir, tmp.path().join("state")),
            netns_dir,
            bridge: prefix.clone(),
            cidr,
            pods: Vec::new(),
            tmp: Some(tmp),
            prefix: prefix.clone(),
        };
        // The test owns the bridge, with the gateway address, so the plugin can run with
        // isGateway=false and leave the host's ip_forward alone.
        run("ip", &["link", "add", &prefix, "type", "bridge"]);
        run("ip", &["addr", "add", &format!("10.244.{n}.1/24"), "dev", &prefix]);
        run("ip", &["link", "set", &prefix, "up"]);
        fixture
    }

    /// The bridge's address, `.1` of the CIDR.
    fn gateway(&self) -> Ipv4Addr {
        let IpAddr::V4(net) = self.cidr.network() else { panic!("IPv4 CIDR expected") };
        Ipv4Addr::from(u32::from(net) + 1)
    }

    /// The `10.244.<n>.` prefix every address of this test starts with.
    fn cidr_prefix(&self) -> String {
        let network = self.cidr.network().to_string();
        network.strip_suffix('0').unwrap_or(&network).to_string()
    }

    fn tmp_path(&self) -> PathBuf {
        self.tmp.as_ref().expect("temp dir").path().to_path_buf()
    }

    fn pod(&mut self, name: &str) -> PodNetworkRequest {
        let req = PodNetworkRequest {
            uid: format!("{}-{name}", self.prefix),
            namespace: "default".into(),
            name: name.into(),
            port_mappings: Vec::new(),
        };
        self.pods.push(req.clone());
        req
    }

    fn ipv4(&self, status: &PodNetworkStatus) -> Ipv4Addr {
        assert_eq!(status.ips.len(), 1, "one IP expected: {status:?}");
        let IpAddr::V4(ip) = status.ips[0] else { panic!("IPv4 expected: {status:?}") };
        assert!(self.cidr.contains(status.ips[0]), "{ip} outside {}", self.cidr);
        ip
    }

    /// Tears everything down and asserts nothing is left; the drop guard does the same without
    /// asserting if a test fails before getting here.
    fn finish(mut self) {
        let used_portmap = self.uses_portmap();
        self.cleanup();
        assert!(!link_exists(&self.bridge), "bridge {} left behind", self.bridge);
        let mounts = netns::mount_points().unwrap();
        let ours: Vec<_> = mounts.iter().filter(|m| m.to_string_lossy().contains(&self.prefix)).collect();
        assert!(ours.is_empty(), "mounts left behind: {ours:?}");
        let netns_list = run("ip", &["netns", "list"]);
        assert!(!netns_list.contains(&self.prefix), "netns left behind: {netns_list}");
        let links = run("ip", &["-o", "link"]);
        assert!(!links.contains(&self.prefix), "links left behind: {links}");
        let nat = run("iptables", &["-t", "nat", "-S"]);
        assert!(!nat.contains(&self.cidr_prefix()), "iptables rules left behind: {nat}");
        // Only the test that used host ports can tell: the chains are host-wide.
        if used_portmap {
            assert!(!nat.contains("CNI-HOSTPORT"), "portmap chains left behind: {nat}");
        }
    }

    fn uses_portmap(&self) -> bool {
        self.pods.iter().any(|p| !p.port_mappings.is_empty())
    }

    fn cleanup(&mut self) {
        let Some(tmp) = self.tmp.take() else { return };
        let used_portmap = self.uses_portmap();
        let network = self.network.clone();
        let pods = std::mem::take(&mut self.pods);
        let teardown = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            for pod in pods {
                if let Err(e) = rt.block_on(network.teardown(&pod)) {
                    eprintln!("cleanup: teardown of {}: {e:?}", pod.uid);
                }
            }
        });
        let _ = teardown.join();
        if let Ok(entries) = std::fs::read_dir(&self.netns_dir) {
            for entry in entries.flatten() {
                if let Ok(ns) = NetNs::open(entry.path()) {
                    let _ = ns.delete();
                }
                let _ = std::fs::remove_file(entry.path());
            }
        }
        if let Err(e) = netns::release_run_dir(&self.netns_dir) {
            eprintln!("cleanup: {e:?}");
        }
        // Another test's cleanup must not race a portmap ADD of this one.
        if used_portmap {
            remove_idle_portmap_chains();
        }
        if link_exists(&self.bridge) {
            let _ = Command::new("ip").args(["link", "del", &self.bridge]).status();
        }
        drop(tmp);
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// CNI DEL removes a pod's own portmap chains but leaves the plugin's top-level `CNI-HOSTPORT-*`
/// chains and their jumps; remove those too once no pod's DNAT chain hangs off them any more.
fn remove_idle_portmap_chains() {
    let dnat = Command::new("iptables").args(["-t", "nat", "-S", "CNI-HOSTPORT-DNAT"]).output();
    let Ok(dnat) = dnat else { return };
    if !dnat.status.success() || String::from_utf8_lossy(&dnat.stdout).lines().any(|l| l.starts_with("-A ")) {
        return;
    }
    for chain in ["PREROUTING", "OUTPUT", "POSTROUTING"] {
        let listing = Command::new("iptables")
            .args(["-t", "nat", "-L", chain, "-n", "--line-numbers"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut numbers: Vec<u32> = listing
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let number = words.next()?.parse().ok()?;
                words.next()?.starts_with("CNI-HOSTPORT-").then_some(number)
            })
            .collect();
        numbers.sort_unstable_by(|a, b| b.cmp(a));
        for number in numbers {
            let _ = Command::new("iptables").args(["-t", "nat", "-D", chain, &number.to_string()]).status();
        }
    }
    for chain in ["CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ"] {
        let _ = Command::new("iptables").args(["-t", "nat", "-F", chain]).output();
        let _ = Command::new("iptables").args(["-t", "nat", "-X", chain]).output();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Accepts one connection on `listener` and echoes what it reads, on a plain host thread (the
/// socket already belongs to the pod's netns).
fn serve_one_echo(listener: TcpListener) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let mut buf = [0u8; 64];
            if let Ok(n) = conn.read(&mut buf) {
                let _ = conn.write_all(&buf[..n]);
            }
        }
    })
}

fn echo_roundtrip(addr: SocketAddr) -> String {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_or_else(|e| panic!("{addr}: {e}"));
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(b"hello pod").unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).unwrap();
    out
}

// ---------------------------------------------------------------------------------------------
// tests

#[test]
#[ignore = "needs root: netns, CNI"]
fn netns_can_be_created_entered_and_deleted() {
    if !prerequisites("netns_can_be_created_entered_and_deleted") {
        return;
    }
    let fixture = Fixture::new(0, |_| {});
    let ns = NetNs::create_in(&fixture.netns_dir, &format!("{}-ns", fixture.prefix)).unwrap();
    assert!(netns::is_mount_point(&std::fs::canonicalize(ns.path()).unwrap()).unwrap());
    assert!(matches!(
        NetNs::create_in(&fixture.netns_dir, &format!("{}-ns", fixture.prefix)),
        Err(berth_agent::network::NetNsError::AlreadyExists(_))
    ));
    let reopened = NetNs::open(ns.path()).unwrap();

    let host_links = run("ip", &["-o", "link"]);
    let inside = addrs_in(&reopened);
    assert!(inside.contains("lo") && inside.contains("127.0.0.1/8"), "lo is up inside: {inside}");
    assert!(!inside.contains(&fixture.bridge), "host links are not visible inside: {inside}");
    assert!(host_links.contains(&fixture.bridge));
    // A listener bound to 127.0.0.1 inside is private to the namespace.
    let listener = reopened.run_in(|| TcpListener::bind("127.0.0.1:0")).unwrap().unwrap();
    let port = listener.local_addr().unwrap().port();
    let connected_inside = reopened
        .run_in(move || TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(5)))
        .unwrap();
    assert!(connected_inside.is_ok());
    let value = reopened.run_in(|| 41 + 1).unwrap();
    assert_eq!(value, 42);
    let inside_async = runtime().block_on(reopened.run_in_async(|| run("ip", &["-o", "link"]))).unwrap();
    assert!(!inside_async.contains(&fixture.bridge), "run_in_async runs inside: {inside_async}");
    let panicked = reopened.run_in(|| -> u8 { panic!("closure panics") });
    assert!(matches!(panicked, Err(berth_agent::network::NetNsError::ThreadPanicked(_))));

    ns.delete().unwrap();
    ns.delete().unwrap();
    assert!(!ns.path().exists());
    assert!(NetNs::open(ns.path()).is_err());
    fixture.finish();
}

#[test]
#[ignore = "needs root: netns, CNI"]
fn setup_gives_an_ip_in_the_cidr_reachable_from_the_host() {
    if !prerequisites("setup_gives_an_ip_in_the_cidr_reachable_from_the_host") {
        return;
    }
    let mut fixture = Fixture::new(1, |_| {});
    let req = fixture.pod("web");
    let rt = runtime();
    let status = rt.block_on(fixture.network.setup(&req)).unwrap();
    let ip = fixture.ipv4(&status);
    assert_eq!(status.netns, fixture.network.netns_path(&req.uid));

    let ns = NetNs::open(&status.netns).unwrap();
    let inside = addrs_in(&ns);
    assert_eq!(eth0_inet(&inside), vec![format!("{ip}/24")], "eth0 has {ip}: {inside}");
    assert!(inside.contains("inet 127.0.0.1/8"), "lo is up: {inside}");
    assert_eq!(bridge_ports(&fixture.bridge).len(), 1);

    let listener = ns.run_in(move || TcpListener::bind(SocketAddr::from((ip, 8080)))).unwrap().unwrap();
    let server = serve_one_echo(listener);
    assert_eq!(echo_roundtrip(SocketAddr::from((ip, 8080))), "hello pod");
    server.join().unwrap();
    fixture.finish();
}

#[test]
#[ignore = "needs root: netns, CNI"]
fn two_pods_on_the_same_bridge_reach_each_other() {
    if !prerequisites("two_pods_on_the_same_bridge_reach_each_other") {
        return;
    }
    let mut fixture = Fixture::new(2, |_| {});
    let (a, b) = (fixture.pod("a"), fixture.pod("b"));
    let rt = runtime();
    let status_a = rt.block_on(fixture.network.setup(&a)).unwrap();
    let status_b = rt.block_on(fixture.network.setup(&b)).unwrap();
    let (ip_a, ip_b) = (fixture.ipv4(&status_a), fixture.ipv4(&status_b));
    assert_ne!(ip_a, ip_b);
    assert_eq!(bridge_ports(&fixture.bridge).len(), 2);

    let ns_a = NetNs::open(&status_a.netns).unwrap();
    let ns_b = NetNs::open(&status_b.netns).unwrap();
    let listener = ns_a.run_in(move || TcpListener::bind(SocketAddr::from((ip_a, 9000)))).unwrap().unwrap();
    let server = serve_one_echo(listener);
    let reply = ns_b.run_in(move || echo_roundtrip(SocketAddr::from((ip_a, 9000)))).unwrap();
    assert_eq!(reply, "hello pod");
    server.join().unwrap();
    fixture.finish();
}

#[test]
#[ignore = "needs root: netns, CNI"]
fn teardown_removes_the_veth_and_frees_the_ip() {
    if !prerequisites("teardown_removes_the_veth_and_frees_the_ip") {
        return;
    }
    // One address in the range: getting it back proves it was freed.
    let mut fixture = Fixture::new(3, |ipam| {
        let subnet = ipam["ranges"][0][0]["subnet"].as_str().unwrap().to_string();
        let only = subnet.replace(".0/24", ".2");
        ipam["ranges"][0][0]["rangeStart"] = only.clone().into();
        ipam["ranges"][0][0]["rangeEnd"] = only.into();
    });
    let req = fixture.pod("web");
    let rt = runtime();
    let first = rt.block_on(fixture.network.setup(&req)).unwrap();
    let ip = fixture.ipv4(&first);
    let veths = bridge_ports(&fixture.bridge);
    assert_eq!(veths.len(), 1);

    rt.block_on(fixture.network.teardown(&req)).unwrap();
    wait_until("the veth to disappear", || !link_exists(&veths[0]));
    assert!(bridge_ports(&fixture.bridge).is_empty());
    assert!(!first.netns.exists(), "netns file removed");
    let ipam_dir = fixture.tmp_path().join("ipam");
    let reserved = std::fs::read_dir(ipam_dir.join(format!("berth-{}", fixture.prefix)))
        .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy() == ip.to_string()))
        .unwrap_or(false);
    assert!(!reserved, "{ip} released by host-local");
    // Teardown of a pod that is gone is fine.
    rt.block_on(fixture.network.teardown(&req)).unwrap();

    let again = rt.block_on(fixture.network.setup(&req)).unwrap();
    assert_eq!(fixture.ipv4(&again), ip, "the freed IP is handed out again");
    fixture.finish();
}

#[test]
#[ignore = "needs root: netns, CNI"]
fn setup_is_idempotent() {
    if !prerequisites("setup_is_idempotent") {
        return;
    }
    let mut fixture = Fixture::new(4, |_| {});
    let req = fixture.pod("web");
    let rt = runtime();
    let first = rt.block_on(fixture.network.setup(&req)).unwrap();
    // CniNetwork keeps no state in memory, so this is what a restarted agent does: it finds the
    // netns and the record, CHECKs and returns the same address.
    let second = rt.block_on(fixture.network.setup(&req)).unwrap();
    assert_eq!(first, second);
    assert_eq!(bridge_ports(&fixture.bridge).len(), 1, "no second veth");
    let ns = NetNs::open(&second.netns).unwrap();
    assert_eq!(eth0_inet(&addrs_in(&ns)), vec![format!("{}/24", fixture.ipv4(&first))]);
    rt.block_on(fixture.network.teardown(&req)).unwrap();
    rt.block_on(fixture.network.teardown(&req)).unwrap();
    fixture.finish();
}

#[test]
#[ignore = "needs root: netns, CNI"]
fn host_port_reaches_the_pod_until_teardown() {
    if !prerequisites("host_port_reaches_the_pod_until_teardown") {
        return;
    }
    let mut fixture = Fixture::new(5, |_| {});
    let gateway = fixture.gateway();
    let host_port = 20000 + (std::process::id() % 20000) as u16;
    let mut req = fixture.pod("web");
    // hostIP is our bridge address, so the DNAT rule matches no other traffic on this host.
    req.port_mappings =
        vec![PortMapping { host_port, container_port: 80, protocol: "tcp".into(), host_ip: gateway.to_string() }];
    fixture.pods[0] = req.clone();
    let rt = runtime();
    let status = rt.block_on(fixture.network.setup(&req)).unwrap();
    let ip = fixture.ipv4(&status);
    let nat = run("iptables", &["-t", "nat", "-S"]);
    assert!(nat.contains(&format!("{ip}:80")), "portmap DNAT rule to the pod: {nat}");

    let ns = NetNs::open(&status.netns).unwrap();
    let listener = ns.run_in(move || TcpListener::bind(SocketAddr::from((ip, 80)))).unwrap().unwrap();
    let server = serve_one_echo(listener);
    assert_eq!(echo_roundtrip(SocketAddr::from((gateway, host_port))), "hello pod");
    server.join().unwrap();

    // Teardown takes the port mappings from the setup record.
    let bare = PodNetworkRequest { port_mappings: Vec::new(), ..req };
    rt.block_on(fixture.network.teardown(&bare)).unwrap();
    let nat = run("iptables", &["-t", "nat", "-S"]);
    assert!(!nat.contains(&ip.to_string()), "portmap rules removed by CNI DEL: {nat}");
    fixture.finish();
}
