//! The real kubectl against `berth server`: apply, get (table, wide, yaml, json, watch), describe,
//! delete, api-resources, explain, `create deployment` (a protobuf body) and kubectl's error lines.
//!
//! kubectl is /usr/bin/kubectl (or `BERTH_KUBECTL`); each test gets its own server and its own
//! kubectl cache dir. Without kubectl the tests skip, except under `CI=true`, where they fail.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::TestServer;
use common::kubectl::Kubectl;

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubectl").join(name).display().to_string()
}

/// The header line of a kubectl table, split into column names.
fn header(table: &str) -> Vec<String> {
    table
        .lines()
        .next()
        .unwrap_or_default()
        .split("   ")
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

/// The row of a table whose first cell is `name`.
fn row<'a>(table: &'a str, name: &str) -> Option<&'a str> {
    table.lines().find(|l| l.split_whitespace().next() == Some(name))
}

#[test]
fn apply_creates_each_kind_and_get_shows_kubectl_columns() {
    let server = TestServer::start();
    let Some(k) = Kubectl::new(&server.kubeconfig) else { return };

    let out = k.ok(&["apply", "-f", &fixture("deployment.yaml")]);
    assert_eq!(out.trim(), "deployment.apps/myapp created");
    let out = k.ok(&["apply", "-f", &fixture("services.yaml")]);
    for svc in ["myapp-service", "myapp-nodeport", "myapp-lb", "my-database"] {
        assert!(out.contains(&format!("service/{svc} created")), "{out}");
    }
    let out = k.ok(&["apply", "-f", &fixture("pod.yaml")]);
    assert_eq!(out.trim(), "pod/hello-pod created");

    let deploy = k.ok(&["get", "deployments"]);
    assert_eq!(header(&deploy), ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert!(row(&deploy, "myapp").is_some_and(|r| r.contains("0/3")), "{deploy}");
    let wide = k.ok(&["get", "deployments", "-o", "wide"]);
    assert_eq!(header(&wide), ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]);
    assert!(row(&wide, "myapp").is_some_and(|r| r.contains("busybox:stable") && r.contains("app=myapp")), "{wide}");

    let svcs = k.ok(&["get", "services"]);
    assert_eq!(header(&svcs), ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]);
    assert!(row(&svcs, "kubernetes").is_some(), "the kubernetes Service exists at start: {svcs}");
    assert!(row(&svcs, "myapp-service").is_some_and(|r| r.contains("ClusterIP") && r.contains("8081/TCP")), "{svcs}");
    assert!(
        row(&svcs, "myapp-nodeport").is_some_and(|r| r.contains("NodePort") && r.contains("80:32002/TCP")),
        "{svcs}"
    );
    assert!(row(&svcs, "myapp-lb").is_some_and(|r| r.contains("LoadBalancer")), "{svcs}");
    assert!(
        row(&svcs, "my-database").is_some_and(|r| r.contains("ExternalName") && r.contains("db.example.com")),
        "{svcs}"
    );

    let pods = k.ok(&["get", "pods"]);
    assert_eq!(header(&pods), ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert!(row(&pods, "hello-pod").is_some_and(|r| r.contains("0/1") && r.contains("Pending")), "{pods}");
    let wide = k.ok(&["get", "pods", "-o", "wide"]);
    assert_eq!(
        header(&wide),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    );

    let ns = k.ok(&["get", "namespaces"]);
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(row(&ns, name).is_some_and(|r| r.contains("Active")), "{ns}");
    }
}

