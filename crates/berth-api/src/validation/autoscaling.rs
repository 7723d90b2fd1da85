//! HorizontalPodAutoscaler validation on its storage version autoscaling/v2
//! (`pkg/apis/autoscaling/validation/validation.go`).

use serde_json::Value;

use super::names::is_valid_path_segment_name;
use super::{ErrorList, arr, child, index, q, str_or_empty};
use crate::FieldError;
use crate::quantity::Quantity;

const METRIC_TYPES: &[&str] = &["ContainerResource", "External", "Object", "Pods", "Resource"];
const TARGET_TYPES: &[&str] = &["AverageValue", "Utilization", "Value"];

/// `MaxPeriodSeconds` and `MaxStabilizationWindowSeconds` of HPA scaling rules.
const MAX_PERIOD_SECONDS: i64 = 1800;
const MAX_STABILIZATION_WINDOW_SECONDS: i64 = 3600;

/// `ValidateHorizontalPodAutoscaler`: 1 <= minReplicas <= maxReplicas, maxReplicas >= 1, a
/// valid scale target, metrics and behavior.
pub fn validate_hpa(obj: &Value) -> ErrorList {
    static NULL: Value = Value::Null;
    let spec = obj.get("spec").unwrap_or(&NULL);
    let mut errs = Vec::new();
    let min = spec.get("minReplicas").and_then(Value::as_i64);
    let max = spec.get("maxReplicas").and_then(Value::as_i64).unwrap_or(0);
    if let Some(m) = min
        && m < 1
    {
        errs.push(FieldError::invalid("spec.minReplicas", m, "must be greater than or equal to 1"));
    }
    if max < 1 {
        errs.push(FieldError::invalid("spec.maxReplicas", max, "must be greater than 0"));
    }
    if let Some(m) = min
        && max < m
    {
        errs.push(FieldError::invalid("spec.maxReplicas", max, "must be greater than or equal to `minReplicas`"));
    }
    let ref_errs =
        validate_cross_version_object_reference(spec.get("scaleTargetRef").unwrap_or(&NULL), "spec.scaleTargetRef");
    if !ref_errs.is_empty() {
        errs.extend(ref_errs);
        return errs;
    }
    let metric_errs = validate_metrics(arr(spec, "metrics"), "spec.metrics");
    if !metric_errs.is_empty() {
        errs.extend(metric_errs);
        return errs;
    }
    if let Some(b) = spec.get("behavior").filter(|b| !b.is_null()) {
        for rules in ["scaleUp", "scaleDown"] {
            if let Some(r) = b.get(rules).filter(|r| !r.is_null()) {
                errs.extend(validate_scaling_rules(r, &child("spec.behavior", rules)));
            }
        }
    }
    errs
}

/// `ValidateCrossVersionObjectReference`: kind and name required, both path segments.
fn validate_cross_version_object_reference(r: &Value, path: &str) -> ErrorList {
    let mut errs = Vec::new();
    for field in ["kind", "name"] {
        let v = str_or_empty(r, field);
        if v.is_empty() {
            errs.push(FieldError::required(child(path, field), ""));
        } else {
            for msg in is_valid_path_segment_name(v, false) {
                errs.push(FieldError::invalid(child(path, field), q(v), msg));
            }
        }
    }
    errs
}

