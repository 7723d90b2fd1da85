//! The end-to-end fixture: `berth server` with its agent on a private bridge, CIDR and data dir,
//! with the busybox image imported; everything it made is removed on drop, pass or fail.
//!
//! Safety on a shared machine: each cluster uses its own bridge `bt<pid-hex><n>` (created here
//! with the gateway address; the agent runs with `--no-cni-gateway --no-ip-masq`, so the host's
//! ip_forward and iptables stay untouched), a cluster CIDR 10.<200+k>.0.0/16 that no host route or
//! address uses, and netns/IPAM/runc state inside the server's data dir. The drop guard stops the
//! server (by PID), force-deletes the containers, unmounts everything under the data dir, deletes
//! the bridge, and removes the data dir.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_agent::image::testing::TestImage;
use berth_agent::testing::Prerequisites;
use serde_json::Value;

use super::{TestServer, wait_until};

pub const PLUGIN_DIR: &str = "/usr/lib/cni";
pub const PLUGINS: &[&str] = &["bridge", "host-local", "portmap", "loopback"];
pub const POD_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether this machine can run the tests (see `berth_agent::testing::Prerequisites::check`).
pub fn prerequisites(test: &str) -> bool {
    Prerequisites::new().root().containers().pod_network(PLUGIN_DIR, PLUGINS, "containernetworking-plugins").check(test)
}

pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether a host route or address mentions `10.<octet>.`.
pub fn octet_in_use(octet: u32) -> bool {
    let needle = format!("10.{octet}.");
    ip(&["-4", "route", "show", "table", "all"]).contains(&needle)
        || ip(&["-4", "-o", "addr", "show"]).contains(&needle)
}

/// Mount points under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
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

pub fn bridge_ports(bridge: &str) -> Vec<String> {
    ip(&["-o", "link", "show", "master", bridge])
        .lines()
        .filter_map(|l| l.split(": ").nth(1).map(|n| n.split('@').next().unwrap_or(n).to_string()))
        .collect()
}

/// `berth server` with the agent, on a private bridge and CIDR; cleans up everything on drop.
pub struct Cluster {
    pub server: Option<TestServer>,
    /// The agent flags, for a restart.
    pub args: Vec<String>,
    pub data: PathBuf,
    pub bridge: String,
    /// The node's pod network (10.<octet>.0.0/24).
    pub octet: u32,
    /// The service proxy's per-run setup, when started with it.
    pub proxy: Option<ProxySetup>,
}

/// What a cluster started with the proxy owns on the host.
pub struct ProxySetup {
    /// The service CIDR (10.<octet>.0.0/24).
    pub service_cidr: String,
    pub table: String,
}

/// The routing table of the proxy's blackhole routes (berth_proxy's default).
pub const PROXY_ROUTE_TABLE: &str = "4043";

impl Cluster {
    pub fn start(index: u32) -> Cluster {
        Self::start_with(index, &|_| Vec::new())
    }

    /// As [`Cluster::start`], with more `berth server` flags, computed from the cluster's bridge,
    /// octet and data dir. The service proxy stays off (see [`Cluster::start_with_proxy`]).
    pub fn start_with(index: u32, extra_args: &dyn Fn(&Cluster) -> Vec<String>) -> Cluster {
        Self::start_inner(index, false, extra_args)
    }

    /// As [`Cluster::start_with`], with the service proxy on, confined to this run: its own
    /// service CIDR 10.<free>.0.0/24 (blackholed for forwarded traffic), nftables table
    /// `berth-e<pid><index>`, route_localnet and IPv4 forwarding only on the cluster's bridge
    /// (never the global ip_forward), NodePorts at 127.0.0.1 and the bridge's gateway address.
    /// Table, policy rules and route are removed on drop even if the server could not.
    pub fn start_with_proxy(index: u32, extra_args: &dyn Fn(&Cluster) -> Vec<String>) -> Cluster {
        Self::start_inner(index, true, extra_args)
    }

