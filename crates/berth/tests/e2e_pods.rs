//! End-to-end tests of real pods: `berth server` with its agent runs busybox pods in runc
//! containers on a CNI bridge, from an image the test builds from Debian's `/bin/busybox` and
//! imports with `berth image import`.
//!
//! They need root, runc, overlayfs, busybox-static and the CNI plugins, so they are `#[ignore]`d;
//! run them with `cargo nextest run -p berth --run-ignored all --test e2e_pods`. Without a
//! prerequisite they fail under `CI=true` and print a skip otherwise.
//!
//! Safety on a shared machine: each test uses its own bridge `bt<pid-hex><n>` (created by the test
//! with the gateway address, the agent runs with `--no-cni-gateway --no-ip-masq`, so the host's
//! ip_forward and iptables stay untouched), a cluster CIDR 10.<200+k>.0.0/16 that no host route or
//! address uses, and netns/IPAM/runc state inside the server's data dir. Traffic goes only from
//! the host to the test's own pods over that bridge. The drop guard stops the server (by PID),
//! force-deletes the containers, unmounts everything under the data dir, deletes the netns files
//! and the bridge, and removes the data dir, pass or fail.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_agent::image::testing::TestImage;
use berth_agent::testing::Prerequisites;
use common::{TestServer, wait_until};
use serde_json::Value;