fn validate_metrics(metrics: &[Value], path: &str) -> ErrorList {
    let mut errs = Vec::new();
    for (i, m) in metrics.iter().enumerate() {
        let p = index(path, i);
        let ty = str_or_empty(m, "type");
        let source = match ty {
            "" => {
                errs.push(FieldError::required(child(&p, "type"), "must specify a metric source type"));
                continue;
            }
            "Object" => "object",
            "Pods" => "pods",
            "Resource" => "resource",
            "External" => "external",
            "ContainerResource" => "containerResource",
            other => {
                errs.push(FieldError::not_supported(child(&p, "type"), q(other), METRIC_TYPES));
                continue;
            }
        };
        let set: Vec<&str> = ["object", "pods", "resource", "external", "containerResource"]
            .into_iter()
            .filter(|s| m.get(*s).is_some_and(|v| !v.is_null()))
            .collect();
        let Some(src) = m.get(source).filter(|v| !v.is_null()) else {
            errs.push(FieldError::required(child(&p, source), "must populate information for the given metric source"));
            continue;
        };
        if set.len() > 1 {
            for other in set.iter().filter(|s| **s != source) {
                errs.push(FieldError::forbidden(child(&p, other), "must populate the given metric source only"));
            }
        }
        let sp = child(&p, source);
        match source {
            "resource" | "containerResource" => {
                if str_or_empty(src, "name").is_empty() {
                    errs.push(FieldError::required(child(&sp, "name"), "must specify a resource name"));
                }
                if source == "containerResource" && str_or_empty(src, "container").is_empty() {
                    errs.push(FieldError::required(child(&sp, "container"), "must specify a container"));
                }
            }
            _ => {
                if src.pointer("/metric/name").and_then(Value::as_str).is_none_or(str::is_empty) {
                    errs.push(FieldError::required(child(&sp, "metric.name"), "must specify a metric name"));
                }
                if source == "object" {
                    errs.extend(validate_cross_version_object_reference(
                        src.get("describedObject").unwrap_or(&Value::Null),
                        &child(&sp, "describedObject"),
                    ));
                }
            }
        }
        errs.extend(validate_metric_target(src.get("target").unwrap_or(&Value::Null), &child(&sp, "target")));
    }
    errs
}

/// `validateMetricTarget`: a known type with its value set and positive.
fn validate_metric_target(t: &Value, path: &str) -> ErrorList {
    let mut errs = Vec::new();
    let ty = str_or_empty(t, "type");
    if ty.is_empty() {
        errs.push(FieldError::required(child(path, "type"), "must specify a metric target type"));
    } else if !TARGET_TYPES.contains(&ty) {
        errs.push(FieldError::not_supported(child(path, "type"), q(ty), TARGET_TYPES));
    }
    if let Some(u) = t.get("averageUtilization").and_then(Value::as_i64)
        && u < 1
    {
        errs.push(FieldError::invalid(child(path, "averageUtilization"), u, "must be greater than 0"));
    }
    for field in ["value", "averageValue"] {
        if let Some(v) = t.get(field).filter(|v| !v.is_null()) {
            let text = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            match Quantity::parse(&text) {
                Ok(qty) if qty.as_nanos() <= 0 => {
                    errs.push(FieldError::invalid(child(path, field), q(&text), "must be positive"))
                }
                Ok(_) => {}
                Err(e) => errs.push(FieldError::invalid(child(path, field), q(&text), e.to_string())),
            }
        }
    }
    let needs = match ty {
        "Utilization" => Some("averageUtilization"),
        "Value" => Some("value"),
        "AverageValue" => Some("averageValue"),
        _ => None,
    };
    if let Some(field) = needs
        && t.get(field).is_none_or(Value::is_null)
    {
        errs.push(FieldError::required(
            child(path, field),
            format!("must set {field} when metric target type is {ty}"),
        ));
    }
    errs
}

