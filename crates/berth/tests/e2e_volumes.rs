//! End-to-end tests of pod volumes and environments: `berth server` with its agent runs busybox
//! pods that read ConfigMaps and Secrets (files and env), see ConfigMap updates in their mounted
//! files, the downward API, a hostPath, an emptyDir shared by two containers that also talk over
//! localhost, and service environment variables.
//!
//! They need root, runc, overlayfs, busybox-static and the CNI plugins, so they are `#[ignore]`d;
//! run them with `cargo nextest run -p berth --run-ignored all --test e2e_volumes`. Without a
//! prerequisite they fail under `CI=true` and print a skip otherwise.
//!
//! The pods tolerate the disk-pressure taint: the shared build machine's disk is often more than
//! 90% full, and these tests are about volumes, not eviction.
//!
//! Safety on a shared machine: each test runs its own cluster fixture (private bridge, CIDR and
//! data dir, all removed on drop); the hostPath is a per-test temp dir, removed on drop.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::cluster::{Cluster, POD_TIMEOUT, container_status, mounts_under, prerequisites};
use common::wait_until;
use serde_json::Value;

/// How long a ConfigMap update may take to reach a mounted file (the kubelet refreshes every
/// 10 s).
const UPDATE_TIMEOUT: Duration = Duration::from_secs(45);

