//! Core group defaults other than pods and services (`pkg/apis/core/v1/defaults.go`):
//! Namespace, Secret, Node, Endpoints, PersistentVolume, PersistentVolumeClaim.

use serde_json::{Map, Value, json};

use super::{child_mut, each_mut, ensure, set_default};

/// Label every Namespace carries with its own name (`SetDefaults_Namespace`).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Namespace: `spec.finalizers: [kubernetes]` (namespace strategy's PrepareForCreate),
/// `status.phase: Active`, and the `kubernetes.io/metadata.name` label.
pub fn default_namespace(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else {
        return;
    };
    let name = o.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("").to_string();
    if !name.is_empty()
        && let Some(meta) = ensure(o, "metadata")
        && let Some(labels) = ensure(meta, "labels")
    {
        labels.insert(NAMESPACE_NAME_LABEL.to_string(), json!(name));
    }
    if let Some(spec) = ensure(o, "spec") {
        set_default(spec, "finalizers", json!(["kubernetes"]));
    }
    if let Some(status) = ensure(o, "status") {
        set_default(status, "phase", json!("Active"));
    }
}

/// Secret: `type: Opaque`.
pub fn default_secret(obj: &mut Value) {
    if let Some(o) = obj.as_object_mut() {
        set_default(o, "type", json!("Opaque"));
    }
}

/// Node: `status.allocatable` defaults to `status.capacity` (`SetDefaults_NodeStatus`).
pub fn default_node(obj: &mut Value) {
    let Some(status) = child_mut(obj, "status") else {
        return;
    };
    if let Some(capacity) = status.get("capacity").cloned()
        && status.get("allocatable").is_none_or(Value::is_null)
    {
        status.insert("allocatable".to_string(), capacity);
    }
}

/// Endpoints: each subset port's protocol TCP.
pub fn default_endpoints(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else {
        return;
    };
    for subset in each_mut(o, "subsets") {
        for port in each_mut(subset, "ports") {
            set_default(port, "protocol", json!("TCP"));
        }
    }
}

/// PersistentVolume: phase Pending, reclaim policy Retain, volumeMode Filesystem.
pub fn default_persistent_volume(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else {
        return;
    };
    if let Some(spec) = ensure(o, "spec") {
        set_default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
        set_default(spec, "volumeMode", json!("Filesystem"));
    }
    if let Some(status) = ensure(o, "status") {
        set_default(status, "phase", json!("Pending"));
    }
}

/// PersistentVolumeClaim: phase Pending, volumeMode Filesystem.
pub fn default_persistent_volume_claim(obj: &mut Value) {
    if let Some(o) = obj.as_object_mut() {
        default_pvc_map(o);
    }
}

/// PVC defaults on a claim object (also used for StatefulSet volume claim templates).
pub fn default_pvc_map(o: &mut Map<String, Value>) {
    if let Some(spec) = ensure(o, "spec") {
        set_default(spec, "volumeMode", json!("Filesystem"));
    }
    if let Some(status) = ensure(o, "status") {
        set_default(status, "phase", json!("Pending"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_defaults() {
        let mut ns = json!({"metadata": {"name": "team-a"}});
        default_namespace(&mut ns);
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["status"]["phase"], "Active");
        assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "team-a");
    }

    #[test]
    fn terminating_namespace_keeps_its_phase() {
        let mut ns = json!({"metadata": {"name": "a"}, "spec": {"finalizers": []}, "status": {"phase": "Terminating"}});
        default_namespace(&mut ns);
        assert_eq!(ns["status"]["phase"], "Terminating");
        assert_eq!(ns["spec"]["finalizers"], json!([]));
    }

    #[test]
    fn secret_type_defaults_to_opaque() {
        let mut s = json!({"data": {}});
        default_secret(&mut s);
        assert_eq!(s["type"], "Opaque");
        let mut tls = json!({"type": "kubernetes.io/tls"});
        default_secret(&mut tls);
        assert_eq!(tls["type"], "kubernetes.io/tls");
    }

    #[test]
    fn node_allocatable_defaults_to_capacity() {
        let mut n = json!({"status": {"capacity": {"cpu": "4"}}});
        default_node(&mut n);
        assert_eq!(n["status"]["allocatable"], json!({"cpu": "4"}));
    }

    #[test]
    fn endpoints_port_protocol_defaults_to_tcp() {
        let mut e = json!({"subsets": [{"ports": [{"port": 80}]}]});
        default_endpoints(&mut e);
        assert_eq!(e["subsets"][0]["ports"][0]["protocol"], "TCP");
    }

    #[test]
    fn persistent_volume_defaults() {
        let mut pv = json!({"spec": {"capacity": {"storage": "1Gi"}}});
        default_persistent_volume(&mut pv);
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(pv["spec"]["volumeMode"], "Filesystem");
        assert_eq!(pv["status"]["phase"], "Pending");
    }

    #[test]
    fn persistent_volume_claim_defaults() {
        let mut pvc = json!({"spec": {}});
        default_persistent_volume_claim(&mut pvc);
        assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
        assert_eq!(pvc["status"]["phase"], "Pending");
    }
}
