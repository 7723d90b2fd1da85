//! End-to-end tests of the pod lifecycle in the kubelet with real busybox containers: liveness
//! and readiness probes, init containers and sidecars, graceful termination (SIGTERM, grace
//! period, SIGKILL), and memory limits (OOMKilled).
//!
//! They need root, runc, overlayfs, busybox-static and the CNI plugins, so they are `#[ignore]`d;
//! run them with `cargo nextest run -p berth --run-ignored all --test e2e_lifecycle`. Without a
//! prerequisite they fail under `CI=true` and print a skip otherwise.
//!
//! Safety on a shared machine: every test runs its own `Cluster` (private bridge, CIDR, data dir,
//! runc root and cgroup subtree `/berth/<node>`), removed on drop, pass or fail. Probes go from
//! the agent to the test's own pods over that bridge.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, container_status, prerequisites};
use common::wait_until;
use serde_json::Value;

/// Long enough for a probe failure, the first CrashLoopBackOff delay (10 s) and a restart.
const RESTART_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits up to `timeout` until `cond` holds for pod `name`; returns it or fails with the pod.
fn wait_pod_for(c: &Cluster, name: &str, what: &str, timeout: Duration, cond: impl Fn(&Value) -> bool) -> Value {
    let mut last = None;
    let ok = wait_until(timeout, || {
        last = c.pod(name);
        last.as_ref().is_some_and(&cond)
    });
    assert!(ok, "pod {name} never {what}; last: {last:#?}\nlog:\n{}", c.log());
    last.unwrap_or_default()
}

fn condition(pod: &Value, type_: &str) -> String {
    let conds = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
    conds
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| c["status"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// The events about pod `name` as (reason, message).
fn events(c: &Cluster, name: &str) -> Vec<(String, String)> {
    let list = c.berth(&["get", "events", "-o", "json"]).unwrap_or_default();
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == name)
        .map(|e| (e["reason"].as_str().unwrap_or("").to_string(), e["message"].as_str().unwrap_or("").to_string()))
        .collect()
}

/// The STATUS column of `berth get pod NAME`.
fn table_status(c: &Cluster, name: &str) -> (String, String) {
    let table = c.berth(&["get", "pod", name]).unwrap_or_default();
    let row = table.as_str().and_then(|t| t.lines().nth(1)).unwrap_or_default().to_string();
    let cells: Vec<&str> = row.split_whitespace().collect();
    (cells.get(1).unwrap_or(&"").to_string(), cells.get(2).unwrap_or(&"").to_string())
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn a_failing_liveness_probe_restarts_the_container() {
    if !prerequisites("a_failing_liveness_probe_restarts_the_container") {
        return;
    }
    let c = Cluster::start(0);
    // Nothing listens on 8080: every liveness check fails.
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: sick}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
    livenessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
      failureThreshold: 2
"#,
    );
    let pod = wait_pod_for(&c, "sick", "restarted after failing liveness", RESTART_TIMEOUT, |p| {
        container_status(p)["restartCount"].as_i64().unwrap_or(0) >= 1
    });
    let cs = container_status(&pod);
    assert!(cs["lastState"]["terminated"]["exitCode"].as_i64().is_some(), "{cs:#}");
    let evs = events(&c, "sick");
    assert!(evs.iter().any(|(r, m)| r == "Unhealthy" && m.starts_with("Liveness probe failed: dial tcp ")), "{evs:#?}");
    assert!(
        evs.iter().any(|(r, m)| r == "Killing" && m == "Container app failed liveness probe, will be restarted"),
        "{evs:#?}"
    );
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn readiness_follows_a_file_that_the_container_touches_and_removes() {
    if !prerequisites("readiness_follows_a_file_that_the_container_touches_and_removes") {
        return;
    }
    let c = Cluster::start(1);
    // httpd answers /ready with 200 while the file exists and 404 while it does not.
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: flappy}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && httpd -p 8080 -h /www && while :; do touch /www/ready; sleep 4; rm -f /www/ready; sleep 4; done"]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe:
      httpGet: {path: /ready, port: http}
      periodSeconds: 1
      failureThreshold: 1
"#,
    );
    let timeout = Duration::from_secs(30);
    let ready = |p: &Value| container_status(p)["ready"] == true && condition(p, "Ready") == "True";
    let unready = |p: &Value| {
        p["status"]["phase"] == "Running"
            && container_status(p)["ready"] == false
            && condition(p, "Ready") == "False"
            && condition(p, "ContainersReady") == "False"
    };
    wait_pod_for(&c, "flappy", "became ready", timeout, ready);
    let pod = wait_pod_for(&c, "flappy", "became unready", timeout, unready);
    assert_eq!(container_status(&pod)["restartCount"], 0, "readiness never restarts");
    assert_eq!(container_status(&pod)["started"], true);
    assert_eq!(table_status(&c, "flappy"), ("0/1".to_string(), "Running".to_string()));
    wait_pod_for(&c, "flappy", "became ready again", timeout, ready);
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn init_containers_run_in_order_before_the_app() {
    if !prerequisites("init_containers_run_in_order_before_the_app") {
        return;
    }
    let c = Cluster::start(2);
    // The app exits 3 unless both init containers wrote their line, in order, into the emptyDir.
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: staged}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: work, emptyDir: {}}]
  initContainers:
  - {name: first, image: busybox, command: ["sh", "-c", "sleep 1; echo one > /work/msg"], volumeMounts: [{name: work, mountPath: /work}]}
  - {name: second, image: busybox, command: ["sh", "-c", "grep -q one /work/msg && echo two >> /work/msg"], volumeMounts: [{name: work, mountPath: /work}]}
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "test \"$(cat /work/msg)\" = \"$(printf 'one\\ntwo')\" || exit 3; exec sleep 3600"]
    volumeMounts: [{name: work, mountPath: /work}]
