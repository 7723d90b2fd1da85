//! What upstream strategies' `PrepareForCreate` do that defaulting does not: a new Pod's status
//! is reset to `Pending` with its QoS class, a new Service's status to an empty load balancer.

use berth_api::ResourceType;
use berth_api::quantity::Quantity;
use serde_json::{Value, json};

/// Resets server-owned status on create.
pub fn prepare_for_create(rt: &ResourceType, obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    match (rt.group, rt.plural) {
        ("", "pods") => {
            let qos = pod_qos(m.get("spec").unwrap_or(&Value::Null));
            m.insert("status".into(), json!({"phase": "Pending", "qosClass": qos}));
        }
        ("", "services") => {
            m.insert("status".into(), json!({"loadBalancer": {}}));
        }
        _ => {}
    }
}

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
