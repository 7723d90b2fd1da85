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

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use berth_agent::kubelet::logs::read_content;
use common::cluster::{Cluster, POD_TIMEOUT, bridge_ports, container_status, http_get, mounts_under, prerequisites};
use common::wait_until;
use serde_json::Value;

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
    assert_eq!(read_content(&log).unwrap_or_default(), "failing\n");
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
    assert_eq!(read_content(&log).unwrap_or_default(), "failing\n", "the container ran again");
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
    assert!(wait_until(POD_TIMEOUT, || read_content(&log).is_ok_and(|l| l == "attempt\n")), "{log:?}");
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
