//! HorizontalPodAutoscaler conversion between autoscaling/v2 (stored) and autoscaling/v1, as
//! `pkg/apis/autoscaling/v1/conversion.go` does it.
//!
//! v1 has only `targetCPUUtilizationPercentage` and `currentCPUUtilizationPercentage`. Everything
//! else a v2 object carries (other metrics, current metrics, behavior, conditions) travels through
//! v1 in four `autoscaling.alpha.kubernetes.io/*` annotations, in the v1 alpha metric format, so
//! that a v1 client's read-modify-write keeps it. Converting v1 to v2 reads the annotations back
//! and removes them.

use serde_json::{Map, Value, json};

use crate::FieldError;

/// Metrics other than the CPU utilization target (`MetricSpecsAnnotation`).
pub const METRIC_SPECS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
/// `status.currentMetrics` (`MetricStatusesAnnotation`).
pub const METRIC_STATUSES_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
/// `status.conditions` (`HorizontalPodAutoscalerConditionsAnnotation`).
pub const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
/// `spec.behavior` (`BehaviorSpecsAnnotation`).
pub const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";

const ROUND_TRIP_ANNOTATIONS: [&str; 4] =
    [METRIC_SPECS_ANNOTATION, METRIC_STATUSES_ANNOTATION, CONDITIONS_ANNOTATION, BEHAVIOR_ANNOTATION];

/// `autoscaling.DefaultCPUUtilization`.
const DEFAULT_CPU_UTILIZATION: i64 = 80;

fn version_of(api_version: &str) -> Option<&str> {
    match api_version {
        "autoscaling/v1" => Some("v1"),
        "autoscaling/v2" => Some("v2"),
        _ => None,
    }
}

/// Converts an HPA between `autoscaling/v1` and `autoscaling/v2`.
///
/// # Errors
/// An `apiVersion` field error when either version is not one of those two.
pub fn convert(obj: Value, to_api_version: &str) -> Result<Value, FieldError> {
    let from = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("").to_string();
    let unsupported = |v: &str| {
        FieldError::not_supported("apiVersion", crate::validation::q(v), &["autoscaling/v1", "autoscaling/v2"])
    };
    let from_v = version_of(&from).ok_or_else(|| unsupported(&from))?;
    let to_v = version_of(to_api_version).ok_or_else(|| unsupported(to_api_version))?;
    let mut out = match (from_v, to_v) {
        ("v2", "v1") => v2_to_v1(&obj),
        ("v1", "v2") => v1_to_v2(&obj),
        _ => obj,
    };
    if let Some(o) = out.as_object_mut() {
        o.insert("apiVersion".to_string(), json!(to_api_version));
    }
    Ok(out)
}

fn is_cpu_resource(m: &Value) -> bool {
    m.get("type").and_then(Value::as_str) == Some("Resource")
        && m.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
}

/// Copies the listed keys of `from` that are present into `to`.
fn copy(from: &Value, to: &mut Map<String, Value>, keys: &[&str]) {
    for k in keys {
        if let Some(v) = from.get(*k).filter(|v| !v.is_null()) {
            to.insert((*k).to_string(), v.clone());
        }
    }
}

/// Inserts `v` under `k` unless it is null.
fn put(m: &mut Map<String, Value>, k: &str, v: Option<&Value>) {
    if let Some(v) = v.filter(|v| !v.is_null()) {
        m.insert(k.to_string(), v.clone());
    }
}

