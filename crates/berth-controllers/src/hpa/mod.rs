//! HorizontalPodAutoscaler controller (k8s `pkg/controller/podautoscaler/horizontal.go`). Every
//! `--horizontal-pod-autoscaler-sync-period` it reconciles each HPA (autoscaling/v2, the stored
//! version): reads the target's scale subresource (any kind that has one), lists the pods by the
//! scale's selector, reads their usage from `metrics.k8s.io`, computes the desired replicas per
//! metric ([`replica_calculator`]), takes the largest, applies the behavior ([`behavior`]) and
//! min/max, updates the scale, and writes the status (currentReplicas, desiredReplicas,
//! currentMetrics, lastScaleTime, conditions AbleToScale / ScalingActive / ScalingLimited) and
//! Events (`SuccessfulRescale`, `FailedGetScale`, `FailedGetResourceMetric`, ...), all with
//! upstream's reasons and messages. Supports Resource metrics (Utilization and AverageValue).

pub mod behavior;
pub mod metrics;
pub mod replica_calculator;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus, MetricSpec, MetricStatus,
    MetricValueStatus, ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::{Api, ResourceExt};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use self::behavior::{Behavior, History};
use self::metrics::{ApiMetricsSource, MetricsSource};
use self::replica_calculator::{CalcError, PodInfo, ReplicaCalculator};
use crate::events::{EventType, Recorder};
use crate::{ControllersConfig, Error};

/// Upstream `--horizontal-pod-autoscaler-sync-period`.
pub const DEFAULT_SYNC_PERIOD: Duration = Duration::from_secs(15);

/// The controller's shared state.
struct Ctx {
    client: kube::Client,
    recorder: Recorder,
    metrics: Arc<dyn MetricsSource>,
    calculator: ReplicaCalculator,
    /// Recommendations and scale events per HPA (`namespace/name`).
    history: Mutex<HashMap<String, History>>,
}

/// Runs the HPA controller with metrics from the resource metrics API until cancelled.
pub async fn run(client: kube::Client, config: ControllersConfig, cancel: CancellationToken) -> Result<(), Error> {
    let source = Arc::new(ApiMetricsSource::new(client.clone()));
    run_with_metrics(client, config, cancel, source).await
}

/// Runs the HPA controller with the given metrics source until cancelled.
pub async fn run_with_metrics(
    client: kube::Client,
    config: ControllersConfig,
    cancel: CancellationToken,
    metrics: Arc<dyn MetricsSource>,
) -> Result<(), Error> {
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "horizontal-pod-autoscaler"),
        client: client.clone(),
        metrics,
        calculator: ReplicaCalculator::default(),
        history: Mutex::new(HashMap::new()),
    });
    let api: Api<HorizontalPodAutoscaler> = Api::all(client);
    let mut ticker = tokio::time::interval(config.horizontal_pod_autoscaler_sync_period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        let hpas = match api.list(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(e) => {
                tracing::warn!(error = %e, "listing HorizontalPodAutoscalers failed");
                continue;
            }
        };
        {
            let keys: Vec<String> = hpas.iter().map(key).collect();
            ctx.history.lock().await.retain(|k, _| keys.contains(k));
        }
        futures::stream::iter(hpas)
            .for_each_concurrent(usize::from(config.concurrency.max(1)), |hpa| {
                let ctx = ctx.clone();
                async move {
                    if let Err(e) = reconcile_autoscaler(&ctx, &hpa).await {
                        tracing::info!(hpa = %key(&hpa), error = %e, "reconciling HorizontalPodAutoscaler failed");
                    }
                }
            })
            .await;
    }
}

fn key(hpa: &HorizontalPodAutoscaler) -> String {
    format!("{}/{}", hpa.namespace().unwrap_or_default(), hpa.name_any())
}