"#,
    );
    // While the first init container runs, kubectl shows Init:0/2.
    let mut seen = Vec::new();
    let running = wait_until(Duration::from_secs(30), || {
        let (_, status) = table_status(&c, "staged");
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        status == "Running"
    });
    assert!(running, "statuses seen: {seen:?}\nlog:\n{}", c.log());
    assert!(seen.iter().any(|s| s == "Init:0/2" || s == "Init:1/2"), "statuses seen: {seen:?}");
    let pod = c.pod("staged").expect("pod");
    let inits = pod["status"]["initContainerStatuses"].as_array().cloned().unwrap_or_default();
    assert_eq!(inits.len(), 2, "{pod:#}");
    for init in &inits {
        assert_eq!(init["state"]["terminated"]["exitCode"], 0, "{init:#}");
        assert_eq!(init["state"]["terminated"]["reason"], "Completed", "{init:#}");
        assert_eq!(init["ready"], true, "{init:#}");
    }
    let first_done = inits[0]["state"]["terminated"]["finishedAt"].as_str().unwrap_or_default();
    let second_start = inits[1]["state"]["terminated"]["startedAt"].as_str().unwrap_or_default();
    assert!(first_done <= second_start, "second started before first finished: {inits:#?}");
    assert_eq!(condition(&pod, "Initialized"), "True");
    let cs = container_status(&pod);
    assert!(cs["state"]["running"].is_object(), "{cs:#}");
    assert_eq!(cs["restartCount"], 0, "the app saw the init containers' file: {cs:#}");
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn a_failing_init_container_keeps_the_app_from_starting() {
    if !prerequisites("a_failing_init_container_keeps_the_app_from_starting") {
        return;
    }
    let c = Cluster::start(3);
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: blocked}
spec:
  restartPolicy: Never
  initContainers:
  - {name: check, image: busybox, command: ["sh", "-c", "exit 2"]}
  containers:
  - {name: app, image: busybox, command: ["sleep", "3600"]}
"#,
    );
    let pod = wait_pod_for(&c, "blocked", "failed", Duration::from_secs(30), |p| p["status"]["phase"] == "Failed");
    let init = &pod["status"]["initContainerStatuses"][0];
    assert_eq!(init["state"]["terminated"]["exitCode"], 2, "{pod:#}");
    assert_eq!(condition(&pod, "Initialized"), "False");
    let cs = container_status(&pod);
    assert_eq!(cs["state"]["waiting"]["reason"], "PodInitializing", "the app never started: {cs:#}");
    assert_eq!(table_status(&c, "blocked").1, "Init:Error");

    // Under restartPolicy Always a failing init container is retried with back-off.
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: retrying}
spec:
  initContainers:
  - {name: check, image: busybox, command: ["sh", "-c", "exit 2"]}
  containers:
  - {name: app, image: busybox, command: ["sleep", "3600"]}
