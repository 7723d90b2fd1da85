//! End-to-end test of static pods: a Pod manifest in the agent's `--pod-manifest-path` runs as a
//! real busybox container with a mirror pod in the API; deleting the mirror does not touch the
//! container (the mirror comes back); removing the file stops the pod.
//!
//! Needs root, runc, overlayfs, busybox-static and the CNI plugins, so it is `#[ignore]`d; run it
//! with `cargo nextest run -p berth --run-ignored all --test e2e_static_pods`. The cluster fixture
//! (common/cluster.rs) confines it to its own bridge, CIDR and data dir and removes them on drop.

mod common;

use common::cluster::{Cluster, POD_TIMEOUT, container_status, prerequisites};
use common::wait_until;

const STATIC: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: static-web
  labels: {app: static}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
"#;

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn a_static_pod_runs_from_its_file_survives_mirror_deletion_and_stops_with_the_file() {
    if !prerequisites("a_static_pod_runs_from_its_file_survives_mirror_deletion_and_stops_with_the_file") {
        return;
    }
    let c = Cluster::start_with(0, &|c| {
        vec!["--pod-manifest-path".to_string(), c.data.join("manifests").display().to_string()]
    });
    let dir = c.data.join("manifests");
    std::fs::create_dir_all(&dir).expect("manifest dir");
    let file = dir.join("static-web.yaml");
    std::fs::write(&file, STATIC).expect("write manifest");

    let mirror = format!("static-web-{}", c.node_name());
    let pod = c.wait_pod(&mirror, "appeared Running as a mirror pod", |p| {
        p["status"]["phase"] == "Running" && container_status(p)["ready"] == true
    });
    let annotations = &pod["metadata"]["annotations"];
    let hash = annotations["kubernetes.io/config.hash"].as_str().unwrap_or_default().to_string();
    assert_eq!(hash.len(), 32, "{annotations:#}");
    assert_eq!(annotations["kubernetes.io/config.mirror"], hash.as_str(), "{annotations:#}");
    assert_eq!(annotations["kubernetes.io/config.source"], "file", "{annotations:#}");
    let owner = &pod["metadata"]["ownerReferences"][0];
    assert_eq!((owner["kind"].as_str(), owner["name"].as_str()), (Some("Node"), Some(c.node_name().as_str())));
    let container_id = container_status(&pod)["containerID"].clone();
    let started_at = container_status(&pod)["state"]["running"]["startedAt"].clone();
    assert!(
        container_id.as_str().is_some_and(|id| id.contains(&hash)),
        "the container runs under the static uid: {container_id}"
    );
    let first_uid = pod["metadata"]["uid"].clone();
    let mirror_uid = first_uid.as_str().unwrap_or_default().to_string();
    assert!(
        !c.runc_list().lines().any(|id| id.contains(&mirror_uid)),
        "a second worker runs the mirror pod: {}",
        c.runc_list()
    );

    // Deleting the mirror through the API leaves the container alone; the mirror comes back.
    c.berth(&["delete", "pod", &mirror, "--wait=false"]).expect("delete the mirror");
    let again = c.wait_pod(&mirror, "came back as a new mirror with the running status", |p| {
        p["metadata"]["uid"] != first_uid
            && p["metadata"]["deletionTimestamp"].is_null()
            && p["status"]["phase"] == "Running"
            && container_status(p)["containerID"] == container_id
    });
    assert_eq!(container_status(&again)["state"]["running"]["startedAt"], started_at, "the container was restarted");
    assert_eq!(container_status(&again)["restartCount"], 0);
    assert!(c.runc_list().contains(&hash), "the container is gone: {}", c.runc_list());

    // A restarted agent maps the same file to the same pod and adopts its running container.
    let mut c = c;
    c.restart();
    let adopted = wait_until(POD_TIMEOUT, || c.log().contains("adopted running container"));
    assert!(adopted, "the restarted agent did not adopt the container; log:\n{}", c.log());
    let after = c.wait_pod(&mirror, "was Running again after the restart", |p| {
        p["status"]["phase"] == "Running" && container_status(p)["containerID"] == container_id
    });
    assert_eq!(container_status(&after)["state"]["running"]["startedAt"], started_at, "restarted by the agent");

    // Removing the file stops the pod and deletes the mirror.
    std::fs::remove_file(&file).expect("remove manifest");
    let gone = wait_until(POD_TIMEOUT, || c.pod(&mirror).is_none() && !c.runc_list().contains(&hash));
    assert!(gone, "pod still there: {:?}, runc: {}\nlog:\n{}", c.pod(&mirror), c.runc_list(), c.log());
}
