//! End-to-end tests of logs and exec through the kubelet's HTTPS server with real pods: the real
//! kubectl (`logs -f`, `logs --previous`, `exec` exit codes, `exec -i`) and `berth logs` /
//! `berth exec`, against `berth server` with its agent (see `e2e_pods.rs` for the setup and its
//! safety rules). Each cluster runs the kubelet server on a free port (the fixture passes
//! `--kubelet-port 0`).
//!
//! They need root, runc, overlayfs, busybox-static and the CNI plugins, so they are `#[ignore]`d;
//! run them with `cargo nextest run -p berth --run-ignored all --test e2e_logs_exec`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, POD_TIMEOUT, container_status, prerequisites};
use common::kubectl::Kubectl;
use common::wait_until;

/// Runs `cmd` with `input` on stdin, killing it (by its PID) after a deadline.
fn run_with_input(mut cmd: Command, input: Option<&[u8]>) -> Output {
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(data).expect("write stdin");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50)); // polling the exit, with a deadline
    }
    let _ = child.kill();
    child.wait_with_output().expect("output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn start(index: u32) -> Cluster {
    Cluster::start(index)
}

// The pods tolerate disk pressure: the shared test machine's disk may be fuller than the
// kubelet's threshold, which says nothing about logs and exec.
const TICKER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: ticker}
spec:
  restartPolicy: Never
  tolerations: [{key: node.kubernetes.io/disk-pressure, operator: Exists}]
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "i=0; while [ $i -lt 6 ]; do echo tick $i; i=$((i+1)); sleep 1; done"]
"#;

const COUNTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: counter}
spec:
  terminationGracePeriodSeconds: 1
  tolerations: [{key: node.kubernetes.io/disk-pressure, operator: Exists}]
  volumes:
  - name: data
    emptyDir: {}
  containers:
  - name: main
    image: busybox
    volumeMounts: [{name: data, mountPath: /data}]
    command: ["sh", "-c", "n=$(cat /data/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/n; echo attempt $n; [ $n -ge 2 ] && exec sleep 3600; exit 1"]
"#;