fn v2_to_v1(obj: &Value) -> Value {
    let mut out = Map::new();
    copy(obj, &mut out, &["kind"]);
    let mut meta = obj.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default();
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let status = obj.get("status").cloned().unwrap_or(Value::Null);
    let metrics = spec.get("metrics").and_then(Value::as_array).cloned().unwrap_or_default();

    let mut v1_spec = Map::new();
    copy(&spec, &mut v1_spec, &["scaleTargetRef", "minReplicas", "maxReplicas"]);
    if let Some(cpu) = metrics.iter().find(|m| is_cpu_resource(m))
        && let Some(u) = cpu.pointer("/resource/target/averageUtilization").filter(|v| !v.is_null())
    {
        v1_spec.insert("targetCPUUtilizationPercentage".to_string(), u.clone());
    }

    let mut v1_status = Map::new();
    copy(&status, &mut v1_status, &["observedGeneration", "lastScaleTime"]);
    v1_status.insert("currentReplicas".to_string(), status.get("currentReplicas").cloned().unwrap_or(json!(0)));
    v1_status.insert("desiredReplicas".to_string(), status.get("desiredReplicas").cloned().unwrap_or(json!(0)));
    let current = status.get("currentMetrics").and_then(Value::as_array).cloned().unwrap_or_default();
    for m in &current {
        if is_cpu_resource(m)
            && let Some(u) = m.pointer("/resource/current/averageUtilization").filter(|v| !v.is_null())
        {
            v1_status.insert("currentCPUUtilizationPercentage".to_string(), u.clone());
        }
    }

    let mut annotations = meta.get("annotations").and_then(Value::as_object).cloned().unwrap_or_default();
    let other: Vec<Value> = metrics
        .iter()
        .filter(|m| {
            !(is_cpu_resource(m) && m.pointer("/resource/target/averageUtilization").is_some_and(|v| !v.is_null()))
        })
        .map(|m| metric_v2_to_v1(m, "target"))
        .collect();
    if !other.is_empty() {
        annotations.insert(METRIC_SPECS_ANNOTATION.to_string(), json!(Value::Array(other).to_string()));
    }
    if !current.is_empty() {
        let enc: Vec<Value> = current.iter().map(|m| metric_v2_to_v1(m, "current")).collect();
        annotations.insert(METRIC_STATUSES_ANNOTATION.to_string(), json!(Value::Array(enc).to_string()));
    }
    if let Some(b) = spec.get("behavior").filter(|b| !b.is_null()) {
        annotations.insert(BEHAVIOR_ANNOTATION.to_string(), json!(b.to_string()));
    }
    if let Some(c) = status.get("conditions").and_then(Value::as_array).filter(|c| !c.is_empty()) {
        annotations.insert(CONDITIONS_ANNOTATION.to_string(), json!(Value::Array(c.clone()).to_string()));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".to_string(), Value::Object(annotations));
    }
    out.insert("metadata".to_string(), Value::Object(meta));
    out.insert("spec".to_string(), Value::Object(v1_spec));
    out.insert("status".to_string(), Value::Object(v1_status));
    Value::Object(out)
}

fn v1_to_v2(obj: &Value) -> Value {
    let mut out = Map::new();
    copy(obj, &mut out, &["kind"]);
    let mut meta = obj.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default();
    let annotations = meta.get("annotations").and_then(Value::as_object).cloned().unwrap_or_default();
    let decode =
        |k: &str| annotations.get(k).and_then(Value::as_str).and_then(|s| serde_json::from_str::<Value>(s).ok());
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let status = obj.get("status").cloned().unwrap_or(Value::Null);

    let mut v2_spec = Map::new();
    copy(&spec, &mut v2_spec, &["scaleTargetRef", "minReplicas", "maxReplicas"]);
    let mut metrics: Vec<Value> = decode(METRIC_SPECS_ANNOTATION)
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(metric_spec_v1_to_v2)
        .collect();
    if let Some(u) = spec.get("targetCPUUtilizationPercentage").filter(|v| !v.is_null()) {
        metrics.push(cpu_utilization_metric(u.clone()));
    }
    if metrics.is_empty() {
        metrics.push(cpu_utilization_metric(json!(DEFAULT_CPU_UTILIZATION)));
    }
    v2_spec.insert("metrics".to_string(), Value::Array(metrics));
    if let Some(b) = decode(BEHAVIOR_ANNOTATION).filter(|b| b.as_object().is_some_and(|m| !m.is_empty())) {
        v2_spec.insert("behavior".to_string(), b);
    }

    let mut v2_status = Map::new();
    copy(&status, &mut v2_status, &["observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas"]);
    if let Some(current) = decode(METRIC_STATUSES_ANNOTATION).and_then(|v| v.as_array().cloned()) {
        v2_status
            .insert("currentMetrics".to_string(), Value::Array(current.iter().map(metric_status_v1_to_v2).collect()));
    } else if let Some(u) = status.get("currentCPUUtilizationPercentage").filter(|v| !v.is_null()) {
        v2_status.insert(
            "currentMetrics".to_string(),
            json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": u}}}]),
        );
    }
    if let Some(c) = decode(CONDITIONS_ANNOTATION).filter(Value::is_array) {
        v2_status.insert("conditions".to_string(), c);
    }

    let kept: Map<String, Value> =
        annotations.into_iter().filter(|(k, _)| !ROUND_TRIP_ANNOTATIONS.contains(&k.as_str())).collect();
    if kept.is_empty() {
        meta.remove("annotations");
    } else {
        meta.insert("annotations".to_string(), Value::Object(kept));
    }
    out.insert("metadata".to_string(), Value::Object(meta));
    out.insert("spec".to_string(), Value::Object(v2_spec));
    out.insert("status".to_string(), Value::Object(v2_status));
    Value::Object(out)
}

