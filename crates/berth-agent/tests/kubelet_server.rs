//! The kubelet's HTTPS server behind a real in-process apiserver, without root: a fake runtime
//! runs exec commands as local processes and the test writes the CRI log files itself. Clients
//! use kube-rs through the apiserver's `pods/log`, `pods/exec` and `pods/portforward`, which
//! proxy to the kubelet with the apiserver's client certificate (required: the server trusts
//! the cluster CA).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_agent::kubelet::container::container_id;
use berth_agent::kubelet::logs::{LogWriter, Stream};
use berth_agent::kubelet::sandbox;
use berth_agent::kubelet::server::{self, Context};
use berth_agent::{Bundle, ContainerIo, ContainerState, Runtime, RuntimeError};
use berth_apiserver::testing::TestApiServer;
use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{AttachParams, LogParams, Patch, PatchParams, PostParams};
use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

const DEADLINE: Duration = Duration::from_secs(20);

/// Containers are "running" until stopped; exec runs the command on the host.
struct FakeRuntime {
    stopped: watch::Sender<HashSet<String>>,
    running: Mutex<HashSet<String>>,
}

impl FakeRuntime {
    fn new() -> Self {
        FakeRuntime { stopped: watch::channel(HashSet::new()).0, running: Mutex::default() }
    }

    fn run(&self, id: &str) {
        self.running.lock().unwrap().insert(id.to_string());
    }

    fn stop(&self, id: &str) {
        self.running.lock().unwrap().remove(id);
        self.stopped.send_modify(|s| {
            s.insert(id.to_string());
        });
    }
}

#[async_trait]
impl Runtime for FakeRuntime {
    async fn create(&self, _: &str, _: &Bundle, _: &ContainerIo) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn start(&self, _: &str) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn state(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        if self.running.lock().unwrap().contains(id) {
            Ok(ContainerState::Running { pid: 1 })
        } else {
            Ok(ContainerState::Stopped { exit_code: Some(0) })
        }
    }
    async fn kill(&self, _: &str, _: Signal) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn delete(&self, _: &str, _: bool) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn wait(&self, id: &str) -> Result<Option<i32>, RuntimeError> {
        let mut rx = self.stopped.subscribe();
        let _ = rx.wait_for(|s| s.contains(id)).await;
        Ok(Some(0))
    }
    async fn list(&self) -> Result<Vec<String>, RuntimeError> {
        Ok(Vec::new())
    }
    async fn exec(&self, _: &str, args: &[String], _: bool) -> Result<tokio::process::Child, RuntimeError> {
        tokio::process::Command::new(&args[0])
            .args(&args[1..])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| RuntimeError::Spawn { binary: PathBuf::from(&args[0]), source })
    }
}

/// An apiserver, a kubelet server for node `n1` and a pod `p` (container `main`) bound to it.
struct Env {
    api: TestApiServer,
    runtime: Arc<FakeRuntime>,
    dir: tempfile::TempDir,
    uid: String,
}

impl Env {
    async fn start(host_network: bool) -> Env {
        let api = TestApiServer::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = Arc::new(FakeRuntime::new());
        // The kubelet trusts the cluster CA, as `berth server` configures it.
        let mut roots = rustls::RootCertStore::empty();
        for der in api.config.root_cert.clone().expect("the kubeconfig has a CA") {
            roots.add(der.into()).expect("CA");
        }
        let ip = "127.0.0.1".parse().expect("ip");
        let tls = server::tls_config(ip, "n1", Some(roots)).expect("tls");
        let listener = server::bind(SocketAddr::new(ip, 0)).await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let ctx = Arc::new(Context {
            client: api.client.clone(),
            data_dir: dir.path().to_path_buf(),
            runtime: runtime.clone(),
            netns_dir: dir.path().join("netns"),
            node_name: "n1".into(),
            rates: Default::default(),
        });
        tokio::spawn(server::serve(listener, tls, ctx, api.cancel.child_token()));

        let nodes: Api<Node> = Api::all(api.client.clone());
        let node = serde_json::from_value(serde_json::json!({"metadata": {"name": "n1"}})).expect("node");
        nodes.create(&PostParams::default(), &node).await.expect("create node");
        let status = serde_json::json!({"status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        }});
        nodes.patch_status("n1", &PatchParams::default(), &Patch::Merge(&status)).await.expect("node status");
        let pods: Api<Pod> = Api::namespaced(api.client.clone(), "default");
        let pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {
                "nodeName": "n1",
                "hostNetwork": host_network,
                "containers": [{"name": "main", "image": "busybox"}],
            },
        }))
        .expect("pod");
        let pod = pods.create(&PostParams::default(), &pod).await.expect("create pod");
        let uid = pod.metadata.uid.expect("uid");
        runtime.run(&container_id(&uid, "main"));
        Env { api, runtime, dir, uid }
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.api.client.clone(), "default")
    }

    fn log(&self, attempt: i32) -> PathBuf {
        let log = sandbox::log_path(&sandbox::pod_dir(self.dir.path(), &self.uid), "main", attempt);
        std::fs::create_dir_all(log.parent().expect("parent")).expect("log dir");
        log
    }
}

fn write_lines(log: &Path, lines: &[&str]) {
    let mut w = LogWriter::open(log).expect("log writer");
    for line in lines {
        w.write(Stream::Stdout, false, line.as_bytes()).expect("write");
    }
}

