//! Cases after upstream `horizontal_test.go` (`TestNormalizeDesiredReplicasWithBehavior`,
//! `TestScalingWithRules`, `TestStoreScaleEvents`).

use k8s_openapi::api::autoscaling::v2::HPAScalingPolicy;

use super::*;

fn t0() -> Instant {
    Instant::now()
}

fn at(base: Instant, secs: u64) -> Instant {
    base + Duration::from_secs(secs)
}

fn spec_rules(window: Option<i32>, select: Option<&str>, policies: &[(&str, i32, i32)]) -> HPAScalingRules {
    HPAScalingRules {
        stabilization_window_seconds: window,
        select_policy: select.map(String::from),
        policies: Some(
            policies
                .iter()
                .map(|(t, v, p)| HPAScalingPolicy { type_: (*t).into(), value: *v, period_seconds: *p })
                .collect(),
        ),
        tolerance: None,
    }
}

fn behavior(up: Option<HPAScalingRules>, down: Option<HPAScalingRules>) -> Behavior {
    Behavior::from_spec(Some(&HorizontalPodAutoscalerBehavior { scale_up: up, scale_down: down }))
}

#[test]
fn defaults_match_upstream() {
    let b = Behavior::from_spec(None);
    assert_eq!(b.scale_up.stabilization_window_seconds, 0);
    assert_eq!(
        b.scale_up.policies,
        vec![Policy::Pods { value: 4, period_seconds: 15 }, Policy::Percent { value: 100, period_seconds: 15 }]
    );
    assert_eq!(b.scale_down.stabilization_window_seconds, 300);
    assert_eq!(b.scale_down.policies, vec![Policy::Percent { value: 100, period_seconds: 15 }]);
    assert_eq!(b.scale_down.select_policy, SelectPolicy::Max);
}

#[test]
fn default_scale_up_is_limited_to_max_of_four_pods_and_double() {
    let b = Behavior::from_spec(None);
    let mut h = History::default();
    // From 1: max(1 + 4, 2) = 5.
    let n = h.normalize(&b, 1, 100, 1, 50, t0());
    assert_eq!(n.replicas, 5);
    assert!(n.scaling_limited.0);
    assert_eq!(n.scaling_limited.1, "ScaleUpLimit");
    // From 10: max(14, 20) = 20.
    let mut h = History::default();
    assert_eq!(h.normalize(&b, 1, 100, 10, 50, t0()).replicas, 20);
}

#[test]
fn max_replicas_limits_with_too_many_replicas() {
    let b = Behavior::from_spec(None);
    let mut h = History::default();
    let n = h.normalize(&b, 1, 6, 4, 9, t0());
    assert_eq!(n.replicas, 6);
    assert_eq!(n.scaling_limited.1, "TooManyReplicas");
    assert_eq!(n.scaling_limited.2, "the desired replica count is more than the maximum replica count");
}

#[test]
fn min_replicas_limits_with_too_few_replicas() {
    // No stabilization so the scale-down is immediate.
    let b = behavior(None, Some(spec_rules(Some(0), None, &[("Percent", 100, 15)])));
    let mut h = History::default();
    let n = h.normalize(&b, 3, 10, 5, 1, t0());
    assert_eq!(n.replicas, 3);
    assert_eq!(
        n.scaling_limited,
        (true, "TooFewReplicas", "the desired replica count is less than the minimum replica count".into())
    );
}

#[test]
fn a_desired_count_within_range_is_not_limited() {
    let b = Behavior::from_spec(None);
    let mut h = History::default();
    let n = h.normalize(&b, 1, 10, 3, 5, t0());
    assert_eq!(n.replicas, 5);
    assert_eq!(n.scaling_limited.1, "DesiredWithinRange");
    assert!(!n.scaling_limited.0);
    assert_eq!(n.able_to_scale.1, "ReadyForNewScale");
}

#[test]
fn scale_down_stabilization_applies_the_highest_recent_recommendation() {
    let b = Behavior::from_spec(None);
    let base = t0();
    let mut h = History::default();
    assert_eq!(h.normalize(&b, 1, 10, 5, 5, base).replicas, 5);
    // 60 s later the metric says 2, but 5 was recommended within the 300 s window.
    let n = h.normalize(&b, 1, 10, 5, 2, at(base, 60));
    assert_eq!(n.replicas, 5);
    assert_eq!(n.able_to_scale.1, "ScaleDownStabilized");
    // After the window only recommendations of 2 remain.
    assert_eq!(h.normalize(&b, 1, 10, 5, 2, at(base, 361)).replicas, 2);
}

