//! Defaults of the smaller API groups: networking (Ingress, NetworkPolicy), storage
//! (StorageClass), scheduling (PriorityClass), discovery (EndpointSlice).

use serde_json::{Value, json};

use super::{child_mut, each_mut, set_default};

/// Ingress: `pathType` is required in networking/v1, so there are no defaults to apply.
pub fn default_ingress(_obj: &mut Value) {}

/// NetworkPolicy: port protocol TCP; policyTypes `[Ingress]`, plus `Egress` when egress rules
/// are given (`SetDefaults_NetworkPolicy`).
pub fn default_network_policy(obj: &mut Value) {
    let Some(spec) = child_mut(obj, "spec") else {
        return;
    };
    for dir in ["ingress", "egress"] {
        for rule in each_mut(spec, dir) {
            for port in each_mut(rule, "ports") {
                set_default(port, "protocol", json!("TCP"));
            }
        }
    }
    let empty = spec.get("policyTypes").and_then(Value::as_array).is_none_or(Vec::is_empty);
    if empty {
        let mut types = vec![json!("Ingress")];
        if spec.get("egress").and_then(Value::as_array).is_some_and(|e| !e.is_empty()) {
            types.push(json!("Egress"));
        }
        spec.insert("policyTypes".to_string(), Value::Array(types));
    }
}

/// StorageClass: reclaimPolicy Delete, volumeBindingMode Immediate.
pub fn default_storage_class(obj: &mut Value) {
    if let Some(o) = obj.as_object_mut() {
        set_default(o, "reclaimPolicy", json!("Delete"));
        set_default(o, "volumeBindingMode", json!("Immediate"));
    }
}

/// PriorityClass: preemptionPolicy PreemptLowerPriority.
pub fn default_priority_class(obj: &mut Value) {
    if let Some(o) = obj.as_object_mut() {
        set_default(o, "preemptionPolicy", json!("PreemptLowerPriority"));
    }
}

/// EndpointSlice: port name `""` and protocol TCP.
pub fn default_endpoint_slice(obj: &mut Value) {
    if let Some(o) = obj.as_object_mut() {
        for port in each_mut(o, "ports") {
            set_default(port, "name", json!(""));
            set_default(port, "protocol", json!("TCP"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_policy_defaults() {
        let mut np = json!({"spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}});
        default_network_policy(&mut np);
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));
        assert_eq!(np["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
        let mut np = json!({"spec": {"podSelector": {}, "egress": [{}]}});
        default_network_policy(&mut np);
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    }

    #[test]
    fn storage_class_defaults() {
        let mut sc = json!({"provisioner": "x"});
        default_storage_class(&mut sc);
        assert_eq!(sc["reclaimPolicy"], "Delete");
        assert_eq!(sc["volumeBindingMode"], "Immediate");
    }

    #[test]
    fn priority_class_defaults() {
        let mut pc = json!({"value": 10});
        default_priority_class(&mut pc);
        assert_eq!(pc["preemptionPolicy"], "PreemptLowerPriority");
    }

    #[test]
    fn endpoint_slice_port_defaults() {
        let mut es = json!({"addressType": "IPv4", "ports": [{"port": 80}]});
        default_endpoint_slice(&mut es);
        assert_eq!(es["ports"][0], json!({"port": 80, "name": "", "protocol": "TCP"}));
    }
}