#[tokio::test]
async fn logs_are_served_with_tail_timestamps_and_previous() {
    let env = Env::start(false).await;
    write_lines(&env.log(0), &["first run"]);
    write_lines(&env.log(1), &["one", "two", "three"]);
    let pods = env.pods();
    let all = pods.logs("p", &LogParams::default()).await.expect("logs");
    assert_eq!(all, "one\ntwo\nthree\n");
    let tail = pods.logs("p", &LogParams { tail_lines: Some(2), ..Default::default() }).await.expect("tail");
    assert_eq!(tail, "two\nthree\n");
    let previous = pods.logs("p", &LogParams { previous: true, ..Default::default() }).await.expect("previous");
    assert_eq!(previous, "first run\n");
    let stamped =
        pods.logs("p", &LogParams { timestamps: true, tail_lines: Some(1), ..Default::default() }).await.expect("ts");
    let (time, rest) = stamped.split_once(' ').expect("a timestamp");
    assert!(time.parse::<jiff::Timestamp>().is_ok(), "{stamped}");
    assert_eq!(rest, "three\n");
    let missing = pods.logs("p", &LogParams { container: Some("nope".into()), ..Default::default() }).await;
    assert!(missing.is_err());
}

#[tokio::test]
async fn follow_streams_new_lines_and_ends_when_the_container_exits() {
    let env = Env::start(false).await;
    let log = env.log(0);
    write_lines(&log, &["before"]);
    let params = LogParams { follow: true, ..Default::default() };
    let stream = env.pods().log_stream("p", &params).await.expect("log stream");
    let mut lines = stream.lines();
    assert_eq!(
        tokio::time::timeout(DEADLINE, lines.try_next()).await.expect("in time").expect("line").as_deref(),
        Some("before")
    );
    write_lines(&log, &["after"]);
    assert_eq!(
        tokio::time::timeout(DEADLINE, lines.try_next()).await.expect("in time").expect("line").as_deref(),
        Some("after")
    );
    env.runtime.stop(&container_id(&env.uid, "main"));
    assert_eq!(
        tokio::time::timeout(DEADLINE, lines.try_next()).await.expect("the stream ends in time").expect("clean end"),
        None
    );
}

#[tokio::test]
async fn exec_reports_output_and_the_exit_code() {
    let env = Env::start(false).await;
    let params = AttachParams::default().stdout(true).stderr(true);
    let mut proc = env.pods().exec("p", ["sh", "-c", "echo out; echo err >&2; exit 3"], &params).await.expect("exec");
    let status = proc.take_status().expect("status");
    let (mut out, mut err) = (proc.stdout().expect("stdout"), proc.stderr().expect("stderr"));
    let (mut o, mut e) = (String::new(), String::new());
    let (ro, re) = tokio::join!(out.read_to_string(&mut o), err.read_to_string(&mut e));
    ro.expect("stdout");
    re.expect("stderr");
    let status = tokio::time::timeout(DEADLINE, status).await.expect("in time").expect("a status");
    assert_eq!((o.as_str(), e.as_str()), ("out\n", "err\n"));
    assert_eq!(status.status.as_deref(), Some("Failure"), "{status:?}");
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    let cause = &status.details.expect("details").causes.expect("causes")[0];
    assert_eq!((cause.reason.as_deref(), cause.message.as_deref()), (Some("ExitCode"), Some("3")));
}

#[tokio::test]
async fn exec_passes_stdin_and_its_end() {
    let env = Env::start(false).await;
    let params = AttachParams::default().stdin(true).stdout(true).stderr(false);
    let mut proc = env.pods().exec("p", ["sh", "-c", "tr a-z A-Z"], &params).await.expect("exec");
    let status = proc.take_status().expect("status");
    let mut stdin = proc.stdin().expect("stdin");
    stdin.write_all(b"hello\n").await.expect("write");
    stdin.shutdown().await.expect("close stdin");
    drop(stdin);
    let mut out = String::new();
    let mut stdout = proc.stdout().expect("stdout");
    tokio::time::timeout(DEADLINE, stdout.read_to_string(&mut out)).await.expect("in time").expect("read");
    assert_eq!(out, "HELLO\n");
    let status = tokio::time::timeout(DEADLINE, status).await.expect("in time").expect("a status");
    assert_eq!(status.status.as_deref(), Some("Success"), "{status:?}");
}

#[tokio::test]
async fn exec_in_a_stopped_container_fails() {
    let env = Env::start(false).await;
    env.runtime.stop(&container_id(&env.uid, "main"));
    let params = AttachParams::default().stdout(true);
    assert!(env.pods().exec("p", ["true"], &params).await.is_err());
}

#[tokio::test]
async fn port_forward_reaches_a_host_network_pod() {
    let env = Env::start(true).await;
    // An echo server standing in for the pod's process (a hostNetwork pod shares the node's ports).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let echo = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.expect("accept");
        let mut buf = [0u8; 64];
        let n = conn.read(&mut buf).await.expect("read");
        conn.write_all(&buf[..n]).await.expect("write");
    });
    let mut forwarder = env.pods().portforward("p", &[port]).await.expect("port-forward");
    let mut stream = forwarder.take_stream(port).expect("stream");
    stream.write_all(b"ping").await.expect("send");
    let mut buf = [0u8; 4];
    tokio::time::timeout(DEADLINE, stream.read_exact(&mut buf)).await.expect("in time").expect("echo");
    assert_eq!(&buf, b"ping");
    echo.await.expect("echo server");
    forwarder.abort();
}
