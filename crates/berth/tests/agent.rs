//! `berth agent` joins a `berth server` with the k3s-style join token: it checks the CA from the
//! unauthenticated `/cacerts` against the token, then registers sim nodes as a node identity
//! (no root: `--sim-nodes` runs no containers). Also `berth server --sim-nodes`, and what the
//! token's identity may not do.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{TestServer, berth_bin, wait_until};

/// A `berth agent` process, killed (by PID) on drop.
struct Agent {
    child: Child,
    log: std::path::PathBuf,
}

impl Agent {
    fn start(server: &TestServer, args: &[&str]) -> Agent {
        let log = server.data_dir.path().join(format!("agent-{}.log", rand_suffix()));
        let file = std::fs::File::create(&log).expect("agent log");
        let child = Command::new(berth_bin())
            .arg("agent")
            .args(["--server", &server.url, "--data-dir"])
            .arg(server.data_dir.path().join("agent-data"))
            .args(args)
            .env_remove("KUBECONFIG")
            .env_remove("BERTH_TOKEN")
            .env_remove("BERTH_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("spawn berth agent");
        Agent { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (with a deadline) for the process to exit.
    fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// The first stdout line (the ready line), read on a thread so a hung agent fails the test.
    fn first_line(&mut self, timeout: Duration) -> Option<String> {
        let stdout = self.child.stdout.take()?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the agent never blocks on a full pipe.
            for _ in lines {}
        });
        rx.recv_timeout(timeout).ok()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Child::kill signals this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

fn token_path(server: &TestServer) -> std::path::PathBuf {
    server.data_dir.path().join("server").join("token")
}

fn names(server: &TestServer, kind: &str, selector: &str) -> Vec<String> {
    let out = server.berth().args(["get", kind, "-o", "name", "-l", selector]).output().expect("run berth");
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write manifest");
    path
}

#[test]
fn the_server_writes_a_k3s_style_join_token_readable_only_by_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start();
    let token = std::fs::read_to_string(token_path(&server)).expect("token file");
    let token = token.trim();
    let (hash, secret) = token.strip_prefix("K10").and_then(|t| t.split_once("::server:")).expect("K10 format");
    assert_eq!(hash.len(), 64, "{token}");
    assert!(!secret.is_empty());
    let mode = std::fs::metadata(token_path(&server)).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(server.log().contains("node join token"), "the log says where the token is:\n{}", server.log());
}

#[test]
fn a_sim_agent_joins_with_the_token_and_runs_pods_bound_to_its_nodes() {
    let server = TestServer::start_with(&["--disable-scheduler"]);
    let token = token_path(&server).display().to_string();
    let mut agent =
        Agent::start(&server, &["--token-file", &token, "--sim-nodes", "3", "--sim-node-prefix", "joined-"]);
    let line = agent.first_line(Duration::from_secs(60));
    assert!(
        line.as_deref().is_some_and(|l| l.contains("3 sim nodes")),
        "ready line {line:?}; agent log:\n{}",
        agent.log()
    );
    let nodes = names(&server, "nodes", "type=sim,node.berth.dev/sim=true");
    assert_eq!(nodes, vec!["node/joined-0", "node/joined-1", "node/joined-2"], "agent log:\n{}", agent.log());

    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = write(
        dir.path(),
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: on-sim\nspec:\n  nodeName: joined-1\n  containers:\n  - name: app\n    image: busybox\n",
    );
    server.berth().args(["apply", "-f"]).arg(&manifest).assert().success();
    let phase = || {
        let out = server.berth().args(["get", "pod", "on-sim", "-o", "json"]).output().expect("run berth");
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|p| p["status"]["podIP"].as_str().map(|ip| (p["status"]["phase"].clone(), ip.to_string())))
    };
    assert!(
        wait_until(Duration::from_secs(30), || phase().is_some_and(|(p, _)| p == "Running")),
        "the pod never ran; agent log:\n{}",
        agent.log()
    );
    let (_, ip) = phase().expect("status");
    assert!(ip.starts_with("10.64.1."), "{ip}");
    server.berth().args(["delete", "pod", "on-sim"]).assert().success();
    assert!(
        wait_until(Duration::from_secs(30), || names(&server, "pods", "").is_empty()),
        "the pod was never deleted; agent log:\n{}",
        agent.log()
    );
}

#[test]
fn an_agent_refuses_a_server_whose_ca_does_not_match_the_token() {
    let server = TestServer::start();
    let token = std::fs::read_to_string(token_path(&server)).expect("token");
    let (_, secret) = token.trim().split_once("::server:").expect("format");
    let forged = format!("K10{}::server:{secret}", "0".repeat(64));
    let mut agent = Agent::start(&server, &["--token", &forged, "--sim-nodes", "1"]);
    let status = agent.wait_exit(Duration::from_secs(30)).expect("the agent exits");
    assert!(!status.success());
    assert!(agent.log().contains("does not match the hash in the join token"), "{}", agent.log());
    assert!(names(&server, "nodes", "type=sim").is_empty());

    let mut bad = Agent::start(&server, &["--token", "not-a-token", "--sim-nodes", "1"]);
    let status = bad.wait_exit(Duration::from_secs(30)).expect("the agent exits");
    assert!(!status.success());
    assert!(bad.log().contains("invalid join token"), "{}", bad.log());
}

#[test]
fn the_token_identity_may_do_node_work_but_not_admin_work() {
    let server = TestServer::start();
    let token = std::fs::read_to_string(token_path(&server)).expect("token");
    let (_, secret) = token.trim().split_once("::server:").expect("format");
    let kubeconfig = server.data_dir.path().join("node-kubeconfig.yaml");
    let text = std::fs::read_to_string(&server.kubeconfig).expect("admin kubeconfig");
    let mut kc: serde_json::Value = serde_saphyr::from_str(&text).expect("kubeconfig yaml");
    kc["users"][0]["user"] = serde_json::json!({ "token": secret });
    std::fs::write(&kubeconfig, serde_json::to_string(&kc).expect("json")).expect("write kubeconfig");
    let berth = |args: &[&str]| {
        let mut cmd = assert_cmd::Command::new(berth_bin());
        cmd.env_remove("KUBECONFIG").arg("--kubeconfig").arg(&kubeconfig).args(args);
        cmd.timeout(Duration::from_secs(60));
        cmd.output().expect("run berth")
    };
    let nodes = berth(&["get", "nodes"]);
    assert!(nodes.status.success(), "{}", String::from_utf8_lossy(&nodes.stderr));
    let denied = berth(&["create", "deployment", "x", "--image", "busybox"]);
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("Forbidden"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
    let secrets = berth(&["delete", "secret", "whatever"]);
    assert!(
        String::from_utf8_lossy(&secrets.stderr).contains("Forbidden"),
        "{}",
        String::from_utf8_lossy(&secrets.stderr)
    );
}

#[test]
fn berth_server_runs_sim_nodes_embedded() {
    let server = TestServer::start_with(&["--sim-nodes", "2", "--sim-node-prefix", "emb-", "--sim-cpu", "4"]);
    assert!(
        wait_until(Duration::from_secs(30), || names(&server, "nodes", "type=sim").len() == 2),
        "server log:\n{}",
        server.log()
    );
    let out = server.berth().args(["get", "node", "emb-1", "-o", "json"]).output().expect("run berth");
    let node: serde_json::Value = serde_json::from_slice(&out.stdout).expect("node json");
    assert_eq!(node["status"]["allocatable"]["cpu"], "4");
    assert_eq!(node["metadata"]["labels"]["node.berth.dev/sim"], "true");
}
