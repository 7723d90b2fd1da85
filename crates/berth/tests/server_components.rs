//! `berth server` runs the control-plane components beside the apiserver: a pod created through
//! the API gets bound to a node by the embedded scheduler (the node here is an API object only;
//! no agent runs it).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{TestServer, wait_until};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name).display().to_string()
}

#[test]
fn the_embedded_scheduler_binds_a_pending_pod_to_a_node() {
    let server = TestServer::start();
    server.berth().args(["apply", "-f", &fixture("scheduling.yaml")]).assert().success();

    let node_name = || {
        let out = server.berth().args(["get", "pod", "wants-a-node", "-o", "json"]).output().expect("run berth");
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|p| p["spec"]["nodeName"].as_str().map(str::to_owned))
    };
    assert!(
        wait_until(Duration::from_secs(30), || node_name().is_some()),
        "pod never bound; server log:\n{}",
        server.log()
    );
    assert_eq!(node_name().as_deref(), Some("node-a"));

    let events = server.berth().args(["get", "events", "-o", "json"]).output().expect("run berth");
    let events: serde_json::Value = serde_json::from_slice(&events.stdout).expect("events json");
    let scheduled =
        events["items"].as_array().into_iter().flatten().any(|e| {
            e["reason"] == "Scheduled" && e["message"] == "Successfully assigned default/wants-a-node to node-a"
        });
    assert!(scheduled, "no Scheduled event: {events:#}");
}

/// The names of the objects of a kind (`berth get KIND -o name`), optionally by label selector.
fn names(server: &TestServer, kind: &str, selector: &str) -> Vec<String> {
    let mut cmd = server.berth();
    cmd.args(["get", kind, "-o", "name"]);
    if !selector.is_empty() {
        cmd.args(["-l", selector]);
    }
    let out = cmd.output().expect("run berth");
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn the_embedded_controllers_run_a_deployment_and_cascade_its_deletion() {
    let server = TestServer::start();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubectl/deployment.yaml");
    server.berth().args(["apply", "-f"]).arg(&manifest).assert().success();

    let three_pods = wait_until(Duration::from_secs(30), || names(&server, "pods", "app=myapp").len() == 3);
    assert!(three_pods, "pods: {:?}; server log:\n{}", names(&server, "pods", "app=myapp"), server.log());
    let rs = names(&server, "replicasets", "app=myapp");
    assert_eq!(rs.len(), 1, "{rs:?}");
    assert!(rs[0].starts_with("replicaset.apps/myapp-"), "{rs:?}");

    server.berth().args(["delete", "deployment", "myapp"]).assert().success();
    let gone = wait_until(Duration::from_secs(30), || {
        names(&server, "pods", "app=myapp").is_empty() && names(&server, "replicasets", "app=myapp").is_empty()
    });
    assert!(gone, "left behind: {:?} {:?}", names(&server, "replicasets", ""), names(&server, "pods", ""));
}

#[test]
fn orphan_cascade_keeps_the_replicaset() {
    let server = TestServer::start();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubectl/deployment.yaml");
    server.berth().args(["apply", "-f"]).arg(&manifest).assert().success();
    assert!(wait_until(Duration::from_secs(30), || names(&server, "replicasets", "app=myapp").len() == 1));

    server.berth().args(["delete", "deployment", "myapp", "--cascade=orphan"]).assert().success();
    assert!(names(&server, "deployments", "").is_empty());
    let rs = names(&server, "replicasets", "app=myapp");
    assert_eq!(rs.len(), 1, "the orphaned ReplicaSet stays: {rs:?}");
    let out = server.berth().args(["get"]).arg(&rs[0]).args(["-o", "json"]).output().expect("run berth");
    let obj: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(obj["metadata"]["ownerReferences"].as_array().is_none_or(|r| r.is_empty()), "{obj:#}");
}