const SLEEPER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: sleeper}
spec:
  terminationGracePeriodSeconds: 1
  tolerations: [{key: node.kubernetes.io/disk-pressure, operator: Exists}]
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
"#;

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn logs_follow_new_lines_end_with_the_container_and_keep_the_previous_attempt() {
    if !prerequisites("logs_follow_new_lines_end_with_the_container_and_keep_the_previous_attempt") {
        return;
    }
    let c = start(0);
    let kubectl = Kubectl::without_request_timeout(&c.server().kubeconfig);
    c.apply(TICKER);
    c.wait_pod("ticker", "running", |p| p["status"]["phase"] == "Running");

    // `logs -f` prints lines while the container still writes them, and ends when it exits.
    if let Some(k) = &kubectl {
        let mut child = k
            .command(&["logs", "-f", "ticker"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send((line, Instant::now()));
            }
        });
        let (first, _) = rx.recv_timeout(POD_TIMEOUT).expect("a first line");
        assert!(first.starts_with("tick "), "{first}");
        let phase = c.pod("ticker").map(|p| p["status"]["phase"].clone());
        assert_eq!(phase, Some("Running".into()), "the first line arrived while the container was running");
        let mut lines = vec![first];
        while let Ok((line, _)) = rx.recv_timeout(POD_TIMEOUT) {
            lines.push(line);
        }
        assert_eq!(lines.last().map(String::as_str), Some("tick 5"), "{lines:?}");
        let ended = wait_until(Duration::from_secs(20), || matches!(child.try_wait(), Ok(Some(_))));
        let _ = child.kill();
        assert!(ended, "kubectl logs -f did not end with the container");
        assert!(child.wait().expect("status").success());
    }
    let pod = c.wait_pod("ticker", "succeeded", |p| p["status"]["phase"] == "Succeeded");
    assert_eq!(container_status(&pod)["state"]["terminated"]["exitCode"], 0);
    let all = c.berth(&["logs", "ticker"]).expect("berth logs");
    assert_eq!(all.as_str(), Some("tick 0\ntick 1\ntick 2\ntick 3\ntick 4\ntick 5\n"));
    let tail = c.berth(&["logs", "ticker", "--tail", "2"]).expect("berth logs --tail");
    assert_eq!(tail.as_str(), Some("tick 4\ntick 5\n"));
    let stamped = c.berth(&["logs", "ticker", "--tail", "1", "--timestamps"]).expect("timestamps");
    let stamped = stamped.as_str().unwrap_or_default();
    assert!(stamped.ends_with(" tick 5\n") && stamped.starts_with("20"), "{stamped}");

    // --previous after a restart: the first attempt's output.
    c.apply(COUNTER);
    let pod = c.wait_pod("counter", "restarted and running", |p| {
        container_status(p)["restartCount"].as_i64().unwrap_or(0) >= 1
            && container_status(p)["state"]["running"].is_object()
    });
    assert_eq!(container_status(&pod)["lastState"]["terminated"]["exitCode"], 1, "{pod:#}");
    let current = c.berth(&["logs", "counter"]).expect("logs");
    assert_eq!(current.as_str(), Some("attempt 2\n"));
    let previous = c.berth(&["logs", "counter", "--previous"]).expect("logs --previous");
    assert_eq!(previous.as_str(), Some("attempt 1\n"));
    if let Some(k) = &kubectl {
        let out = run_with_input(k.command(&["logs", "counter", "--previous"]), None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "attempt 1\n");
        let out = run_with_input(k.command(&["logs", "ticker", "--previous"]), None);
        assert!(!out.status.success(), "no previous attempt: {}", text(&out.stdout));
        assert!(text(&out.stderr).contains("previous terminated container"), "{}", text(&out.stderr));
    }
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn exec_passes_exit_codes_and_stdin_for_kubectl_and_berth() {
    if !prerequisites("exec_passes_exit_codes_and_stdin_for_kubectl_and_berth") {
        return;
    }
    let c = start(1);
    c.apply(SLEEPER);
    c.wait_pod("sleeper", "running", |p| p["status"]["phase"] == "Running");
    let berth = |args: &[&str], input: Option<&[u8]>| {
        let mut cmd = Command::new(common::berth_bin());
        cmd.env_remove("KUBECONFIG").arg("--kubeconfig").arg(&c.server().kubeconfig).args(args);
        run_with_input(cmd, input)
    };

    let out = berth(&["exec", "sleeper", "--", "sh", "-c", "echo out; echo err >&2; exit 3"], None);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "out\n");
    assert!(text(&out.stderr).starts_with("err\n"), "{}", text(&out.stderr));
    let out =
        berth(&["exec", "-i", "sleeper", "--", "sh", "-c", "while read l; do echo \"got $l\"; done"], Some(b"hello\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "got hello\n");
    // -t: the command runs on a terminal (kubectl refuses -t when its stdin is no terminal).
    let out = berth(&["exec", "-t", "sleeper", "--", "sh", "-c", "test -t 0 && test -t 1 && echo terminal"], None);
    assert!(text(&out.stdout).starts_with("terminal"), "stdout {:?} stderr {:?}", text(&out.stdout), text(&out.stderr));
    let out = berth(&["exec", "sleeper", "--", "cat", "/proc/1/cmdline"], None);
    assert_eq!(text(&out.stdout), "sleep\u{0}3600\u{0}", "exec runs inside the container");

    if let Some(k) = Kubectl::without_request_timeout(&c.server().kubeconfig) {
        let out = run_with_input(k.command(&["exec", "sleeper", "--", "sh", "-c", "exit 3"]), None);
        assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
        let out = run_with_input(k.command(&["exec", "sleeper", "--", "echo", "hi"]), None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "hi\n");
        let out = run_with_input(
            k.command(&["exec", "-i", "sleeper", "--", "sh", "-c", "while read l; do echo \"got $l\"; done"]),
            Some(b"hello\n"),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "got hello\n");
    }
}

const BUSY: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: busy}
spec:
  terminationGracePeriodSeconds: 1
  tolerations: [{key: node.kubernetes.io/disk-pressure, operator: Exists}]
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; exec sleep 3600"]
"#;

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn top_shows_container_usage_read_from_the_kubelets_cgroups() {
    if !prerequisites("top_shows_container_usage_read_from_the_kubelets_cgroups") {
        return;
    }
    let c = Cluster::start_with(2, &|_| ["--metrics-resolution", "1s"].iter().map(|s| s.to_string()).collect());
    c.apply(BUSY);
    c.wait_pod("busy", "running", |p| p["status"]["phase"] == "Running");
    // The metrics API scrapes the kubelet's /metrics/resource; the busy loop used CPU time.
    let mut last = String::new();
    let shown = wait_until(POD_TIMEOUT, || {
        last = c
            .berth(&["top", "pod", "busy", "--containers"])
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .unwrap_or_else(|e| e);
        last.lines().any(|l| l.starts_with("busy") && l.contains("main") && l.contains("Mi"))
    });
    assert!(shown, "berth top pod never showed the container: {last}\nlog:\n{}", c.log());
}

