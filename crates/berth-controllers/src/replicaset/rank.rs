//! Which pods a ReplicaSet deletes first when scaling down (k8s `controller_utils.go`
//! `ActivePodsWithRanks.Less`, with LogarithmicScaleDown and PodDeletionCost on as upstream).

use std::cmp::Ordering;
use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;

use crate::util::{is_pod_ready, pod_ready_since};

/// Annotation lowering (or raising) a pod's deletion cost.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

fn phase_ordinal(pod: &Pod) -> i32 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    }
}

fn node(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("")
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata.annotations.as_ref().and_then(|a| a.get(POD_DELETION_COST)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or("")
}

/// Upstream `logarithmicRankDiff`: compares floor(log2(age in ns)) of two timestamps.
fn log_rank_diff(t1: i64, t2: i64, now: i64) -> i64 {
    let rank = |t: i64| {
        let d = (now - t).saturating_mul(1_000_000_000);
        if d > 0 { (d as f64).log2() as i64 } else { -1 }
    };
    rank(t1) - rank(t2)
}

/// Upstream `afterOrZero`: an absent time sorts first, then later (newer) times.
fn after_or_zero(t1: Option<i64>, t2: Option<i64>) -> bool {
    match (t1, t2) {
        (None, _) | (_, None) => t1.is_none(),
        (Some(a), Some(b)) => a > b,
    }
}

/// Compares two timestamps (seconds) the LogarithmicScaleDown way: `Some(true)` if `a` goes first.
fn time_less(t1: Option<i64>, t2: Option<i64>, now: i64, a: &Pod, b: &Pod) -> Option<bool> {
    if t1 == t2 {
        return None;
    }
    match (t1, t2) {
        (Some(x), Some(y)) => {
            let diff = log_rank_diff(x, y, now);
            Some(if diff == 0 { uid(a) < uid(b) } else { diff < 0 })
        }
        _ => Some(after_or_zero(t1, t2)),
    }
}

/// Whether pod `a` (with `rank_a` related pods on its node) should be deleted before `b`.
pub fn less(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize, now: i64) -> bool {
    let (na, nb) = (node(a), node(b));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return na.is_empty();
    }
    if phase_ordinal(a) != phase_ordinal(b) {
        return phase_ordinal(a) < phase_ordinal(b);
    }
    if is_pod_ready(a) != is_pod_ready(b) {
        return !is_pod_ready(a);
    }
    if deletion_cost(a) != deletion_cost(b) {
        return deletion_cost(a) < deletion_cost(b);
    }
    if rank_a != rank_b {
        return rank_a > rank_b;
    }
    if is_pod_ready(a) && is_pod_ready(b) {
        let ta = pod_ready_since(a).flatten().map(|t| t.as_second());
        let tb = pod_ready_since(b).flatten().map(|t| t.as_second());
        if let Some(r) = time_less(ta, tb, now, a, b) {
            return r;
        }
    }
    if max_restarts(a) != max_restarts(b) {
        return max_restarts(a) > max_restarts(b);
    }
    let ca = a.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second());
    let cb = b.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second());
    time_less(ca, cb, now, a, b).unwrap_or(false)
}

/// The `count` pods to delete first out of `pods`; `related` are the pods counted for "doubled up"
/// ranks (pods of the same owner family on the same node).
pub fn pods_to_delete<'a>(pods: &[&'a Pod], related: &[&Pod], count: usize, now: i64) -> Vec<&'a Pod> {
    if count >= pods.len() {
        return pods.to_vec();
    }
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for p in related {
        if !node(p).is_empty() {
            *on_node.entry(node(p)).or_default() += 1;
        }
    }
    let mut ranked: Vec<(&Pod, usize)> = pods
        .iter()
        .map(|p| (*p, if node(p).is_empty() { 0 } else { on_node.get(node(p)).copied().unwrap_or(0) }))
        .collect();
    ranked.sort_by(|(a, ra), (b, rb)| {
        if less(a, *ra, b, *rb, now) {
            Ordering::Less
        } else if less(b, *rb, a, *ra, now) {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    });
    ranked.into_iter().take(count).map(|(p, _)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const NOW: i64 = 1_700_000_000;

    fn pod(name: &str, node: &str, phase: &str, ready: Option<i64>, created: i64) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.uid = Some(name.into());
        p.metadata.creation_timestamp = Some(Time(jiff::Timestamp::from_second(created).unwrap_or_default()));
        p.spec = Some(PodSpec { node_name: (!node.is_empty()).then(|| node.to_string()), ..Default::default() });
        let conditions = ready.map(|t| {
            vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(jiff::Timestamp::from_second(t).unwrap_or_default())),
                ..Default::default()
            }]
        });
        p.status = Some(PodStatus { phase: Some(phase.into()), conditions, ..Default::default() });
        p
    }

    fn first(pods: &[Pod]) -> String {
        let refs: Vec<&Pod> = pods.iter().collect();
        pods_to_delete(&refs, &refs, 1, NOW)[0].metadata.name.clone().unwrap_or_default()
    }

    #[test]
    fn delete_ranking_table() {
        let cases: Vec<(&str, Vec<Pod>, &str)> = vec![
            (
                "unscheduled before scheduled",
                vec![pod("a", "n1", "Pending", None, NOW - 10), pod("b", "", "Pending", None, NOW - 100)],
                "b",
            ),
            (
                "pending before running",
                vec![pod("a", "n1", "Running", None, NOW - 10), pod("b", "n2", "Pending", None, NOW - 100)],
                "b",
            ),
            (
                "unknown between pending and running",
                vec![pod("a", "n1", "Running", None, NOW), pod("b", "n2", "Unknown", None, NOW)],
                "b",
            ),
            (
                "not ready before ready",
                vec![pod("a", "n1", "Running", Some(NOW - 5), NOW - 10), pod("b", "n2", "Running", None, NOW - 1000)],
                "b",
            ),
            (
                "doubled up before alone",
                vec![
                    pod("a", "n1", "Running", Some(NOW - 500), NOW - 1000),
                    pod("b", "n2", "Running", Some(NOW - 500), NOW - 1000),
                    pod("c", "n2", "Running", Some(NOW - 500), NOW - 1000),
                ],
                "b",
            ),
            (
                "ready for less time first",
                vec![
                    pod("a", "n1", "Running", Some(NOW - 5000), NOW - 9000),
                    pod("b", "n2", "Running", Some(NOW - 2), NOW - 9000),
                ],
                "b",
            ),
            (
                "newer before older",
                vec![pod("a", "n1", "Pending", None, NOW - 100_000), pod("b", "n2", "Pending", None, NOW - 10)],
                "b",
            ),
        ];
        for (name, pods, want) in cases {
            assert_eq!(first(&pods), want, "case {name}");
        }
    }

    #[test]
    fn deletion_cost_wins_over_age() {
        let mut a = pod("a", "n1", "Running", Some(NOW - 5), NOW - 10);
        let b = pod("b", "n2", "Running", Some(NOW - 5000), NOW - 9000);
        a.metadata.annotations = Some([(POD_DELETION_COST.to_string(), "100".to_string())].into());
        assert_eq!(first(&[a, b]), "b");
    }
}