fn cpu_utilization_metric(u: Value) -> Value {
    json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": u}}})
}

/// The member of a `MetricSpec` or `MetricStatus` that holds the source of metric type `ty`.
fn metric_member(ty: &str) -> Option<&'static str> {
    match ty {
        "Resource" => Some("resource"),
        "ContainerResource" => Some("containerResource"),
        "Pods" => Some("pods"),
        "Object" => Some("object"),
        "External" => Some("external"),
        _ => None,
    }
}

/// What every metric conversion starts from: the member holding the source, the source, and the
/// output with its `type` set. `Err` holds the result to return at once: the metric unchanged
/// when its type is unknown, only the type when the source is missing.
fn metric_source(m: &Value) -> Result<(&'static str, &Value, Map<String, Value>), Value> {
    let ty = m.get("type").and_then(Value::as_str).unwrap_or("");
    let Some(key) = metric_member(ty) else {
        return Err(m.clone());
    };
    let mut out = Map::new();
    out.insert("type".to_string(), json!(ty));
    match m.get(key) {
        Some(src) => Ok((key, src, out)),
        None => Err(Value::Object(out)),
    }
}

/// A v2 `MetricSpec` (`field` is `target`) or `MetricStatus` (`field` is `current`) in the v1
/// alpha format, whose value fields take `field` as their prefix (`targetAverageValue`,
/// `currentAverageValue`): `Convert_autoscaling_MetricSpec_To_v1_MetricSpec` and its
/// `MetricStatus` twin.
fn metric_v2_to_v1(m: &Value, field: &str) -> Value {
    let (key, src, mut out) = match metric_source(m) {
        Ok(parts) => parts,
        Err(done) => return done,
    };
    let values = src.get(field).cloned().unwrap_or(Value::Null);
    let prefixed = |name: &str| format!("{field}{name}");
    let mut s = Map::new();
    match key {
        "resource" | "containerResource" => {
            copy(src, &mut s, &["name", "container"]);
            put(&mut s, &prefixed("AverageUtilization"), values.get("averageUtilization"));
            put(&mut s, &prefixed("AverageValue"), values.get("averageValue"));
        }
        "pods" => {
            put(&mut s, "metricName", src.pointer("/metric/name"));
            put(&mut s, "selector", src.pointer("/metric/selector"));
            put(&mut s, &prefixed("AverageValue"), values.get("averageValue"));
        }
        "object" => {
            put(&mut s, "target", src.get("describedObject"));
            put(&mut s, "metricName", src.pointer("/metric/name"));
            put(&mut s, "selector", src.pointer("/metric/selector"));
            put(&mut s, &prefixed("Value"), values.get("value"));
            put(&mut s, "averageValue", values.get("averageValue"));
        }
        _ => {
            put(&mut s, "metricName", src.pointer("/metric/name"));
            put(&mut s, "metricSelector", src.pointer("/metric/selector"));
            put(&mut s, &prefixed("Value"), values.get("value"));
            put(&mut s, &prefixed("AverageValue"), values.get("averageValue"));
        }
    }
    out.insert(key.to_string(), Value::Object(s));
    Value::Object(out)
}

