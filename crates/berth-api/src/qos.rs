//! The QoS class of a pod (upstream `GetPodQOS`), shared by the apiserver (status on create), the
//! kubelet (when a pod has none) and `describe pod`. Pure.

use serde_json::Value;

use crate::quantity::Quantity;

fn quantity(v: &Value) -> Option<i128> {
    match v {
        Value::String(s) => Quantity::parse(s).ok().map(|q| q.as_millis()),
        Value::Number(n) => n.as_f64().map(|f| (f * 1000.0) as i128),
        _ => None,
    }
}

/// Upstream `GetPodQOS`: BestEffort without any cpu/memory request or limit, Guaranteed when
/// every container limits both and requests (if given) equal the limits, else Burstable.
pub fn pod_qos(spec: &Value) -> &'static str {
    let containers = ["containers", "initContainers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().cloned().unwrap_or_default())
        .collect::<Vec<_>>();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        let res = &c["resources"];
        for r in ["cpu", "memory"] {
            let req = quantity(&res["requests"][r]).filter(|q| *q != 0);
            let lim = quantity(&res["limits"][r]).filter(|q| *q != 0);
            any |= req.is_some() || lim.is_some();
            match (req, lim) {
                (_, None) => guaranteed = false,
                (Some(a), Some(b)) if a != b => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn qos_classes_follow_requests_and_limits() {
        let c = |res: Value| json!({"containers": [{"name": "c", "resources": res}]});
        assert_eq!(pod_qos(&c(json!({}))), "BestEffort");
        assert_eq!(pod_qos(&c(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))), "Guaranteed");
        assert_eq!(
            pod_qos(&c(
                json!({"requests": {"cpu": "1000m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
            )),
            "Guaranteed"
        );
        assert_eq!(pod_qos(&c(json!({"requests": {"cpu": "100m"}}))), "Burstable");
    }
}
