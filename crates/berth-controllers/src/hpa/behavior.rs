//! Scaling behavior (k8s `horizontal.go` `normalizeDesiredReplicasWithBehaviors`): stabilization
//! windows over recent recommendations, then rate limits from the scale-up / scale-down policies
//! (`Pods` / `Percent` per `periodSeconds`, `selectPolicy` `Max` / `Min` / `Disabled`) over recent
//! scale events, then minReplicas / maxReplicas. An HPA without `behavior` gets upstream's
//! defaults (up: max(4 pods, 100%) per 15 s, no stabilization; down: 100% per 15 s, 300 s window).
//! Pure: the per-HPA history is a value the controller keeps, time comes in as an argument.

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};
use tokio::time::{Duration, Instant};

/// Upstream `--horizontal-pod-autoscaler-downscale-stabilization`.
pub const DEFAULT_DOWNSCALE_STABILIZATION_WINDOW: i32 = 300;

/// `selectPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectPolicy {
    Max,
    Min,
    Disabled,
}

/// One scaling policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// At most `value` pods per `period_seconds`.
    Pods { value: i32, period_seconds: i32 },
    /// At most `value` percent of the replicas at the period's start per `period_seconds`.
    Percent { value: i32, period_seconds: i32 },
}

impl Policy {
    fn period_seconds(&self) -> i32 {
        match self {
            Policy::Pods { period_seconds, .. } | Policy::Percent { period_seconds, .. } => *period_seconds,
        }
    }
}

/// The rules of one direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalingRules {
    pub stabilization_window_seconds: i32,
    pub select_policy: SelectPolicy,
    pub policies: Vec<Policy>,
}

/// Both directions, defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behavior {
    pub scale_up: ScalingRules,
    pub scale_down: ScalingRules,
}

fn rules(spec: Option<&HPAScalingRules>, default: ScalingRules) -> ScalingRules {
    let Some(spec) = spec else { return default };
    let select_policy = match spec.select_policy.as_deref() {
        Some("Min") => SelectPolicy::Min,
        Some("Disabled") => SelectPolicy::Disabled,
        Some(_) => SelectPolicy::Max,
        None => default.select_policy,
    };
    let policies = match spec.policies.as_ref() {
        Some(ps) if !ps.is_empty() => ps
            .iter()
            .map(|p| match p.type_.as_str() {
                "Pods" => Policy::Pods { value: p.value, period_seconds: p.period_seconds },
                _ => Policy::Percent { value: p.value, period_seconds: p.period_seconds },
            })
            .collect(),
        _ => default.policies,
    };
    ScalingRules {
        stabilization_window_seconds: spec.stabilization_window_seconds.unwrap_or(default.stabilization_window_seconds),
        select_policy,
        policies,
    }
}

