//! Validation of the smaller API groups: networking (Ingress, NetworkPolicy), policy
//! (PodDisruptionBudget), RBAC, storage (StorageClass), apiextensions (CustomResourceDefinition),
//! scheduling (PriorityClass), coordination (Lease), discovery (EndpointSlice).

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::Value;

use super::core::is_valid_cidr;
use super::names::{
    is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_path_segment_name, is_valid_port_num,
};
use super::pod::{validate_port_num_or_name, validate_protocol};
use super::selector::validate_label_selector;
use super::{ErrorList, arr, child, index, q, render, str_at, str_or_empty, validate_immutable, validate_nonnegative};
use crate::FieldError;

// ---- networking.k8s.io ----

const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];

/// A host may be a DNS subdomain or a `*.` wildcard of one.
fn validate_host(host: &str, path: &str) -> ErrorList {
    let name = host.strip_prefix("*.").unwrap_or(host);
    if host.parse::<IpAddr>().is_ok() {
        return vec![FieldError::invalid(path, q(host), "must be a DNS name, not an IP address")];
    }
    is_dns1123_subdomain(name).into_iter().map(|m| FieldError::invalid(path, q(host), m)).collect()
}

fn validate_ingress_backend(b: &Value, path: &str) -> ErrorList {
    let mut errs = Vec::new();
    let service = b.get("service").filter(|v| !v.is_null());
    let resource = b.get("resource").filter(|v| !v.is_null());
    match (service, resource) {
        (Some(_), Some(_)) => {
            errs.push(FieldError::invalid(path, render(b), "cannot set both resource and service backends"))
        }
        (None, None) => errs.push(FieldError::invalid(path, render(b), "resource or service backend is required")),
        (Some(svc), None) => {
            let name = str_or_empty(svc, "name");
            if name.is_empty() {
                errs.push(FieldError::required(child(path, "service.name"), ""));
            } else {
                for msg in super::names::is_dns1035_label(name) {
                    errs.push(FieldError::invalid(child(path, "service.name"), q(name), msg));
                }
            }
            let port = svc.get("port");
            let pname = port.map(|p| str_or_empty(p, "name")).unwrap_or("");
            let pnum = port.and_then(|p| p.get("number")).and_then(Value::as_i64).unwrap_or(0);
            let pp = child(path, "service.port");
            match (pname.is_empty(), pnum == 0) {
                (false, false) => errs.push(FieldError::invalid(
                    &pp,
                    port.map(render).unwrap_or_default(),
                    "cannot set both port name & port number",
                )),
                (true, true) => errs.push(FieldError::invalid(
                    &pp,
                    port.map(render).unwrap_or_default(),
                    "port name or number is required",
                )),
                (false, true) => {
                    errs.extend(validate_port_num_or_name(Some(&Value::String(pname.to_string())), &child(&pp, "name")))
                }
                (true, false) => {
                    for msg in is_valid_port_num(pnum) {
                        errs.push(FieldError::invalid(child(&pp, "number"), pnum, msg));
                    }
                }
            }
        }
        (None, Some(r)) => {
            if str_or_empty(r, "kind").is_empty() {
                errs.push(FieldError::required(child(path, "resource.kind"), ""));
            }
            if str_or_empty(r, "name").is_empty() {
                errs.push(FieldError::required(child(path, "resource.name"), ""));
            }
        }
    }
    errs
}

