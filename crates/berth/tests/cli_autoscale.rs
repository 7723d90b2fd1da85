//! `autoscale`, `get hpa`, `describe hpa` and `top pods|nodes`, with the real kubectl and with
//! berth's own verbs, against a real `berth server` (no agent): usage comes from a sim node's pods
//! (`sim.berth.dev/cpu-usage` annotations), the test plays their kubelet through a kube client.
//!
//! kubectl is /usr/bin/kubectl (or `BERTH_KUBECTL`); without it the kubectl test skips, except
//! under `CI=true`, where it fails.

mod common;

use std::time::Duration;

use common::kubectl::{Kube, Kubectl};
use common::{TestServer, ok, wait_until};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

/// How long the controllers and the metrics collector get to react.
const REACT: Duration = Duration::from_secs(30);

/// Flags that make the collector and the HPA controller fast.
const FAST: &[&str] = &["--metrics-resolution", "300ms", "--horizontal-pod-autoscaler-sync-period", "500ms"];

impl Kube {
    /// A Ready sim node with 4 cores and 8Gi allocatable.
    fn create_sim_node(&self, name: &str) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        self.rt.block_on(async {
            let node =
                serde_json::from_value(json!({"metadata": {"name": name, "labels": {"node.berth.dev/sim": "true"}}}))
                    .expect("node");
            nodes.create(&PostParams::default(), &node).await.expect("create node");
            let now = jiff::Timestamp::now().to_string();
            let status = json!({"status": {
                "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": now, "lastTransitionTime": now,
                    "reason": "KubeletReady", "message": "ready"}]}});
            nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("node status");
        });
    }

    /// A Deployment of `replicas` pods pinned to the sim node, each using `cpu` of a 100m request.
    fn create_deployment(&self, name: &str, replicas: i32, cpu: &str) {
        let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(self.client.clone(), "default");
        let d = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name},
                        "annotations": {"sim.berth.dev/cpu-usage": cpu, "sim.berth.dev/memory-usage": "20Mi"}},
                    "spec": {"nodeName": "sim-1", "containers": [{"name": "c", "image": "busybox",
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}}}))
        .expect("deployment");
        self.rt.block_on(api.create(&PostParams::default(), &d)).expect("create deployment");
    }

    /// Marks every pod Running and Ready (started ten minutes ago); returns how many pods exist.
    fn play_kubelet(&self) -> usize {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), "default");
        self.rt.block_on(async {
            let list = pods.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
            let started = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(600)).to_string();
            for p in &list {
                if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                    continue;
                }
                let patch = json!({"status": {"phase": "Running", "startTime": started,
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": started}]}});
                let _ = pods.patch_status(&p.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await;
            }
            list.len()
        })
    }
}

/// The whitespace-separated words of each line.
fn words(text: &str) -> Vec<Vec<String>> {
    text.lines().map(|l| l.split_whitespace().map(String::from).collect()).collect()
}

