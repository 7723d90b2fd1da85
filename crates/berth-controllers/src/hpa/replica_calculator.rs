//! The HPA replica calculation for Resource metrics (k8s
//! `pkg/controller/podautoscaler/replica_calculator.go`): desired = ceil(ready pods × usage
//! ratio), unless within the tolerance; pods missing metrics count as 100% of their request on a
//! scale-down and 0% on a scale-up; for CPU, pods not yet Ready (or still within their
//! initialisation period) are ignored, and count as 0% on a scale-up. Pure: pods and metrics come in
//! as plain values, time as an argument.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;

/// Upstream `--horizontal-pod-autoscaler-tolerance`.
pub const DEFAULT_TOLERANCE: f64 = 0.1;
/// Upstream `--horizontal-pod-autoscaler-cpu-initialization-period`.
pub const DEFAULT_CPU_INITIALIZATION_PERIOD: Duration = Duration::from_secs(300);
/// Upstream `--horizontal-pod-autoscaler-initial-readiness-delay`.
pub const DEFAULT_INITIAL_READINESS_DELAY: Duration = Duration::from_secs(30);

/// What the calculation needs to know about one pod.
#[derive(Clone, Debug, PartialEq)]
pub struct PodInfo {
    pub name: String,
    /// `status.phase` (`Pending`, `Running`, `Failed`, ...).
    pub phase: String,
    /// Whether `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// The `Ready` condition: status and last transition time.
    pub ready: Option<(bool, Timestamp)>,
    /// `status.startTime`.
    pub start_time: Option<Timestamp>,
    /// Sum of the containers' requests of the metric's resource in milli-units; `None` when a
    /// container has no request for it.
    pub request_milli: Option<i64>,
}

/// One pod's usage sample (metrics.k8s.io PodMetrics, summed over containers).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PodMetric {
    /// Usage in milli-units (millicores, or milli-bytes for memory, as upstream `MilliValue`).
    pub value_milli: i64,
    pub timestamp: Timestamp,
    pub window: Duration,
}

/// Why no recommendation could be computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CalcError {
    #[error("no pods returned by selector while calculating replica count")]
    NoPods,
    #[error("did not receive metrics for any ready pods")]
    NoMetricsForReadyPods,
    #[error("missing request for {resource}")]
    MissingRequest { resource: String },
    #[error("no metrics returned matched known pods")]
    NoMetricsMatchedKnownPods,
}

/// A recommendation and the observed usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recommendation {
    pub replicas: i32,
    /// Current utilization in percent of requests (Utilization targets only).
    pub utilization: Option<i32>,
    /// Average usage per pod in milli-units.
    pub average_milli: i64,
}

/// The calculator's parameters (upstream `ReplicaCalculator`).
#[derive(Clone, Copy, Debug)]
pub struct ReplicaCalculator {
    pub tolerance: f64,
    pub cpu_initialization_period: Duration,
    pub delay_of_initial_readiness_status: Duration,
}

impl Default for ReplicaCalculator {
    fn default() -> Self {
        ReplicaCalculator {
            tolerance: DEFAULT_TOLERANCE,
            cpu_initialization_period: DEFAULT_CPU_INITIALIZATION_PERIOD,
            delay_of_initial_readiness_status: DEFAULT_INITIAL_READINESS_DELAY,
        }
    }
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX)).unwrap_or(Timestamp::MAX)
}