const PLUGIN_DIR: &str = "/usr/lib/cni";
const PLUGINS: &[&str] = &["bridge", "host-local", "portmap", "loopback"];
const POD_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether this machine can run the tests (see `berth_agent::testing::Prerequisites::check`).
fn prerequisites(test: &str) -> bool {
    Prerequisites::new().root().containers().pod_network(PLUGIN_DIR, PLUGINS, "containernetworking-plugins").check(test)
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether a host route or address mentions `10.<octet>.`.
fn octet_in_use(octet: u32) -> bool {
    let needle = format!("10.{octet}.");
    ip(&["-4", "route", "show", "table", "all"]).contains(&needle)
        || ip(&["-4", "-o", "addr", "show"]).contains(&needle)
}

/// Mount points under `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

fn bridge_ports(bridge: &str) -> Vec<String> {
    ip(&["-o", "link", "show", "master", bridge])
        .lines()
        .filter_map(|l| l.split(": ").nth(1).map(|n| n.split('@').next().unwrap_or(n).to_string()))
        .collect()
}

/// `berth server` with the agent, on a private bridge and CIDR; cleans up everything on drop.
struct Cluster {
    server: Option<TestServer>,
    /// The agent flags, for a restart.
    args: Vec<String>,
    data: PathBuf,
    bridge: String,
    /// The node's pod network (10.<octet>.0.0/24).
    octet: u32,
}

impl Cluster {
    fn start(index: u32) -> Cluster {
        let data_dir = tempfile::Builder::new().prefix("berth-e2e-").tempdir().expect("temp data dir");
        let data = data_dir.path().to_path_buf();
        let bridge = format!("bt{:x}{index:x}", std::process::id());
        assert!(bridge.len() <= 15, "bridge name {bridge} too long");
        let base = 200 + (std::process::id() % 10) * 5 + index;
        let octet = (0..50).map(|k| 200 + (base - 200 + k * 7) % 55).find(|&o| !octet_in_use(o)).expect("a free CIDR");
        // Guard first, so a failure below still cleans up.
        let mut cluster = Cluster { server: None, args: Vec::new(), data: data.clone(), bridge: bridge.clone(), octet };
        // The test owns the bridge and its gateway address (the plugin never flips ip_forward).
        let out = Command::new("ip").args(["link", "add", &bridge, "type", "bridge"]).output().expect("ip link add");
        assert!(out.status.success(), "ip link add {bridge}: {}", String::from_utf8_lossy(&out.stderr));
        let gateway = format!("10.{octet}.0.1/24");
        assert!(Command::new("ip").args(["addr", "add", &gateway, "dev", &bridge]).status().expect("ip").success());
        assert!(Command::new("ip").args(["link", "set", &bridge, "up"]).status().expect("ip").success());

        // Import the busybox image into the server's data dir before it starts.
        let archive = data.join("busybox-oci.tar");
        TestImage::busybox().oci_archive("docker.io/library/busybox:latest", &archive);
        let out = Command::new(common::berth_bin())
            .args(["image", "import"])
            .arg(&archive)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .expect("berth image import");
        assert!(out.status.success(), "berth image import: {}", String::from_utf8_lossy(&out.stderr));
        let ls = Command::new(common::berth_bin()).args(["image", "ls", "--data-dir"]).arg(&data).output().expect("ls");
        let ls = String::from_utf8_lossy(&ls.stdout).into_owned();
        assert!(ls.starts_with("IMAGE") && ls.contains("docker.io/library/busybox:latest"), "{ls}");

        let cidr = format!("10.{octet}.0.0/16");
        let netns = data.join("netns");
        let node = format!("e2e-{}-{index}", std::process::id());
        let args = [
            "--cluster-cidr",
            &cidr,
            "--cni-bridge",
            &bridge,
            "--netns-dir",
            netns.to_str().expect("utf-8 path"),
            "--node-name",
            &node,
            "--node-ip",
            "127.0.0.1",
            "--no-cni-gateway",
            "--no-ip-masq",
            "--cni-bin-dir",
            PLUGIN_DIR,
        ];
        cluster.args = args.iter().map(|a| a.to_string()).collect();
        cluster.server = Some(TestServer::start_with_agent(data_dir, &args));
        let ok = wait_until(POD_TIMEOUT, || {
            cluster.berth(&["get", "node", &node, "-o", "json"]).is_ok_and(|n| n["spec"]["podCIDR"].is_string())
        });
        assert!(ok, "node {node} never registered; log:\n{}", cluster.log());
        cluster
    }

    /// Stops the server and starts it again on the same data dir (containers keep running).
    fn restart(&mut self) {
        let server = self.server.take().expect("server running");
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.server = Some(server.restart_with_agent(&args));
    }

    fn server(&self) -> &TestServer {
        self.server.as_ref().expect("server running")
    }

    fn log(&self) -> String {
        self.server.as_ref().map(TestServer::log).unwrap_or_default()
    }

    /// Runs `berth ARGS` against the server; JSON output parsed, else the text as a string.
    fn berth(&self, args: &[&str]) -> Result<Value, String> {
        let out = self.server().berth().args(args).output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    fn apply(&self, manifest: &str) {
        let out = self.server().berth().args(["apply", "-f", "-"]).write_stdin(manifest).output().expect("apply");
        assert!(out.status.success(), "apply failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn pod(&self, name: &str) -> Option<Value> {
        self.berth(&["get", "pod", name, "-o", "json"]).ok()
    }

    /// Waits until `cond` holds for the pod; returns it.
    fn wait_pod(&self, name: &str, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let mut last = None;
        let ok = wait_until(POD_TIMEOUT, || {
            last = self.pod(name);
            last.as_ref().is_some_and(&cond)
        });
        assert!(ok, "pod {name} never {what}; last: {last:#?}\nlog:\n{}", self.log());
        last.unwrap_or_default()
    }

    fn runc_list(&self) -> String {
        let out = Command::new("runc")
            .arg("--root")
            .arg(self.data.join("agent").join("runc"))
            .args(["list", "-q"])
            .output()
            .expect("runc list");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn netns_files(&self) -> Vec<String> {
        std::fs::read_dir(self.data.join("netns"))
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(server) = self.server.as_mut() {
            server.stop();
        }
        let runc_root = self.data.join("agent").join("runc");
        for id in self.runc_list().lines().filter(|l| !l.is_empty()) {
            let _ = Command::new("runc").arg("--root").arg(&runc_root).args(["delete", "--force", id]).output();
        }
        for mount in mounts_under(&self.data) {
            if let Err(e) = nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH) {
                eprintln!("unmount {} failed: {e}", mount.display());
            }
        }
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).output();
        // The server (and its TempDir) goes last: the data dir is removed once nothing is mounted.
        drop(self.server.take());
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn container_status(pod: &Value) -> &Value {
    &pod["status"]["containerStatuses"][0]
}

fn http_get(addr: SocketAddr) -> Result<String, String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
    stream.write_all(b"GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n").map_err(|e| e.to_string())?;
    let mut body = String::new();
    stream.read_to_string(&mut body).map_err(|e| e.to_string())?;
    Ok(body)
}

const WEB: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: httpd
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello from $(POD_NAME) > /www/index.html && exec httpd -f -p 80 -h /www"]
    env:
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
"#;

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn a_web_pod_runs_gets_an_ip_and_answers_http() {
    if !prerequisites("a_web_pod_runs_gets_an_ip_and_answers_http") {
        return;
    }
    let c = Cluster::start(0);
    c.apply(WEB);
    let pod = c.wait_pod("web", "became Running with an IP", |p| {
        p["status"]["phase"] == "Running" && p["status"]["podIP"].is_string()
    });
    let pod_ip = pod["status"]["podIP"].as_str().unwrap_or_default().to_string();
    assert!(pod_ip.starts_with(&format!("10.{}.0.", c.octet)), "pod IP {pod_ip} outside the node's CIDR");
    let cs = container_status(&pod);
    assert_eq!(cs["ready"], true, "{cs:#}");
    assert!(cs["containerID"].as_str().is_some_and(|id| id.starts_with("runc://")), "{cs:#}");
    assert!(cs["state"]["running"]["startedAt"].is_string(), "{cs:#}");
    let conditions = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
    assert!(conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"), "{conditions:#?}");

    let addr: SocketAddr = format!("{pod_ip}:80").parse().expect("addr");
    let mut last = String::new();
    let ok = wait_until(POD_TIMEOUT, || match http_get(addr) {
        Ok(body) => {
            last = body;
            last.contains("hello from web")
        }
        Err(e) => {
            last = e;
            false
        }
    });
    assert!(ok, "no HTTP answer from {addr}: {last}");

    let table = c.berth(&["get", "pod", "web"]).expect("get pod");
    let row = table.as_str().and_then(|t| t.lines().nth(1)).unwrap_or_default().to_string();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells.get(..3), Some(&["web", "1/1", "Running"][..]), "{table}");
    let log = std::fs::read_dir(c.data.join("agent").join("pods")).expect("pods dir").count();
    assert_eq!(log, 1, "one pod dir");
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn a_failing_pod_with_restart_policy_never_ends_failed_with_exit_code_1() {
    if !prerequisites("a_failing_pod_with_restart_policy_never_ends_failed_with_exit_code_1") {
        return;
    }
    let mut c = Cluster::start(1);
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: fail}
spec:
  restartPolicy: Never
  containers:
  - {name: main, image: busybox, command: ["sh", "-c", "echo failing; exit 1"]}
"#,
    );
    let pod = c.wait_pod("fail", "failed", |p| p["status"]["phase"] == "Failed");
    let term = &container_status(&pod)["state"]["terminated"];
    assert_eq!(term["exitCode"], 1, "{pod:#}");
    assert_eq!(term["reason"], "Error", "{pod:#}");
    assert_eq!(container_status(&pod)["restartCount"], 0);
    let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
    let log = c.data.join("agent/pods").join(uid).join("logs/main/0.log");
    assert_eq!(std::fs::read_to_string(&log).unwrap_or_default(), "failing\n");
    // A finished pod keeps its logs and status but releases its container, rootfs and network.
    let released = wait_until(POD_TIMEOUT, || {
        c.runc_list().is_empty() && c.netns_files().is_empty() && mounts_under(&c.data.join("agent")).is_empty()
    });
    assert!(released, "finished pod still holds: containers {:?}, netns {:?}", c.runc_list(), c.netns_files());
    assert_eq!(c.pod("fail").map(|p| p["status"]["phase"].clone()), Some(Value::from("Failed")));

    // After an agent restart the finished pod stays finished: nothing runs again.
    c.restart();
    let synced = wait_until(POD_TIMEOUT, || c.log().matches("pod worker started").count() >= 2);
    assert!(synced, "the new agent never synced the pod; log:\n{}", c.log());
    assert_eq!(c.runc_list(), "", "a finished pod was started again");
    assert_eq!(std::fs::read_to_string(&log).unwrap_or_default(), "failing\n", "the container ran again");
    let pod = c.pod("fail").expect("pod");
    assert_eq!(pod["status"]["phase"], "Failed");
    assert_eq!(container_status(&pod)["state"]["terminated"]["exitCode"], 1, "{pod:#}");
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn deleting_a_running_pod_removes_it_and_everything_it_had_on_the_host() {
    if !prerequisites("deleting_a_running_pod_removes_it_and_everything_it_had_on_the_host") {
        return;
    }
    let c = Cluster::start(2);
    c.apply(WEB);
    c.wait_pod("web", "became Running", |p| p["status"]["phase"] == "Running");
    assert!(!c.runc_list().is_empty());
    assert_eq!(c.netns_files().len(), 1);
    assert_eq!(bridge_ports(&c.bridge).len(), 1, "one veth on the bridge");

    c.berth(&["delete", "pod", "web", "--wait=false"]).expect("delete");
    let gone = wait_until(POD_TIMEOUT, || c.pod("web").is_none());
    assert!(gone, "pod object still there; log:\n{}", c.log());
    assert_eq!(c.runc_list(), "", "containers left");
    let rootfs_mounts: Vec<PathBuf> = mounts_under(&c.data.join("agent").join("pods")).into_iter().collect();
    assert!(rootfs_mounts.is_empty(), "mounts left: {rootfs_mounts:?}");
    assert!(c.netns_files().is_empty(), "netns left: {:?}", c.netns_files());
    assert!(bridge_ports(&c.bridge).is_empty(), "veths left: {:?}", bridge_ports(&c.bridge));
    let pods_dir = c.data.join("agent").join("pods");
    assert_eq!(std::fs::read_dir(&pods_dir).map(|d| d.count()).unwrap_or(0), 0, "pod dir left");
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn an_unknown_image_shows_err_image_pull_then_image_pull_back_off() {
    if !prerequisites("an_unknown_image_shows_err_image_pull_then_image_pull_back_off") {
        return;
    }
    let c = Cluster::start(3);
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: nope}
spec:
  containers:
  - {name: main, image: "example.com/does-not-exist:1"}
"#,
    );
    let reason = |p: &Value| container_status(p)["state"]["waiting"]["reason"].as_str().unwrap_or_default().to_string();
    let pod = c.wait_pod("nope", "showed ErrImagePull", |p| reason(p) == "ErrImagePull");
    let message = container_status(&pod)["state"]["waiting"]["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("not found in the node's image store; import it with berth image import"), "{message}");
    assert_eq!(pod["status"]["phase"], "Pending");
    c.wait_pod("nope", "showed ImagePullBackOff", |p| reason(p) == "ImagePullBackOff");
}

/// The PID of a container's init process, from `runc state`.
fn container_pid(c: &Cluster, id: &str) -> Option<i64> {
    let out =
        Command::new("runc").arg("--root").arg(c.data.join("agent").join("runc")).args(["state", id]).output().ok()?;
    let state: Value = serde_json::from_slice(&out.stdout).ok()?;
    (state["status"] == "running").then(|| state["pid"].as_i64()).flatten()
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn a_restarted_agent_adopts_running_containers_instead_of_duplicating_them() {
    if !prerequisites("a_restarted_agent_adopts_running_containers_instead_of_duplicating_them") {
        return;
    }
    let mut c = Cluster::start(4);
    c.apply(WEB);
    let pod = c.wait_pod("web", "became Running", |p| p["status"]["phase"] == "Running");
    let id = c.runc_list();
    assert_eq!(id.lines().count(), 1, "{id}");
    let pid = container_pid(&c, &id).expect("container running");
    let pod_ip = pod["status"]["podIP"].clone();

    c.restart();
    let adopted = wait_until(POD_TIMEOUT, || c.log().contains("adopted running container"));
    assert!(adopted, "the new agent never adopted the container; log:\n{}", c.log());
    assert_eq!(c.runc_list(), id, "exactly the same container");
    assert_eq!(container_pid(&c, &id), Some(pid), "the same process");
    let pod = c.wait_pod("web", "stayed Running", |p| p["status"]["phase"] == "Running");
    assert_eq!(pod["status"]["podIP"], pod_ip);
    assert_eq!(container_status(&pod)["restartCount"], 0);
    assert_eq!(c.netns_files().len(), 1);
    assert_eq!(bridge_ports(&c.bridge).len(), 1, "no second veth");
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn a_crashing_container_is_restarted_with_crash_loop_back_off() {
    if !prerequisites("a_crashing_container_is_restarted_with_crash_loop_back_off") {
        return;
    }
    let c = Cluster::start(5);
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  containers:
  - {name: main, image: busybox, command: ["sh", "-c", "echo attempt; exit 3"]}
"#,
    );
    let reason = |p: &Value| container_status(p)["state"]["waiting"]["reason"].as_str().unwrap_or_default().to_string();
    let pod = c.wait_pod("crash", "backed off", |p| reason(p) == "CrashLoopBackOff");
    assert_eq!(pod["status"]["phase"], "Running", "restartPolicy Always keeps the pod Running");
    assert_eq!(container_status(&pod)["lastState"]["terminated"]["exitCode"], 3, "{pod:#}");
    // The first restart comes after 10 s.
    let pod = c.wait_pod("crash", "restarted", |p| container_status(p)["restartCount"].as_i64().unwrap_or(0) >= 1);
    let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
    let log = c.data.join("agent/pods").join(uid).join("logs/main/1.log");
    assert!(wait_until(POD_TIMEOUT, || std::fs::read_to_string(&log).is_ok_and(|l| l == "attempt\n")), "{log:?}");
    let events = c.berth(&["get", "events", "-o", "json"]).expect("events");
    let reasons: Vec<&str> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == "crash" && e["source"]["component"] == "kubelet")
        .filter_map(|e| e["reason"].as_str())
        .collect();
    for reason in ["Pulled", "Created", "Started", "BackOff"] {
        assert!(reasons.contains(&reason), "no {reason} event: {reasons:?}");
    }
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn a_force_deleted_pod_is_cleaned_up_from_the_host() {
    if !prerequisites("a_force_deleted_pod_is_cleaned_up_from_the_host") {
        return;
    }
    let c = Cluster::start(6);
    c.apply(WEB);
    c.wait_pod("web", "became Running", |p| p["status"]["phase"] == "Running");
    c.berth(&["delete", "pod", "web", "--force", "--grace-period=0"]).expect("force delete");
    assert!(c.pod("web").is_none(), "force delete removes the object at once");
    let clean = wait_until(POD_TIMEOUT, || {
        c.runc_list().is_empty() && c.netns_files().is_empty() && bridge_ports(&c.bridge).is_empty()
    });
    assert!(clean, "left behind: containers {:?}, netns {:?}; log:\n{}", c.runc_list(), c.netns_files(), c.log());
    assert!(mounts_under(&c.data.join("agent").join("pods")).is_empty());
}