/// `ValidateIngressSpec`: a default backend or rules; hosts are DNS names; paths have a
/// pathType and are absolute for Exact/Prefix; backends name a service port or a resource.
pub fn validate_ingress(obj: &Value) -> ErrorList {
    static NULL: Value = Value::Null;
    let spec = obj.get("spec").unwrap_or(&NULL);
    let mut errs = Vec::new();
    let rules = arr(spec, "rules");
    let default_backend = spec.get("defaultBackend").filter(|v| !v.is_null());
    if rules.is_empty() && default_backend.is_none() {
        errs.push(FieldError::invalid("spec", render(spec), "either `defaultBackend` or `rules` must be specified"));
    }
    if let Some(b) = default_backend {
        errs.extend(validate_ingress_backend(b, "spec.defaultBackend"));
    }
    for (i, rule) in rules.iter().enumerate() {
        let rp = index("spec.rules", i);
        let host = str_or_empty(rule, "host");
        if !host.is_empty() {
            errs.extend(validate_host(host, &child(&rp, "host")));
        }
        let Some(http) = rule.get("http").filter(|v| !v.is_null()) else {
            continue;
        };
        let paths = arr(http, "paths");
        if paths.is_empty() {
            errs.push(FieldError::required(child(&rp, "http.paths"), ""));
        }
        for (j, p) in paths.iter().enumerate() {
            let pp = index(&child(&rp, "http.paths"), j);
            let path_type = str_or_empty(p, "pathType");
            let path = str_or_empty(p, "path");
            match path_type {
                "" => errs.push(FieldError::required(child(&pp, "pathType"), "pathType must be specified")),
                t if !PATH_TYPES.contains(&t) => {
                    errs.push(FieldError::not_supported(child(&pp, "pathType"), q(t), PATH_TYPES))
                }
                "Exact" | "Prefix" => {
                    if !path.starts_with('/') {
                        errs.push(FieldError::invalid(child(&pp, "path"), q(path), "must be an absolute path"));
                    } else if path.contains("//") {
                        errs.push(FieldError::invalid(child(&pp, "path"), q(path), "must not contain '//'"));
                    }
                }
                _ => {
                    if !path.is_empty() && !path.starts_with('/') {
                        errs.push(FieldError::invalid(child(&pp, "path"), q(path), "must be an absolute path"));
                    }
                }
            }
            match p.get("backend").filter(|v| !v.is_null()) {
                Some(b) => errs.extend(validate_ingress_backend(b, &child(&pp, "backend"))),
                None => errs.push(FieldError::required(child(&pp, "backend"), "")),
            }
        }
    }
    for (i, tls) in arr(spec, "tls").iter().enumerate() {
        for (j, h) in arr(tls, "hosts").iter().enumerate() {
            errs.extend(validate_host(h.as_str().unwrap_or(""), &index(&child(&index("spec.tls", i), "hosts"), j)));
        }
    }
    if let Some(class) = str_at(spec, "ingressClassName") {
        for msg in is_dns1123_subdomain(class) {
            errs.push(FieldError::invalid("spec.ingressClassName", q(class), msg));
        }
    }
    errs
}

/// `ValidateIngressClass`: `spec.controller` is a domain-prefixed path of at most 250
/// characters.
pub fn validate_ingress_class(obj: &Value) -> ErrorList {
    let controller = obj.pointer("/spec/controller").and_then(Value::as_str).unwrap_or("");
    let path = "spec.controller";
    let mut errs = Vec::new();
    if controller.len() > 250 {
        errs.push(FieldError {
            kind: crate::FieldErrorKind::TooLong,
            field: path.to_string(),
            value: None,
            detail: "may not be more than 250 bytes".to_string(),
        });
    }
    if controller.is_empty() {
        errs.push(FieldError::required(path, ""));
        return errs;
    }
    match controller.split_once('/') {
        Some((host, rest)) if !host.is_empty() && !rest.is_empty() => {
            for msg in is_dns1123_subdomain(host) {
                errs.push(FieldError::invalid(path, q(controller), msg));
            }
            let ok = rest.chars().all(|c| c.is_ascii_alphanumeric() || "/-._~%!$&'()*+,;=:".contains(c));
            if !ok {
                errs.push(FieldError::invalid(
                    path,
                    q(controller),
                    super::names::regex_error("Invalid path", r"^[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$", &[]),
                ));
            }
        }
        _ => errs.push(FieldError::invalid(
            path,
            q(controller),
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        )),
    }
    errs
}

/// `ValidateIngressClassUpdate`: the controller may not change.
pub fn validate_ingress_class_update(obj: &Value, old: &Value) -> ErrorList {
    let mut errs = validate_ingress_class(obj);
    errs.extend(validate_immutable(
        obj.pointer("/spec/controller"),
        old.pointer("/spec/controller"),
        "spec.controller",
    ));
    errs
}

