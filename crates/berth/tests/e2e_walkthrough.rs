//! The seeds' walkthrough (issue 4) end to end, with real runc pods driven by the real kubectl
//! (and some steps by `berth`): a 3-replica Deployment of busybox httpd with a readiness probe
//! comes up; a deleted pod is replaced; scale to 5; `set image` to a second tag with
//! maxUnavailable 0 never lets the Ready count drop; `rollout status`, `history` (with
//! change-cause) and `undo`; Recreate never runs old and new pods together; an image that can
//! never start ends in ProgressDeadlineExceeded and a failing `rollout status`.
//!
//! Needs root, runc, overlayfs, busybox-static, the CNI plugins and kubectl; `#[ignore]`d.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::cluster::{Cluster, prerequisites};
use common::kubectl::{Kubectl, kube_client};
use common::wait_until;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};

const ROLLOUT: Duration = Duration::from_secs(60);

impl Kubectl {
    fn apply(&self, manifest: &str) {
        let out = self.run_with_stdin(&["apply", "-f", "-"], manifest);
        assert!(out.status.success(), "apply: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn jsonpath(&self, what: &str, path: &str) -> String {
        self.ok(&["get", what, "-o", &format!("jsonpath={path}")])
    }
}

/// `(name, image, ready, terminating, phase)` of every pod of `app=web`, from a kube client on its
/// own runtime (fast enough to sample continuously).
struct Sampler {
    rt: tokio::runtime::Runtime,
    client: Client,
}

type PodRow = (String, String, bool, bool, String);

impl Sampler {
    fn new(kubeconfig: &std::path::Path) -> Sampler {
        let (rt, client) = kube_client(kubeconfig);
        Sampler { rt, client }
    }

    fn pods(&self, app: &str) -> Vec<PodRow> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), "default");
        let list = self.rt.block_on(api.list(&ListParams::default().labels(&format!("app={app}"))));
        list.map(|l| {
            l.items
                .into_iter()
                .map(|p| {
                    let image =
                        p.spec.as_ref().map(|s| s.containers[0].image.clone().unwrap_or_default()).unwrap_or_default();
                    let status = p.status.unwrap_or_default();
                    let ready =
                        status.conditions.unwrap_or_default().iter().any(|c| c.type_ == "Ready" && c.status == "True");
                    (
                        p.metadata.name.unwrap_or_default(),
                        image,
                        ready,
                        p.metadata.deletion_timestamp.is_some(),
                        status.phase.unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
    }
}

/// Samples pods of `app` on a thread until the returned stop flag is set; the join handle
/// gives every sample.
fn sample(kubeconfig: PathBuf, app: &'static str) -> (Arc<AtomicBool>, std::thread::JoinHandle<Vec<Vec<PodRow>>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let s = Sampler::new(&kubeconfig);
        let mut samples = Vec::new();
        while !flag.load(Ordering::SeqCst) {
            samples.push(s.pods(app));
            std::thread::sleep(Duration::from_millis(100)); // sampling interval, not synchronisation
        }
        samples
    });
    (stop, handle)
}

fn deployment(image: &str, cause: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations: {{kubernetes.io/change-cause: "{cause}"}}
spec:
  replicas: 3
  progressDeadlineSeconds: 120
  strategy: {{type: RollingUpdate, rollingUpdate: {{maxUnavailable: 0, maxSurge: 1}}}}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: {image}
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 80 -h /www"]
        readinessProbe:
          httpGet: {{path: /, port: 80}}
          periodSeconds: 1
"#
    )
}

fn ready_replicas(k: &Kubectl, name: &str) -> i64 {
    k.jsonpath(&format!("deployment/{name}"), "{.status.readyReplicas}").trim().parse().unwrap_or(0)
}

fn live_names(s: &Sampler) -> BTreeSet<String> {
    s.pods("web").into_iter().filter(|p| !p.3).map(|p| p.0).collect()
}