#[test]
fn get_as_yaml_json_and_name_shows_defaulted_objects() {
    let server = TestServer::start();
    let Some(k) = Kubectl::new(&server.kubeconfig) else { return };
    k.ok(&["apply", "-f", &fixture("deployment.yaml"), "-f", &fixture("services.yaml")]);

    let json: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "deployment", "myapp", "-o", "json"])).expect("json");
    assert_eq!(json["kind"], "Deployment");
    assert_eq!(json["apiVersion"], "apps/v1");
    assert_eq!(json["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(json["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    assert_eq!(json["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(json["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(json["spec"]["template"]["spec"]["restartPolicy"], "Always");
    assert_eq!(json["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
    assert!(json["metadata"]["uid"].as_str().is_some_and(|u| !u.is_empty()));
    assert!(json["metadata"]["resourceVersion"].as_str().is_some_and(|rv| !rv.is_empty()));

    let yaml = k.ok(&["get", "service", "myapp-service", "-o", "yaml"]);
    assert!(yaml.contains("kind: Service"), "{yaml}");
    assert!(yaml.contains("sessionAffinity: None"), "{yaml}");
    assert!(yaml.contains("targetPort: 80"), "{yaml}");

    let names = k.ok(&["get", "services", "-o", "name"]);
    assert!(names.lines().any(|l| l == "service/myapp-service"), "{names}");

    let list: serde_json::Value = serde_json::from_str(&k.ok(&["get", "services", "-o", "json"])).expect("json");
    assert_eq!(list["kind"], "List");
    assert!(list["items"].as_array().is_some_and(|items| items.len() >= 5), "{list}");
}

#[test]
fn apply_twice_is_unchanged_and_a_changed_file_is_configured() {
    // No controllers: their status writes would move resourceVersion, which this test reads to
    // prove that a no-op apply writes nothing.
    let server = TestServer::start_with(&["--disable-controller-manager"]);
    let Some(k) = Kubectl::new(&server.kubeconfig) else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("deployment.yaml");
    let original = std::fs::read_to_string(fixture("deployment.yaml")).expect("fixture");
    std::fs::write(&file, &original).expect("write manifest");
    let file = file.display().to_string();

    assert_eq!(k.ok(&["apply", "-f", &file]).trim(), "deployment.apps/myapp created");
    let before: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "deploy", "myapp", "-o", "json"])).expect("json");
    assert_eq!(k.ok(&["apply", "-f", &file]).trim(), "deployment.apps/myapp unchanged");
    let after: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "deploy", "myapp", "-o", "json"])).expect("json");
    assert_eq!(
        before["metadata"]["resourceVersion"], after["metadata"]["resourceVersion"],
        "a no-op apply must not write"
    );

    let changed = original.replace("replicas: 3", "replicas: 5").replace("busybox:stable", "busybox:1.36");
    std::fs::write(&file, changed).expect("write manifest");
    assert_eq!(k.ok(&["apply", "-f", &file]).trim(), "deployment.apps/myapp configured");
    let patched: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "deploy", "myapp", "-o", "json"])).expect("json");
    assert_eq!(patched["spec"]["replicas"], 5);
    assert_eq!(patched["spec"]["template"]["spec"]["containers"][0]["image"], "busybox:1.36");
    assert_eq!(patched["metadata"]["generation"], 2);
    assert_eq!(patched["metadata"]["uid"], before["metadata"]["uid"]);
}

#[test]
fn server_side_apply_creates_then_patches() {
    let server = TestServer::start();
    let Some(k) = Kubectl::new(&server.kubeconfig) else { return };
    let out = k.ok(&["apply", "--server-side", "-f", &fixture("deployment.yaml")]);
    assert_eq!(out.trim(), "deployment.apps/myapp serverside-applied");
    let obj: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "deploy", "myapp", "-o", "json", "--show-managed-fields"])).expect("json");
    let managers: Vec<&str> = obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"kubectl"), "managedFields records kubectl: {managers:?}");
    let out = k.ok(&["apply", "--server-side", "-f", &fixture("deployment.yaml")]);
    assert_eq!(out.trim(), "deployment.apps/myapp serverside-applied");
}

#[test]
fn create_deployment_sends_protobuf_and_is_stored() {
    let server = TestServer::start();
    let Some(k) = Kubectl::new(&server.kubeconfig) else { return };
    let out = k.ok(&["create", "deployment", "hello", "--image=busybox"]);
    assert_eq!(out.trim(), "deployment.apps/hello created");
    let obj: serde_json::Value = serde_json::from_str(&k.ok(&["get", "deploy", "hello", "-o", "json"])).expect("json");
    assert_eq!(obj["spec"]["template"]["spec"]["containers"][0]["image"], "busybox");
    assert_eq!(obj["spec"]["selector"]["matchLabels"]["app"], "hello");
    assert_eq!(obj["spec"]["replicas"], 1);
}

