//! Service validation (`ValidateService`, `validateServicePort`, `ValidateServiceUpdate` in
//! `pkg/apis/core/validation/validation.go`, plus the NodePort range the allocator enforces).

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::Value;

use super::names::{is_dns1123_label, is_dns1123_subdomain, is_valid_port_num};
use super::pod::{validate_port_num_or_name, validate_protocol};
use super::{ErrorList, arr, child, index, q, str_at, str_or_empty};
use crate::FieldError;

const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const SESSION_AFFINITIES: &[&str] = &["ClientIP", "None"];
const TRAFFIC_POLICIES: &[&str] = &["Cluster", "Local"];
const IP_FAMILY_POLICIES: &[&str] = &["SingleStack", "PreferDualStack", "RequireDualStack"];
const IP_FAMILIES: &[&str] = &["IPv4", "IPv6"];

/// The default `--service-node-port-range`.
pub const NODE_PORT_RANGE: (i64, i64) = (30000, 32767);

const INVALID_IP: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

/// `ValidateService`.
pub fn validate_service(obj: &Value) -> ErrorList {
    static NULL: Value = Value::Null;
    let spec = obj.get("spec").unwrap_or(&NULL);
    let mut errs = Vec::new();
    let ty = str_or_empty(spec, "type");
    let cluster_ip = str_or_empty(spec, "clusterIP");
    let headless = cluster_ip == "None";
    let ports = arr(spec, "ports");
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    match ty {
        "" => errs.push(FieldError::required("spec.type", "")),
        t if !SERVICE_TYPES.contains(&t) => errs.push(FieldError::not_supported("spec.type", q(t), SERVICE_TYPES)),
        "LoadBalancer" | "NodePort" if headless => errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            q(cluster_ip),
            format!("may not be set to 'None' for {ty} services"),
        )),
        "ExternalName" => {
            // The Service has no endpoints to select: nothing would ever use the selector.
            if spec.get("selector").and_then(Value::as_object).is_some_and(|s| !s.is_empty()) {
                errs.push(FieldError::forbidden("spec.selector", "may not be set for ExternalName services"));
            }
            if !cluster_ip.is_empty() || !arr(spec, "clusterIPs").is_empty() {
                errs.push(FieldError::forbidden("spec.clusterIPs", "may not be set for ExternalName services"));
            }
            if !arr(spec, "ipFamilies").is_empty() {
                errs.push(FieldError::forbidden("spec.ipFamilies", "may not be set for ExternalName services"));
            }
            if spec.get("ipFamilyPolicy").is_some_and(|v| !v.is_null()) {
                errs.push(FieldError::forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"));
            }
            let cname = str_or_empty(spec, "externalName");
            let cname = cname.strip_suffix('.').unwrap_or(cname);
            if cname.is_empty() {
                errs.push(FieldError::required("spec.externalName", ""));
            } else {
                for msg in is_dns1123_subdomain(cname) {
                    errs.push(FieldError::invalid("spec.externalName", q(cname), msg));
                }
            }
        }
        _ => {}
    }
    let mut names = HashSet::new();
    let mut port_keys = HashSet::new();
    let mut node_ports = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index("spec.ports", i);
        let name = str_or_empty(port, "name");
        if ports.len() > 1 && name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        } else if !name.is_empty() {
            for msg in is_dns1123_label(name) {
                errs.push(FieldError::invalid(child(&p, "name"), q(name), msg));
            }
            if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(child(&p, "name"), q(name)));
            }
        }
        let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
        for msg in is_valid_port_num(number) {
            errs.push(FieldError::invalid(child(&p, "port"), number, msg));
        }
        errs.extend(validate_protocol(port, &child(&p, "protocol")));
        if port.get("targetPort").is_some_and(|v| !v.is_null()) {
            errs.extend(validate_port_num_or_name(port.get("targetPort"), &child(&p, "targetPort")));
        }
        let protocol = str_or_empty(port, "protocol");
        if !port_keys.insert((number, protocol.to_string())) {
            errs.push(FieldError::duplicate(&p, format!("{{port: {number}, protocol: {}}}", q(protocol))));
        }
        if let Some(np) = port.get("nodePort").and_then(Value::as_i64).filter(|n| *n != 0) {
            let npp = child(&p, "nodePort");
            if ty == "ClusterIP" {
                errs.push(FieldError::forbidden(npp, "may not be used when `type` is 'ClusterIP'"));
            } else if ty == "ExternalName" {
                errs.push(FieldError::forbidden(npp, "may not be used when `type` is 'ExternalName'"));
            } else if !(NODE_PORT_RANGE.0..=NODE_PORT_RANGE.1).contains(&np) {
                errs.push(FieldError::invalid(
                    npp,
                    np,
                    format!(
                        "provided port is not in the valid range. The range of valid ports is {}-{}",
                        NODE_PORT_RANGE.0, NODE_PORT_RANGE.1
                    ),
                ));
            } else if !node_ports.insert((np, protocol.to_string())) {
                errs.push(FieldError::duplicate(npp, np));
            }
        }
    }
    match str_at(spec, "sessionAffinity") {
        None | Some("") => errs.push(FieldError::required("spec.sessionAffinity", "")),
        Some(a) if !SESSION_AFFINITIES.contains(&a) => {
            errs.push(FieldError::not_supported("spec.sessionAffinity", q(a), SESSION_AFFINITIES))
        }
        Some("ClientIP") => {
            let t = spec.pointer("/sessionAffinityConfig/clientIP/timeoutSeconds").and_then(Value::as_i64);
            match t {
                Some(t) if t > 0 && t <= 86400 => {}
                Some(t) => errs.push(FieldError::invalid(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    t,
                    "must be greater than 0 and less than 86400",
                )),
                None => errs.push(FieldError::required("spec.sessionAffinityConfig.clientIP.timeoutSeconds", "")),
            }
        }
        Some(_) => {
            if spec.get("sessionAffinityConfig").is_some_and(|v| !v.is_null()) {
                errs.push(FieldError::invalid(
                    "spec.sessionAffinityConfig",
                    "{...}",
                    "must not be set when session affinity is None",
                ));
            }
        }
    }
    if !cluster_ip.is_empty() && !headless && cluster_ip.parse::<IpAddr>().is_err() {
        errs.push(FieldError::invalid("spec.clusterIPs[0]", q(cluster_ip), INVALID_IP));
    }
    for (i, ip) in arr(spec, "externalIPs").iter().enumerate() {
        let ip = ip.as_str().unwrap_or("");
        if ip.parse::<IpAddr>().is_err() {
            errs.push(FieldError::invalid(index("spec.externalIPs", i), q(ip), INVALID_IP));
        }
    }
    let externally_accessible =
        ty == "LoadBalancer" || ty == "NodePort" || (ty == "ClusterIP" && !arr(spec, "externalIPs").is_empty());
    match str_at(spec, "externalTrafficPolicy") {
        Some(p) if !p.is_empty() && !externally_accessible => errs.push(FieldError::invalid(
            "spec.externalTrafficPolicy",
            q(p),
            "may only be set for externally-accessible services",
        )),
        Some(p) if !p.is_empty() && !TRAFFIC_POLICIES.contains(&p) => {
            errs.push(FieldError::not_supported("spec.externalTrafficPolicy", q(p), TRAFFIC_POLICIES))
        }
        None | Some("") if externally_accessible => errs.push(FieldError::required("spec.externalTrafficPolicy", "")),
        _ => {}
    }
    if let Some(p) = str_at(spec, "internalTrafficPolicy")
        && !TRAFFIC_POLICIES.contains(&p)
    {
        errs.push(FieldError::not_supported("spec.internalTrafficPolicy", q(p), TRAFFIC_POLICIES));
    }
    if let Some(p) = str_at(spec, "ipFamilyPolicy")
        && !IP_FAMILY_POLICIES.contains(&p)
    {
        errs.push(FieldError::not_supported("spec.ipFamilyPolicy", q(p), IP_FAMILY_POLICIES));
    }
    for (i, f) in arr(spec, "ipFamilies").iter().enumerate() {
        let f = f.as_str().unwrap_or("");
        if !IP_FAMILIES.contains(&f) {
            errs.push(FieldError::not_supported(index("spec.ipFamilies", i), q(f), IP_FAMILIES));
        }
    }
    errs.extend(super::meta::validate_labels(spec.get("selector"), "spec.selector"));
    errs
}

