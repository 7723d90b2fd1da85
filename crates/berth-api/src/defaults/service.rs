//! Service defaults (`SetDefaults_Service` in `pkg/apis/core/v1/defaults.go`, plus the IP family
//! fields the Service REST storage fills for a single-stack IPv4 cluster). ClusterIP allocation
//! itself is the apiserver's job.

use serde_json::{Value, json};

use super::{child_mut, each_mut, set_default, str_of};

/// `v1.DefaultClientIPServiceAffinitySeconds` (3 hours).
pub const DEFAULT_CLIENT_IP_AFFINITY_SECONDS: i64 = 10800;

/// Defaults a Service: type ClusterIP, sessionAffinity None, port protocol TCP and targetPort =
/// port, externalTrafficPolicy Cluster when externally accessible (NodePort, LoadBalancer, or
/// ClusterIP with externalIPs), internalTrafficPolicy Cluster,
/// allocateLoadBalancerNodePorts for LoadBalancer, ipFamilyPolicy SingleStack (RequireDualStack
/// for headless Services without a selector) and ipFamilies [IPv4] for all but ExternalName.
pub fn default_service(obj: &mut Value) {
    let Some(spec) = child_mut(obj, "spec") else {
        return;
    };
    set_default(spec, "sessionAffinity", json!("None"));
    match str_of(spec, "sessionAffinity") {
        "None" => {
            spec.remove("sessionAffinityConfig");
        }
        "ClientIP" => {
            let has_timeout =
                spec.get("sessionAffinityConfig").and_then(|c| c.pointer("/clientIP/timeoutSeconds")).is_some();
            if !has_timeout {
                spec.insert(
                    "sessionAffinityConfig".to_string(),
                    json!({"clientIP": {"timeoutSeconds": DEFAULT_CLIENT_IP_AFFINITY_SECONDS}}),
                );
            }
        }
        _ => {}
    }
    set_default(spec, "type", json!("ClusterIP"));
    for port in each_mut(spec, "ports") {
        set_default(port, "protocol", json!("TCP"));
        let unset = match port.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.is_empty(),
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(_) => false,
        };
        if unset && let Some(p) = port.get("port").cloned() {
            port.insert("targetPort".to_string(), p);
        }
    }
    let ty = str_of(spec, "type").to_string();
    // `service.ExternallyAccessible`: a ClusterIP Service with externalIPs is one too.
    let has_external_ips = spec.get("externalIPs").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    if ty == "NodePort" || ty == "LoadBalancer" || (ty == "ClusterIP" && has_external_ips) {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if matches!(ty.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if ty != "ExternalName" {
        // Headless Services without a selector may front either family (initIPFamilyFields).
        let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
        let no_selector = spec.get("selector").and_then(Value::as_object).is_none_or(|m| m.is_empty());
        let policy = if headless && no_selector { "RequireDualStack" } else { "SingleStack" };
        set_default(spec, "ipFamilyPolicy", json!(policy));
        let families_empty = spec.get("ipFamilies").and_then(Value::as_array).is_none_or(Vec::is_empty);
        if families_empty {
            spec.insert("ipFamilies".to_string(), json!(["IPv4"]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted(mut svc: Value) -> Value {
        default_service(&mut svc);
        svc
    }

    #[test]
    fn cluster_ip_service_defaults() {
        let svc = defaulted(json!({"spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}));
        let s = &svc["spec"];
        assert_eq!(s["type"], "ClusterIP");
        assert_eq!(s["sessionAffinity"], "None");
        assert_eq!(s["ports"][0]["protocol"], "TCP");
        assert_eq!(s["ports"][0]["targetPort"], 80);
        assert_eq!(s["internalTrafficPolicy"], "Cluster");
        assert_eq!(s["ipFamilyPolicy"], "SingleStack");
        assert_eq!(s["ipFamilies"], json!(["IPv4"]));
        assert!(s.get("externalTrafficPolicy").is_none());
    }

    #[test]
    fn named_target_port_is_kept() {
        let svc = defaulted(json!({"spec": {"ports": [{"port": 80, "targetPort": "http"}]}}));
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http");
    }

    #[test]
    fn node_port_and_load_balancer_get_external_traffic_policy() {
        let svc = defaulted(json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}}));
        assert_eq!(svc["spec"]["externalTrafficPolicy"], "Cluster");
        let svc = defaulted(json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}));
        assert_eq!(svc["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(svc["spec"]["externalTrafficPolicy"], "Cluster");
        let svc = defaulted(json!({"spec": {"externalIPs": ["198.51.100.9"], "ports": [{"port": 80}]}}));
        assert_eq!(svc["spec"]["externalTrafficPolicy"], "Cluster", "ClusterIP with externalIPs");
    }

    #[test]
    fn external_name_gets_no_ip_families() {
        let svc = defaulted(json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}));
        assert!(svc["spec"].get("ipFamilies").is_none());
        assert!(svc["spec"].get("internalTrafficPolicy").is_none());
    }

    #[test]
    fn headless_service_without_selector_requires_dual_stack() {
        let svc = defaulted(json!({"spec": {"clusterIP": "None"}}));
        assert_eq!(svc["spec"]["ipFamilyPolicy"], "RequireDualStack");
        assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv4"]));
        let svc = defaulted(json!({"spec": {"clusterIP": "None", "selector": {"app": "db"}}}));
        assert_eq!(svc["spec"]["ipFamilyPolicy"], "SingleStack");
    }

    #[test]
    fn client_ip_affinity_gets_a_timeout() {
        let svc = defaulted(json!({"spec": {"sessionAffinity": "ClientIP", "ports": [{"port": 80}]}}));
        assert_eq!(svc["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"], 10800);
    }

    #[test]
    fn service_defaults_are_idempotent() {
        let once = defaulted(
            json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP", "ports": [{"port": 80}]}}),
        );
        assert_eq!(defaulted(once.clone()), once);
    }
}