/// A v1 alpha `MetricSpec` back in v2 form.
fn metric_spec_v1_to_v2(m: &Value) -> Value {
    let (key, src, mut out) = match metric_source(m) {
        Ok(parts) => parts,
        Err(done) => return done,
    };
    let mut s = Map::new();
    let mut target = Map::new();
    let mut metric = Map::new();
    match key {
        "resource" | "containerResource" => {
            copy(src, &mut s, &["name", "container"]);
            if let Some(u) = src.get("targetAverageUtilization").filter(|v| !v.is_null()) {
                target.insert("type".to_string(), json!("Utilization"));
                target.insert("averageUtilization".to_string(), u.clone());
            } else {
                target.insert("type".to_string(), json!("AverageValue"));
                put(&mut target, "averageValue", src.get("targetAverageValue"));
            }
        }
        "pods" => {
            put(&mut metric, "name", src.get("metricName"));
            put(&mut metric, "selector", src.get("selector"));
            target.insert("type".to_string(), json!("AverageValue"));
            put(&mut target, "averageValue", src.get("targetAverageValue"));
        }
        "object" => {
            put(&mut s, "describedObject", src.get("target"));
            put(&mut metric, "name", src.get("metricName"));
            put(&mut metric, "selector", src.get("selector"));
            if src.get("averageValue").is_some_and(|v| !v.is_null()) {
                target.insert("type".to_string(), json!("AverageValue"));
                put(&mut target, "averageValue", src.get("averageValue"));
            } else {
                target.insert("type".to_string(), json!("Value"));
            }
            put(&mut target, "value", src.get("targetValue"));
        }
        _ => {
            put(&mut metric, "name", src.get("metricName"));
            put(&mut metric, "selector", src.get("metricSelector"));
            if src.get("targetValue").is_some_and(|v| !v.is_null()) {
                target.insert("type".to_string(), json!("Value"));
                put(&mut target, "value", src.get("targetValue"));
            } else {
                target.insert("type".to_string(), json!("AverageValue"));
                put(&mut target, "averageValue", src.get("targetAverageValue"));
            }
        }
    }
    if !metric.is_empty() {
        s.insert("metric".to_string(), Value::Object(metric));
    }
    s.insert("target".to_string(), Value::Object(target));
    out.insert(key.to_string(), Value::Object(s));
    Value::Object(out)
}