#[test]
fn scale_up_stabilization_applies_the_lowest_recent_recommendation() {
    let b = behavior(Some(spec_rules(Some(60), None, &[("Pods", 100, 15)])), None);
    let base = t0();
    let mut h = History::default();
    h.normalize(&b, 1, 20, 2, 3, base);
    let n = h.normalize(&b, 1, 20, 2, 8, at(base, 30));
    assert_eq!(n.replicas, 3);
    assert_eq!(n.able_to_scale.1, "ScaleUpStabilized");
    assert_eq!(h.normalize(&b, 1, 20, 2, 8, at(base, 100)).replicas, 8);
}

#[test]
fn policies_count_the_changes_within_their_period() {
    // Up by at most 2 pods per 60 s.
    let b = behavior(Some(spec_rules(Some(0), None, &[("Pods", 2, 60)])), None);
    let base = t0();
    let mut h = History::default();
    assert_eq!(h.normalize(&b, 1, 20, 2, 10, base).replicas, 4);
    h.store_scale_event(&b, 2, 4, base);
    // 30 s later: the period started at 2, so still at most 4.
    let n = h.normalize(&b, 1, 20, 4, 10, at(base, 30));
    assert_eq!(n.replicas, 4);
    assert_eq!(n.scaling_limited.1, "ScaleUpLimit");
    // After the period another 2.
    assert_eq!(h.normalize(&b, 1, 20, 4, 10, at(base, 61)).replicas, 6);
}

#[test]
fn select_policy_min_takes_the_smallest_change_and_max_the_largest() {
    let policies = [("Pods", 4, 60), ("Percent", 10, 60)];
    let min = behavior(Some(spec_rules(Some(0), Some("Min"), &policies)), None);
    let max = behavior(Some(spec_rules(Some(0), Some("Max"), &policies)), None);
    // From 10: Pods -> 14, Percent -> ceil(11.0) = 11.
    assert_eq!(History::default().normalize(&min, 1, 100, 10, 50, t0()).replicas, 11);
    assert_eq!(History::default().normalize(&max, 1, 100, 10, 50, t0()).replicas, 14);
    // Scaling down from 10: Pods -> 6, Percent 50% -> 5; Max picks the larger change.
    let down = [("Pods", 4, 60), ("Percent", 50, 60)];
    let min = behavior(None, Some(spec_rules(Some(0), Some("Min"), &down)));
    let max = behavior(None, Some(spec_rules(Some(0), Some("Max"), &down)));
    assert_eq!(History::default().normalize(&min, 1, 100, 10, 1, t0()).replicas, 6);
    assert_eq!(History::default().normalize(&max, 1, 100, 10, 1, t0()).replicas, 5);
}

#[test]
fn disabled_select_policy_stops_scaling_in_that_direction() {
    let b = behavior(None, Some(spec_rules(Some(0), Some("Disabled"), &[("Percent", 100, 15)])));
    let n = History::default().normalize(&b, 1, 10, 5, 1, t0());
    assert_eq!(n.replicas, 5);
    assert_eq!(n.scaling_limited.1, "ScaleDownLimit");
    // Up is still allowed.
    assert_eq!(History::default().normalize(&b, 1, 10, 5, 7, t0()).replicas, 7);
}

#[test]
fn percent_scale_up_rounds_up_so_one_replica_can_grow() {
    let b = behavior(Some(spec_rules(Some(0), None, &[("Percent", 10, 15)])), None);
    // ceil(1 * 1.1) = 2.
    assert_eq!(History::default().normalize(&b, 1, 10, 1, 5, t0()).replicas, 2);
}

#[test]
fn old_scale_events_are_forgotten() {
    let b = behavior(Some(spec_rules(Some(0), None, &[("Pods", 1, 15)])), None);
    let base = t0();
    let mut h = History::default();
    h.store_scale_event(&b, 1, 2, base);
    assert_eq!(h.normalize(&b, 1, 10, 2, 5, at(base, 5)).replicas, 2);
    h.store_scale_event(&b, 2, 3, at(base, 100));
    assert_eq!(h.scale_up_events.len(), 1, "the event older than the longest period was dropped");
}