/// Upstream `groupPods`: (ready pod count, ignored pods, pods missing metrics).
fn group_pods(
    calc: &ReplicaCalculator,
    pods: &[PodInfo],
    metrics: &BTreeMap<String, PodMetric>,
    is_cpu: bool,
    now: Timestamp,
) -> (usize, BTreeSet<String>, BTreeSet<String>) {
    let (mut ready, mut ignored, mut missing) = (0, BTreeSet::new(), BTreeSet::new());
    for pod in pods {
        if pod.deleting || pod.phase == "Failed" {
            continue;
        }
        if pod.phase == "Pending" {
            ignored.insert(pod.name.clone());
            continue;
        }
        let Some(metric) = metrics.get(&pod.name) else {
            missing.insert(pod.name.clone());
            continue;
        };
        if is_cpu {
            let ignore = match (pod.ready, pod.start_time) {
                (Some((status, transition)), Some(start)) => {
                    if plus(start, calc.cpu_initialization_period) > now {
                        // Within the initialisation period: ignore the sample if the pod is unready
                        // or no full metric window was collected since the last transition.
                        !status || metric.timestamp < plus(transition, metric.window)
                    } else {
                        // Ignore if unready and it has never been ready.
                        !status && plus(start, calc.delay_of_initial_readiness_status) > transition
                    }
                }
                _ => true,
            };
            if ignore {
                ignored.insert(pod.name.clone());
                continue;
            }
        }
        ready += 1;
    }
    (ready, ignored, missing)
}

/// Upstream `GetResourceUtilizationRatio`: (ratio, utilization %, average usage).
fn utilization_ratio(
    metrics: &BTreeMap<String, i64>,
    requests: &BTreeMap<String, i64>,
    target: i32,
) -> Result<(f64, i32, i64), CalcError> {
    let (mut total, mut requested, mut n) = (0i64, 0i64, 0i64);
    for (pod, value) in metrics {
        // Requests are checked elsewhere: a metric without a request is an extraneous metric.
        let Some(req) = requests.get(pod) else { continue };
        total += value;
        requested += req;
        n += 1;
    }
    if requested == 0 {
        return Err(CalcError::NoMetricsMatchedKnownPods);
    }
    let utilization = i32::try_from(total.saturating_mul(100) / requested).unwrap_or(i32::MAX);
    Ok((f64::from(utilization) / f64::from(target), utilization, total / n))
}

/// Upstream `GetMetricUsageRatio`: (ratio, average usage).
fn usage_ratio(metrics: &BTreeMap<String, i64>, target_milli: i64) -> (f64, i64) {
    let total: i64 = metrics.values().sum();
    let average = total / (metrics.len().max(1) as i64);
    (average as f64 / target_milli as f64, average)
}

/// The ready pod count, the ignored and the missing pods, and the metric values of the pods not
/// ignored.
type Sample = (usize, BTreeSet<String>, BTreeSet<String>, BTreeMap<String, i64>);

fn ceil_i32(v: f64) -> i32 {
    let c = v.ceil();
    if c >= f64::from(i32::MAX) { i32::MAX } else { c as i32 }
}

impl ReplicaCalculator {
    /// The pods grouped as upstream `groupPods` does (ready count, ignored, missing) and the
    /// metric values of the pods not ignored.
    fn sample(
        &self,
        resource: &str,
        pods: &[PodInfo],
        metrics: &BTreeMap<String, PodMetric>,
        now: Timestamp,
    ) -> Result<Sample, CalcError> {
        if pods.is_empty() {
            return Err(CalcError::NoPods);
        }
        let (ready, ignored, missing) = group_pods(self, pods, metrics, resource == "cpu", now);
        let values =
            metrics.iter().filter(|(p, _)| !ignored.contains(*p)).map(|(p, m)| (p.clone(), m.value_milli)).collect();
        Ok((ready, ignored, missing, values))
    }

    /// The count when no pod's value has to be assumed: the current one while `ratio` is within
    /// the tolerance, else `ratio` applied to the ready pods.
    fn apply_ratio(&self, current_replicas: i32, ratio: f64, ready: usize) -> i32 {
        if (1.0 - ratio).abs() <= self.tolerance { current_replicas } else { ceil_i32(ratio * ready as f64) }
    }

    /// Whether the ratio recomputed with assumed values keeps the current count: it is within the
    /// tolerance, or it points the other way than the measured `ratio`.
    fn keeps_current(&self, ratio: f64, new_ratio: f64) -> bool {
        (1.0 - new_ratio).abs() <= self.tolerance
            || (ratio < 1.0 && new_ratio > 1.0)
            || (ratio > 1.0 && new_ratio < 1.0)
    }