/// Upstream `setCondition`: replaces the condition of that type, keeping its transition time
/// when the status did not change.
fn set_condition(status: &mut HorizontalPodAutoscalerStatus, type_: &str, ok: bool, reason: &str, message: &str) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let s = if ok { "True" } else { "False" };
    let now = Some(Time(Timestamp::now()));
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != s {
                c.last_transition_time = now;
            }
            c.status = s.into();
            c.reason = Some(reason.into());
            c.message = Some(message.into());
        }
        None => conditions.push(HorizontalPodAutoscalerCondition {
            type_: type_.into(),
            status: s.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_transition_time: now,
        }),
    }
}

/// What computing one metric produced.
struct MetricResult {
    replicas: i32,
    name: String,
    status: MetricStatus,
}

/// A metric failed: its condition reason and the error.
struct MetricFailure {
    reason: &'static str,
    message: String,
}

fn pod_info(pod: &Pod, resource: &str) -> PodInfo {
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| (c.status == "True", c.last_transition_time.as_ref().map(|t| t.0).unwrap_or_default()));
    let mut request = Some(0i64);
    for c in pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default() {
        let q = c.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get(resource));
        match q.and_then(|q| berth_api::Quantity::parse(&q.0).ok()) {
            Some(q) => request = request.map(|r| r + i64::try_from(q.as_millis()).unwrap_or(i64::MAX)),
            None => request = None,
        }
    }
    PodInfo {
        name: pod.name_any(),
        phase: status.and_then(|s| s.phase.clone()).unwrap_or_default(),
        deleting: pod.metadata.deletion_timestamp.is_some(),
        ready,
        start_time: status.and_then(|s| s.start_time.as_ref()).map(|t| t.0),
        request_milli: request,
    }
}

fn milli_quantity(m: i64) -> Quantity {
    Quantity(berth_api::Quantity::from_millis(m).canonical())
}

impl Ctx {
    /// Upstream `computeStatusForResourceMetric`.
    async fn compute_resource_metric(
        &self,
        current_replicas: i32,
        spec: &MetricSpec,
        namespace: &str,
        selector: &str,
    ) -> Result<MetricResult, MetricFailure> {
        let Some(source) = spec.resource.as_ref() else {
            return Err(MetricFailure {
                reason: "InvalidMetricSourceType",
                message: "invalid resource metric source: the resource field is not set".into(),
            });
        };
        let resource = source.name.as_str();
        let fail = |message: String| MetricFailure { reason: "FailedGetResourceMetric", message };
        let metrics = self.metrics.pod_metrics(namespace, selector, resource).await.map_err(|e| {
            fail(format!(
                "failed to get {resource} utilization: unable to get metrics for resource {resource}: {}",
                error_chain(&e)
            ))
        })?;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let pods = pods.list(&ListParams::default().labels(selector)).await.map_err(|e| {
            fail(format!(
                "failed to get {resource} utilization: unable to get pods while calculating replica count: {e}"
            ))
        })?;
        let infos: Vec<PodInfo> = pods.items.iter().map(|p| pod_info(p, resource)).collect();
        let now = Timestamp::now();
        let target = &source.target;
        if let Some(util) = target.average_utilization {
            let rec = self
                .calculator
                .resource_replicas(current_replicas, util, resource, &infos, &metrics, now)
                .map_err(|e: CalcError| fail(format!("failed to get {resource} utilization: {e}")))?;
            Ok(MetricResult {
                replicas: rec.replicas,
                name: format!("{resource} resource utilization (percentage of request)"),
                status: MetricStatus {
                    type_: "Resource".into(),
                    resource: Some(ResourceMetricStatus {
                        name: resource.into(),
                        current: MetricValueStatus {
                            average_utilization: rec.utilization,
                            average_value: Some(milli_quantity(rec.average_milli)),
                            value: None,
                        },
                    }),
                    ..Default::default()
                },
            })
        } else if let Some(value) = target.average_value.as_ref() {
            let target_milli = berth_api::Quantity::parse(&value.0)
                .map(|q| i64::try_from(q.as_millis()).unwrap_or(i64::MAX))
                .map_err(|e| fail(format!("invalid averageValue {:?}: {e}", value.0)))?;
            let rec = self
                .calculator
                .raw_resource_replicas(current_replicas, target_milli, resource, &infos, &metrics, now)
                .map_err(|e| fail(format!("failed to get {resource} usage: {e}")))?;
            Ok(MetricResult {
                replicas: rec.replicas,
                name: format!("{resource} resource"),
                status: MetricStatus {
                    type_: "Resource".into(),
                    resource: Some(ResourceMetricStatus {
                        name: resource.into(),
                        current: MetricValueStatus {
                            average_utilization: None,
                            average_value: Some(milli_quantity(rec.average_milli)),
                            value: None,
                        },
                    }),
                    ..Default::default()
                },
            })
        } else {
            Err(MetricFailure {
                reason: "FailedGetResourceMetric",
                message: "invalid resource metric source: neither a utilization target nor a value target was set"
                    .into(),
            })
        }
    }