#[test]
fn kubectl_autoscale_creates_an_hpa_that_get_hpa_and_top_show() {
    let server = TestServer::start_with(FAST);
    let Some(kubectl) = Kubectl::new(&server.kubeconfig) else { return };
    let kube = Kube::new(&server.kubeconfig);
    kube.create_sim_node("sim-1");
    kube.create_deployment("my-app", 1, "35m");

    let out = kubectl.ok(&["autoscale", "deployment", "my-app", "--cpu-percent=70", "--min=2", "--max=10"]);
    assert_eq!(out, "horizontalpodautoscaler.autoscaling/my-app autoscaled\n");

    let out = kubectl.ok(&["get", "hpa"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        words(lines[0]),
        words("NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE"),
        "kubectl get hpa:\n{out}"
    );
    // The column layout is kubectl's: each column starts where its header does.
    let header = lines[0];
    let targets_at = header.find("TARGETS").expect("TARGETS column");
    assert_eq!(&lines[1][..targets_at], format!("{:<w$}", "my-app   Deployment/my-app", w = targets_at));
    assert!(lines[1][targets_at..].starts_with("cpu: "), "{out}");
    assert!(lines[1].contains("/70%"), "{out}");

    // The HPA raises the Deployment to minReplicas; with usage the target reads 35%.
    assert!(
        wait_until(REACT, || {
            kube.play_kubelet();
            let out = kubectl.ok(&["get", "hpa", "my-app", "--no-headers"]);
            let w = words(&out).into_iter().next().unwrap_or_default();
            w.len() == 8 && w[2] == "cpu:" && w[3] == "35%/70%" && w[4] == "2" && w[5] == "10" && w[6] == "2"
        }),
        "kubectl get hpa never showed 35%/70% with 2 replicas:\n{}",
        kubectl.ok(&["get", "hpa", "my-app"])
    );

    assert!(
        wait_until(REACT, || words(&kubectl.ok(&["top", "pods"])).len() == 3),
        "kubectl top pods never showed two pods:\n{}",
        kubectl.ok(&["top", "pods"])
    );
    let out = kubectl.ok(&["top", "pods"]);
    let rows = words(&out);
    assert_eq!(rows[0], words("NAME CPU(cores) MEMORY(bytes)")[0], "{out}");
    assert_eq!(ok(&server, &["top", "pods"]), out, "berth top pods prints what kubectl prints");
    for r in &rows[1..] {
        assert!(r[0].starts_with("my-app-"), "{out}");
        assert_eq!(&r[1..], &["35m".to_string(), "20Mi".to_string()], "{out}");
    }
    let out = kubectl.ok(&["top", "nodes"]);
    let rows = words(&out);
    assert_eq!(rows[0], words("NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%)")[0], "{out}");
    assert_eq!(rows[1], words("sim-1 70m 1% 40Mi 0%")[0], "{out}");
    assert_eq!(ok(&server, &["top", "nodes"]), out, "berth top nodes prints what kubectl prints");
}

#[test]
fn berth_autoscale_get_describe_and_top() {
    let server = TestServer::start_with(FAST);
    let kube = Kube::new(&server.kubeconfig);
    kube.create_sim_node("sim-1");
    kube.create_deployment("web", 1, "80m");

    let out =
        ok(&server, &["autoscale", "deployment", "web", "--cpu-percent", "50", "--max", "3", "--name", "web-hpa"]);
    assert_eq!(out, "horizontalpodautoscaler.autoscaling/web-hpa autoscaled\n");
    let err = common::fails(&server, &["autoscale", "deployment", "web", "--max", "0"]);
    assert!(err.contains("--max=MAXPODS is required and must be at least 1, max: 0"), "{err}");

    // 80% of requests against 50%: the HPA scales up (within its default policy) to max 3.
    assert!(
        wait_until(REACT, || {
            kube.play_kubelet();
            let out = ok(&server, &["get", "hpa", "web-hpa", "--no-headers"]);
            let w = words(&out).into_iter().next().unwrap_or_default();
            w.len() == 8 && w[3] == "80%/50%" && w[6] == "3"
        }),
        "never reached 3 replicas:\n{}",
        ok(&server, &["get", "hpa"])
    );
    let out = ok(&server, &["get", "hpa"]);
    assert_eq!(
        words(out.lines().next().unwrap_or_default()),
        words("NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE")
    );

    // The limit shows in the conditions from the sync after the one that reached max.
    let mut out = String::new();
    wait_until(REACT, || {
        kube.play_kubelet();
        out = ok(&server, &["describe", "hpa", "web-hpa"]);
        out.contains("TooManyReplicas")
    });
    for want in [
        "Reference:",
        "Deployment/web",
        "resource cpu on pods  (as a percentage of request):  80% (80m) / 50%",
        "Max replicas:",
        "Deployment pods:",
        "ScalingLimited",
        "TooManyReplicas",
        "SuccessfulRescale",
        "cpu resource utilization (percentage of request) above target",
    ] {
        assert!(out.contains(want), "describe hpa lacks {want:?}:\n{out}");
    }

    // The third pod's usage shows from the collection after it started.
    assert!(
        wait_until(REACT, || words(&ok(&server, &["top", "pods"])).len() == 4),
        "berth top pods never showed three pods:\n{}",
        ok(&server, &["top", "pods"])
    );
    let out = ok(&server, &["top", "pods"]);
    let rows = words(&out);
    assert_eq!(rows[0], words("NAME CPU(cores) MEMORY(bytes)")[0], "{out}");
    assert!(rows[1..].iter().all(|r| r[1] == "80m" && r[2] == "20Mi"), "{out}");
    let out = ok(&server, &["top", "nodes"]);
    assert_eq!(words(&out)[1], words("sim-1 240m 6% 60Mi 0%")[0], "{out}");
}
