//! Disruption controller (PodDisruptionBudget status) and the pods/eviction subresource honouring
//! it, against a real in-process apiserver.

mod common;

use common::{Env, active_pods, mark_all_ready, template, wait_for};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use kube::api::{EvictParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

async fn replica_set(client: &Client, name: &str, replicas: i32) {
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": template(json!({"app": name}), "nginx"),
        },
    }))
    .expect("replicaset");
    Api::<ReplicaSet>::namespaced(client.clone(), "default").create(&PostParams::default(), &rs).await.expect("rs");
}

/// Waits for `n` pods of `app`, marks them all ready and returns their names.
async fn ready_pods(client: &Client, app: &str, n: usize) -> Vec<String> {
    let sel = format!("app={app}");
    wait_for(20, &format!("{n} pods of {app}"), || async {
        let p = active_pods(client, "default", &sel).await;
        (p.len() == n).then_some(())
    })
    .await;
    mark_all_ready(client, "default", &sel).await;
    active_pods(client, "default", &sel).await.iter().map(|p| p.name_any()).collect()
}

async fn pdb(client: &Client, name: &str, app: &str, budget: Value) {
    let mut spec = json!({"selector": {"matchLabels": {"app": app}}});
    if let (Some(s), Some(b)) = (spec.as_object_mut(), budget.as_object()) {
        s.extend(b.clone());
    }
    let p: PodDisruptionBudget =
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).expect("pdb");
    Api::<PodDisruptionBudget>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &p)
        .await
        .expect("create pdb");
}

/// Waits until the PDB's status is observed and has these (currentHealthy, desiredHealthy,
/// expectedPods, disruptionsAllowed).
async fn wait_status(client: &Client, name: &str, want: (i32, i32, i32, i32)) -> PodDisruptionBudgetStatus {
    let api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let found = wait_for_opt(20, || async {
        let p = api.get(name).await.ok()?;
        let s = p.status?;
        let got = (s.current_healthy, s.desired_healthy, s.expected_pods, s.disruptions_allowed);
        (got == want && s.observed_generation == p.metadata.generation).then_some(s)
    })
    .await;
    match found {
        Some(s) => s,
        None => {
            panic!("pdb {name}: wanted {want:?}, last status {:?}", api.get(name).await.ok().and_then(|p| p.status))
        }
    }
}

async fn wait_for_opt<T, F, Fut>(secs: u64, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    None
}

fn allowed_condition(s: &PodDisruptionBudgetStatus) -> (String, String) {
    let c = s.conditions.as_ref().and_then(|c| c.iter().find(|c| c.type_ == "DisruptionAllowed")).expect("condition");
    (c.status.clone(), c.reason.clone())
}

#[tokio::test]
async fn status_math_for_min_available_and_max_unavailable() {
    let env = Env::start(&["replicaset", "deployment", "disruption"]).await;
    let c = &env.client;
    replica_set(c, "web", 3).await;
    ready_pods(c, "web", 3).await;

    pdb(c, "min-int", "web", json!({"minAvailable": 2})).await;
    let s = wait_status(c, "min-int", (3, 2, 3, 1)).await;
    assert_eq!(allowed_condition(&s), ("True".into(), "SufficientPods".into()));

    pdb(c, "min-all", "web", json!({"minAvailable": "100%"})).await;
    let s = wait_status(c, "min-all", (3, 3, 3, 0)).await;
    assert_eq!(allowed_condition(&s), ("False".into(), "InsufficientPods".into()));

    // maxUnavailable 50% of the scale 3 rounds up to 2: desiredHealthy 1.
    pdb(c, "max-pct", "web", json!({"maxUnavailable": "50%"})).await;
    wait_status(c, "max-pct", (3, 1, 3, 2)).await;

    // A Deployment's pods count the Deployment's scale.
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "api"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "api"}},
            "template": template(json!({"app": "api"}), "nginx")},
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(c.clone(), "default").create(&PostParams::default(), &d).await.expect("deploy");
    let names = ready_pods(c, "api", 4).await;
    pdb(c, "max-int", "api", json!({"maxUnavailable": 1})).await;
    wait_status(c, "max-int", (4, 3, 4, 1)).await;
    // One pod turning unready lowers currentHealthy and so the allowance.
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let unready = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
    pods.patch_status(&names[0], &Default::default(), &kube::api::Patch::Merge(&unready)).await.expect("unready");
    let s = wait_status(c, "max-int", (3, 3, 4, 0)).await;
    assert_eq!(allowed_condition(&s), ("False".into(), "InsufficientPods".into()));

    // A pod without a controller under a percentage budget is skipped; none matched: expected 0.
    pdb(c, "nothing", "none", json!({"minAvailable": 1})).await;
    wait_status(c, "nothing", (0, 1, 0, 0)).await;
}

