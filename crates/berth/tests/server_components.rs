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