#[test]
#[ignore = "needs root: runc, netns, CNI, kubectl"]
fn the_seeds_walkthrough_with_kubectl() {
    if !prerequisites("the_seeds_walkthrough_with_kubectl") {
        return;
    }
    let c = Cluster::start(0);
    let kubeconfig = c.server().kubeconfig.clone();
    let Some(k) = Kubectl::without_request_timeout(&kubeconfig) else { return };
    c.import_image("docker.io/library/busybox:v2");
    let s = Sampler::new(&kubeconfig);

    // 3 replicas come up Ready.
    k.apply(&deployment("busybox:latest", "initial"));
    k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert_eq!(ready_replicas(&k, "web"), 3);

    // A deleted pod is replaced.
    let before = live_names(&s);
    let victim = before.iter().next().cloned().expect("a pod");
    k.ok(&["delete", "pod", &victim, "--wait=false"]);
    assert!(
        wait_until(ROLLOUT, || {
            let now = live_names(&s);
            now.len() == 3 && !now.contains(&victim) && ready_replicas(&k, "web") == 3
        }),
        "pod {victim} was not replaced: {:?}\n{}",
        s.pods("web"),
        c.log()
    );

    // Scale to 5 (with berth).
    c.berth(&["scale", "deployment", "web", "--replicas=5"]).expect("berth scale");
    assert!(wait_until(ROLLOUT, || ready_replicas(&k, "web") == 5), "never 5 ready: {:?}", s.pods("web"));

    // set image with maxUnavailable 0: the Ready count never drops below the replicas.
    let (stop, samples) = sample(kubeconfig.clone(), "web");
    k.ok(&["set", "image", "deployment/web", "httpd=busybox:v2"]);
    k.ok(&["annotate", "deployment/web", "kubernetes.io/change-cause=to v2", "--overwrite"]);
    k.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    stop.store(true, Ordering::SeqCst);
    let samples = samples.join().expect("sampler");
    let min_ready = samples.iter().map(|pods| pods.iter().filter(|p| p.2 && !p.3).count()).min().unwrap_or(0);
    assert!(samples.len() > 5 && min_ready >= 5, "Ready count dropped to {min_ready} during the rollout");
    let images: BTreeSet<String> = s.pods("web").into_iter().filter(|p| !p.3).map(|p| p.1).collect();
    assert_eq!(images, BTreeSet::from(["busybox:v2".to_string()]));

    // History shows both revisions with their change-cause; undo restores the first template.
    let history = k.ok(&["rollout", "history", "deployment/web"]);
    let rows: Vec<Vec<&str>> = history.lines().skip(2).map(|l| l.split_whitespace().collect()).collect();
    assert!(rows.iter().any(|r| r.first() == Some(&"1") && r[1..].join(" ") == "initial"), "{history}");
    assert!(rows.iter().any(|r| r.first() == Some(&"2") && r[1..].join(" ") == "to v2"), "{history}");
    let out = c.berth(&["rollout", "undo", "deployment/web"]).expect("berth rollout undo");
    assert!(out.as_str().is_some_and(|o| o.contains("rolled back")), "{out}");
    c.berth(&["rollout", "status", "deployment/web", "--timeout=90s"]).expect("berth rollout status");
    assert_eq!(k.jsonpath("deployment/web", "{.spec.template.spec.containers[0].image}"), "busybox:latest");
    assert!(wait_until(ROLLOUT, || {
        let pods = s.pods("web");
        pods.iter().filter(|p| !p.3).all(|p| p.1 == "busybox:latest") && ready_replicas(&k, "web") == 5
    }));
    let history = k.ok(&["rollout", "history", "deployment/web"]);
    assert!(history.lines().any(|l| l.split_whitespace().next() == Some("3")), "undo makes revision 3: {history}");

    // Recreate: old pods are gone before any new one exists. (First let the undo's old pods finish.)
    assert!(wait_until(ROLLOUT, || {
        let pods = s.pods("web");
        pods.len() == 5 && pods.iter().all(|p| !p.3)
    }));
    k.ok(&["patch", "deployment/web", "-p", r#"{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null}}}"#]);
    let (stop, samples) = sample(kubeconfig.clone(), "web");
    k.ok(&["set", "image", "deployment/web", "httpd=busybox:v2"]);
    k.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    stop.store(true, Ordering::SeqCst);
    for pods in samples.join().expect("sampler") {
        let old_running =
            pods.iter().any(|p| p.1 == "busybox:latest" && !matches!(p.4.as_str(), "Succeeded" | "Failed"));
        let new = pods.iter().any(|p| p.1 == "busybox:v2");
        assert!(!(old_running && new), "old and new pods at once: {pods:?}");
    }

    // An image that can never start: ProgressDeadlineExceeded, rollout status fails.
    let broken = deployment("busybox:missing", "broken")
        .replace("name: web", "name: broken")
        .replace("app: web", "app: broken")
        .replace("progressDeadlineSeconds: 120", "progressDeadlineSeconds: 5");
    k.apply(&broken);
    assert!(
        wait_until(ROLLOUT, || {
            k.jsonpath("deployment/broken", "{.status.conditions[?(@.type==\"Progressing\")].reason}")
                == "ProgressDeadlineExceeded"
        }),
        "no ProgressDeadlineExceeded: {}",
        k.ok(&["get", "deployment/broken", "-o", "yaml"])
    );
    let out = k.run(&["rollout", "status", "deployment/broken", "--timeout=30s"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exceeded its progress deadline"), "{out:?}");
}