    fn start_inner(index: u32, proxy: bool, extra_args: &dyn Fn(&Cluster) -> Vec<String>) -> Cluster {
        let data_dir = tempfile::Builder::new().prefix("berth-e2e-").tempdir().expect("temp data dir");
        let data = data_dir.path().to_path_buf();
        let bridge = format!("bt{:x}{index:x}", std::process::id());
        assert!(bridge.len() <= 15, "bridge name {bridge} too long");
        let base = 200 + (std::process::id() % 10) * 5 + index;
        let octet = (0..50).map(|k| 200 + (base - 200 + k * 7) % 55).find(|&o| !octet_in_use(o)).expect("a free CIDR");
        // Guard first, so a failure below still cleans up.
        let mut cluster =
            Cluster { server: None, args: Vec::new(), data: data.clone(), bridge: bridge.clone(), octet, proxy: None };
        // The test owns the bridge and its gateway address (the plugin never flips ip_forward).
        let out = Command::new("ip").args(["link", "add", &bridge, "type", "bridge"]).output().expect("ip link add");
        assert!(out.status.success(), "ip link add {bridge}: {}", String::from_utf8_lossy(&out.stderr));
        let gateway = format!("10.{octet}.0.1/24");
        assert!(Command::new("ip").args(["addr", "add", &gateway, "dev", &bridge]).status().expect("ip").success());
        assert!(Command::new("ip").args(["link", "set", &bridge, "up"]).status().expect("ip").success());

        // Import the busybox image into the server's data dir before it starts.
        let archive = data.join("busybox-oci.tar");
        TestImage::busybox().oci_archive("docker.io/library/busybox:latest", &archive);
        let out = Command::new(super::berth_bin())
            .args(["image", "import"])
            .arg(&archive)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .expect("berth image import");
        assert!(out.status.success(), "berth image import: {}", String::from_utf8_lossy(&out.stderr));
        let ls = Command::new(super::berth_bin()).args(["image", "ls", "--data-dir"]).arg(&data).output().expect("ls");
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
            // Never ask a registry off this host: the tests' images are imported.
            "--airgap",
            // The shared test machine's disk may be fuller than the kubelet's default 10% margin.
            "--eviction-hard",
            "nodefs.available<1%",
            // Parallel clusters share 127.0.0.1: each kubelet server gets its own free port.
            "--kubelet-port",
            "0",
        ];
        cluster.args = args.iter().map(|a| a.to_string()).collect();
        if proxy {
            let proxy_args = cluster.proxy_args(index);
            cluster.args.extend(proxy_args);
        } else {
            cluster.args.push("--disable-kube-proxy".to_string());
        }
        let extra = extra_args(&cluster);
        cluster.args.extend(extra);
        let args: Vec<&str> = cluster.args.iter().map(String::as_str).collect();
        cluster.server = Some(TestServer::start_with_agent(data_dir, &args));
        let ok = wait_until(POD_TIMEOUT, || {
            cluster.berth(&["get", "node", &node, "-o", "json"]).is_ok_and(|n| n["spec"]["podCIDR"].is_string())
        });
        assert!(ok, "node {node} never registered; log:\n{}", cluster.log());
        cluster
    }

    /// Picks the per-run service CIDR and table, enables forwarding on the bridge, and returns
    /// the server flags for them.
    fn proxy_args(&mut self, index: u32) -> Vec<String> {
        // Service CIDRs come from 10.150-199, away from the pod networks (10.200-254).
        let base = 150 + (std::process::id() % 10) * 5 + index;
        let octet = (0..50).map(|k| 150 + (base - 150 + k * 7) % 50).find(|&o| !octet_in_use(o)).expect("a free CIDR");
        let setup = ProxySetup {
            service_cidr: format!("10.{octet}.0.0/24"),
            table: format!("berth-e{:x}{index:x}", std::process::id()),
        };
        let key = format!("net.ipv4.conf.{}.forwarding=1", self.bridge);
        let out = Command::new("sysctl").args(["-q", "-w", &key]).output().expect("sysctl");
        assert!(out.status.success(), "sysctl {key}: {}", String::from_utf8_lossy(&out.stderr));
        let args = [
            "--service-cidr",
            &setup.service_cidr,
            "--proxy-table",
            &setup.table,
            "--proxy-cleanup-on-exit",
            "--proxy-route-localnet",
            &self.bridge,
            "--nodeport-addresses",
            &self.gateway(),
        ]
        .map(String::from)
        .to_vec();
        self.proxy = Some(setup);
        args
    }

    /// The agent's node name (`--node-name`); it also names the agent's cgroup subtree.
    pub fn node_name(&self) -> String {
        self.args.iter().skip_while(|a| *a != "--node-name").nth(1).cloned().unwrap_or_default()
    }

    /// The bridge's address, the pods' gateway: an address of this node.
    pub fn gateway(&self) -> String {
        format!("10.{}.0.1", self.octet)
    }

    /// Stops the server and starts it again on the same data dir (containers keep running).
    pub fn restart(&mut self) {
        let server = self.server.take().expect("server running");
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.server = Some(server.restart_with_agent(&args));
    }

    /// Imports the test busybox image under another reference (e.g. a second tag) into the
    /// running node's image store.
    pub fn import_image(&self, reference: &str) {
        let archive = self.data.join(format!("import-{}.tar", reference.replace(['/', ':'], "_")));
        TestImage::busybox().oci_archive(reference, &archive);
        let out = Command::new(super::berth_bin())
            .args(["image", "import"])
            .arg(&archive)
            .arg("--data-dir")
            .arg(&self.data)
            .output()
            .expect("berth image import");
        assert!(out.status.success(), "berth image import {reference}: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn server(&self) -> &TestServer {
        self.server.as_ref().expect("server running")
    }

    pub fn log(&self) -> String {
        self.server.as_ref().map(TestServer::log).unwrap_or_default()
    }

    /// Runs `berth ARGS` against the server; JSON output parsed, else the text as a string.
    pub fn berth(&self, args: &[&str]) -> Result<Value, String> {
        let out = self.server().berth().args(args).output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub fn apply(&self, manifest: &str) {
        let out = self.server().berth().args(["apply", "-f", "-"]).write_stdin(manifest).output().expect("apply");
        assert!(out.status.success(), "apply failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn pod(&self, name: &str) -> Option<Value> {
        self.berth(&["get", "pod", name, "-o", "json"]).ok()
    }

    /// Waits until `cond` holds for the pod; returns it.
    pub fn wait_pod(&self, name: &str, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let mut last = None;
        let ok = wait_until(POD_TIMEOUT, || {
            last = self.pod(name);
            last.as_ref().is_some_and(&cond)
        });
        assert!(ok, "pod {name} never {what}; last: {last:#?}\nlog:\n{}", self.log());
        last.unwrap_or_default()
    }

    /// Waits until the log of the pod's container `container` (first run) contains `marker`;
    /// returns the whole log.
    pub fn wait_log(&self, pod: &str, container: &str, marker: &str) -> String {
        let pod_value = self.wait_pod(pod, "started", |p| p["status"]["phase"] == "Running");
        let uid = pod_value["metadata"]["uid"].as_str().unwrap_or_default();
        let log = self.data.join("agent/pods").join(uid).join("logs").join(container).join("0.log");
        let mut text = String::new();
        let found = wait_until(Duration::from_secs(60), || {
            text = std::fs::read_to_string(&log).unwrap_or_default();
            text.contains(marker)
        });
        assert!(found, "{pod}/{container} never logged {marker:?}; log: {text}\nserver log:\n{}", self.log());
        text
    }

    pub fn runc_list(&self) -> String {
        let out = Command::new("runc")
            .arg("--root")
            .arg(self.data.join("agent").join("runc"))
            .args(["list", "-q"])
            .output()
            .expect("runc list");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn netns_files(&self) -> Vec<String> {
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
        // The agent's cgroups (of pods whose teardown did not run; their processes are gone).
        let node = self.node_name();
        if !node.is_empty() {
            let _ = berth_agent::kubelet::cgroup::remove(&berth_agent::kubelet::cgroup::kubelet_cgroup(&node));
        }
        if let Some(proxy) = &self.proxy {
            // Normally gone already (--proxy-cleanup-on-exit); absent things fail quietly here.
            let _ = Command::new("nft").args(["delete", "table", "inet", &proxy.table]).output();
            let cidr = proxy.service_cidr.as_str();
            let _ = Command::new("ip").args(["rule", "del", "to", cidr, "iif", "lo", "lookup", "main"]).output();
            let _ = Command::new("ip").args(["rule", "del", "to", cidr, "lookup", PROXY_ROUTE_TABLE]).output();
            let _ = Command::new("ip").args(["route", "del", "blackhole", cidr, "table", PROXY_ROUTE_TABLE]).output();
        }
        // The server (and its TempDir) goes last: the data dir is removed once nothing is mounted.
        drop(self.server.take());
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// `n` busybox httpd pods `APP-0`.. labelled `app: APP`, each page saying the pod's own name.
pub fn web_pods(app: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                r#"
apiVersion: v1
kind: Pod
metadata: {{name: {app}-{i}, labels: {{app: {app}}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo $(POD_NAME) > /www/index.html && exec httpd -f -p 80 -h /www"]
    env:
    - name: POD_NAME
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
---"#
            )
        })
        .collect()
}

/// A busybox pod `name` whose container `main` runs the shell `script`; `extra_spec` is more
/// pod spec (lines indented by two spaces), or "".
pub fn script_pod(name: &str, extra_spec: &str, script: &str) -> String {
    let script: String = script.lines().map(|l| format!("      {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n{extra_spec}\n  \
         containers:\n  - name: main\n    image: busybox\n    command:\n    - sh\n    - -c\n    - |\n{script}"
    )
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

pub fn container_status(pod: &Value) -> &Value {
    &pod["status"]["containerStatuses"][0]
}

pub fn http_get(addr: SocketAddr) -> Result<String, String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
    stream.write_all(b"GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n").map_err(|e| e.to_string())?;
    let mut body = String::new();
    stream.read_to_string(&mut body).map_err(|e| e.to_string())?;
    Ok(body)
}