"#,
    );
    let backing_off = wait_until(Duration::from_secs(30), || table_status(&c, "retrying").1 == "Init:CrashLoopBackOff");
    assert!(backing_off, "never Init:CrashLoopBackOff: {:?}", table_status(&c, "retrying"));
    let pod = c.pod("retrying").expect("pod");
    assert_eq!(pod["status"]["phase"], "Pending", "{pod:#}");
    assert_eq!(container_status(&pod)["state"]["waiting"]["reason"], "PodInitializing", "{pod:#}");
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn a_startup_probe_holds_readiness_until_the_container_has_started() {
    if !prerequisites("a_startup_probe_holds_readiness_until_the_container_has_started") {
        return;
    }
    let c = Cluster::start(8);
    // The readiness probe always passes, but only counts once the startup probe saw /tmp/up.
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: slowstart}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "sleep 6; touch /tmp/up; exec sleep 3600"]
    startupProbe:
      exec: {command: ["test", "-e", "/tmp/up"]}
      periodSeconds: 1
      failureThreshold: 30
    readinessProbe:
      exec: {command: ["true"]}
      periodSeconds: 1
"#,
    );
    let pod = wait_pod_for(&c, "slowstart", "ran", Duration::from_secs(30), |p| {
        container_status(p)["state"]["running"].is_object()
    });
    let cs = container_status(&pod);
    assert_eq!((cs["started"].clone(), cs["ready"].clone()), (Value::from(false), Value::from(false)), "{cs:#}");
    let pod = wait_pod_for(&c, "slowstart", "became ready", Duration::from_secs(30), |p| {
        container_status(p)["ready"] == true
    });
    let cs = container_status(&pod);
    assert_eq!(cs["started"], true, "{cs:#}");
    assert_eq!(cs["restartCount"], 0, "{cs:#}");
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn a_sidecar_keeps_running_beside_the_app_and_is_restarted() {
    if !prerequisites("a_sidecar_keeps_running_beside_the_app_and_is_restarted") {
        return;
    }
    let c = Cluster::start(4);
    // The sidecar exits after 3 s each run; a regular init container after it must still run
    // while the sidecar is up, and the app must start.
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: withsidecar}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - {name: proxy, image: busybox, restartPolicy: Always, command: ["sh", "-c", "sleep 3; exit 1"]}
  - {name: setup, image: busybox, command: ["true"]}
  containers:
  - {name: app, image: busybox, command: ["sleep", "3600"]}
"#,
    );
    let pod = wait_pod_for(&c, "withsidecar", "ran sidecar and app", Duration::from_secs(30), |p| {
        p["status"]["initContainerStatuses"][0]["state"]["running"].is_object()
            && container_status(p)["state"]["running"].is_object()
    });
    let sidecar = &pod["status"]["initContainerStatuses"][0];
    assert_eq!(sidecar["started"], true, "{sidecar:#}");
    assert_eq!(sidecar["ready"], true, "{sidecar:#}");
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(table_status(&c, "withsidecar").0, "2/2", "the sidecar counts in READY");
    let pod = wait_pod_for(&c, "withsidecar", "restarted its sidecar", RESTART_TIMEOUT, |p| {
        p["status"]["initContainerStatuses"][0]["restartCount"].as_i64().unwrap_or(0) >= 1
    });
    let cs = container_status(&pod);
    assert_eq!(cs["restartCount"], 0, "the app kept running: {cs:#}");
    assert!(cs["state"]["running"].is_object(), "{cs:#}");
    assert_eq!(pod["status"]["phase"], "Running");
}

/// Deletes pod `name` without waiting and returns how long it took to disappear.
fn time_deletion(c: &Cluster, name: &str) -> Duration {
    let start = Instant::now();
    c.berth(&["delete", "pod", name, "--wait=false"]).expect("delete");
    let gone = wait_until(Duration::from_secs(30), || c.pod(name).is_none());
    assert!(gone, "pod {name} was never removed; log:\n{}", c.log());
    start.elapsed()
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn termination_waits_for_a_sigterm_handler_and_kills_at_the_grace_deadline() {
    if !prerequisites("termination_waits_for_a_sigterm_handler_and_kills_at_the_grace_deadline") {
        return;
    }
    let c = Cluster::start(5);
    // `handler` traps SIGTERM and exits after about 2 s of cleanup; `stubborn` is PID 1 without
    // a handler, so SIGTERM does nothing and only SIGKILL at the deadline (6 s) stops it.
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: handler}
spec:
  terminationGracePeriodSeconds: 6
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "trap 'sleep 2; exit 0' TERM; while :; do sleep 1; done"]
---
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 6
  containers:
  - {name: app, image: busybox, command: ["sleep", "3600"]}