impl Behavior {
    /// Upstream `GenerateHPAScaleUpRules` / `GenerateHPAScaleDownRules` over the spec's behavior.
    pub fn from_spec(spec: Option<&HorizontalPodAutoscalerBehavior>) -> Behavior {
        let up = ScalingRules {
            stabilization_window_seconds: 0,
            select_policy: SelectPolicy::Max,
            policies: vec![
                Policy::Pods { value: 4, period_seconds: 15 },
                Policy::Percent { value: 100, period_seconds: 15 },
            ],
        };
        let down = ScalingRules {
            stabilization_window_seconds: DEFAULT_DOWNSCALE_STABILIZATION_WINDOW,
            select_policy: SelectPolicy::Max,
            policies: vec![Policy::Percent { value: 100, period_seconds: 15 }],
        };
        Behavior {
            scale_up: rules(spec.and_then(|b| b.scale_up.as_ref()), up),
            scale_down: rules(spec.and_then(|b| b.scale_down.as_ref()), down),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct ScaleEvent {
    change: i32,
    at: Instant,
}

/// What one HPA's recent past looks like to the controller (upstream keeps these maps keyed by
/// HPA in `recommendations`, `scaleUpEvents`, `scaleDownEvents`).
#[derive(Clone, Debug, Default)]
pub struct History {
    recommendations: Vec<(i32, Instant)>,
    scale_up_events: Vec<ScaleEvent>,
    scale_down_events: Vec<ScaleEvent>,
}

/// A condition as (status, reason, message).
pub type ConditionParts = (bool, &'static str, String);

/// The normalized count and the conditions it implies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalized {
    pub replicas: i32,
    /// `AbleToScale` (always True here).
    pub able_to_scale: ConditionParts,
    /// `ScalingLimited`.
    pub scaling_limited: ConditionParts,
}

fn secs(s: i32) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}

/// Whether `at` is strictly after `now - d` (false if that underflows: everything is recent).
fn after_cutoff(at: Instant, now: Instant, d: Duration) -> bool {
    now.checked_sub(d).is_none_or(|cutoff| at > cutoff)
}

/// Upstream `getReplicasChangePerPeriod`.
fn change_in_period(period_seconds: i32, events: &[ScaleEvent], now: Instant) -> i32 {
    events.iter().filter(|e| after_cutoff(e.at, now, secs(period_seconds))).map(|e| e.change).sum()
}

/// Upstream `calculateScaleUpLimitWithScalingRules`.
fn scale_up_limit(current: i32, history: &History, rules: &ScalingRules, now: Instant) -> i32 {
    policy_limit(current, history, rules, now, true, |start, p| match p {
        Policy::Pods { value, .. } => start.saturating_add(*value),
        Policy::Percent { value, .. } => {
            (f64::from(start) * (1.0 + f64::from(*value) / 100.0)).ceil().min(f64::from(i32::MAX)) as i32
        }
    })
}

/// Upstream `calculateScaleDownLimitWithBehaviors`.
fn scale_down_limit(current: i32, history: &History, rules: &ScalingRules, now: Instant) -> i32 {
    policy_limit(current, history, rules, now, false, |start, p| match p {
        Policy::Pods { value, .. } => start - value,
        Policy::Percent { value, .. } => (f64::from(start) * (1.0 - f64::from(*value) / 100.0)) as i32,
    })
}

/// The limit `rules` put on a scale up (`up`) or down: each policy proposes a count from the
/// count at the start of its period, and `select_policy` takes the proposal that changes the
/// least (`Min`) or the most (`Max`).
fn policy_limit(
    current: i32,
    history: &History,
    rules: &ScalingRules,
    now: Instant,
    up: bool,
    propose: impl Fn(i32, &Policy) -> i32,
) -> i32 {
    let take_lowest = match rules.select_policy {
        SelectPolicy::Disabled => return current,
        SelectPolicy::Min => up,
        SelectPolicy::Max => !up,
    };
    let mut result = if take_lowest { i32::MAX } else { i32::MIN };
    for p in &rules.policies {
        let added = change_in_period(p.period_seconds(), &history.scale_up_events, now);
        let deleted = change_in_period(p.period_seconds(), &history.scale_down_events, now);
        let start = current - added + deleted;
        let proposed = propose(start, p);
        result = if take_lowest { result.min(proposed) } else { result.max(proposed) };
    }
    result
}

impl History {
    /// Upstream `recordInitialRecommendation`: the current count is the first recommendation, so
    /// a new HPA does not scale down before its stabilization window has passed.
    pub fn record_initial(&mut self, current: i32, now: Instant) {
        if self.recommendations.is_empty() {
            self.recommendations.push((current, now));
        }
    }

    /// Upstream `stabilizeRecommendationWithBehaviors`: the recommendation bounded by the lowest
    /// recent one (scale-up window) and the highest recent one (scale-down window); records
    /// `desired`.
    fn stabilize(&mut self, behavior: &Behavior, current: i32, desired: i32, now: Instant) -> (i32, ConditionParts) {
        let up_window = secs(behavior.scale_up.stabilization_window_seconds);
        let down_window = secs(behavior.scale_down.stabilization_window_seconds);
        let (mut up, mut down) = (desired, desired);
        for (rec, at) in &self.recommendations {
            if after_cutoff(*at, now, up_window) {
                up = up.min(*rec);
            }
            if after_cutoff(*at, now, down_window) {
                down = down.max(*rec);
            }
        }
        let recommendation = current.max(up).min(down);
        // Forget samples older than both windows, as upstream reuses their slots.
        let keep = up_window.max(down_window);
        self.recommendations.retain(|(_, at)| after_cutoff(*at, now, keep));
        self.recommendations.push((desired, now));
        let condition = if recommendation == desired {
            (true, "ReadyForNewScale", "recommended size matches current size".to_string())
        } else if desired >= current {
            (
                true,
                "ScaleUpStabilized",
                "recent recommendations were lower than current one, applying the lowest recent recommendation"
                    .to_string(),
            )
        } else {
            (
                true,
                "ScaleDownStabilized",
                "recent recommendations were higher than current one, applying the highest recent recommendation"
                    .to_string(),
            )
        };
        (recommendation, condition)
    }

    /// Upstream `normalizeDesiredReplicasWithBehaviors`.
    pub fn normalize(
        &mut self,
        behavior: &Behavior,
        min_replicas: i32,
        max_replicas: i32,
        current: i32,
        desired: i32,
        now: Instant,
    ) -> Normalized {
        let (stabilized, able_to_scale) = self.stabilize(behavior, current, desired, now);
        let (replicas, reason, message) =
            self.convert_with_behavior_rate(behavior, min_replicas, max_replicas, current, stabilized, now);
        Normalized { replicas, able_to_scale, scaling_limited: (replicas != stabilized, reason, message.to_string()) }
    }

    /// Upstream `convertDesiredReplicasWithBehaviorRate`.
    fn convert_with_behavior_rate(
        &self,
        behavior: &Behavior,
        min_replicas: i32,
        max_replicas: i32,
        current: i32,
        desired: i32,
        now: Instant,
    ) -> (i32, &'static str, &'static str) {
        if desired > current {
            let limit = scale_up_limit(current, self, &behavior.scale_up, now).max(current);
            let (allowed, reason, message) = if max_replicas > limit {
                (limit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate")
            } else {
                (max_replicas, "TooManyReplicas", "the desired replica count is more than the maximum replica count")
            };
            if desired > allowed {
                return (allowed, reason, message);
            }
        } else if desired < current {
            let limit = scale_down_limit(current, self, &behavior.scale_down, now).min(current);
            let (allowed, reason, message) = if min_replicas < limit {
                (limit, "ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate")
            } else {
                (min_replicas, "TooFewReplicas", "the desired replica count is less than the minimum replica count")
            };
            if desired < allowed {
                return (allowed, reason, message);
            }
        }
        (desired, "DesiredWithinRange", "the desired count is within the acceptable range")
    }

    /// Upstream `storeScaleEvent`: remembers a rescale for the rate limits, forgetting events older
    /// than the longest policy period of their direction.
    pub fn store_scale_event(&mut self, behavior: &Behavior, previous: i32, new: i32, now: Instant) {
        let (events, rules, change) = if new > previous {
            (&mut self.scale_up_events, &behavior.scale_up, new - previous)
        } else {
            (&mut self.scale_down_events, &behavior.scale_down, previous - new)
        };
        let longest = rules.policies.iter().map(Policy::period_seconds).max().unwrap_or(0);
        events.retain(|e| after_cutoff(e.at, now, secs(longest)));
        events.push(ScaleEvent { change, at: now });
    }
}

#[cfg(test)]
mod tests;
