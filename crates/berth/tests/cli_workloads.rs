//! End-to-end tests of the workload verbs (scale, rollout, set image, cordon/uncordon, drain, taint,
//! label, annotate) against a real `berth server` with its controllers; the tests play kubelet
//! (marking pods ready, removing pods marked for deletion) through a kube client, and assert on
//! the resulting objects as well as on kubectl's output.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::kubectl::Kube;
use common::{TestServer, berth_bin, fails, ok, run, wait_until};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

/// How long controllers get to react.
const REACT: Duration = Duration::from_secs(30);

impl Kube {
    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), "default")
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    fn create_deployment(&self, name: &str, replicas: i32, image: &str, extra_spec: Value) {
        let mut d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": image}]}}}});
        if let (Some(spec), Some(extra)) = (d["spec"].as_object_mut(), extra_spec.as_object()) {
            spec.extend(extra.clone());
        }
        let d: Deployment = serde_json::from_value(d).expect("deployment");
        self.rt.block_on(self.deployments().create(&PostParams::default(), &d)).expect("create deployment");
    }

    fn deployment(&self, name: &str) -> Value {
        let d = self.rt.block_on(self.deployments().get(name)).expect("get deployment");
        serde_json::to_value(d).expect("json")
    }

    fn replica_sets(&self, app: &str) -> Vec<ReplicaSet> {
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), "default");
        self.rt.block_on(api.list(&ListParams::default().labels(&format!("app={app}")))).expect("list rs").items
    }

    fn create_node(&self, name: &str) {
        let node: Node =
            serde_json::from_value(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}))
                .expect("node");
        self.rt.block_on(self.nodes().create(&PostParams::default(), &node)).expect("create node");
    }

    fn node(&self, name: &str) -> Value {
        serde_json::to_value(self.rt.block_on(self.nodes().get(name)).expect("get node")).expect("json")
    }

    fn create_bound_pod(&self, name: &str, node: &str) {
        let pod: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]}}))
        .expect("pod");
        self.rt.block_on(self.pods().create(&PostParams::default(), &pod)).expect("create pod");
    }

    fn pod_names(&self) -> Vec<String> {
        let list = self.rt.block_on(self.pods().list(&ListParams::default())).expect("list pods");
        list.items.iter().map(|p| p.name_any()).collect()
    }

    /// Marks every not-ready pod of `app` Running and Ready; returns how many pods `app` has.
    fn mark_ready(&self, app: &str) -> usize {
        self.rt.block_on(async {
            let pods = self.pods();
            let list = pods.list(&ListParams::default().labels(&format!("app={app}"))).await.expect("list pods");
            let now = jiff::Timestamp::now().to_string();
            let patch = json!({"status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}]}});
            for p in &list.items {
                if p.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let ready = p
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                if !ready {
                    // A pod that went away meanwhile is fine.
                    let _ = pods.patch_status(&p.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await;
                }
            }
            list.items.len()
        })
    }

    /// Plays kubelet for pods being deleted: removes them at once; returns how many.
    fn finish_deletions(&self) -> usize {
        self.rt.block_on(async {
            let pods = self.pods();
            let Ok(list) = pods.list(&ListParams::default()).await else { return 0 };
            let mut n = 0;
            for p in list.items.iter().filter(|p| p.metadata.deletion_timestamp.is_some()) {
                let _ = pods
                    .delete(&p.name_any(), &DeleteParams { grace_period_seconds: Some(0), ..Default::default() })
                    .await;
                n += 1;
            }
            n
        })
    }
}

/// A spawned `berth` command, killed (by PID) if the test ends before it does.
struct Spawned(Child);

impl Spawned {
    fn start(server: &TestServer, args: &[&str]) -> Spawned {
        Self::start_with_stderr(server, args, Stdio::piped())
    }

    /// Same, with stderr going where the test can read it while the command runs.
    fn start_with_stderr(server: &TestServer, args: &[&str], stderr: Stdio) -> Spawned {
        let child = Command::new(berth_bin())
            .env_remove("KUBECONFIG")
            .arg("--kubeconfig")
            .arg(&server.kubeconfig)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn berth");
        Spawned(child)
    }

    /// Calls `tick` until the command exits (or `timeout`, when it is killed and counts as a
    /// failure); returns (success, stdout, stderr).
    fn finish(mut self, timeout: Duration, mut tick: impl FnMut()) -> (bool, String, String) {
        let deadline = Instant::now() + timeout;
        loop {
            let timed_out = Instant::now() >= deadline;
            if timed_out {
                let _ = self.0.kill();
            }
            let status = if timed_out { self.0.wait().ok() } else { self.0.try_wait().expect("try_wait") };
            if let Some(status) = status {
                let mut stdout = String::new();
                let mut stderr = String::new();
                use std::io::Read;
                if let Some(mut o) = self.0.stdout.take() {
                    let _ = o.read_to_string(&mut stdout);
                }
                if let Some(mut e) = self.0.stderr.take() {
                    let _ = e.read_to_string(&mut stderr);
                }
                if timed_out {
                    stderr.push_str(&format!("\n(killed: berth did not finish within {timeout:?})\n"));
                }
                return (status.success() && !timed_out, stdout, stderr);
            }
            tick();
            std::thread::sleep(Duration::from_millis(200)); // poll interval, bounded by the deadline
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn scale_patches_the_scale_subresource_and_the_controller_follows() {
    let server = TestServer::start();
    let kube = Kube::new(&server.kubeconfig);
    kube.create_deployment("web", 1, "nginx:1", json!({}));
    assert_eq!(ok(&server, &["scale", "deployment", "web", "--replicas=3"]), "deployment.apps/web scaled\n");
    assert_eq!(kube.deployment("web")["spec"]["replicas"], 3);
    assert!(
        wait_until(REACT, || kube.deployment("web")["status"]["replicas"] == 3),
        "status.replicas never reached 3: {}",
        kube.deployment("web")
    );
    let err = fails(&server, &["scale", "deploy/web", "--replicas=5", "--current-replicas=2"]);
    assert_eq!(err, "error: Expected replicas to be 2, was 3\n");
    assert_eq!(kube.deployment("web")["spec"]["replicas"], 3, "a failed precondition changes nothing");
    assert_eq!(
        ok(&server, &["scale", "deploy/web", "--replicas=5", "--current-replicas=3"]),
        "deployment.apps/web scaled\n"
    );
    assert_eq!(kube.deployment("web")["spec"]["replicas"], 5);
}

#[test]
fn set_image_history_and_undo() {
    let server = TestServer::start();
    let kube = Kube::new(&server.kubeconfig);
    kube.create_deployment("web", 1, "nginx:1", json!({}));
    assert!(wait_until(REACT, || kube.replica_sets("web").len() == 1), "first ReplicaSet");

    let err = fails(&server, &["set", "image", "deployment/web", "nope=nginx:2"]);
    assert_eq!(err, "error: unable to find container named \"nope\"\n");
    assert_eq!(ok(&server, &["set", "image", "deployment/web", "c=nginx:2"]), "deployment.apps/web image updated\n");
    assert_eq!(kube.deployment("web")["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:2");
    assert!(wait_until(REACT, || kube.replica_sets("web").len() == 2), "set image creates a new ReplicaSet");
    assert_eq!(ok(&server, &["set", "image", "deployment/web", "c=nginx:2"]), "", "no change, no output");

    // The controller copies the Deployment's change-cause onto the current ReplicaSet.
    assert_eq!(
        ok(&server, &["annotate", "deployment", "web", "kubernetes.io/change-cause=image to 2"]),
        "deployment.apps/web annotated\n"
    );
    let want = "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n2         image to 2\n\n";
    assert!(
        wait_until(REACT, || run(&server, &["rollout", "history", "deployment/web"]).1 == want),
        "history: {:?}",
        run(&server, &["rollout", "history", "deployment/web"])
    );
    let rev1 = ok(&server, &["rollout", "history", "deployment/web", "--revision=1"]);
    assert!(rev1.starts_with("deployment.apps/web with revision #1\nPod Template:\n"), "{rev1}");
    assert!(rev1.contains("Image:\tnginx:1"), "{rev1}");
    assert_eq!(
        fails(&server, &["rollout", "history", "deployment/web", "--revision=7"]),
        "error: unable to find the specified revision\n"
    );

    assert_eq!(ok(&server, &["rollout", "undo", "deployment/web"]), "deployment.apps/web rolled back\n");
    let d = kube.deployment("web");
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1", "undo restores the template");
    assert_eq!(d["spec"]["template"]["metadata"]["labels"], json!({"app": "web"}), "without pod-template-hash");
    // Revision 1 becomes 3.
    assert!(
        wait_until(REACT, || {
            let out = run(&server, &["rollout", "history", "deployment/web"]).1;
            out.lines()
                .skip(2)
                .filter(|l| !l.is_empty())
                .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
                == ["2", "3"]
        }),
        "history after undo: {:?}",
        run(&server, &["rollout", "history", "deployment/web"])
    );
    assert_eq!(
        ok(&server, &["rollout", "undo", "deployment/web", "--to-revision=3"]),
        "deployment.apps/web skipped rollback (current template already matches revision 3)\n"
    );
    assert_eq!(
        fails(&server, &["rollout", "undo", "deployment/web", "--to-revision=9"]),
        "error: unable to find specified revision 9 in history\n"
    );
}

#[test]
fn rollout_status_waits_until_pods_are_ready() {
    let server = TestServer::start();
    let kube = Kube::new(&server.kubeconfig);
    kube.create_deployment("web", 2, "nginx:1", json!({}));
    let once = ok(&server, &["rollout", "status", "deployment/web", "--watch=false"]);
    assert!(once.starts_with("Waiting for "), "{once}");

    let status = Spawned::start(&server, &["rollout", "status", "deployment/web", "--timeout=90s"]);
    let (success, stdout, stderr) = status.finish(Duration::from_secs(90), || {
        kube.mark_ready("web");
    });
    assert!(success, "rollout status failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.ends_with("deployment \"web\" successfully rolled out\n"), "{stdout}");
    let d = kube.deployment("web");
    assert_eq!(d["status"]["availableReplicas"], 2, "{d}");
}

#[test]
fn rollout_status_fails_when_the_progress_deadline_passes() {
    let server = TestServer::start();
    let kube = Kube::new(&server.kubeconfig);
    kube.create_deployment("slow", 1, "never-ready", json!({"progressDeadlineSeconds": 2}));
    let (success, stdout, stderr) = run(&server, &["rollout", "status", "deployment/slow", "--timeout=60s"]);
    assert!(!success, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(stderr, "error: deployment \"slow\" exceeded its progress deadline\n", "stdout:\n{stdout}");
    let d = kube.deployment("slow");
    let reason = d["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"))
        .map(|c| c["reason"].clone());
    assert_eq!(reason, Some(json!("ProgressDeadlineExceeded")));

    let missing = fails(&server, &["rollout", "status", "deployment/missing", "--timeout=1s"]);
    assert_eq!(missing, "Error from server (NotFound): deployments.apps \"missing\" not found\n");
}

#[test]
fn pause_resume_and_restart() {
    let server = TestServer::start();
    let kube = Kube::new(&server.kubeconfig);
    kube.create_deployment("web", 1, "nginx:1", json!({}));
    assert_eq!(ok(&server, &["rollout", "pause", "deployment/web"]), "deployment.apps/web paused\n");
    assert_eq!(kube.deployment("web")["spec"]["paused"], true);
    assert_eq!(
        fails(&server, &["rollout", "pause", "deployment/web"]),
        "error: deployments.apps \"web\" is already paused\n"
    );
    assert_eq!(
        fails(&server, &["rollout", "restart", "deployment/web"]),
        "error: deployments.apps \"web\" can't restart paused deployment (run rollout resume first)\n"
    );
    assert!(fails(&server, &["rollout", "undo", "deployment/web"]).contains("cannot rollback a paused deployment"));
    assert_eq!(ok(&server, &["rollout", "resume", "deployment/web"]), "deployment.apps/web resumed\n");
    assert_ne!(kube.deployment("web")["spec"]["paused"], true);
    assert_eq!(ok(&server, &["rollout", "restart", "deployment/web"]), "deployment.apps/web restarted\n");
    let d = kube.deployment("web");
    let at =
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].as_str().unwrap_or("");
    assert!(at.parse::<jiff::Timestamp>().is_ok(), "restartedAt {at:?} is RFC 3339");
    assert!(wait_until(REACT, || kube.replica_sets("web").len() == 2), "restart rolls out a new ReplicaSet");
}

#[test]
fn cordon_uncordon_and_taints() {
    let server = TestServer::start();
    let kube = Kube::new(&server.kubeconfig);
    kube.create_node("n1");
    assert_eq!(ok(&server, &["cordon", "n1"]), "node/n1 cordoned\n");
    assert_eq!(kube.node("n1")["spec"]["unschedulable"], true);
    assert_eq!(ok(&server, &["cordon", "n1"]), "node/n1 already cordoned\n");
    assert_eq!(ok(&server, &["uncordon", "n1"]), "node/n1 uncordoned\n");
    assert_ne!(kube.node("n1")["spec"]["unschedulable"], true);
    assert_eq!(ok(&server, &["uncordon", "n1"]), "node/n1 already uncordoned\n");

    let mine = |node: &Value| -> Vec<Value> {
        node["spec"]["taints"]
            .as_array()
            .map(|ts| ts.iter().filter(|t| t["key"] == "dedicated").cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(ok(&server, &["taint", "nodes", "n1", "dedicated=gpu:NoSchedule"]), "node/n1 tainted\n");
    assert_eq!(mine(&kube.node("n1")), vec![json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"})]);
    assert_eq!(
        fails(&server, &["taint", "nodes", "n1", "dedicated=cpu:NoSchedule"]),
        "error: node n1 already has dedicated taint(s) with same effect(s) and --overwrite is false\n"
    );
    assert_eq!(ok(&server, &["taint", "node/n1", "dedicated=cpu:NoSchedule", "--overwrite"]), "node/n1 modified\n");
    assert_eq!(mine(&kube.node("n1"))[0]["value"], "cpu");
    assert_eq!(ok(&server, &["taint", "nodes", "n1", "dedicated:PreferNoSchedule"]), "node/n1 tainted\n");
    assert_eq!(mine(&kube.node("n1")).len(), 2);
    assert_eq!(ok(&server, &["taint", "nodes", "n1", "dedicated:NoSchedule-"]), "node/n1 untainted\n");
    assert_eq!(mine(&kube.node("n1")), vec![json!({"key": "dedicated", "effect": "PreferNoSchedule"})]);
    assert_eq!(ok(&server, &["taint", "nodes", "n1", "dedicated-"]), "node/n1 untainted\n");
    assert!(mine(&kube.node("n1")).is_empty());
    assert_eq!(fails(&server, &["taint", "nodes", "n1", "dedicated-"]), "error: taint \"dedicated\" not found\n");
}

#[test]
fn label_and_annotate_follow_the_overwrite_rules() {
    let server = TestServer::start();
    let kube = Kube::new(&server.kubeconfig);
    kube.create_deployment("web", 0, "nginx:1", json!({}));
    let labels = || kube.deployment("web")["metadata"]["labels"].clone();
    assert_eq!(ok(&server, &["label", "deployment", "web", "tier=fe"]), "deployment.apps/web labeled\n");
    assert_eq!(labels()["tier"], "fe");
    assert_eq!(
        fails(&server, &["label", "deploy/web", "tier=be"]),
        "error: 'tier' already has a value (fe), and --overwrite is false\n"
    );
    assert_eq!(labels()["tier"], "fe");
    assert_eq!(ok(&server, &["label", "deploy/web", "tier=be", "--overwrite"]), "deployment.apps/web labeled\n");
    assert_eq!(labels()["tier"], "be");
    assert_eq!(ok(&server, &["label", "deploy/web", "--list"]), "tier=be\n");
    assert_eq!(ok(&server, &["label", "deploy/web", "tier-"]), "deployment.apps/web unlabeled\n");
    assert!(labels().get("tier").is_none(), "{}", labels());
    assert_eq!(
        ok(&server, &["label", "deploy/web", "tier-"]),
        "label \"tier\" not found.\ndeployment.apps/web not labeled\n"
    );

    let annotations = || kube.deployment("web")["metadata"]["annotations"].clone();
    assert_eq!(ok(&server, &["annotate", "deployment", "web", "owner=me"]), "deployment.apps/web annotated\n");
    assert_eq!(annotations()["owner"], "me");
    assert_eq!(ok(&server, &["annotate", "deployment", "web", "owner=me"]), "deployment.apps/web annotated\n");
    assert_eq!(
        fails(&server, &["annotate", "deployment", "web", "owner=you"]),
        "error: --overwrite is false but found the following declared annotation(s): 'owner' already has a value (me)\n"
    );
    assert_eq!(annotations()["owner"], "me");
    ok(&server, &["annotate", "deployment", "web", "owner=you", "--overwrite"]);
    assert_eq!(annotations()["owner"], "you");
    ok(&server, &["annotate", "deployment", "web", "owner-"]);
    assert!(annotations().get("owner").is_none(), "{}", annotations());

    // -l and --all select several objects.
    kube.create_deployment("api", 0, "nginx:1", json!({}));
    assert_eq!(
        ok(&server, &["label", "deployments", "--all", "team=x"]),
        "deployment.apps/api labeled\ndeployment.apps/web labeled\n"
    );
    assert_eq!(kube.deployment("api")["metadata"]["labels"]["team"], "x");
    assert_eq!(ok(&server, &["annotate", "deployments", "-l", "team=x", "note=y"]).lines().count(), 2);
    assert_eq!(kube.deployment("api")["metadata"]["annotations"]["note"], "y");
}

#[test]
fn drain_cordons_and_evicts_the_pods_bound_to_the_node() {
    let server = TestServer::start();
    let kube = Kube::new(&server.kubeconfig);
    kube.create_node("n1");
    kube.create_node("n2");
    kube.create_bound_pod("a", "n1");
    kube.create_bound_pod("b", "n1");
    kube.create_bound_pod("elsewhere", "n2");

    let (success, stdout, stderr) = run(&server, &["drain", "n1"]);
    assert!(!success);
    assert_eq!(stdout, "node/n1 cordoned\n");
    assert_eq!(
        stderr,
        "error: unable to drain node \"n1\" due to error: cannot delete Pods that declare no controller (use --force to override): default/a, default/b, continuing command...\n\
         There are pending nodes to be drained:\n n1\n\
         cannot delete Pods that declare no controller (use --force to override): default/a, default/b\n"
    );
    assert_eq!(kube.node("n1")["spec"]["unschedulable"], true);
    assert_eq!(kube.pod_names().len(), 3, "nothing evicted without --force");

    let drain = Spawned::start(&server, &["drain", "n1", "--force", "--grace-period=30", "--timeout=60s"]);
    let (success, stdout, stderr) = drain.finish(Duration::from_secs(90), || {
        kube.finish_deletions();
    });
    assert!(success, "drain failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(stderr, "Warning: deleting Pods that declare no controller: default/a, default/b\n");
    let mut lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"node/n1 already cordoned"));
    assert_eq!(lines.last(), Some(&"node/n1 drained"));
    lines.sort();
    for want in ["evicting pod default/a", "evicting pod default/b", "pod/a evicted", "pod/b evicted"] {
        assert!(lines.contains(&want), "{want:?} in {stdout}");
    }
    assert_eq!(kube.pod_names(), vec!["elsewhere".to_string()], "only the other node's pod is left");
}

#[test]
fn drain_retries_evictions_a_disruption_budget_refuses() {
    let server = TestServer::start();
    let kube = Kube::new(&server.kubeconfig);
    kube.create_node("n1");
    kube.create_bound_pod("a", "n1");
    kube.create_bound_pod("b", "n1");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(kube.client.clone(), "default");
    let pdb: PodDisruptionBudget =
        serde_json::from_value(json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "guard"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "a"}}}}))
        .expect("pdb");
    kube.rt.block_on(pdbs.create(&PostParams::default(), &pdb)).expect("create pdb");
    // Pending pods may always be evicted: `a` plays a Running, Ready pod.
    kube.mark_ready("a");

    let err_path = server.data_dir.path().join("drain.err");
    let err_file = std::fs::File::create(&err_path).expect("stderr file");
    let drain = Spawned::start_with_stderr(&server, &["drain", "n1", "--force", "--timeout=30s"], err_file.into());
    let mut budget_removed = false;
    let (success, stdout, _) = drain.finish(Duration::from_secs(90), || {
        kube.finish_deletions();
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        if !budget_removed && stderr.contains("(will retry after 5s)") {
            // Only `b` went while the budget stood.
            assert_eq!(kube.pod_names(), vec!["a".to_string()], "the budget protects a");
            kube.rt.block_on(pdbs.delete("guard", &DeleteParams::default())).expect("delete pdb");
            budget_removed = true;
        }
    });
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(success, "drain failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(budget_removed, "the budget never refused an eviction\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let retry = stderr.lines().find(|l| l.starts_with("error when evicting")).unwrap_or_default();
    assert!(retry.starts_with("error when evicting pods/\"a\" -n \"default\" (will retry after 5s): "), "{stderr}");
    assert!(stdout.contains("pod/a evicted\n") && stdout.ends_with("node/n1 drained\n"), "{stdout}");
    assert!(kube.pod_names().is_empty());
}