const FOREVER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: forever}
spec:
  terminationGracePeriodSeconds: 1
  tolerations: [{key: node.kubernetes.io/disk-pressure, operator: Exists}]
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo served from the pod > /www/index.html && httpd -p 8080 -h /www && i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done"]
"#;

/// The highest `tick N` in a log.
fn last_tick(log: &str) -> Option<u64> {
    log.lines().filter_map(|l| l.strip_prefix("tick ")?.parse().ok()).max()
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn logs_continue_after_an_agent_restart_and_port_forward_reaches_the_pod() {
    if !prerequisites("logs_continue_after_an_agent_restart_and_port_forward_reaches_the_pod") {
        return;
    }
    let mut c = start(3);
    c.apply(FOREVER);
    c.wait_pod("forever", "running", |p| p["status"]["phase"] == "Running");

    // berth port-forward: a local port reaches port 8080 inside the pod's network namespace.
    let mut pf = Command::new(common::berth_bin())
        .env_remove("KUBECONFIG")
        .arg("--kubeconfig")
        .arg(&c.server().kubeconfig)
        .args(["port-forward", "forever", ":8080"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("berth port-forward");
    let mut first = String::new();
    let mut out = BufReader::new(pf.stdout.take().expect("stdout"));
    out.read_line(&mut first).expect("first line");
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let port: u16 = first.trim().rsplit(" -> ").nth(1).and_then(|a| a.rsplit(':').next()?.parse().ok()).unwrap_or(0);
    assert!(port > 0, "{first:?}");
    let mut body = String::new();
    let reached = wait_until(Duration::from_secs(20), || {
        body = common::cluster::http_get(([127, 0, 0, 1], port).into()).unwrap_or_else(|e| e);
        body.contains("served from the pod")
    });
    let _ = pf.kill();
    let _ = pf.wait();
    assert!(reached, "port-forward: {body}");

    // The container outlives the agent: its output waits in the FIFO and reaches the log after.
    let logs = |c: &Cluster| c.berth(&["logs", "forever"]).map(|v| v.as_str().unwrap_or_default().to_string());
    assert!(wait_until(POD_TIMEOUT, || logs(&c).ok().and_then(|l| last_tick(&l)).is_some_and(|t| t >= 1)));
    let before = last_tick(&logs(&c).expect("logs")).unwrap_or(0);
    c.restart();
    let mut last = String::new();
    let continued = wait_until(POD_TIMEOUT, || {
        last = logs(&c).unwrap_or_else(|e| e);
        last_tick(&last).is_some_and(|t| t >= before + 3)
    });
    assert!(continued, "no new lines after the restart (had tick {before}): {last}\nlog:\n{}", c.log());
    let ticks: Vec<u64> = last.lines().filter_map(|l| l.strip_prefix("tick ")?.parse().ok()).collect();
    let expected: Vec<u64> = (0..ticks.len() as u64).collect();
    assert_eq!(ticks, expected, "no line lost or doubled across the restart");
}