/// `validateScalingRules`: window 0..3600, select policy, policies with type, positive value
/// and period 1..1800.
fn validate_scaling_rules(r: &Value, path: &str) -> ErrorList {
    let mut errs = Vec::new();
    if let Some(w) = r.get("stabilizationWindowSeconds").and_then(Value::as_i64) {
        if w < 0 {
            errs.push(FieldError::invalid(
                child(path, "stabilizationWindowSeconds"),
                w,
                "must be greater than or equal to zero",
            ));
        } else if w > MAX_STABILIZATION_WINDOW_SECONDS {
            errs.push(FieldError::invalid(
                child(path, "stabilizationWindowSeconds"),
                w,
                format!("must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}"),
            ));
        }
    }
    if let Some(sp) = r.get("selectPolicy").and_then(Value::as_str)
        && !["Disabled", "Max", "Min"].contains(&sp)
    {
        errs.push(FieldError::not_supported(child(path, "selectPolicy"), q(sp), &["Disabled", "Max", "Min"]));
    }
    let policies = arr(r, "policies");
    if r.get("policies").is_some() && policies.is_empty() {
        errs.push(FieldError::required(child(path, "policies"), "must specify at least one Policy"));
    }
    for (i, p) in policies.iter().enumerate() {
        let pp = index(&child(path, "policies"), i);
        let ty = str_or_empty(p, "type");
        if ty != "Pods" && ty != "Percent" {
            errs.push(FieldError::not_supported(child(&pp, "type"), q(ty), &["Percent", "Pods"]));
        }
        let v = p.get("value").and_then(Value::as_i64).unwrap_or(0);
        if v <= 0 {
            errs.push(FieldError::invalid(child(&pp, "value"), v, "must be greater than zero"));
        }
        let period = p.get("periodSeconds").and_then(Value::as_i64).unwrap_or(0);
        if period <= 0 {
            errs.push(FieldError::invalid(child(&pp, "periodSeconds"), period, "must be greater than zero"));
        } else if period > MAX_PERIOD_SECONDS {
            errs.push(FieldError::invalid(
                child(&pp, "periodSeconds"),
                period,
                format!("must be less than or equal to {MAX_PERIOD_SECONDS}"),
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::defaults::autoscaling::default_hpa;
    use crate::validation::test_util::{assert_case, strings, with};

    fn hpa() -> Value {
        let mut h = json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"maxReplicas": 5,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}});
        default_hpa(&mut h);
        h
    }

    #[test]
    fn hpa_rules() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("valid", hpa(), ""),
            (
                "maxReplicas >= 1",
                with(hpa(), "/spec/maxReplicas", json!(0)),
                "spec.maxReplicas: Invalid value: 0: must be greater than 0",
            ),
            (
                "min <= max",
                with(hpa(), "/spec/minReplicas", json!(6)),
                "spec.maxReplicas: Invalid value: 5: must be greater than or equal to `minReplicas`",
            ),
            (
                "minReplicas >= 1",
                with(hpa(), "/spec/minReplicas", json!(0)),
                "spec.minReplicas: Invalid value: 0: must be greater than or equal to 1",
            ),
            (
                "target kind required",
                with(hpa(), "/spec/scaleTargetRef/kind", json!("")),
                "spec.scaleTargetRef.kind: Required value",
            ),
            (
                "metric type values",
                with(hpa(), "/spec/metrics/0/type", json!("Magic")),
                "spec.metrics[0].type: Unsupported value: \"Magic\"",
            ),
            (
                "metric source populated",
                with(hpa(), "/spec/metrics/0/type", json!("Pods")),
                "spec.metrics[0].pods: Required value: must populate information for the given metric source",
            ),
            (
                "utilization positive",
                with(hpa(), "/spec/metrics/0/resource/target/averageUtilization", json!(0)),
                "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0",
            ),
            (
                "policy period",
                with(
                    hpa(),
                    "/spec/behavior",
                    json!({"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 4000}]}}),
                ),
                "spec.behavior.scaleUp.policies[0].periodSeconds: Invalid value: 4000: must be less than or equal to 1800",
            ),
            (
                "stabilization window",
                with(hpa(), "/spec/behavior", json!({"scaleDown": {"stabilizationWindowSeconds": -1}})),
                "spec.behavior.scaleDown.stabilizationWindowSeconds: Invalid value: -1: must be greater than or equal to zero",
            ),
        ];
        for (name, obj, want) in cases {
            assert_case(name, &strings(validate_hpa(&obj)), want);
        }
    }
}
