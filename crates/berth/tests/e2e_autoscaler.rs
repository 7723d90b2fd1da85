//! The cluster autoscaler with the `local` provider and real nodes: `berth server` with its agent
//! runs a Deployment that does not fit on its one node; the autoscaler starts a second `berth
//! agent` process (joined with the server's token, on its own bridge, sharing the image store),
//! the pending pod runs there; scaling the Deployment down makes that node unneeded, and after
//! the (shortened) delay its pods are moved, the agent stopped and the Node deleted.
//!
//! Needs root, runc, overlayfs and the CNI plugins (`#[ignore]`d; run with `--run-ignored all`).
//! The agent processes the server started are found by their pidfiles and stopped by PID on drop;
//! their bridge, containers and cgroups are removed too.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::cluster::{Cluster, prerequisites};
use common::wait_until;
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(120);

/// What the autoscaled node leaves on the host; removed on drop, pass or fail.
struct AutoscaledNodes {
    dir: PathBuf,
    bridge: String,
    node: String,
}

impl Drop for AutoscaledNodes {
    fn drop(&mut self) {
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let pid = std::fs::read_to_string(entry.path().join("agent.pid")).ok();
            if let Some(pid) = pid.and_then(|p| p.trim().parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            let runc_root = entry.path().join("agent").join("runc");
            let list = Command::new("runc").arg("--root").arg(&runc_root).args(["list", "-q"]).output();
            for id in list.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default().lines() {
                let _ = Command::new("runc").arg("--root").arg(&runc_root).args(["delete", "--force", id]).output();
            }
        }
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).output();
        let _ = berth_agent::kubelet::cgroup::remove(&berth_agent::kubelet::cgroup::kubelet_cgroup(&self.node));
    }
}

fn config(data: &Path, group: &str, bridge: &str, cpus: usize) -> String {
    let data = data.display();
    format!(
        r#"
scanInterval: 1s
scaleDownUnneededTime: 3s
scaleDownDelayAfterAdd: 3s
nodeGroups:
- name: {group}
  provider: local
  maxSize: 1
  template:
    capacity: {{cpu: "{cpus}", memory: 1Gi, pods: "110"}}
  agentArgs: ["--node-ip", "127.0.0.1", "--kubelet-port", "0", "--cni-bridge", "{bridge}",
    "--netns-dir", "{data}/netns-{{name}}", "--no-cni-gateway", "--no-ip-masq", "--cni-bin-dir", "/usr/lib/cni",
    "--airgap", "--image-store", "{data}/agent/images", "--disable-kube-proxy"]
"#
    )
}

fn pods(c: &Cluster) -> Vec<(String, String, String)> {
    let list = c.berth(&["get", "pods", "-l", "app=burst", "-o", "json"]).unwrap_or_default();
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p: &Value| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (s(&p["metadata"]["name"]), s(&p["spec"]["nodeName"]), s(&p["status"]["phase"]))
        })
        .collect()
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn a_pending_pod_brings_up_a_local_node_that_goes_again_when_unneeded() {
    if !prerequisites("a_pending_pod_brings_up_a_local_node_that_goes_again_when_unneeded") {
        return;
    }
    let group = format!("ca{:x}", std::process::id());
    let node = format!("{group}-0");
    let bridge = format!("bu{:x}", std::process::id());
    let cpus = std::thread::available_parallelism().map_or(2, usize::from);
    let config_dir = tempfile::tempdir().expect("temp dir");
    let config_path = config_dir.path().join("autoscaler.yaml");
    let c = Cluster::start_with(0, &|c| {
        std::fs::write(&config_path, config(&c.data, &group, &bridge, cpus)).expect("write config");
        vec!["--cluster-autoscaler-config".to_string(), config_path.display().to_string()]
    });
    let _guard = AutoscaledNodes { dir: c.data.join("autoscaler"), bridge: bridge.clone(), node: node.clone() };

    // Each pod asks for 45% of the host's cpus: two fit the server's node, the third does not.
    let milli = cpus * 450;
    c.apply(&format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: burst}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: burst}}}}
  template:
    metadata: {{labels: {{app: burst}}}}
    spec:
      terminationGracePeriodSeconds: 1
      tolerations: [{{key: node.kubernetes.io/disk-pressure, operator: Exists}}]
      containers:
      - name: main
        image: busybox
        command: ["sleep", "3600"]
        resources: {{requests: {{cpu: "{milli}m", memory: 64Mi}}}}
"#
    ));
    let mut last = Vec::new();
    let grown = wait_until(TIMEOUT, || {
        last = pods(&c);
        last.len() == 3 && last.iter().all(|(_, _, phase)| phase == "Running")
    });
    assert!(grown, "3 pods never ran: {last:?}\nserver log:\n{}", c.log());
    assert!(last.iter().any(|(_, n, _)| *n == node), "one pod runs on the new node {node}: {last:?}");
    let labels = c.berth(&["get", "node", &node, "-o", "json"]).expect("the new node")["metadata"]["labels"].clone();
    assert_eq!(labels["autoscaler.berth.dev/node-group"], group.as_str());
    let pid_path = c.data.join("autoscaler").join(&node).join("agent.pid");
    let pid: i32 = std::fs::read_to_string(&pid_path).expect("agent pidfile").trim().parse().expect("pid");

    // One replica fits the server's node: the autoscaled node is drained and removed.
    let out = c.server().berth().args(["scale", "deployment", "burst", "--replicas=1"]).output().expect("scale");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let gone = wait_until(TIMEOUT, || c.berth(&["get", "node", &node, "-o", "json"]).is_err());
    assert!(gone, "node {node} was never removed\nserver log:\n{}", c.log());
    let stopped =
        wait_until(Duration::from_secs(20), || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err());
    assert!(stopped, "the agent process {pid} still runs");
    let ran = wait_until(TIMEOUT, || {
        last = pods(&c);
        last.len() == 1 && last.iter().all(|(_, n, phase)| *n == c.node_name() && phase == "Running")
    });
    assert!(ran, "the remaining pod does not run on the server's node: {last:?}");
}