"#,
    );
    for name in ["handler", "stubborn"] {
        wait_pod_for(&c, name, "became Running", Duration::from_secs(30), |p| p["status"]["phase"] == "Running");
    }
    let handler = time_deletion(&c, "handler");
    assert!(
        handler >= Duration::from_secs(2) && handler < Duration::from_secs(6),
        "the SIGTERM handler got {handler:?} (expected its ~2-3 s, within the 6 s grace period)"
    );
    let stubborn = time_deletion(&c, "stubborn");
    assert!(
        stubborn >= Duration::from_secs(6) && stubborn < Duration::from_secs(10),
        "a container ignoring SIGTERM must be killed at the 6 s deadline, took {stubborn:?}"
    );
    assert_eq!(c.runc_list(), "", "containers left behind");
}

#[test]
#[ignore = "needs root: runc, netns, CNI, cgroups"]
fn a_memory_limit_breach_is_reported_as_oom_killed() {
    if !prerequisites("a_memory_limit_breach_is_reported_as_oom_killed") {
        return;
    }
    let c = Cluster::start(6);
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "x=a; while :; do x=$x$x; done"]
    resources:
      limits: {memory: 16Mi}
"#,
    );
    let pod = wait_pod_for(&c, "hog", "failed", Duration::from_secs(60), |p| p["status"]["phase"] == "Failed");
    let term = &container_status(&pod)["state"]["terminated"];
    assert_eq!(term["reason"], "OOMKilled", "{pod:#}");
    assert_eq!(term["exitCode"], 137, "{pod:#}");
    assert_eq!(pod["status"]["qosClass"], "Burstable", "{pod:#}");
    // The finished pod's cgroup is gone with its containers.
    let uid = pod["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let node = c.node_name();
    let gone = wait_until(Duration::from_secs(20), || {
        !std::path::Path::new(&format!("/sys/fs/cgroup/memory/berth/{node}/pod{uid}")).exists()
            && !std::path::Path::new(&format!("/sys/fs/cgroup/berth/{node}/pod{uid}")).exists()
    });
    assert!(gone, "pod cgroup of {uid} left behind");
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn post_start_and_pre_stop_hooks_and_exec_probes_run_in_the_container() {
    if !prerequisites("post_start_and_pre_stop_hooks_and_exec_probes_run_in_the_container") {
        return;
    }
    let c = Cluster::start(7);
    // Ready only once postStart wrote its file (checked by an exec probe); preStop holds the
    // SIGTERM back for 3 s, though the container exits within a second of SIGTERM.
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: hooked}
spec:
  terminationGracePeriodSeconds: 10
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
    lifecycle:
      postStart: {exec: {command: ["sh", "-c", "echo started > /tmp/poststart"]}}
      preStop: {exec: {command: ["sleep", "3"]}}
    readinessProbe:
      exec: {command: ["cat", "/tmp/poststart"]}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {name: badhook}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
    lifecycle:
      postStart: {exec: {command: ["sh", "-c", "echo no way; exit 1"]}}
"#,
    );
    let pod = wait_pod_for(&c, "hooked", "became ready", Duration::from_secs(30), |p| condition(p, "Ready") == "True");
    assert_eq!(container_status(&pod)["restartCount"], 0);
    let bad = wait_pod_for(&c, "badhook", "restarted after its postStart hook failed", RESTART_TIMEOUT, |p| {
        container_status(p)["restartCount"].as_i64().unwrap_or(0) >= 1
    });
    assert!(container_status(&bad)["lastState"]["terminated"].is_object(), "{bad:#}");
    let evs = events(&c, "badhook");
    assert!(
        evs.iter().any(|(r, m)| r == "FailedPostStartHook" && m.contains("no way")),
        "no FailedPostStartHook event: {evs:#?}"
    );
    let took = time_deletion(&c, "hooked");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(10),
        "preStop (3 s) must run before SIGTERM; deletion took {took:?}"
    );
}