#[tokio::test]
async fn eviction_honours_the_disruption_budget() {
    let env = Env::start(&["replicaset", "disruption"]).await;
    let c = &env.client;
    replica_set(c, "db", 3).await;
    let names = ready_pods(c, "db", 3).await;
    pdb(c, "db", "db", json!({"minAvailable": 2})).await;
    wait_status(c, "db", (3, 2, 3, 1)).await;

    // kube's default client retries 429 answers for minutes; kubectl drain handles them itself.
    let mut cfg = env.config.clone();
    cfg.default_retry = false;
    let pods: Api<Pod> = Api::namespaced(Client::try_from(cfg).expect("client"), "default");
    pods.evict(&names[0], &EvictParams::default()).await.expect("first eviction allowed");
    let budget = Api::<PodDisruptionBudget>::namespaced(c.clone(), "default").get("db").await.expect("pdb");
    let s = budget.status.expect("status");
    assert_eq!(s.disruptions_allowed, 0);
    // (disruptedPods holds the pod only until the controller sees it terminating, so it is not checked here)
    let gone = pods.get(&names[0]).await.map(|p| p.metadata.deletion_timestamp.is_some()).unwrap_or(true);
    assert!(gone, "evicted pod is deleted");

    match pods.evict(&names[1], &EvictParams::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 429);
            assert_eq!(status.reason, "TooManyRequests");
            assert_eq!(status.message, "Cannot evict pod as it would violate the pod's disruption budget.");
            let causes = status.details.map(|d| d.causes).unwrap_or_default();
            assert!(
                causes.iter().any(|c| c.reason == "DisruptionBudget"
                    && c.message == "The disruption budget db needs 2 healthy pods and has 2 currently"),
                "causes {causes:?}"
            );
        }
        other => panic!("second eviction should be refused, got {other:?}"),
    }
    assert!(pods.get(&names[1]).await.expect("pod").metadata.deletion_timestamp.is_none(), "refused pod stays");

    // The ReplicaSet replaces the evicted pod; once it is ready the budget allows one again.
    ready_pods(c, "db", 3).await;
    wait_status(c, "db", (3, 2, 3, 1)).await;
    pods.evict(&names[1], &EvictParams::default()).await.expect("allowed again");
}

#[tokio::test]
async fn eviction_records_the_disruption_in_the_budget() {
    // No disruption controller: the test writes the budget's status itself, so nothing races the
    // eviction's own status write.
    let env = Env::start(&["replicaset"]).await;
    let c = &env.client;
    replica_set(c, "cache", 2).await;
    let names = ready_pods(c, "cache", 2).await;
    pdb(c, "cache", "cache", json!({"maxUnavailable": 1})).await;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(c.clone(), "default");
    let generation = pdbs.get("cache").await.expect("pdb").metadata.generation;
    let mut cfg = env.config.clone();
    cfg.default_retry = false;
    let pods: Api<Pod> = Api::namespaced(Client::try_from(cfg).expect("client"), "default");

    // A budget the controller has not observed yet refuses evictions.
    match pods.evict(&names[0], &EvictParams::default()).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 429);
            let causes = s.details.map(|d| d.causes).unwrap_or_default();
            assert!(causes.iter().any(|c| c.reason == "DisruptionBudget"
                && c.message == "The disruption budget cache is still being processed by the server."));
        }
        other => panic!("expected 429, got {other:?}"),
    }
    let status = json!({"status": {"currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2,
        "disruptionsAllowed": 1, "observedGeneration": generation}});
    pdbs.patch_status("cache", &Default::default(), &kube::api::Patch::Merge(&status)).await.expect("status");
    pods.evict(&names[0], &EvictParams::default()).await.expect("eviction allowed");
    let s = pdbs.get("cache").await.expect("pdb").status.expect("status");
    assert_eq!(s.disruptions_allowed, 0);
    assert!(s.disrupted_pods.as_ref().is_some_and(|m| m.contains_key(&names[0])), "disruptedPods records the pod");
    assert_eq!(allowed_condition(&s), ("False".into(), "InsufficientPods".into()));
    assert!(pods.evict(&names[1], &EvictParams::default()).await.is_err(), "budget used up");
}
