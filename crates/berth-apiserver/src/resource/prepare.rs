//! What upstream strategies' `PrepareForCreate` do that defaulting does not: a new Pod's status
//! is reset to `Pending` with its QoS class, a new Service's status to an empty load balancer.

use berth_api::ResourceType;
use berth_api::qos::pod_qos;
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