/// `ValidateNetworkPolicySpec`: selectors, ports, peers, policyTypes.
pub fn validate_network_policy(obj: &Value) -> ErrorList {
    static NULL: Value = Value::Null;
    let spec = obj.get("spec").unwrap_or(&NULL);
    let mut errs = validate_label_selector(spec.get("podSelector").unwrap_or(&NULL), "spec.podSelector");
    for (dir, peers_key) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in arr(spec, dir).iter().enumerate() {
            let rp = index(&child("spec", dir), i);
            for (j, port) in arr(rule, "ports").iter().enumerate() {
                let pp = index(&child(&rp, "ports"), j);
                if port.get("protocol").is_some() {
                    errs.extend(validate_protocol(port, &child(&pp, "protocol")));
                }
                if let Some(p) = port.get("port").filter(|v| !v.is_null()) {
                    errs.extend(validate_port_num_or_name(Some(p), &child(&pp, "port")));
                    if let (Some(start), Some(end)) = (p.as_i64(), port.get("endPort").and_then(Value::as_i64))
                        && end < start
                    {
                        errs.push(FieldError::invalid(
                            child(&pp, "endPort"),
                            end,
                            "must be greater than or equal to `port`",
                        ));
                    }
                }
            }
            for (j, peer) in arr(rule, peers_key).iter().enumerate() {
                let pp = index(&child(&rp, peers_key), j);
                let pod = peer.get("podSelector").filter(|v| !v.is_null());
                let ns = peer.get("namespaceSelector").filter(|v| !v.is_null());
                let ip = peer.get("ipBlock").filter(|v| !v.is_null());
                if pod.is_none() && ns.is_none() && ip.is_none() {
                    errs.push(FieldError::required(&pp, "must specify a peer"));
                } else if ip.is_some() && (pod.is_some() || ns.is_some()) {
                    errs.push(FieldError::forbidden(&pp, "may not specify more than 1 peer type"));
                }
                if let Some(s) = pod {
                    errs.extend(validate_label_selector(s, &child(&pp, "podSelector")));
                }
                if let Some(s) = ns {
                    errs.extend(validate_label_selector(s, &child(&pp, "namespaceSelector")));
                }
                if let Some(b) = ip {
                    let cidr = str_or_empty(b, "cidr");
                    if cidr.is_empty() {
                        errs.push(FieldError::required(child(&pp, "ipBlock.cidr"), ""));
                    } else if !is_valid_cidr(cidr) {
                        errs.push(FieldError::invalid(
                            child(&pp, "ipBlock.cidr"),
                            q(cidr),
                            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                        ));
                    }
                    for (k, ex) in arr(b, "except").iter().enumerate() {
                        let ex = ex.as_str().unwrap_or("");
                        if !is_valid_cidr(ex) {
                            errs.push(FieldError::invalid(
                                index(&child(&pp, "ipBlock.except"), k),
                                q(ex),
                                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                            ));
                        }
                    }
                }
            }
        }
    }
    let types = arr(spec, "policyTypes");
    for (i, t) in types.iter().enumerate() {
        let t = t.as_str().unwrap_or("");
        if t != "Ingress" && t != "Egress" {
            errs.push(FieldError::not_supported(index("spec.policyTypes", i), q(t), &["Ingress", "Egress"]));
        }
    }
    if types.len() > 2 {
        errs.push(FieldError::invalid(
            "spec.policyTypes",
            render(&spec["policyTypes"]),
            "may not specify more than two policyTypes",
        ));
    }
    errs
}

// ---- policy ----

