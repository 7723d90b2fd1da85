//! HorizontalPodAutoscalers (kubectl's HorizontalPodAutoscalerDescriber for autoscaling/v2):
//! reference, metrics as `( current / target )`, min/max, behavior, pods, conditions, events.

use serde_json::Value;

use super::Related;
use super::writer::*;

/// A quantity string as Go's `Quantity.String()` prints it (canonical form).
fn quantity(v: Option<&Value>) -> String {
    let text = v.and_then(Value::as_str).unwrap_or_default();
    berth_api::Quantity::parse(text).map(|q| q.canonical()).unwrap_or_else(|_| text.to_string())
}

/// The metric specs, with an autoscaling/v1 object's CPU target as its one Resource metric.
fn metric_specs(hpa: &Value) -> Vec<Value> {
    if let Some(specs) = hpa.pointer("/spec/metrics").and_then(Value::as_array) {
        return specs.clone();
    }
    match hpa.pointer("/spec/targetCPUUtilizationPercentage") {
        Some(t) => vec![serde_json::json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": t}}})],
        None => Vec::new(),
    }
}

fn describe_rules(w: &mut Writer, direction: &str, rules: Option<&Value>) {
    let Some(rules) = rules.filter(|r| r.is_object()) else { return };
    w.w(1, &format!("{direction}:\n"));
    if let Some(window) = rules.get("stabilizationWindowSeconds").and_then(Value::as_i64) {
        w.w(2, &format!("Stabilization Window: {window} seconds\n"));
    }
    let policies = arr(rules, "/policies");
    if !policies.is_empty() {
        match rules.get("selectPolicy").and_then(Value::as_str) {
            Some(p) => w.w(2, &format!("Select Policy: {p}\n")),
            None => w.w(2, "Select Policy: <unset>\n"),
        }
        w.w(2, "Policies:\n");
        for p in policies {
            w.w(
                3,
                &format!(
                    "- Type: {}\tValue: {}\tPeriod: {} seconds\n",
                    s(p, "/type"),
                    i(p, "/value"),
                    i(p, "/periodSeconds")
                ),
            );
        }
    }
}

pub fn describe_hpa(hpa: &Value, rel: &Related) -> String {
    let mut w = Writer::default();
    w.w(0, &format!("Name:\t{}\n", s(hpa, "/metadata/name")));
    w.w(0, &format!("Namespace:\t{}\n", s(hpa, "/metadata/namespace")));
    labels_multiline(&mut w, "Labels", hpa.pointer("/metadata/labels"));
    annotations_multiline(&mut w, "Annotations", hpa.pointer("/metadata/annotations"));
    w.w(0, &format!("CreationTimestamp:\t{}\n", rfc1123z(s(hpa, "/metadata/creationTimestamp"))));
    let kind = s(hpa, "/spec/scaleTargetRef/kind");
    w.w(0, &format!("Reference:\t{kind}/{}\n", s(hpa, "/spec/scaleTargetRef/name")));
    w.w(0, "Metrics:\t( current / target )\n");
    let statuses = arr(hpa, "/status/currentMetrics");
    let v1_current = hpa.pointer("/status/currentCPUUtilizationPercentage").and_then(Value::as_i64);
    for (idx, m) in metric_specs(hpa).iter().enumerate() {
        let current_status = statuses.get(idx).and_then(|st| st.get("resource")).filter(|r| r.is_object());
        match s(m, "/type") {
            "Resource" => {
                w.w(1, &format!("resource {} on pods", s(m, "/resource/name")));
                if m.pointer("/resource/target/averageValue").is_some() {
                    let current = current_status
                        .map(|r| quantity(r.pointer("/current/averageValue")))
                        .unwrap_or_else(|| "<unknown>".into());
                    let target = quantity(m.pointer("/resource/target/averageValue"));
                    w.w(0, &format!(":\t{current} / {target}\n"));
                } else {
                    let current = match current_status {
                        Some(r) if r.pointer("/current/averageUtilization").is_some() => format!(
                            "{}% ({})",
                            i(r, "/current/averageUtilization"),
                            quantity(r.pointer("/current/averageValue"))
                        ),
                        _ => match v1_current {
                            Some(u) => format!("{u}%"),
                            None => "<unknown>".into(),
                        },
                    };
                    let target = match m.pointer("/resource/target/averageUtilization").and_then(Value::as_i64) {
                        Some(t) => format!("{t}%"),
                        None => "<auto>".into(),
                    };
                    w.w(1, &format!("(as a percentage of request):\t{current} / {target}\n"));
                }
            }
            other => w.w(1, &format!("\"{other}\" metric:\t<unsupported by this describer>\n")),
        }
    }
    let min = match hpa.pointer("/spec/minReplicas").and_then(Value::as_i64) {
        Some(m) => m.to_string(),
        None => "<unset>".into(),
    };
    w.w(0, &format!("Min replicas:\t{min}\n"));
    w.w(0, &format!("Max replicas:\t{}\n", i(hpa, "/spec/maxReplicas")));
    if let Some(b) = hpa.pointer("/spec/behavior").filter(|b| b.is_object()) {
        w.w(0, "Behavior:\n");
        describe_rules(&mut w, "Scale Up", b.get("scaleUp"));
        describe_rules(&mut w, "Scale Down", b.get("scaleDown"));
    }
    w.w(
        0,
        &format!(
            "{kind} pods:\t{} current / {} desired\n",
            i(hpa, "/status/currentReplicas"),
            i(hpa, "/status/desiredReplicas")
        ),
    );
    let conditions = arr(hpa, "/status/conditions");
    if !conditions.is_empty() {
        w.w(0, "Conditions:\n");
        w.w(1, "Type\tStatus\tReason\tMessage\n");
        w.w(1, "----\t------\t------\t-------\n");
        for c in conditions {
            w.w(1, &format!("{}\t{}\t{}\t{}\n", s(c, "/type"), s(c, "/status"), s(c, "/reason"), s(c, "/message")));
        }
    }
    if let Some(events) = &rel.events {
        describe_events(&mut w, events);
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::no_events;
    use super::*;

    #[test]
    fn hpa_matches_kubectl() {
        let hpa = json!({
            "metadata": {"name": "backend", "namespace": "default", "creationTimestamp": "2022-10-10T10:03:20Z"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "backend"},
                "minReplicas": 2, "maxReplicas": 5,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]},
            "status": {"currentReplicas": 2, "desiredReplicas": 2,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 0, "averageValue": "0"}}}],
                "conditions": [
                    {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "message": "recommended size matches current size"},
                    {"type": "ScalingLimited", "status": "True", "reason": "TooFewReplicas", "message": "the desired replica count is less than the minimum replica count"},
                ]},
        });
        let rel = no_events();
        let got = describe_hpa(&hpa, &rel);
        let created = rfc1123z("2022-10-10T10:03:20Z");
        let want = format!(
            "Name:                                                  backend
Namespace:                                             default
Labels:                                                <none>
Annotations:                                           <none>
CreationTimestamp:                                     {created}
Reference:                                             Deployment/backend
Metrics:                                               ( current / target )
  resource cpu on pods  (as a percentage of request):  0% (0) / 70%
Min replicas:                                          2
Max replicas:                                          5
Deployment pods:                                       2 current / 2 desired
Conditions:
  Type            Status  Reason            Message
  ----            ------  ------            -------
  AbleToScale     True    ReadyForNewScale  recommended size matches current size
  ScalingLimited  True    TooFewReplicas    the desired replica count is less than the minimum replica count
Events:           <none>
"
        );
        assert_eq!(got, want);
    }

    #[test]
    fn behavior_and_average_value_metrics() {
        let hpa = json!({
            "metadata": {"name": "h", "namespace": "default"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3,
                "metrics": [{"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Max",
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}}},
        });
        let rel = Related { events: None, ..no_events() };
        let got = describe_hpa(&hpa, &rel);
        assert!(got.contains("  resource memory on pods:  <unknown> / 100Mi\n"), "{got}");
        assert!(got.contains("Behavior:\n  Scale Down:\n    Stabilization Window: 300 seconds\n    Select Policy: Max\n    Policies:\n      - Type: Percent  Value: 100  Period: 15 seconds\n"), "{got}");
        assert!(got.contains("Min replicas:"), "{got}");
    }
}
