//! Update preparation (`PrepareForUpdate` of upstream strategies): values the server owns are
//! carried over from the stored object when an update leaves them out, before defaulting and
//! validation run on the new object.

use serde_json::{Value, json};

/// Service: `patchAllocatedValues` (`pkg/registry/core/service/storage/storage.go`) keeps the
/// allocated clusterIP(s), nodePorts (matched by port name) and healthCheckNodePort when the
/// update does not set them and the Service still needs them; `dropTypeDependentFields`
/// (`pkg/registry/core/service/strategy.go`) clears values the new type no longer uses when the
/// client merely carried them over from the stored object (e.g. NodePort -> ClusterIP).
pub fn service(new: &mut Value, old: &Value) {
    patch_allocated_values(new, old);
    drop_type_dependent_fields(new, old);
}

fn service_type(o: &Value) -> String {
    o.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string()
}

fn externally_accessible(o: &Value) -> bool {
    let ty = service_type(o);
    ty == "LoadBalancer"
        || ty == "NodePort"
        || (ty == "ClusterIP"
            && o.pointer("/spec/externalIPs").and_then(Value::as_array).is_some_and(|a| !a.is_empty()))
}

fn drop_type_dependent_fields(new: &mut Value, old: &Value) {
    let (new_ty, old_ty) = (service_type(new), service_type(old));
    let old_spec = old.get("spec").cloned().unwrap_or(Value::Null);
    let new_accessible = externally_accessible(new);
    let old_accessible = externally_accessible(old);
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let drop_if_same = |spec: &mut serde_json::Map<String, Value>, key: &str| {
        if spec.get(key) == old_spec.get(key) {
            spec.remove(key);
        }
    };
    if old_ty != "ExternalName" && new_ty == "ExternalName" {
        for key in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"] {
            drop_if_same(spec, key);
        }
    }
    let needs_node_port = |t: &str| t == "NodePort" || t == "LoadBalancer";
    if needs_node_port(&old_ty) && !needs_node_port(&new_ty) {
        let node_ports = |ports: Option<&Value>| -> Vec<i64> {
            let mut v: Vec<i64> = ports
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
                .filter(|n| *n != 0)
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        if node_ports(spec.get("ports")) == node_ports(old_spec.get("ports"))
            && let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut)
        {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                p.remove("nodePort");
            }
        }
    }
    if old_ty == "LoadBalancer" && new_ty != "LoadBalancer" {
        for key in ["healthCheckNodePort", "allocateLoadBalancerNodePorts", "loadBalancerClass"] {
            drop_if_same(spec, key);
        }
    }
    if old_accessible && !new_accessible {
        drop_if_same(spec, "externalTrafficPolicy");
    }
}

fn patch_allocated_values(new: &mut Value, old: &Value) {
    let ty = |o: &Value| o.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
    let (new_ty, old_ty) = (ty(new), ty(old));
    let needs_cluster_ip = |t: &str| t != "ExternalName";
    let needs_node_port = |t: &str| t == "NodePort" || t == "LoadBalancer";
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let old_spec = old.get("spec").cloned().unwrap_or(Value::Null);
    if needs_cluster_ip(&old_ty) && needs_cluster_ip(&new_ty) {
        if spec.get("clusterIP").and_then(Value::as_str).is_none_or(str::is_empty)
            && let Some(ip) = old_spec.get("clusterIP").filter(|v| !v.is_null())
        {
            spec.insert("clusterIP".to_string(), ip.clone());
        }
        if spec.get("clusterIPs").and_then(Value::as_array).is_none_or(Vec::is_empty)
            && let Some(ips) = old_spec.get("clusterIPs").filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
        {
            spec.insert("clusterIPs".to_string(), ips.clone());
        }
    }
    if needs_node_port(&old_ty) && needs_node_port(&new_ty) {
        let node_ports = |s: &Value| -> Vec<(String, i64)> {
            s.get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| {
                    let name = p.get("name").and_then(Value::as_str).unwrap_or("").to_string();
                    (name, p.get("nodePort").and_then(Value::as_i64).unwrap_or(0))
                })
                .collect()
        };
        let old_ports = node_ports(&old_spec);
        let new_used: Vec<i64> = node_ports(&Value::Object(spec.clone())).iter().map(|(_, n)| *n).collect();
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                if p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                    continue;
                }
                let name = p.get("name").and_then(Value::as_str).unwrap_or("");
                if let Some((_, np)) = old_ports.iter().find(|(n, np)| n == name && *np != 0)
                    && !new_used.contains(np)
                {
                    p.insert("nodePort".to_string(), json!(np));
                }
            }
        }
    }
    let needs_hc = |t: &str, s: &Value| {
        t == "LoadBalancer" && s.get("externalTrafficPolicy").and_then(Value::as_str) == Some("Local")
    };
    if needs_hc(&old_ty, &old_spec)
        && needs_hc(&new_ty, &Value::Object(spec.clone()))
        && spec.get("healthCheckNodePort").and_then(Value::as_i64).unwrap_or(0) == 0
        && let Some(hc) = old_spec.get("healthCheckNodePort").filter(|v| !v.is_null())
    {
        spec.insert("healthCheckNodePort".to_string(), hc.clone());
    }
}