/// `ValidateServiceUpdate`: a set clusterIP may not change (unless the Service was or becomes
/// ExternalName, which releases it).
pub fn validate_service_update(obj: &Value, old: &Value) -> ErrorList {
    let mut errs = validate_service(obj);
    let new_ip = obj.pointer("/spec/clusterIP").and_then(Value::as_str).unwrap_or("");
    let old_ip = old.pointer("/spec/clusterIP").and_then(Value::as_str).unwrap_or("");
    let external = |o: &Value| o.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName");
    if !external(obj) && !external(old) && !old_ip.is_empty() && !new_ip.is_empty() && new_ip != old_ip {
        errs.push(FieldError::invalid("spec.clusterIP", q(new_ip), super::FIELD_IMMUTABLE));
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::defaults::service::default_service;
    use crate::validation::test_util::assert_case;

    fn svc(spec: Value) -> Value {
        let mut s = json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec});
        default_service(&mut s);
        s
    }

    fn errors(o: &Value) -> Vec<String> {
        validate_service(o).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn valid_services_have_no_errors() {
        for spec in [
            json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}),
            json!({"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "dns", "port": 53, "protocol": "UDP"}]}),
            json!({"clusterIP": "None", "selector": {"app": "db"}}),
            json!({"type": "ExternalName", "externalName": "example.com."}),
            json!({"type": "LoadBalancer", "ports": [{"port": 443, "targetPort": "https"}]}),
        ] {
            let s = svc(spec.clone());
            assert_eq!(errors(&s), Vec::<String>::new(), "{spec}");
        }
    }

    #[test]
    fn service_rules() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("ports required", json!({"selector": {"app": "x"}}), "spec.ports: Required value"),
            (
                "port in range",
                json!({"ports": [{"port": 70000}]}),
                "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
            ),
            (
                "names required with several ports",
                json!({"ports": [{"port": 80}, {"port": 443, "name": "https"}]}),
                "spec.ports[0].name: Required value",
            ),
            (
                "port names unique",
                json!({"ports": [{"port": 80, "name": "web"}, {"port": 81, "name": "web"}]}),
                "spec.ports[1].name: Duplicate value: \"web\"",
            ),
            (
                "port name is a DNS label",
                json!({"ports": [{"port": 80, "name": "Web"}]}),
                "spec.ports[0].name: Invalid value: \"Web\": a lowercase RFC 1123 label",
            ),
            (
                "protocol values",
                json!({"ports": [{"port": 80, "protocol": "HTTP"}]}),
                "spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ),
            (
                "type values",
                json!({"type": "Internal", "ports": [{"port": 80}]}),
                "spec.type: Unsupported value: \"Internal\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            ),
            (
                "nodePort range",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}),
                "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767",
            ),
            (
                "nodePort forbidden for ClusterIP",
                json!({"ports": [{"port": 80, "nodePort": 30080}]}),
                "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
            ),
            ("externalName required", json!({"type": "ExternalName"}), "spec.externalName: Required value"),
            (
                "ExternalName forbids a selector",
                json!({"type": "ExternalName", "externalName": "a.b", "selector": {"app": "x"}}),
                "spec.selector: Forbidden: may not be set for ExternalName services",
            ),
            (
                "externalName is a DNS name",
                json!({"type": "ExternalName", "externalName": "not a host"}),
                "spec.externalName: Invalid value: \"not a host\": a lowercase RFC 1123 subdomain",
            ),
            (
                "ExternalName forbids clusterIP",
                json!({"type": "ExternalName", "externalName": "a.b", "clusterIP": "10.0.0.1"}),
                "spec.clusterIPs: Forbidden: may not be set for ExternalName services",
            ),
            (
                "clusterIP must be an IP",
                json!({"clusterIP": "10.0.0", "ports": [{"port": 80}]}),
                "spec.clusterIPs[0]: Invalid value: \"10.0.0\": must be a valid IP address",
            ),
            ("targetPort in range", json!({"ports": [{"port": 80, "targetPort": 0}]}), ""),
            (
                "targetPort name syntax",
                json!({"ports": [{"port": 80, "targetPort": "Http_1"}]}),
                "spec.ports[0].targetPort: Invalid value: \"Http_1\"",
            ),
            (
                "sessionAffinity values",
                json!({"sessionAffinity": "Cookie", "ports": [{"port": 80}]}),
                "spec.sessionAffinity: Unsupported value: \"Cookie\": supported values: \"ClientIP\", \"None\"",
            ),
            (
                "externalTrafficPolicy only when externally accessible",
                json!({"externalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
                "spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set for externally-accessible services",
            ),
            (
                "selector labels valid",
                json!({"selector": {"app": "a b"}, "ports": [{"port": 80}]}),
                "spec.selector: Invalid value: \"a b\"",
            ),
            (
                "duplicate port and protocol",
                json!({"ports": [{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]}),
                "spec.ports[1]: Duplicate value:",
            ),
        ];
        for (name, spec, want) in cases {
            // targetPort 0 is defaulted to the port, so it is valid after defaulting.
            assert_case(name, &errors(&svc(spec)), want);
        }
    }

    #[test]
    fn cluster_ip_is_immutable_once_set() {
        let old = svc(json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}));
        let mut new = old.clone();
        new["spec"]["clusterIP"] = json!("10.96.0.11");
        let errs: Vec<String> = validate_service_update(&new, &old).iter().map(ToString::to_string).collect();
        assert_eq!(errs, vec!["spec.clusterIP: Invalid value: \"10.96.0.11\": field is immutable"]);
        assert!(validate_service_update(&old, &old).is_empty());
    }
}