#[test]
fn invalid_manifests_get_kubectls_is_invalid_lines() {
    let server = TestServer::start();
    let Some(k) = Kubectl::new(&server.kubeconfig) else { return };
    let err = k.fails(&["apply", "-f", &fixture("invalid-replicas.yaml")]);
    assert!(
        err.contains(
            "The Deployment \"broken\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        ),
        "{err}"
    );
    let err = k.fails(&["apply", "-f", &fixture("invalid-selector.yaml")]);
    assert!(err.contains("The Deployment \"mismatched\" is invalid"), "{err}");
    assert!(err.contains("spec.template.metadata.labels"), "{err}");
    assert!(err.contains("`selector` does not match template `labels`"), "{err}");
    let err = k.fails(&["get", "deployment", "nope"]);
    assert!(err.contains("Error from server (NotFound): deployments.apps \"nope\" not found"), "{err}");
    // Nothing was stored for the rejected manifests.
    let err = k.fails(&["get", "deployment", "broken"]);
    assert!(err.contains("NotFound"), "{err}");
}

#[test]
fn describe_delete_and_cascade_flags() {
    let server = TestServer::start();
    let Some(k) = Kubectl::new(&server.kubeconfig) else { return };
    k.ok(&["apply", "-f", &fixture("deployment.yaml"), "-f", &fixture("services.yaml"), "-f", &fixture("pod.yaml")]);

    let d = k.ok(&["describe", "deployment", "myapp"]);
    assert!(d.contains("Name:") && d.contains("myapp"), "{d}");
    assert!(d.contains("StrategyType:") && d.contains("RollingUpdate"), "{d}");
    assert!(d.contains("Replicas:"), "{d}");
    let s = k.ok(&["describe", "service", "myapp-nodeport"]);
    assert!(s.contains("NodePort:") && s.contains("32002/TCP"), "{s}");
    let p = k.ok(&["describe", "pod", "hello-pod"]);
    assert!(p.contains("Containers:") && p.contains("busybox:stable"), "{p}");

    assert_eq!(k.ok(&["delete", "service", "myapp-lb"]).trim(), "service \"myapp-lb\" deleted");
    let err = k.fails(&["get", "service", "myapp-lb"]);
    assert!(err.contains("NotFound"), "{err}");
    assert_eq!(k.ok(&["delete", "-f", &fixture("deployment.yaml")]).trim(), "deployment.apps \"myapp\" deleted");
    assert_eq!(
        k.ok(&["delete", "pod", "hello-pod", "--grace-period=0", "--force"]).lines().last().unwrap_or_default().trim(),
        "pod \"hello-pod\" force deleted"
    );
    let pods = k.run(&["get", "pods", "-o", "name"]);
    assert!(String::from_utf8_lossy(&pods.stdout).trim().is_empty());
}

#[test]
fn api_resources_and_explain_read_discovery_and_openapi() {
    let server = TestServer::start();
    let Some(k) = Kubectl::new(&server.kubeconfig) else { return };
    let out = k.ok(&["api-resources"]);
    assert_eq!(header(&out), ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]);
    for (name, short, version, kind) in [
        ("pods", "po", "v1", "Pod"),
        ("services", "svc", "v1", "Service"),
        ("deployments", "deploy", "apps/v1", "Deployment"),
        ("horizontalpodautoscalers", "hpa", "autoscaling/v2", "HorizontalPodAutoscaler"),
        ("leases", "", "coordination.k8s.io/v1", "Lease"),
    ] {
        let r = row(&out, name).unwrap_or_else(|| panic!("{name} missing from api-resources:\n{out}"));
        assert!(r.contains(version) && r.contains(kind) && r.contains(short), "{r}");
    }
    let explain = k.ok(&["explain", "deployment.spec"]);
    assert!(explain.contains("KIND:") && explain.contains("Deployment"), "{explain}");
    assert!(explain.contains("replicas"), "{explain}");
    assert!(explain.contains("template"), "{explain}");
}

/// Reads a child's stdout lines on a thread, so the test can wait for a line with a deadline.
struct LineReader {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl LineReader {
    fn spawn(mut cmd: Command) -> LineReader {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        LineReader { child, lines, seen: Vec::new() }
    }

    /// Waits until a line satisfies `pred`, for at most `limit`.
    fn wait_for(&mut self, what: &str, limit: Duration, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                let hit = pred(&line);
                self.seen.push(line);
                if hit {
                    return;
                }
            }
        }
        panic!("no line with {what} within {limit:?}; saw {:#?}", self.seen);
    }
}

impl Drop for LineReader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn get_watch_shows_added_modified_deleted() {
    let server = TestServer::start();
    let Some(k) = Kubectl::new(&server.kubeconfig) else { return };
    k.ok(&["create", "configmap", "before", "--from-literal=a=1"]);
    let mut watch = LineReader::spawn(k.command(&["get", "configmaps", "-w", "--output-watch-events"]));
    watch.wait_for("ADDED before", Duration::from_secs(30), |l| l.starts_with("ADDED") && l.contains("before"));
    k.ok(&["create", "configmap", "watched", "--from-literal=a=1"]);
    watch.wait_for("ADDED watched", Duration::from_secs(30), |l| l.starts_with("ADDED") && l.contains("watched"));
    k.ok(&["patch", "configmap", "watched", "-p", r#"{"data":{"b":"2"}}"#]);
    watch.wait_for("MODIFIED watched", Duration::from_secs(30), |l| l.starts_with("MODIFIED") && l.contains("watched"));
    k.ok(&["delete", "configmap", "watched"]);
    watch.wait_for("DELETED watched", Duration::from_secs(30), |l| l.starts_with("DELETED") && l.contains("watched"));
    assert_eq!(header(&watch.seen[0]), ["EVENT", "NAME", "DATA", "AGE"], "{:?}", watch.seen);
}

#[test]
fn version_and_cluster_info_report_the_server() {
    let server = TestServer::start();
    let Some(k) = Kubectl::new(&server.kubeconfig) else { return };
    let v: serde_json::Value = serde_json::from_str(&k.ok(&["version", "-o", "json"])).expect("json");
    assert_eq!(v["serverVersion"]["major"], "1");
    assert_eq!(v["serverVersion"]["minor"], "33");
    assert!(
        v["serverVersion"]["gitVersion"].as_str().is_some_and(|g| g.starts_with("v1.33.") && g.ends_with("+berth")),
        "{v}"
    );
    let info = k.ok(&["cluster-info"]);
    assert!(info.contains("Kubernetes control plane") && info.contains(&server.url), "{info}");
}