    /// Upstream `computeReplicasForMetrics`: the largest recommendation over the metrics, or the
    /// first failure when every metric failed.
    async fn compute_replicas_for_metrics(
        &self,
        hpa: &HorizontalPodAutoscaler,
        status: &mut HorizontalPodAutoscalerStatus,
        current_replicas: i32,
        selector: &str,
    ) -> (Option<(i32, String)>, Vec<MetricStatus>, Option<MetricFailure>) {
        let namespace = hpa.namespace().unwrap_or_default();
        let specs = hpa.spec.as_ref().and_then(|s| s.metrics.clone()).unwrap_or_default();
        let mut statuses = Vec::new();
        let mut best: Option<(i32, String)> = None;
        let mut first_failure: Option<MetricFailure> = None;
        let mut invalid = 0;
        for spec in &specs {
            let result = if spec.type_ == "Resource" {
                self.compute_resource_metric(current_replicas, spec, &namespace, selector).await
            } else {
                Err(MetricFailure {
                    reason: "InvalidMetricSourceType",
                    message: format!("unsupported metric source type {:?}", spec.type_),
                })
            };
            match result {
                Ok(r) => {
                    if best.as_ref().is_none_or(|(n, _)| r.replicas > *n) {
                        best = Some((r.replicas, r.name.clone()));
                    }
                    statuses.push(r.status);
                }
                Err(f) => {
                    invalid += 1;
                    statuses.push(MetricStatus { type_: String::new(), ..Default::default() });
                    self.recorder.record(hpa, EventType::Warning, f.reason, &f.message).await;
                    if first_failure.is_none() {
                        first_failure = Some(f);
                    }
                }
            }
        }
        if invalid >= specs.len() || best.is_none() {
            if let Some(f) = first_failure.as_mut() {
                set_condition(
                    status,
                    "ScalingActive",
                    false,
                    f.reason,
                    &format!("the HPA was unable to compute the replica count: {}", f.message),
                );
                // Upstream's error for the event and the log.
                f.message = format!(
                    "invalid metrics ({invalid} invalid out of {}), first error is: {}",
                    specs.len(),
                    f.message
                );
            }
            return (None, statuses, first_failure);
        }
        if let Some((_, name)) = &best {
            set_condition(
                status,
                "ScalingActive",
                true,
                "ValidMetricFound",
                &format!("the HPA was able to successfully calculate a replica count from {name}"),
            );
        }
        (best, statuses, first_failure)
    }
}

/// A `kind ns/name` description for messages.
fn reference(hpa: &HorizontalPodAutoscaler) -> String {
    let r = hpa.spec.as_ref().map(|s| s.scale_target_ref.clone()).unwrap_or_default();
    format!("{}/{}/{}", r.kind, hpa.namespace().unwrap_or_default(), r.name)
}

/// The target's scale API: its resource resolved through discovery.
async fn scale_api(
    client: &kube::Client,
    hpa: &HorizontalPodAutoscaler,
) -> Result<(Api<DynamicObject>, String), String> {
    let r = hpa.spec.as_ref().map(|s| s.scale_target_ref.clone()).unwrap_or_default();
    let api_version = r.api_version.clone().unwrap_or_else(|| "v1".into());
    let (group, version) = crate::discovery::split_api_version(&api_version);
    let gvk = GroupVersionKind::gvk(group, version, &r.kind);
    let (ar, _) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|e| format!("unable to determine resource for scale target reference: {e}"))?;
    let ns = hpa.namespace().unwrap_or_default();
    Ok((Api::namespaced_with(client.clone(), &ns, &ar), r.name))
}