/// `ValidatePodDisruptionBudgetSpec`: minAvailable xor maxUnavailable, each a non-negative
/// integer or a percentage up to 100%; valid selector.
pub fn validate_pod_disruption_budget(obj: &Value) -> ErrorList {
    static NULL: Value = Value::Null;
    let spec = obj.get("spec").unwrap_or(&NULL);
    let mut errs = Vec::new();
    let min = spec.get("minAvailable").filter(|v| !v.is_null());
    let max = spec.get("maxUnavailable").filter(|v| !v.is_null());
    if min.is_some() && max.is_some() {
        errs.push(FieldError::invalid("spec", render(spec), "minAvailable and maxUnavailable cannot be both set"));
    }
    for (field, v) in [("minAvailable", min), ("maxUnavailable", max)] {
        let p = child("spec", field);
        match v {
            Some(Value::String(s)) => match s.strip_suffix('%').and_then(|n| n.parse::<i64>().ok()) {
                Some(n) if n < 0 => errs.push(FieldError::invalid(&p, q(s), super::IS_NEGATIVE)),
                Some(n) if n > 100 => errs.push(FieldError::invalid(&p, q(s), "must not be greater than 100%")),
                Some(_) => {}
                None => errs.push(FieldError::invalid(&p, q(s), "must be an integer or percentage (e.g '5%')")),
            },
            Some(Value::Number(n)) if n.as_i64().is_some_and(|n| n < 0) => {
                errs.push(FieldError::invalid(&p, n, super::IS_NEGATIVE))
            }
            _ => {}
        }
    }
    if let Some(sel) = spec.get("selector").filter(|v| !v.is_null()) {
        errs.extend(validate_label_selector(sel, "spec.selector"));
    }
    if let Some(p) = str_at(spec, "unhealthyPodEvictionPolicy")
        && p != "IfHealthyBudget"
        && p != "AlwaysAllow"
    {
        errs.push(FieldError::not_supported(
            "spec.unhealthyPodEvictionPolicy",
            q(p),
            &["AlwaysAllow", "IfHealthyBudget"],
        ));
    }
    errs
}