/// A log file's text with CRI prefixes (`<time> stdout F `) removed, if it has them.
fn strip_cri(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.splitn(4, ' ').collect();
        match parts.as_slice() {
            [_, "stdout" | "stderr", "F", rest] => {
                out.push_str(rest);
                out.push('\n');
            }
            [_, "stdout" | "stderr", "P", rest] => out.push_str(rest),
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Everything the container `container` of pod `uid` wrote to stdout/stderr so far (all its log
/// files, plain or CRI format).
fn container_log(c: &Cluster, uid: &str, container: &str) -> String {
    let dir = c.data.join("agent/pods").join(uid).join("logs").join(container);
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    files.sort();
    files.iter().map(|f| strip_cri(&std::fs::read_to_string(f).unwrap_or_default())).collect()
}

fn uid(pod: &Value) -> String {
    pod["metadata"]["uid"].as_str().unwrap_or_default().to_string()
}

/// Waits until the container's log contains every one of `needles`; returns the log.
fn wait_log(c: &Cluster, pod: &Value, container: &str, needles: &[&str], timeout: Duration) -> String {
    let id = uid(pod);
    let mut log = String::new();
    let ok = wait_until(timeout, || {
        log = container_log(c, &id, container);
        needles.iter().all(|n| log.contains(n))
    });
    assert!(ok, "log of {container} never showed {needles:?}; log:\n{log}\nserver log:\n{}", c.log());
    log
}

fn running(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn a_pod_reads_config_maps_secrets_downward_api_and_host_path_and_sees_config_map_updates() {
    if !prerequisites("a_pod_reads_config_maps_secrets_downward_api_and_host_path_and_sees_config_map_updates") {
        return;
    }
    let host = tempfile::Builder::new().prefix("berth-e2e-hostpath-").tempdir().expect("host dir");
    std::fs::write(host.path().join("marker-from-host"), "x").expect("marker");
    let c = Cluster::start(0);
    c.apply(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config}
data: {greeting: hello, mode: fast}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
data: {password: czNjcmV0}
"#,
    );
    let pod = format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: vols
  labels: {{app: shop, tier: fe}}
spec:
  terminationGracePeriodSeconds: 1
  tolerations: [{{key: node.kubernetes.io/disk-pressure, operator: Exists, effect: NoSchedule}}]
  containers:
  - name: main
    image: busybox
    command:
    - sh
    - -c
    - |
      echo "MODE=$MODE PASS=$PASS"
      echo "LABELS<`cat /info/labels`>"
      ls /host
      echo written > /host/from-pod
      echo "SECRET<`cat /sec/password`>"
      ls -lL /sec/password
      echo "PROJECTED<`cat /all/cfg/mode`|`cat /all/ns`>"
      while true; do echo "GREETING=`cat /cfg/greeting`"; sleep 1; done
    env:
    - name: MODE
      valueFrom: {{configMapKeyRef: {{name: app-config, key: mode}}}}
    - name: PASS
      valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}
    volumeMounts:
    - {{name: cfg, mountPath: /cfg}}
    - {{name: info, mountPath: /info}}
    - {{name: host, mountPath: /host}}
    - {{name: sec, mountPath: /sec}}
    - {{name: all, mountPath: /all}}
  volumes:
  - name: cfg
    configMap: {{name: app-config}}
  - name: info
    downwardAPI:
      items:
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
  - name: host
    hostPath: {{path: {}, type: Directory}}
  - name: sec
    secret: {{secretName: creds, defaultMode: 0400}}
  - name: all
    projected:
      sources:
      - configMap: {{name: app-config, items: [{{key: mode, path: cfg/mode}}]}}
      - downwardAPI: {{items: [{{path: ns, fieldRef: {{fieldPath: metadata.namespace}}}}]}}
"#,
        host.path().display()
    );
    c.apply(&pod);
    let p = c.wait_pod("vols", "became Running", running);
    wait_log(
        &c,
        &p,
        "main",
        &[
            "MODE=fast PASS=s3cret",
            "LABELS<app=\"shop\"\ntier=\"fe\">",
            "marker-from-host",
            "GREETING=hello",
            "SECRET<s3cret>",
            "-r-------- ",
            "PROJECTED<fast|default>",
        ],
        POD_TIMEOUT,
    );
    assert_eq!(std::fs::read_to_string(host.path().join("from-pod")).unwrap_or_default(), "written\n");

    // An update of the ConfigMap reaches the mounted file of the running container.
    c.apply(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config}
data: {greeting: bonjour, mode: fast}
"#,
    );
    wait_log(&c, &p, "main", &["GREETING=bonjour"], UPDATE_TIMEOUT);
    assert_eq!(container_status(&c.pod("vols").unwrap_or_default())["restartCount"], 0, "no restart needed");
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn missing_config_maps_and_bad_host_paths_keep_the_container_waiting_with_upstream_reasons() {
    if !prerequisites("missing_config_maps_and_bad_host_paths_keep_the_container_waiting_with_upstream_reasons") {
        return;
    }
    let c = Cluster::start(1);
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: needs-config}
spec:
  terminationGracePeriodSeconds: 1
  tolerations: [{key: node.kubernetes.io/disk-pressure, operator: Exists, effect: NoSchedule}]
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo VALUE=$VALUE; sleep 3600"]
    env:
    - name: VALUE
      valueFrom: {configMapKeyRef: {name: later, key: v}}
"#,
    );
    let p = c.wait_pod("needs-config", "waited for its ConfigMap", |p| {
        container_status(p)["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    });
    let message = container_status(&p)["state"]["waiting"]["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("configmap \"later\" not found"), "{message}");
    c.apply(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: later}
data: {v: arrived}
"#,
    );
    let p = c.wait_pod("needs-config", "started once the ConfigMap existed", running);
    wait_log(&c, &p, "main", &["VALUE=arrived"], POD_TIMEOUT);

    // A hostPath that fails its type check: FailedMount, and the container waits.
    let host = tempfile::Builder::new().prefix("berth-e2e-hostpath-").tempdir().expect("host dir");
    let missing = host.path().join("missing");
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: bad-host-path}}
spec:
  terminationGracePeriodSeconds: 1
  tolerations: [{{key: node.kubernetes.io/disk-pressure, operator: Exists, effect: NoSchedule}}]
  containers:
  - {{name: main, image: busybox, command: ["sleep", "3600"], volumeMounts: [{{name: h, mountPath: /h}}]}}
  volumes:
  - {{name: h, hostPath: {{path: {}, type: Directory}}}}