    /// Upstream `GetResourceReplicas`: a Resource metric with an `averageUtilization` target (percent
    /// of the pods' requests).
    #[allow(clippy::too_many_arguments)]
    pub fn resource_replicas(
        &self,
        current_replicas: i32,
        target_utilization: i32,
        resource: &str,
        pods: &[PodInfo],
        metrics: &BTreeMap<String, PodMetric>,
        now: Timestamp,
    ) -> Result<Recommendation, CalcError> {
        let (ready, ignored, missing, mut values) = self.sample(resource, pods, metrics, now)?;
        let mut requests = BTreeMap::new();
        for pod in pods {
            let req = pod.request_milli.ok_or_else(|| CalcError::MissingRequest { resource: resource.to_string() })?;
            requests.insert(pod.name.clone(), req);
        }
        if values.is_empty() {
            return Err(CalcError::NoMetricsForReadyPods);
        }
        let (ratio, utilization, average) = utilization_ratio(&values, &requests, target_utilization)?;
        let rec = |replicas| Recommendation { replicas, utilization: Some(utilization), average_milli: average };

        let rebalance_ignored = !ignored.is_empty() && ratio > 1.0;
        if !rebalance_ignored && missing.is_empty() {
            return Ok(rec(self.apply_ratio(current_replicas, ratio, ready)));
        }
        if ratio < 1.0 {
            for pod in &missing {
                values.insert(pod.clone(), requests.get(pod).copied().unwrap_or(0));
            }
        } else if ratio > 1.0 {
            for pod in &missing {
                values.insert(pod.clone(), 0);
            }
        }
        if rebalance_ignored {
            values.extend(ignored.iter().map(|pod| (pod.clone(), 0)));
        }
        let (new_ratio, _, _) = utilization_ratio(&values, &requests, target_utilization)?;
        if self.keeps_current(ratio, new_ratio) {
            return Ok(rec(current_replicas));
        }
        let new_replicas = ceil_i32(new_ratio * values.len() as f64);
        if (new_ratio < 1.0 && new_replicas > current_replicas) || (new_ratio > 1.0 && new_replicas < current_replicas)
        {
            return Ok(rec(current_replicas));
        }
        Ok(rec(new_replicas))
    }

    /// Upstream `GetRawResourceReplicas` / `calcPlainMetricReplicas`: a Resource metric with an
    /// `averageValue` target (milli-units per pod).
    pub fn raw_resource_replicas(
        &self,
        current_replicas: i32,
        target_milli: i64,
        resource: &str,
        pods: &[PodInfo],
        metrics: &BTreeMap<String, PodMetric>,
        now: Timestamp,
    ) -> Result<Recommendation, CalcError> {
        let (ready, ignored, missing, mut values) = self.sample(resource, pods, metrics, now)?;
        if values.is_empty() {
            return Err(CalcError::NoMetricsForReadyPods);
        }
        let (ratio, average) = usage_ratio(&values, target_milli);
        let rec = |replicas| Recommendation { replicas, utilization: None, average_milli: average };
        let rebalance_ignored = !ignored.is_empty() && ratio > 1.0;
        if !rebalance_ignored && missing.is_empty() {
            return Ok(rec(self.apply_ratio(current_replicas, ratio, ready)));
        }
        for pod in &missing {
            values.insert(pod.clone(), if ratio < 1.0 { target_milli } else { 0 });
        }
        if rebalance_ignored {
            values.extend(ignored.iter().map(|pod| (pod.clone(), 0)));
        }
        let (new_ratio, _) = usage_ratio(&values, target_milli);
        if self.keeps_current(ratio, new_ratio) {
            return Ok(rec(current_replicas));
        }
        Ok(rec(ceil_i32(new_ratio * values.len() as f64)))
    }
}

#[cfg(test)]
mod tests;
