//! HorizontalPodAutoscaler defaults in its storage version autoscaling/v2
//! (`pkg/apis/autoscaling/v2/defaults.go`).

use serde_json::{Map, Value, json};

use super::{child_mut, set_default};

/// `autoscaling.DefaultCPUUtilization`.
pub const DEFAULT_CPU_UTILIZATION: i64 = 80;

/// minReplicas 1; metrics `[cpu Utilization 80%]` when none; behavior rules filled in when a
/// behavior is given (scale up: window 0, Max of 4 pods / 100% per 15s; scale down: Max of 100%
/// per 15s).
pub fn default_hpa(obj: &mut Value) {
    let Some(spec) = child_mut(obj, "spec") else {
        return;
    };
    set_default(spec, "minReplicas", json!(1));
    let no_metrics = spec.get("metrics").and_then(Value::as_array).is_none_or(Vec::is_empty);
    if no_metrics {
        spec.insert(
            "metrics".to_string(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]),
        );
    }
    if let Some(behavior) = spec.get_mut("behavior").and_then(Value::as_object_mut) {
        fill_rules(
            behavior,
            "scaleUp",
            Some(0),
            json!([{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]),
        );
        fill_rules(behavior, "scaleDown", None, json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]));
    }
}

/// `GenerateHPAScaleUpRules`/`GenerateHPAScaleDownRules`: fills each unset field.
fn fill_rules(behavior: &mut Map<String, Value>, key: &str, window: Option<i64>, policies: Value) {
    let Some(rules) = super::ensure(behavior, key) else {
        return;
    };
    if let Some(w) = window {
        set_default(rules, "stabilizationWindowSeconds", json!(w));
    }
    set_default(rules, "selectPolicy", json!("Max"));
    set_default(rules, "policies", policies);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpa_defaults_min_replicas_and_cpu_metric() {
        let mut hpa = json!({"spec": {"maxReplicas": 5, "scaleTargetRef": {"kind": "Deployment", "name": "web"}}});
        default_hpa(&mut hpa);
        assert_eq!(hpa["spec"]["minReplicas"], 1);
        assert_eq!(hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 80);
        assert!(hpa["spec"].get("behavior").is_none());
    }

    #[test]
    fn hpa_behavior_rules_are_filled_when_behavior_given() {
        let mut hpa =
            json!({"spec": {"maxReplicas": 5, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}});
        default_hpa(&mut hpa);
        let b = &hpa["spec"]["behavior"];
        assert_eq!(b["scaleUp"]["stabilizationWindowSeconds"], 0);
        assert_eq!(b["scaleUp"]["selectPolicy"], "Max");
        assert_eq!(b["scaleUp"]["policies"].as_array().map(Vec::len), Some(2));
        assert_eq!(b["scaleDown"]["stabilizationWindowSeconds"], 60);
        assert_eq!(b["scaleDown"]["policies"][0]["type"], "Percent");
        let once = hpa.clone();
        default_hpa(&mut hpa);
        assert_eq!(hpa, once);
    }
}
