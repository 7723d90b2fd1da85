//! Cases after upstream `replica_calculator_test.go` (requests 1 core per pod unless stated).

use super::*;

fn now() -> Timestamp {
    Timestamp::from_second(1_000_000).expect("timestamp")
}

fn ago(secs: i64) -> Timestamp {
    now() - jiff::SignedDuration::from_secs(secs)
}

/// A Running, Ready pod started long ago (outside every initialisation period).
fn pod(name: &str) -> PodInfo {
    PodInfo {
        name: name.into(),
        phase: "Running".into(),
        deleting: false,
        ready: Some((true, ago(3600))),
        start_time: Some(ago(3600)),
        request_milli: Some(1000),
    }
}

fn pods(n: usize) -> Vec<PodInfo> {
    (0..n).map(|i| pod(&format!("p{i}"))).collect()
}

/// Metrics for p0.. with the given millicore levels, sampled now over a 30 s window.
fn levels(values: &[i64]) -> BTreeMap<String, PodMetric> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            (format!("p{i}"), PodMetric { value_milli: *v, timestamp: now(), window: Duration::from_secs(30) })
        })
        .collect()
}

fn calc() -> ReplicaCalculator {
    ReplicaCalculator::default()
}

#[test]
fn scale_up_is_ceil_of_ready_pods_times_usage_ratio() {
    let r = calc().resource_replicas(3, 30, "cpu", &pods(3), &levels(&[300, 500, 700]), now()).expect("ok");
    assert_eq!(r, Recommendation { replicas: 5, utilization: Some(50), average_milli: 500 });
}

#[test]
fn scale_down_rounds_up() {
    let r = calc().resource_replicas(5, 50, "cpu", &pods(5), &levels(&[100, 300, 500, 250, 250]), now()).expect("ok");
    assert_eq!(r.replicas, 3);
    assert_eq!(r.utilization, Some(28));
}

#[test]
fn a_change_within_the_tolerance_keeps_the_current_count() {
    // 105% of target: ratio 1.05 is within 0.1.
    let r = calc().resource_replicas(4, 50, "cpu", &pods(4), &levels(&[525, 525, 525, 525]), now()).expect("ok");
    assert_eq!(r.replicas, 4);
    // 89% of target is outside the tolerance.
    let r = calc().resource_replicas(10, 100, "cpu", &pods(10), &levels(&[890; 10]), now()).expect("ok");
    assert_eq!(r.replicas, 9);
}

#[test]
fn unready_cpu_pods_count_as_zero_on_a_scale_up() {
    let mut ps = pods(3);
    ps[0].ready = Some((false, ago(10)));
    ps[0].start_time = Some(ago(20));
    let r = calc().resource_replicas(3, 30, "cpu", &ps, &levels(&[300, 500, 700]), now()).expect("ok");
    // Ready pods: 1200m of 2000m = 60% (ratio 2); with the unready pod at 0: 1200/3000 = 40%,
    // ratio 1.33, ceil(4.0) = 4 instead of 6.
    assert_eq!(r.replicas, 4);
    assert_eq!(r.utilization, Some(60));
}

#[test]
fn unready_pods_are_ignored_on_a_scale_down() {
    let mut ps = pods(3);
    ps[2].ready = Some((false, ago(10)));
    ps[2].start_time = Some(ago(20));
    // The unready pod's 900m is ignored: 200/2000 = 10% of a 50% target: ratio 0.2 over 2 ready pods.
    let r = calc().resource_replicas(3, 50, "cpu", &ps, &levels(&[100, 100, 900]), now()).expect("ok");
    assert_eq!(r.replicas, 1);
}

#[test]
fn pods_within_the_initialization_period_without_a_full_window_are_ignored() {
    let mut ps = pods(2);
    // Started 60 s ago (within 5 min), Ready 10 s ago: the 30 s window sampled now started before it.
    ps[1].start_time = Some(ago(60));
    ps[1].ready = Some((true, ago(10)));
    let r = calc().resource_replicas(2, 50, "cpu", &ps, &levels(&[1000, 1000]), now()).expect("ok");
    // p0 at 200% (ratio 4) and p1 rebalanced to 0: 1000/2000 = 50%: within tolerance -> 2.
    assert_eq!(r.replicas, 2);
}

