//! Scoring strategies and preemption end to end: MostAllocated packs jobs onto few nodes where
//! LeastAllocated spreads them; a high-priority pod preempts a low-priority one.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use berth_scheduler::{SchedulerConfig, Scoring};
use common::{Cluster, DEADLINE, pod_body};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;

/// Memory sizes (Gi) of the jobs; 20 Gi in total, which fits exactly into two 10 Gi nodes.
const JOBS: [u32; 9] = [4, 3, 3, 2, 2, 2, 2, 1, 1];

async fn empty_nodes_after_jobs(scoring: Scoring) -> usize {
    let mut c = Cluster::new().await;
    for i in 0..5 {
        c.node(&format!("node-{i}"), "10", "10Gi", json!({}), json!({})).await;
    }
    c.start_scheduler(SchedulerConfig { scoring, ..SchedulerConfig::default() });
    let mut used: BTreeMap<String, u32> = BTreeMap::new();
    for (i, gi) in JOBS.iter().enumerate() {
        let name = format!("job-{i}");
        // cpu proportional to memory keeps BalancedAllocation neutral, so the strategy decides.
        c.pod(pod_body(&name, &gi.to_string(), &format!("{gi}Gi"), json!({}), json!({}))).await;
        *used.entry(c.wait_bound(&name).await).or_default() += gi;
    }
    assert!(used.values().all(|gi| *gi <= 10), "overcommitted: {used:?}");
    5 - used.len()
}

#[tokio::test]
async fn most_allocated_leaves_whole_nodes_empty() {
    assert_eq!(empty_nodes_after_jobs(Scoring::MostAllocated).await, 3);
}

#[tokio::test]
async fn least_allocated_spreads_jobs_over_all_nodes() {
    assert_eq!(empty_nodes_after_jobs(Scoring::LeastAllocated).await, 0);
}

#[tokio::test]
async fn high_priority_pod_preempts_lower_priority_pod() {
    let c = Cluster::with_scheduler().await;
    let pcs: Api<PriorityClass> = Api::all(c.client.clone());
    for (name, value) in [("low", 10), ("high", 1000)] {
        let pc: PriorityClass =
            serde_json::from_value(json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": name}, "value": value}))
            .expect("priorityclass");
        pcs.create(&PostParams::default(), &pc).await.expect("create priorityclass");
    }
    c.node("only", "2", "4Gi", json!({}), json!({})).await;
    c.pod(pod_body("low", "1500m", "1Gi", json!({}), json!({"priorityClassName": "low"}))).await;
    assert_eq!(c.wait_bound("low").await, "only");
    let low_uid = c.pods().get("low").await.expect("low").metadata.uid;

    c.pod(pod_body("high", "1500m", "1Gi", json!({}), json!({"priorityClassName": "high"}))).await;
    // While the victim terminates, a low-priority pod must not take the room freed for "high".
    let api = c.pods();
    let start = tokio::time::Instant::now();
    while api.get("low").await.expect("low").metadata.deletion_timestamp.is_none() {
        assert!(start.elapsed() < DEADLINE, "victim never marked for deletion");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.pod(pod_body("sneaky", "1500m", "1Gi", json!({}), json!({"priorityClassName": "low"}))).await;
    c.wait_unschedulable("sneaky").await;
    // Play kubelet: pods marked for graceful deletion are removed for good.
    let start = tokio::time::Instant::now();
    let node = loop {
        let list = api.list(&ListParams::default()).await.expect("list pods");
        for p in &list.items {
            if p.metadata.deletion_timestamp.is_some() {
                let name = p.metadata.name.as_deref().unwrap_or("");
                let _ = api.delete(name, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await;
            }
        }
        let high: Option<&Pod> = list.items.iter().find(|p| p.metadata.name.as_deref() == Some("high"));
        if let Some(n) = high.and_then(|p| p.spec.as_ref()).and_then(|s| s.node_name.clone()) {
            break n;
        }
        assert!(start.elapsed() < DEADLINE, "high-priority pod never scheduled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(node, "only");
    let sneaky = api.get("sneaky").await.expect("sneaky");
    assert_eq!(sneaky.spec.and_then(|s| s.node_name), None, "nominated room was taken by a lower-priority pod");
    let low_now = api.get_opt("low").await.expect("get low");
    assert!(low_now.is_none_or(|p| p.metadata.uid != low_uid), "victim still exists");
    let preempted = c.wait_event("low", "Preempted").await;
    assert!(preempted.starts_with("Preempted by pod ") && preempted.ends_with(" on node only"), "{preempted}");
    let high = api.get("high").await.expect("high");
    assert_eq!(high.status.and_then(|s| s.nominated_node_name).as_deref(), Some("only"));
}

#[tokio::test]
async fn pods_with_another_scheduler_name_are_left_alone() {
    let c = Cluster::with_scheduler().await;
    c.node("n", "4", "4Gi", json!({}), json!({})).await;
    c.pod(pod_body("other", "100m", "10Mi", json!({}), json!({"schedulerName": "my-scheduler"}))).await;
    c.pod(pod_body("mine", "100m", "10Mi", json!({}), json!({}))).await;
    c.wait_bound("mine").await;
    // "mine" was queued after "other"; by the time it is bound "other" has been seen and skipped.
    let other = c.pods().get("other").await.expect("other");
    assert_eq!(other.spec.and_then(|s| s.node_name), None);
}