/// Namespace (namespace strategy `PrepareForUpdate`): `status` changes only through the
/// `status` subresource, so an update keeps the stored one. Upstream also keeps
/// `spec.finalizers` (changed only through `finalize`); Berth has no `finalize` subresource,
/// so the namespace controller clears them with a plain update and they are left alone here.
pub fn namespace(new: &mut Value, old: &Value) {
    let Some(o) = new.as_object_mut() else {
        return;
    };
    match old.get("status") {
        Some(s) => o.insert("status".to_string(), s.clone()),
        None => o.remove("status"),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_update_keeps_allocated_cluster_ip_and_node_ports() {
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7"],
            "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "https", "port": 443, "nodePort": 30443}]}});
        let mut new = json!({"spec": {"type": "NodePort",
            "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443, "nodePort": 30444}]}});
        service(&mut new, &old);
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.7");
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.96.0.7"]));
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
        assert_eq!(new["spec"]["ports"][1]["nodePort"], 30444);
    }

    #[test]
    fn service_changed_to_external_name_drops_carried_cluster_fields() {
        let old = json!({"spec": {"type": "ClusterIP", "clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7"],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster"}});
        let mut new = old.clone();
        new["spec"]["type"] = json!("ExternalName");
        new["spec"]["externalName"] = json!("example.com");
        service(&mut new, &old);
        assert_eq!(new["spec"], json!({"type": "ExternalName", "externalName": "example.com"}));
    }

    #[test]
    fn service_changed_to_cluster_ip_keeps_node_ports_the_client_changed() {
        let old = json!({"spec": {"type": "NodePort", "externalTrafficPolicy": "Cluster", "ports": [{"port": 80, "nodePort": 30080}]}});
        let mut new = json!({"spec": {"type": "ClusterIP", "externalTrafficPolicy": "Cluster", "ports": [{"port": 80, "nodePort": 30081}]}});
        service(&mut new, &old);
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30081);
        assert!(new["spec"].get("externalTrafficPolicy").is_none());
    }

    #[test]
    fn service_changed_to_cluster_ip_drops_node_ports() {
        let old =
            json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.7", "ports": [{"port": 80, "nodePort": 30080}]}});
        let mut new = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30080}]}});
        service(&mut new, &old);
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.7");
        assert!(new["spec"]["ports"][0].get("nodePort").is_none());
    }

    #[test]
    fn namespace_update_keeps_status_but_not_finalizers() {
        let old = json!({"spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
        let mut new =
            json!({"metadata": {"labels": {"a": "b"}}, "spec": {"finalizers": []}, "status": {"phase": "Terminating"}});
        namespace(&mut new, &old);
        assert_eq!(new["spec"]["finalizers"], json!([]));
        assert_eq!(new["status"]["phase"], "Active");
    }
}