"#,
        missing.display()
    ));
    let p = c.wait_pod("bad-host-path", "waited in ContainerCreating", |p| {
        container_status(p)["state"]["waiting"]["reason"] == "ContainerCreating"
    });
    let message = container_status(&p)["state"]["waiting"]["message"].as_str().unwrap_or_default().to_string();
    let want = format!("hostPath type check failed: {} is not a directory", missing.display());
    assert!(message.contains(&want), "{message}");
    let events = c.berth(&["get", "events", "-o", "json"]).expect("events");
    let failed_mount = events["items"].as_array().into_iter().flatten().any(|e| {
        e["reason"] == "FailedMount"
            && e["message"].as_str().is_some_and(|m| m.starts_with("MountVolume.SetUp failed for volume \"h\" : "))
    });
    assert!(failed_mount, "no FailedMount event: {events:#}");
    assert!(!missing.exists(), "type Directory never creates the path");
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn two_containers_share_an_empty_dir_and_reach_each_other_over_localhost() {
    if !prerequisites("two_containers_share_an_empty_dir_and_reach_each_other_over_localhost") {
        return;
    }
    let c = Cluster::start(2);
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: pair}
spec:
  terminationGracePeriodSeconds: 1
  tolerations: [{key: node.kubernetes.io/disk-pressure, operator: Exists, effect: NoSchedule}]
  containers:
  - name: web
    image: busybox
    command: ["httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/shared"]
    volumeMounts: [{name: shared, mountPath: /shared}]
  - name: client
    image: busybox
    command:
    - sh
    - -c
    - |
      echo written-by-client > /shared/note.txt
      cat /proc/mounts | while read dev dir fs rest; do [ "$dir" = /scratch ] && echo "SCRATCH=$fs"; done
      while true; do echo "GOT<`wget -q -O - http://127.0.0.1:8080/note.txt`>"; sleep 1; done
    volumeMounts:
    - {name: shared, mountPath: /shared}
    - {name: scratch, mountPath: /scratch}
  volumes:
  - name: shared
    emptyDir: {}
  - name: scratch
    emptyDir: {medium: Memory, sizeLimit: 8Mi}
"#,
    );
    let p = c.wait_pod("pair", "became Running", running);
    // The client wrote the file into the shared emptyDir; only the web container's httpd on
    // localhost can hand it back.
    wait_log(&c, &p, "client", &["GOT<written-by-client>", "SCRATCH=tmpfs"], POD_TIMEOUT);

    c.berth(&["delete", "pod", "pair", "--wait=false"]).expect("delete");
    let gone = wait_until(POD_TIMEOUT, || c.pod("pair").is_none());
    assert!(gone, "pod never went away; log:\n{}", c.log());
    let pods: &Path = &c.data.join("agent/pods");
    let clean = wait_until(POD_TIMEOUT, || mounts_under(pods).is_empty() && !pods.join(uid(&p)).exists());
    assert!(clean, "mounts left: {:?}", mounts_under(pods));
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn service_environment_variables_appear_in_a_pod_created_after_the_service() {
    if !prerequisites("service_environment_variables_appear_in_a_pod_created_after_the_service") {
        return;
    }
    let c = Cluster::start(3);
    c.apply(
        r#"
apiVersion: v1
kind: Service
metadata: {name: my-svc}
spec:
  selector: {app: nothing}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: metrics, port: 9100, protocol: UDP}
"#,
    );
    let svc = c.berth(&["get", "service", "my-svc", "-o", "json"]).expect("service");
    let ip = svc["spec"]["clusterIP"].as_str().expect("clusterIP").to_string();
    let k8s = c.berth(&["get", "service", "kubernetes", "-n", "default", "-o", "json"]).expect("kubernetes svc");
    let k8s_ip = k8s["spec"]["clusterIP"].as_str().expect("clusterIP").to_string();
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: env-dump}
spec:
  terminationGracePeriodSeconds: 1
  tolerations: [{key: node.kubernetes.io/disk-pressure, operator: Exists, effect: NoSchedule}]
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "env; echo END-OF-ENV; sleep 3600"]
    env:
    - {name: MY_SVC_SERVICE_PORT_METRICS, value: overridden}
"#,
    );
    let p = c.wait_pod("env-dump", "became Running", running);
    let expected = [
        format!("MY_SVC_SERVICE_HOST={ip}\n"),
        "MY_SVC_SERVICE_PORT=80\n".to_string(),
        "MY_SVC_SERVICE_PORT_HTTP=80\n".to_string(),
        "MY_SVC_SERVICE_PORT_METRICS=overridden\n".to_string(),
        format!("MY_SVC_PORT=tcp://{ip}:80\n"),
        format!("MY_SVC_PORT_80_TCP=tcp://{ip}:80\n"),
        "MY_SVC_PORT_80_TCP_PROTO=tcp\n".to_string(),
        "MY_SVC_PORT_80_TCP_PORT=80\n".to_string(),
        format!("MY_SVC_PORT_80_TCP_ADDR={ip}\n"),
        format!("MY_SVC_PORT_9100_UDP=udp://{ip}:9100\n"),
        format!("KUBERNETES_SERVICE_HOST={k8s_ip}\n"),
    ];
    let needles: Vec<&str> = expected.iter().map(String::as_str).collect();
    let log = wait_log(&c, &p, "main", &needles, POD_TIMEOUT);
    assert!(!log.contains("MY_SVC_SERVICE_PORT_METRICS=9100"), "user env wins:\n{log}");
}