// ---- rbac.authorization.k8s.io ----

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn validate_policy_rules(obj: &Value, namespaced: bool) -> ErrorList {
    let mut errs = Vec::new();
    for (i, rule) in arr(obj, "rules").iter().enumerate() {
        let p = index("rules", i);
        if arr(rule, "verbs").is_empty() {
            errs.push(FieldError::required(child(&p, "verbs"), "verbs must contain at least one value"));
        }
        let urls = arr(rule, "nonResourceURLs");
        if !urls.is_empty() {
            if namespaced {
                errs.push(FieldError::invalid(
                    child(&p, "nonResourceURLs"),
                    render(&rule["nonResourceURLs"]),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !arr(rule, "apiGroups").is_empty()
                || !arr(rule, "resources").is_empty()
                || !arr(rule, "resourceNames").is_empty()
            {
                errs.push(FieldError::invalid(
                    child(&p, "nonResourceURLs"),
                    render(&rule["nonResourceURLs"]),
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if arr(rule, "apiGroups").is_empty() {
            errs.push(FieldError::required(
                child(&p, "apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if arr(rule, "resources").is_empty() {
            errs.push(FieldError::required(child(&p, "resources"), "resource rules must supply at least one resource"));
        }
    }
    errs
}

/// `ValidateRole`: rules need verbs, API groups and resources; no non-resource URLs.
pub fn validate_role(obj: &Value) -> ErrorList {
    validate_policy_rules(obj, true)
}

/// `ValidateClusterRole`: as Role, non-resource URLs allowed; an aggregating ClusterRole's
/// rules are filled by the controller.
pub fn validate_cluster_role(obj: &Value) -> ErrorList {
    let mut errs = validate_policy_rules(obj, false);
    if let Some(agg) = obj.get("aggregationRule").filter(|v| !v.is_null()) {
        let sels = arr(agg, "clusterRoleSelectors");
        if sels.is_empty() {
            errs.push(FieldError::required(
                "aggregationRule.clusterRoleSelectors",
                "at least one clusterRoleSelector required if aggregationRule is non-nil",
            ));
        }
        for (i, s) in sels.iter().enumerate() {
            errs.extend(validate_label_selector(s, &index("aggregationRule.clusterRoleSelectors", i)));
        }
    }
    errs
}

fn validate_binding(obj: &Value, role_kinds: &[&str], namespaced: bool) -> ErrorList {
    static NULL: Value = Value::Null;
    let mut errs = Vec::new();
    let role_ref = obj.get("roleRef").unwrap_or(&NULL);
    let group = str_or_empty(role_ref, "apiGroup");
    if group != RBAC_GROUP {
        errs.push(FieldError::not_supported("roleRef.apiGroup", q(group), &[RBAC_GROUP]));
    }
    let kind = str_or_empty(role_ref, "kind");
    if !role_kinds.contains(&kind) {
        errs.push(FieldError::not_supported("roleRef.kind", q(kind), role_kinds));
    }
    let name = str_or_empty(role_ref, "name");
    if name.is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    } else {
        for msg in is_valid_path_segment_name(name, false) {
            errs.push(FieldError::invalid("roleRef.name", q(name), msg));
        }
    }
    for (i, s) in arr(obj, "subjects").iter().enumerate() {
        let p = index("subjects", i);
        let name = str_or_empty(s, "name");
        if name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        }
        let group = str_or_empty(s, "apiGroup");
        match str_or_empty(s, "kind") {
            "ServiceAccount" => {
                for msg in super::names::name_is_dns_subdomain(name, false).into_iter().filter(|_| !name.is_empty()) {
                    errs.push(FieldError::invalid(child(&p, "name"), q(name), msg));
                }
                if !group.is_empty() {
                    errs.push(FieldError::not_supported(child(&p, "apiGroup"), q(group), &[""]));
                }
                if !namespaced && str_or_empty(s, "namespace").is_empty() {
                    errs.push(FieldError::required(child(&p, "namespace"), ""));
                }
            }
            "User" | "Group" => {
                if group != RBAC_GROUP {
                    errs.push(FieldError::not_supported(child(&p, "apiGroup"), q(group), &[RBAC_GROUP]));
                }
            }
            other => {
                errs.push(FieldError::not_supported(child(&p, "kind"), q(other), &["ServiceAccount", "User", "Group"]))
            }
        }
    }
    errs
}

/// `ValidateRoleBinding`: roleRef to a Role or ClusterRole; subjects well formed.
pub fn validate_role_binding(obj: &Value) -> ErrorList {
    validate_binding(obj, &["Role", "ClusterRole"], true)
}

/// `ValidateClusterRoleBinding`: roleRef to a ClusterRole; service accounts need a namespace.
pub fn validate_cluster_role_binding(obj: &Value) -> ErrorList {
    validate_binding(obj, &["ClusterRole"], false)
}

fn role_ref_immutable(obj: &Value, old: &Value) -> ErrorList {
    if obj.get("roleRef") != old.get("roleRef") {
        vec![FieldError::invalid(
            "roleRef",
            render(obj.get("roleRef").unwrap_or(&Value::Null)),
            "cannot change roleRef",
        )]
    } else {
        Vec::new()
    }
}

/// RoleBinding updates: roleRef is immutable.
pub fn validate_role_binding_update(obj: &Value, old: &Value) -> ErrorList {
    let mut errs = validate_role_binding(obj);
    errs.extend(role_ref_immutable(obj, old));
    errs
}

/// ClusterRoleBinding updates: roleRef is immutable.
pub fn validate_cluster_role_binding_update(obj: &Value, old: &Value) -> ErrorList {
    let mut errs = validate_cluster_role_binding(obj);
    errs.extend(role_ref_immutable(obj, old));
    errs
}

// ---- storage.k8s.io ----

/// `ValidateStorageClass`: provisioner required and qualified; reclaim policy Delete or
/// Retain; binding mode Immediate or WaitForFirstConsumer.
pub fn validate_storage_class(obj: &Value) -> ErrorList {
    let mut errs = Vec::new();
    let prov = str_or_empty(obj, "provisioner");
    if prov.is_empty() {
        errs.push(FieldError::required("provisioner", ""));
    } else {
        for msg in is_qualified_name(&prov.to_lowercase()) {
            errs.push(FieldError::invalid("provisioner", q(prov), msg));
        }
    }
    if let Some(p) = str_at(obj, "reclaimPolicy")
        && p != "Delete"
        && p != "Retain"
    {
        errs.push(FieldError::not_supported("reclaimPolicy", q(p), &["Delete", "Retain"]));
    }
    if let Some(m) = str_at(obj, "volumeBindingMode")
        && m != "Immediate"
        && m != "WaitForFirstConsumer"
    {
        errs.push(FieldError::not_supported("volumeBindingMode", q(m), &["Immediate", "WaitForFirstConsumer"]));
    }
    errs
}

// ---- apiextensions.k8s.io ----

/// `ValidateCustomResourceDefinition` (structure, not schemas): name is `plural.group`; group
/// has a dot; names; scope; versions unique, one stored, at least one served.
pub fn validate_crd(obj: &Value) -> ErrorList {
    static NULL: Value = Value::Null;
    let spec = obj.get("spec").unwrap_or(&NULL);
    let mut errs = Vec::new();
    let group = str_or_empty(spec, "group");
    let plural = spec.pointer("/names/plural").and_then(Value::as_str).unwrap_or("");
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    if name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid("metadata.name", q(name), "must be spec.names.plural+\".\"+spec.group"));
    }
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else {
        for msg in is_dns1123_subdomain(group) {
            errs.push(FieldError::invalid("spec.group", q(group), msg));
        }
        if !group.contains('.') {
            errs.push(FieldError::invalid("spec.group", q(group), "should be a domain with at least one dot"));
        }
    }
    match str_or_empty(spec, "scope") {
        "Cluster" | "Namespaced" => {}
        "" => errs.push(FieldError::required("spec.scope", "")),
        s => errs.push(FieldError::not_supported("spec.scope", q(s), &["Cluster", "Namespaced"])),
    }
    for field in ["plural", "singular"] {
        let v = spec.pointer(&format!("/names/{field}")).and_then(Value::as_str).unwrap_or("");
        let p = child("spec.names", field);
        if v.is_empty() && field == "plural" {
            errs.push(FieldError::required(&p, ""));
        } else if !v.is_empty() {
            for msg in is_dns1123_label(v) {
                errs.push(FieldError::invalid(&p, q(v), msg));
            }
        }
    }
    for field in ["kind", "listKind"] {
        let v = spec.pointer(&format!("/names/{field}")).and_then(Value::as_str).unwrap_or("");
        if v.is_empty() {
            if field == "kind" {
                errs.push(FieldError::required("spec.names.kind", ""));
            }
        } else if !v.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            || !v.chars().all(|c| c.is_ascii_alphanumeric())
        {
            errs.push(FieldError::invalid(
                child("spec.names", field),
                q(v),
                "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?",
            ));
        }
    }
    let versions = arr(spec, "versions");
    if versions.is_empty() {
        errs.push(FieldError::invalid(
            "spec.versions",
            "[]",
            "must have exactly one version marked as storage version",
        ));
    } else {
        let mut seen = HashSet::new();
        for (i, v) in versions.iter().enumerate() {
            let vn = str_or_empty(v, "name");
            let p = child(&index("spec.versions", i), "name");
            for msg in is_dns1123_label(vn) {
                errs.push(FieldError::invalid(&p, q(vn), msg));
            }
            if !seen.insert(vn) {
                errs.push(FieldError::duplicate(&p, q(vn)));
            }
        }
        let stored = versions.iter().filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true)).count();
        if stored != 1 {
            errs.push(FieldError::invalid(
                "spec.versions",
                render(&spec["versions"]),
                "must have exactly one version marked as storage version",
            ));
        }
        if !versions.iter().any(|v| v.get("served").and_then(Value::as_bool) == Some(true)) {
            errs.push(FieldError::invalid(
                "spec.versions",
                render(&spec["versions"]),
                "must have at least one version marked as served",
            ));
        }
    }
    errs
}

// ---- scheduling.k8s.io ----

/// `HighestUserDefinablePriority`.
pub const HIGHEST_USER_DEFINABLE_PRIORITY: i64 = 1_000_000_000;

/// `ValidatePriorityClass`: user classes at most 1e9 (the two `system-` classes may be
/// higher); preemption policy values.
pub fn validate_priority_class(obj: &Value) -> ErrorList {
    let mut errs = Vec::new();
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let value = obj.get("value").and_then(Value::as_i64).unwrap_or(0);
    let system = name == "system-node-critical" || name == "system-cluster-critical";
    if !system && value > HIGHEST_USER_DEFINABLE_PRIORITY {
        errs.push(FieldError::forbidden(
            "value",
            format!("maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"),
        ));
    }
    if let Some(p) = str_at(obj, "preemptionPolicy")
        && p != "PreemptLowerPriority"
        && p != "Never"
    {
        errs.push(FieldError::not_supported("preemptionPolicy", q(p), &["Never", "PreemptLowerPriority"]));
    }
    errs
}

/// `ValidatePriorityClassUpdate`: value and preemptionPolicy may not change.
pub fn validate_priority_class_update(obj: &Value, old: &Value) -> ErrorList {
    let mut errs = validate_priority_class(obj);
    if obj.get("value") != old.get("value") {
        errs.push(FieldError::forbidden("value", "may not be changed in an update."));
    }
    errs.extend(validate_immutable(obj.get("preemptionPolicy"), old.get("preemptionPolicy"), "preemptionPolicy"));
    errs
}

// ---- coordination.k8s.io ----

/// `ValidateLeaseSpec`: positive duration, non-negative transitions.
pub fn validate_lease(obj: &Value) -> ErrorList {
    static NULL: Value = Value::Null;
    let spec = obj.get("spec").unwrap_or(&NULL);
    let mut errs = Vec::new();
    if let Some(d) = spec.get("leaseDurationSeconds").and_then(Value::as_i64)
        && d <= 0
    {
        errs.push(FieldError::invalid("spec.leaseDurationSeconds", d, "must be greater than 0"));
    }
    errs.extend(validate_nonnegative(spec, "leaseTransitions", "spec.leaseTransitions"));
    errs
}

// ---- discovery.k8s.io ----

/// `ValidateEndpointSlice`: address type, 1-100 addresses of that type per endpoint, ports.
pub fn validate_endpoint_slice(obj: &Value) -> ErrorList {
    let mut errs = Vec::new();
    let address_type = str_or_empty(obj, "addressType");
    match address_type {
        "IPv4" | "IPv6" | "FQDN" => {}
        "" => errs.push(FieldError::required("addressType", "")),
        t => errs.push(FieldError::not_supported("addressType", q(t), &["FQDN", "IPv4", "IPv6"])),
    }
    for (i, ep) in arr(obj, "endpoints").iter().enumerate() {
        let p = child(&index("endpoints", i), "addresses");
        let addrs = arr(ep, "addresses");
        if addrs.is_empty() {
            errs.push(FieldError::required(&p, "must contain at least 1 address"));
        } else if addrs.len() > 100 {
            errs.push(FieldError::invalid(&p, addrs.len(), "must not contain more than 100 addresses"));
        }
        for (j, a) in addrs.iter().enumerate() {
            let a = a.as_str().unwrap_or("");
            let ok = match address_type {
                "IPv4" => a.parse::<std::net::Ipv4Addr>().is_ok(),
                "IPv6" => a.parse::<std::net::Ipv6Addr>().is_ok(),
                _ => is_dns1123_subdomain(a).is_empty(),
            };
            if !ok {
                let detail = match address_type {
                    "IPv4" => "must be a valid IPv4 address",
                    "IPv6" => "must be a valid IPv6 address",
                    _ => "must be a valid DNS name",
                };
                errs.push(FieldError::invalid(index(&p, j), q(a), detail));
            }
        }
    }
    let mut names = HashSet::new();
    for (i, port) in arr(obj, "ports").iter().enumerate() {
        let p = index("ports", i);
        let name = str_or_empty(port, "name");
        if !name.is_empty() {
            for msg in is_dns1123_label(name) {
                errs.push(FieldError::invalid(child(&p, "name"), q(name), msg));
            }
        }
        if !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(child(&p, "name"), q(name)));
        }
        if let Some(n) = port.get("port").and_then(Value::as_i64) {
            for msg in is_valid_port_num(n) {
                errs.push(FieldError::invalid(child(&p, "port"), n, msg));
            }
        }
        errs.extend(validate_protocol(port, &child(&p, "protocol")));
    }
    errs
}

#[cfg(test)]
mod tests;