/// A v1 alpha `MetricStatus` back in v2 form.
fn metric_status_v1_to_v2(m: &Value) -> Value {
    let (key, src, mut out) = match metric_source(m) {
        Ok(parts) => parts,
        Err(done) => return done,
    };
    let mut s = Map::new();
    let mut current = Map::new();
    let mut metric = Map::new();
    match key {
        "resource" | "containerResource" => {
            copy(src, &mut s, &["name", "container"]);
            put(&mut current, "averageUtilization", src.get("currentAverageUtilization"));
            put(&mut current, "averageValue", src.get("currentAverageValue"));
        }
        "pods" => {
            put(&mut metric, "name", src.get("metricName"));
            put(&mut metric, "selector", src.get("selector"));
            put(&mut current, "averageValue", src.get("currentAverageValue"));
        }
        "object" => {
            put(&mut s, "describedObject", src.get("target"));
            put(&mut metric, "name", src.get("metricName"));
            put(&mut metric, "selector", src.get("selector"));
            put(&mut current, "value", src.get("currentValue"));
            put(&mut current, "averageValue", src.get("averageValue"));
        }
        _ => {
            put(&mut metric, "name", src.get("metricName"));
            put(&mut metric, "selector", src.get("metricSelector"));
            put(&mut current, "value", src.get("currentValue"));
            put(&mut current, "averageValue", src.get("currentAverageValue"));
        }
    }
    if !metric.is_empty() {
        s.insert("metric".to_string(), Value::Object(metric));
    }
    s.insert("current".to_string(), Value::Object(current));
    out.insert(key.to_string(), Value::Object(s));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2() -> Value {
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default", "annotations": {"team": "a"}},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 10,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "500Mi"}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}}
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max",
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}}},
            "status": {"currentReplicas": 2, "desiredReplicas": 3, "observedGeneration": 4,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 70, "averageValue": "350m"}}}],
                "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}})
    }

    fn convert_ok(obj: Value, to: &str) -> Value {
        convert(obj, to).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn v2_to_v1_maps_cpu_utilization_and_stashes_the_rest() {
        let v1 = convert_ok(v2(), "autoscaling/v1");
        assert_eq!(v1["apiVersion"], "autoscaling/v1");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
        assert_eq!(v1["spec"]["maxReplicas"], 10);
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 70);
        assert_eq!(v1["status"]["currentReplicas"], 2);
        assert!(v1["spec"].get("metrics").is_none());
        let ann = &v1["metadata"]["annotations"];
        assert_eq!(ann["team"], "a");
        let metrics: Value =
            serde_json::from_str(ann[METRIC_SPECS_ANNOTATION].as_str().unwrap_or("")).unwrap_or_default();
        assert_eq!(
            metrics,
            json!([{"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "500Mi"}},
                {"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "10"}}])
        );
        let current: Value =
            serde_json::from_str(ann[METRIC_STATUSES_ANNOTATION].as_str().unwrap_or("")).unwrap_or_default();
        assert_eq!(current[0]["resource"]["currentAverageUtilization"], 70);
        assert!(ann[BEHAVIOR_ANNOTATION].is_string());
        assert!(ann[CONDITIONS_ANNOTATION].is_string());
    }

    #[test]
    fn v2_round_trips_through_v1() {
        let back = convert_ok(convert_ok(v2(), "autoscaling/v1"), "autoscaling/v2");
        let orig = v2();
        assert_eq!(back["metadata"], orig["metadata"]);
        assert_eq!(back["spec"]["behavior"], orig["spec"]["behavior"]);
        assert_eq!(back["status"]["conditions"], orig["status"]["conditions"]);
        assert_eq!(back["status"]["currentMetrics"], orig["status"]["currentMetrics"]);
        // Upstream appends the CPU metric after the annotated ones.
        let metrics = back["spec"]["metrics"].as_array().cloned().unwrap_or_default();
        assert_eq!(metrics.len(), 3);
        assert_eq!(metrics[2], orig["spec"]["metrics"][0]);
        assert!(metrics.contains(&orig["spec"]["metrics"][1]));
        assert!(metrics.contains(&orig["spec"]["metrics"][2]));
    }

    #[test]
    fn v1_to_v2_builds_the_cpu_metric() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 4, "targetCPUUtilizationPercentage": 60},
            "status": {"currentReplicas": 1, "desiredReplicas": 1, "currentCPUUtilizationPercentage": 30}});
        let v2 = convert_ok(v1, "autoscaling/v2");
        assert_eq!(v2["apiVersion"], "autoscaling/v2");
        assert_eq!(v2["spec"]["metrics"], json!([cpu_utilization_metric(json!(60))]));
        assert_eq!(v2["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"], 30);
        assert!(v2["metadata"].get("annotations").is_none());
    }

    #[test]
    fn v1_without_target_gets_the_default_80_percent() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "metadata": {"name": "web"}, "spec": {"maxReplicas": 4}});
        let v2 = convert_ok(v1, "autoscaling/v2");
        assert_eq!(v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 80);
    }

    #[test]
    fn same_version_only_rewrites_api_version() {
        assert_eq!(convert_ok(v2(), "autoscaling/v2"), v2());
    }

    #[test]
    fn unknown_versions_are_rejected() {
        assert!(convert(v2(), "autoscaling/v2beta2").is_err());
        assert!(convert(json!({"apiVersion": "apps/v1"}), "autoscaling/v1").is_err());
    }
}