#[test]
fn unready_pods_are_not_ignored_for_memory() {
    let mut ps = pods(2);
    ps[1].ready = Some((false, ago(10)));
    let r = calc().resource_replicas(2, 50, "memory", &ps, &levels(&[1000, 1000]), now()).expect("ok");
    assert_eq!(r.replicas, 4);
}

#[test]
fn pending_and_deleted_and_failed_pods() {
    let mut ps = pods(4);
    ps[1].phase = "Pending".into();
    ps[2].deleting = true;
    ps[3].phase = "Failed".into();
    // Only p0 is ready: 100/1000 of a 50% target -> 1 (pending pods only count on a scale-up).
    let r = calc().resource_replicas(4, 50, "cpu", &ps, &levels(&[100]), now()).expect("ok");
    assert_eq!(r.replicas, 1);
}

#[test]
fn missing_metrics_count_as_zero_on_a_scale_up() {
    // p0 at 200% of its request with a 50% target (ratio 4); p1 missing counts as 0: 2000/2000
    // = 100%, ratio 2, over 2 pods -> 4.
    let r = calc().resource_replicas(2, 50, "cpu", &pods(2), &levels(&[2000]), now()).expect("ok");
    assert_eq!(r.replicas, 4);
    assert_eq!(r.utilization, Some(200));
}

#[test]
fn missing_metrics_count_as_full_request_on_a_scale_down() {
    // p0..p2 at 10% with a 50% target (ratio 0.2); p3 missing counts as 100%:
    // (300 + 1000)/4000 = 32%, ratio 0.64 over 4 pods -> ceil(2.56) = 3.
    let r = calc().resource_replicas(4, 50, "cpu", &pods(4), &levels(&[100, 100, 100]), now()).expect("ok");
    assert_eq!(r.replicas, 3);
}

#[test]
fn missing_metrics_that_flip_the_direction_keep_the_current_count() {
    // 40% of a 50% target (ratio 0.8); the missing pod at 100% makes it (400+1000)/2000 = 70%,
    // ratio 1.4: a change of direction, so no change.
    let r = calc().resource_replicas(2, 50, "cpu", &pods(2), &levels(&[400]), now()).expect("ok");
    assert_eq!(r.replicas, 2);
}

#[test]
fn a_pod_without_a_request_is_an_error() {
    let mut ps = pods(2);
    ps[1].request_milli = None;
    let err = calc().resource_replicas(2, 50, "cpu", &ps, &levels(&[100, 100]), now()).expect_err("no request");
    assert_eq!(err, CalcError::MissingRequest { resource: "cpu".into() });
    assert_eq!(err.to_string(), "missing request for cpu");
}

#[test]
fn no_pods_and_no_metrics_are_errors() {
    assert_eq!(calc().resource_replicas(1, 50, "cpu", &[], &levels(&[]), now()), Err(CalcError::NoPods));
    assert_eq!(
        calc().resource_replicas(1, 50, "cpu", &pods(1), &levels(&[]), now()),
        Err(CalcError::NoMetricsForReadyPods)
    );
}

#[test]
fn average_value_targets_divide_by_the_target_per_pod() {
    // 3 pods averaging 600m against 200m per pod: ratio 3 -> 9.
    let r = calc().raw_resource_replicas(3, 200, "cpu", &pods(3), &levels(&[600, 600, 600]), now()).expect("ok");
    assert_eq!(r, Recommendation { replicas: 9, utilization: None, average_milli: 600 });
    // Missing metric on a scale-down counts as the target.
    let r = calc().raw_resource_replicas(3, 1000, "memory", &pods(3), &levels(&[100, 100]), now()).expect("ok");
    // (100 + 100 + 1000) / 3 = 400, ratio 0.4 over 3 -> ceil(1.2) = 2.
    assert_eq!(r.replicas, 2);
}