/// Upstream `reconcileAutoscaler`.
async fn reconcile_autoscaler(ctx: &Ctx, hpa: &HorizontalPodAutoscaler) -> Result<(), Error> {
    let hpa_key = key(hpa);
    let spec = hpa.spec.clone().unwrap_or_default();
    let original = hpa.status.clone().unwrap_or_default();
    let mut status = original.clone();
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), &hpa.namespace().unwrap_or_default());

    let scale = match scale_api(&ctx.client, hpa).await {
        Ok((api, name)) => api.get_scale(&name).await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    let scale = match scale {
        Ok(s) => s,
        Err(e) => {
            set_condition(
                &mut status,
                "AbleToScale",
                false,
                "FailedGetScale",
                &format!("the HPA controller was unable to get the target's current scale: {e}"),
            );
            ctx.recorder.record(hpa, EventType::Warning, "FailedGetScale", &e).await;
            update_status_if_needed(&hpas, hpa, &original, status).await?;
            return Err(Error::Retry(format!("failed to query scale subresource for {}: {e}", reference(hpa))));
        }
    };
    set_condition(
        &mut status,
        "AbleToScale",
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale",
    );
    // Upstream counts the scale's spec.replicas as the current replicas.
    let current_replicas = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    ctx.history
        .lock()
        .await
        .entry(hpa_key.clone())
        .or_default()
        .record_initial(current_replicas, tokio::time::Instant::now());
    let min_replicas = spec.min_replicas.unwrap_or(1);
    let max_replicas = spec.max_replicas;

    let mut rescale_reason = String::new();
    let mut metric_statuses = original.current_metrics.clone().unwrap_or_default();
    let mut desired_replicas = 0;
    let mut retry: Option<String> = None;
    let rescale;
    if current_replicas == 0 && min_replicas != 0 {
        // Autoscaling is disabled for this resource.
        set_condition(
            &mut status,
            "ScalingActive",
            false,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero",
        );
        rescale = false;
    } else if current_replicas > max_replicas {
        rescale_reason = "Current number of replicas above Spec.MaxReplicas".into();
        desired_replicas = max_replicas;
        rescale = desired_replicas != current_replicas;
    } else if current_replicas < min_replicas {
        rescale_reason = "Current number of replicas below Spec.MinReplicas".into();
        desired_replicas = min_replicas;
        rescale = desired_replicas != current_replicas;
    } else {
        let selector = scale.status.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
        if selector.is_empty() {
            let msg = "selector is required";
            set_condition(
                &mut status,
                "ScalingActive",
                false,
                "InvalidSelector",
                "the HPA target's scale is missing a selector",
            );
            ctx.recorder.record(hpa, EventType::Warning, "SelectorRequired", msg).await;
            update_status_if_needed(&hpas, hpa, &original, status).await?;
            return Err(Error::Retry(format!("{}: {msg}", reference(hpa))));
        }
        let (best, statuses, failure) =
            ctx.compute_replicas_for_metrics(hpa, &mut status, current_replicas, &selector).await;
        metric_statuses = statuses;
        let Some((metric_replicas, metric_name)) = best else {
            let message = failure.map(|f| f.message).unwrap_or_else(|| "no metrics".into());
            status.current_replicas = Some(current_replicas);
            status.current_metrics = Some(metric_statuses).filter(|m| !m.is_empty());
            update_status_if_needed(&hpas, hpa, &original, status).await?;
            ctx.recorder.record(hpa, EventType::Warning, "FailedComputeMetricsReplicas", &message).await;
            return Err(Error::Retry(format!(
                "failed to compute desired number of replicas based on listed metrics for {}: {message}",
                reference(hpa)
            )));
        };
        if let Some(f) = failure {
            retry = Some(f.message);
        }
        desired_replicas = metric_replicas;
        if desired_replicas > current_replicas {
            rescale_reason = format!("{metric_name} above target");
        }
        if desired_replicas < current_replicas {
            rescale_reason = "All metrics below target".into();
        }
        let behavior = Behavior::from_spec(spec.behavior.as_ref());
        let normalized = {
            let mut history = ctx.history.lock().await;
            let h = history.entry(hpa_key.clone()).or_default();
            h.normalize(
                &behavior,
                min_replicas,
                max_replicas,
                current_replicas,
                desired_replicas,
                tokio::time::Instant::now(),
            )
        };
        let (ok, reason, message) = &normalized.able_to_scale;
        set_condition(&mut status, "AbleToScale", *ok, reason, message);
        let (limited, reason, message) = &normalized.scaling_limited;
        set_condition(&mut status, "ScalingLimited", *limited, reason, message);
        desired_replicas = normalized.replicas;
        rescale = desired_replicas != current_replicas;
    }

    if rescale {
        let (api, name) = scale_api(&ctx.client, hpa).await.map_err(Error::Retry)?;
        let patch = serde_json::json!({"spec": {"replicas": desired_replicas}});
        if let Err(e) = api.patch_scale(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            ctx.recorder
                .record(
                    hpa,
                    EventType::Warning,
                    "FailedRescale",
                    &format!("New size: {desired_replicas}; reason: {rescale_reason}; error: {e}"),
                )
                .await;
            set_condition(
                &mut status,
                "AbleToScale",
                false,
                "FailedUpdateScale",
                &format!("the HPA controller was unable to update the target scale: {e}"),
            );
            status.current_replicas = Some(current_replicas);
            status.current_metrics = Some(metric_statuses).filter(|m| !m.is_empty());
            update_status_if_needed(&hpas, hpa, &original, status).await?;
            return Err(Error::api(format!("rescale {}", reference(hpa)), e));
        }
        set_condition(
            &mut status,
            "AbleToScale",
            true,
            "SucceededRescale",
            &format!("the HPA controller was able to update the target scale to {desired_replicas}"),
        );
        ctx.recorder
            .record(
                hpa,
                EventType::Normal,
                "SuccessfulRescale",
                &format!("New size: {desired_replicas}; reason: {rescale_reason}"),
            )
            .await;
        let behavior = Behavior::from_spec(spec.behavior.as_ref());
        let mut history = ctx.history.lock().await;
        history.entry(hpa_key).or_default().store_scale_event(
            &behavior,
            current_replicas,
            desired_replicas,
            tokio::time::Instant::now(),
        );
        tracing::info!(hpa = %key(hpa), from = current_replicas, to = desired_replicas, reason = %rescale_reason, "rescaled");
    } else {
        desired_replicas = current_replicas;
    }

    // Upstream `setStatus`.
    status.current_replicas = Some(current_replicas);
    status.desired_replicas = desired_replicas;
    status.current_metrics = Some(metric_statuses).filter(|m| !m.is_empty());
    if rescale {
        status.last_scale_time = Some(Time(Timestamp::now()));
    }
    update_status_if_needed(&hpas, hpa, &original, status).await?;
    match retry {
        Some(m) => Err(Error::Retry(m)),
        None => Ok(()),
    }
}

/// Writes the status when it differs from what was read (a merge patch: lists are replaced).
async fn update_status_if_needed(
    api: &Api<HorizontalPodAutoscaler>,
    hpa: &HorizontalPodAutoscaler,
    original: &HorizontalPodAutoscalerStatus,
    mut status: HorizontalPodAutoscalerStatus,
) -> Result<(), Error> {
    status.observed_generation = hpa.metadata.generation;
    if &status == original {
        return Ok(());
    }
    let patch = serde_json::json!({"status": status});
    api.patch_status(&hpa.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| Error::api(format!("update status of HorizontalPodAutoscaler {}", key(hpa)), e))?;
    Ok(())
}

/// An error and its sources, `: `-separated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}
