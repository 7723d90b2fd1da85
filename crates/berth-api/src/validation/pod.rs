//! Pod and pod template validation (`ValidatePodSpec`, `validateContainers`,
//! `validateContainerPorts`, `validateProbe`, `ValidateResourceRequirements`, `ValidatePodUpdate`
//! in `pkg/apis/core/validation/validation.go`).

use std::collections::HashSet;

use serde_json::Value;

use super::meta::{validate_annotations, validate_labels};
use super::names::{is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_port_name, is_valid_port_num};
use super::{ErrorList, IS_NEGATIVE, arr, child, index, key, q, render, str_at, str_or_empty};
use crate::FieldError;
use crate::quantity::Quantity;

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PORT_PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const HTTP_SCHEMES: &[&str] = &["HTTP", "HTTPS"];
const TERMINATION_MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];

/// Validates a Pod's `spec`.
pub fn validate_pod(obj: &Value) -> ErrorList {
    match obj.get("spec") {
        Some(spec) => validate_pod_spec(spec, "spec"),
        None => vec![FieldError::required("spec", "")],
    }
}

/// The fields an update may change, in upstream's words.
const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Validates a Pod update: the new spec must be valid, and only images, activeDeadlineSeconds,
/// tolerations (additions), scheduling gates (removals) and terminationGracePeriodSeconds may
/// change.
pub fn validate_pod_update(obj: &Value, old: &Value) -> ErrorList {
    let mut errs = validate_pod(obj);
    let (Some(new_spec), Some(old_spec)) = (obj.get("spec"), old.get("spec")) else {
        return errs;
    };
    let mut mungled = new_spec.clone();
    if let Some(m) = mungled.as_object_mut() {
        for list in ["containers", "initContainers"] {
            let old_list = arr(old_spec, list);
            if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
                for (i, c) in cs.iter_mut().enumerate() {
                    if let (Some(c), Some(old_image)) =
                        (c.as_object_mut(), old_list.get(i).and_then(|o| o.get("image")))
                    {
                        c.insert("image".to_string(), old_image.clone());
                    }
                }
            }
        }
        for field in ["activeDeadlineSeconds", "tolerations", "schedulingGates", "terminationGracePeriodSeconds"] {
            match old_spec.get(field) {
                Some(v) => m.insert(field.to_string(), v.clone()),
                None => m.remove(field),
            };
        }
    }
    if &mungled != old_spec {
        errs.push(FieldError::forbidden("spec", POD_UPDATE_FORBIDDEN));
    }
    if let (Some(n), Some(o)) = (
        new_spec.get("activeDeadlineSeconds").and_then(Value::as_i64),
        old_spec.get("activeDeadlineSeconds").and_then(Value::as_i64),
    ) && n > o
    {
        errs.push(FieldError::invalid("spec.activeDeadlineSeconds", n, "must be less than or equal to previous value"));
    }
    errs
}

/// Validates a pod template (`spec.template` of a workload): its labels and annotations and
/// its spec.
pub fn validate_pod_template(template: &Value, path: &str) -> ErrorList {
    let mut errs = Vec::new();
    let meta_path = child(path, "metadata");
    if let Some(meta) = template.get("metadata") {
        errs.extend(validate_labels(meta.get("labels"), &child(&meta_path, "labels")));
        errs.extend(validate_annotations(meta.get("annotations"), &child(&meta_path, "annotations")));
    }
    match template.get("spec") {
        Some(spec) => errs.extend(validate_pod_spec(spec, &child(path, "spec"))),
        None => errs.push(FieldError::required(child(path, "spec"), "")),
    }
    errs
}

/// `ValidatePodSpec`.
pub fn validate_pod_spec(spec: &Value, path: &str) -> ErrorList {
    let mut errs = Vec::new();
    let volumes = validate_volumes(spec, &child(path, "volumes"), &mut errs);
    let mut names = HashSet::new();
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    let containers = arr(spec, "containers");
    if containers.is_empty() {
        errs.push(FieldError::required(child(path, "containers"), ""));
    }
    for (list, liveness_allowed) in [("initContainers", false), ("containers", true)] {
        for (i, c) in arr(spec, list).iter().enumerate() {
            let p = index(&child(path, list), i);
            errs.extend(validate_container(c, &p, &volumes, &mut names, liveness_allowed, host_network));
        }
    }
    match str_at(spec, "restartPolicy") {
        Some(p) if RESTART_POLICIES.contains(&p) => {}
        Some(p) if !p.is_empty() => {
            errs.push(FieldError::not_supported(child(path, "restartPolicy"), q(p), RESTART_POLICIES))
        }
        _ => errs.push(FieldError::required(child(path, "restartPolicy"), "")),
    }
    match str_at(spec, "dnsPolicy") {
        Some(p) if DNS_POLICIES.contains(&p) => {}
        Some(p) if !p.is_empty() => errs.push(FieldError::not_supported(child(path, "dnsPolicy"), q(p), DNS_POLICIES)),
        _ => errs.push(FieldError::required(child(path, "dnsPolicy"), "")),
    }
    if let Some(ads) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64)
        && !(1..=u32::MAX as i64).contains(&ads)
    {
        errs.push(FieldError::invalid(
            child(path, "activeDeadlineSeconds"),
            ads,
            super::names::inclusive_range_error(1, u32::MAX as i64),
        ));
    }
    for field in ["serviceAccountName", "nodeName"] {
        let v = str_or_empty(spec, field);
        if !v.is_empty() {
            for msg in is_dns1123_subdomain(v) {
                errs.push(FieldError::invalid(child(path, field), q(v), msg));
            }
        }
    }
    let hostname = str_or_empty(spec, "hostname");
    if !hostname.is_empty() {
        for msg in is_dns1123_label(hostname) {
            errs.push(FieldError::invalid(child(path, "hostname"), q(hostname), msg));
        }
    }
    if let Some(sel) = spec.get("nodeSelector") {
        errs.extend(validate_labels(Some(sel), &child(path, "nodeSelector")));
    }
    errs.extend(validate_tolerations(arr(spec, "tolerations"), &child(path, "tolerations")));
    if let Some(sc) = spec.get("securityContext") {
        errs.extend(validate_ids(sc, &child(path, "securityContext"), &["runAsUser", "runAsGroup", "fsGroup"]));
    }
    let pc = str_or_empty(spec, "priorityClassName");
    if !pc.is_empty() {
        for msg in is_dns1123_subdomain(pc) {
            errs.push(FieldError::invalid(child(path, "priorityClassName"), q(pc), msg));
        }
    }
    errs
}

/// User and group IDs in a security context: 0..=2147483647 (`IsValidUserID`/`IsValidGroupID`).
fn validate_ids(sc: &Value, path: &str, fields: &[&str]) -> ErrorList {
    let mut errs = Vec::new();
    for f in fields {
        if let Some(id) = sc.get(*f).and_then(Value::as_i64)
            && !(0..=i32::MAX as i64).contains(&id)
        {
            errs.push(FieldError::invalid(child(path, f), id, super::names::inclusive_range_error(0, i32::MAX as i64)));
        }
    }
    errs
}

/// `ValidateTolerations`: key syntax, operator Equal or Exists (Exists for an empty key, with
/// no value), effect values, tolerationSeconds only with NoExecute.
pub fn validate_tolerations(tolerations: &[Value], path: &str) -> ErrorList {
    let mut errs = Vec::new();
    for (i, t) in tolerations.iter().enumerate() {
        let p = index(path, i);
        let k = str_or_empty(t, "key");
        if !k.is_empty() {
            for msg in is_qualified_name(k) {
                errs.push(FieldError::invalid(child(&p, "key"), q(k), msg));
            }
        }
        let op = str_or_empty(t, "operator");
        let value = str_or_empty(t, "value");
        if k.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid(
                child(&p, "operator"),
                q(op),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        match op {
            "" | "Equal" => {
                for msg in super::names::is_valid_label_value(value) {
                    errs.push(FieldError::invalid(child(&p, "value"), q(value), msg));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        child(&p, "operator"),
                        q(value),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(child(&p, "operator"), q(other), &["Equal", "Exists"])),
        }
        let effect = str_or_empty(t, "effect");
        if !effect.is_empty() && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
            errs.push(FieldError::not_supported(
                child(&p, "effect"),
                q(effect),
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
        if t.get("tolerationSeconds").is_some_and(|v| !v.is_null()) && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                child(&p, "effect"),
                q(effect),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
    }
    errs
}

/// Checks the volumes and returns their names.
fn validate_volumes(spec: &Value, path: &str, errs: &mut ErrorList) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, v) in arr(spec, "volumes").iter().enumerate() {
        let p = index(path, i);
        let name = str_or_empty(v, "name");
        if name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        } else {
            for msg in is_dns1123_label(name) {
                errs.push(FieldError::invalid(child(&p, "name"), q(name), msg));
            }
            if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(child(&p, "name"), q(name)));
            }
        }
        errs.extend(validate_volume_source(v, &p));
    }
    names
}

/// Volume sources (`validateVolumeSource`): exactly one, with the name each kind needs.
fn validate_volume_source(v: &Value, path: &str) -> ErrorList {
    let mut errs = Vec::new();
    let sources: Vec<&str> = crate::defaults::pod::VOLUME_SOURCES
        .iter()
        .copied()
        .filter(|s| v.get(*s).is_some_and(|x| !x.is_null()))
        .collect();
    match sources.as_slice() {
        [] => errs.push(FieldError::required(path, "must specify a volume type")),
        [_] => {}
        [_, rest @ ..] => {
            for s in rest {
                errs.push(FieldError::forbidden(child(path, s), "may not specify more than 1 volume type"));
            }
        }
    }
    let required: &[(&str, &str)] = &[
        ("configMap", "name"),
        ("secret", "secretName"),
        ("persistentVolumeClaim", "claimName"),
        ("hostPath", "path"),
        ("nfs", "server"),
        ("csi", "driver"),
    ];
    for (source, field) in required {
        if let Some(src) = v.get(*source).filter(|x| !x.is_null())
            && str_or_empty(src, field).is_empty()
        {
            // A secret volume's name may be omitted only when optional; upstream still requires it.
            errs.push(FieldError::required(child(&child(path, source), field), ""));
        }
    }
    errs
}

fn validate_container(
    c: &Value,
    path: &str,
    volumes: &HashSet<String>,
    names: &mut HashSet<String>,
    regular: bool,
    host_network: bool,
) -> ErrorList {
    let mut errs = Vec::new();
    let name = str_or_empty(c, "name");
    if name.is_empty() {
        errs.push(FieldError::required(child(path, "name"), ""));
    } else {
        for msg in is_dns1123_label(name) {
            errs.push(FieldError::invalid(child(path, "name"), q(name), msg));
        }
        if !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(child(path, "name"), q(name)));
        }
    }
    if str_or_empty(c, "image").is_empty() {
        errs.push(FieldError::required(child(path, "image"), ""));
    }
    if let Some(p) = str_at(c, "imagePullPolicy")
        && !PULL_POLICIES.contains(&p)
    {
        if p.is_empty() {
            errs.push(FieldError::required(child(path, "imagePullPolicy"), ""));
        } else {
            errs.push(FieldError::not_supported(child(path, "imagePullPolicy"), q(p), PULL_POLICIES));
        }
    }
    if let Some(p) = str_at(c, "terminationMessagePolicy")
        && !TERMINATION_MESSAGE_POLICIES.contains(&p)
    {
        errs.push(FieldError::not_supported(
            child(path, "terminationMessagePolicy"),
            q(p),
            TERMINATION_MESSAGE_POLICIES,
        ));
    }
    errs.extend(validate_container_ports(arr(c, "ports"), &child(path, "ports"), host_network));
    errs.extend(validate_env(arr(c, "env"), &child(path, "env")));
    let mut mount_paths = HashSet::new();
    for (i, m) in arr(c, "volumeMounts").iter().enumerate() {
        let p = index(&child(path, "volumeMounts"), i);
        let vname = str_or_empty(m, "name");
        if vname.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        } else if !volumes.contains(vname) {
            // Upstream reports `Not found: "x"` (FieldValueNotFound); FieldErrorKind has no such kind.
            errs.push(FieldError::invalid(child(&p, "name"), q(vname), "not found"));
        }
        let mount_path = str_or_empty(m, "mountPath");
        if mount_path.is_empty() {
            errs.push(FieldError::required(child(&p, "mountPath"), ""));
        } else if !mount_paths.insert(mount_path) {
            errs.push(FieldError::invalid(child(&p, "mountPath"), q(mount_path), "must be unique"));
        }
    }
    if let Some(r) = c.get("resources") {
        errs.extend(validate_resource_requirements(r, &child(path, "resources")));
    }
    if let Some(sc) = c.get("securityContext") {
        errs.extend(validate_ids(sc, &child(path, "securityContext"), &["runAsUser", "runAsGroup"]));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get(probe).filter(|p| !p.is_null()) {
            let pp = child(path, probe);
            if !regular && c.get("restartPolicy").and_then(Value::as_str) != Some("Always") {
                errs.push(FieldError::forbidden(pp, "may not be set for init containers without restartPolicy=Always"));
                continue;
            }
            errs.extend(validate_probe(p, &pp, probe != "readinessProbe"));
        }
    }
    errs
}

/// `validateContainerPorts`: named ports unique within the container.
fn validate_container_ports(ports: &[Value], path: &str, host_network: bool) -> ErrorList {
    let mut errs = Vec::new();
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index(path, i);
        let name = str_or_empty(port, "name");
        if !name.is_empty() {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                for msg in msgs {
                    errs.push(FieldError::invalid(child(&p, "name"), q(name), msg));
                }
            } else if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(child(&p, "name"), q(name)));
            }
        }
        match port.get("containerPort").and_then(Value::as_i64) {
            None | Some(0) => errs.push(FieldError::required(child(&p, "containerPort"), "")),
            Some(n) => {
                for msg in is_valid_port_num(n) {
                    errs.push(FieldError::invalid(child(&p, "containerPort"), n, msg));
                }
            }
        }
        if let Some(n) = port.get("hostPort").and_then(Value::as_i64)
            && n != 0
        {
            for msg in is_valid_port_num(n) {
                errs.push(FieldError::invalid(child(&p, "hostPort"), n, msg));
            }
        }
        if host_network
            && let (Some(hp), Some(cp)) = (port.get("hostPort").and_then(Value::as_i64), port.get("containerPort"))
            && Some(hp) != cp.as_i64()
        {
            errs.push(FieldError::invalid(
                child(&p, "hostPort"),
                hp,
                "must match `containerPort` when `hostNetwork` is true",
            ));
        }
        errs.extend(validate_protocol(port, &child(&p, "protocol")));
    }
    errs
}

/// A port's `protocol`: required (defaulting sets TCP), one of SCTP, TCP, UDP.
pub(crate) fn validate_protocol(port: &Value, path: &str) -> ErrorList {
    match str_at(port, "protocol") {
        None | Some("") => vec![FieldError::required(path, "")],
        Some(p) if !PORT_PROTOCOLS.contains(&p) => vec![FieldError::not_supported(path, q(p), PORT_PROTOCOLS)],
        Some(_) => Vec::new(),
    }
}

/// `validateEnv` with the relaxed name rule (printable ASCII other than `=`), default since 1.32.
fn validate_env(env: &[Value], path: &str) -> ErrorList {
    let mut errs = Vec::new();
    for (i, e) in env.iter().enumerate() {
        let p = index(path, i);
        let name = str_or_empty(e, "name");
        if name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        } else if !name.bytes().all(|b| (32..=126).contains(&b) && b != b'=') {
            errs.push(FieldError::invalid(
                child(&p, "name"),
                q(name),
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            ));
        }
        if let Some(vf) = e.get("valueFrom").filter(|v| !v.is_null()) {
            if e.get("value").and_then(Value::as_str).is_some_and(|v| !v.is_empty()) {
                errs.push(FieldError::invalid(
                    child(&p, "valueFrom"),
                    "",
                    "may not be specified when `value` is not empty",
                ));
            }
            let sources = ["fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef", "fileKeyRef"];
            let n = sources.iter().filter(|s| vf.get(**s).is_some_and(|v| !v.is_null())).count();
            if n == 0 {
                errs.push(FieldError::invalid(
                    child(&p, "valueFrom"),
                    "",
                    "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                ));
            } else if n > 1 {
                errs.push(FieldError::invalid(
                    child(&p, "valueFrom"),
                    "",
                    "may not have more than one field specified at a time",
                ));
            }
        }
    }
    errs
}

/// `validateProbe` plus its handler. Liveness and startup probes need successThreshold 1.
pub fn validate_probe(probe: &Value, path: &str, success_must_be_one: bool) -> ErrorList {
    let mut errs = validate_handler(probe, path);
    for f in ["initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"] {
        errs.extend(super::validate_nonnegative(probe, f, &child(path, f)));
    }
    if let Some(t) = probe.get("terminationGracePeriodSeconds").and_then(Value::as_i64)
        && t <= 0
    {
        errs.push(FieldError::invalid(child(path, "terminationGracePeriodSeconds"), t, "must be greater than 0"));
    }
    if success_must_be_one
        && let Some(s) = probe.get("successThreshold").and_then(Value::as_i64)
        && s != 1
    {
        errs.push(FieldError::invalid(child(path, "successThreshold"), s, "must be 1"));
    }
    errs
}

/// Exactly one of exec, httpGet, tcpSocket, grpc, each valid.
fn validate_handler(h: &Value, path: &str) -> ErrorList {
    let mut errs = Vec::new();
    let mut count = 0;
    for kind in ["exec", "httpGet", "tcpSocket", "grpc"] {
        let Some(action) = h.get(kind).filter(|v| !v.is_null()) else {
            continue;
        };
        let p = child(path, kind);
        count += 1;
        if count > 1 {
            errs.push(FieldError::forbidden(p, "may not specify more than 1 handler type"));
            continue;
        }
        match kind {
            "exec" => {
                if arr(action, "command").is_empty() {
                    errs.push(FieldError::required(child(&p, "command"), ""));
                }
            }
            "httpGet" => {
                if str_or_empty(action, "path").is_empty() {
                    errs.push(FieldError::required(child(&p, "path"), ""));
                }
                errs.extend(validate_port_num_or_name(action.get("port"), &child(&p, "port")));
                let scheme = str_or_empty(action, "scheme");
                if !HTTP_SCHEMES.contains(&scheme) {
                    errs.push(FieldError::not_supported(child(&p, "scheme"), q(scheme), HTTP_SCHEMES));
                }
            }
            "tcpSocket" => errs.extend(validate_port_num_or_name(action.get("port"), &child(&p, "port"))),
            _ => {
                let port = action.get("port").and_then(Value::as_i64).unwrap_or(0);
                for msg in is_valid_port_num(port) {
                    errs.push(FieldError::invalid(child(&p, "port"), port, msg));
                }
            }
        }
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
    errs
}

/// `ValidatePortNumOrName` for an IntOrString port.
pub fn validate_port_num_or_name(port: Option<&Value>, path: &str) -> ErrorList {
    match port {
        Some(Value::String(s)) => {
            is_valid_port_name(s).into_iter().map(|m| FieldError::invalid(path, q(s), m)).collect()
        }
        Some(Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(0);
            is_valid_port_num(n).into_iter().map(|m| FieldError::invalid(path, n, m)).collect()
        }
        other => {
            let shown = other.map(render).unwrap_or_else(|| "0".to_string());
            vec![FieldError::invalid(path, shown, super::names::inclusive_range_error(1, 65535))]
        }
    }
}

fn is_standard_container_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-")
}

/// Native resources live in the `kubernetes.io` domain or have no domain at all.
fn is_native_resource(name: &str) -> bool {
    match name.split_once('/') {
        None => true,
        Some((domain, _)) => domain == "kubernetes.io" || domain.ends_with(".kubernetes.io"),
    }
}

/// Parses each quantity in a resource list, reporting names and values as upstream does.
fn resource_list(list: Option<&Value>, path: &str, errs: &mut ErrorList) -> Vec<(String, Quantity)> {
    let mut out = Vec::new();
    let Some(map) = list.and_then(Value::as_object) else {
        return out;
    };
    for (name, v) in map {
        let p = key(path, name);
        for msg in is_qualified_name(name) {
            errs.push(FieldError::invalid(&p, q(name), msg));
        }
        if !name.contains('/') {
            if !is_standard_container_resource(name) {
                errs.push(FieldError::invalid(&p, q(name), "must be a standard resource for containers"));
            }
        } else if !is_native_resource(name) && name.starts_with("requests.") {
            // Extended resource names may not use the quota `requests.` prefix.
            errs.push(FieldError::invalid(&p, q(name), "doesn't follow extended resource name standard"));
        }
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => other.to_string(),
        };
        match Quantity::parse(&text) {
            Ok(qty) => {
                if qty < Quantity::from_value(0, crate::quantity::Format::DecimalSI) {
                    errs.push(FieldError::invalid(&p, q(&qty.canonical()), IS_NEGATIVE));
                } else if !is_native_resource(name) && qty.as_nanos() % 1_000_000_000 != 0 {
                    errs.push(FieldError::invalid(&p, q(&qty.canonical()), "must be an integer"));
                }
                out.push((name.clone(), qty));
            }
            Err(e) => errs.push(FieldError::invalid(&p, q(&text), e.to_string())),
        }
    }
    out
}

/// `ValidateResourceRequirements`: names and quantities valid, requests <= limits, extended
/// resources' requests equal to their limits.
pub fn validate_resource_requirements(r: &Value, path: &str) -> ErrorList {
    let mut errs = Vec::new();
    let lim_path = child(path, "limits");
    let req_path = child(path, "requests");
    let limits = resource_list(r.get("limits"), &lim_path, &mut errs);
    let requests = resource_list(r.get("requests"), &req_path, &mut errs);
    for (name, req) in &requests {
        let limit = limits.iter().find(|(n, _)| n == name).map(|(_, q)| q);
        match limit {
            Some(lim) if !is_native_resource(name) && req != lim => errs.push(FieldError::invalid(
                key(&req_path, name),
                q(&req.canonical()),
                format!("must be equal to {name} limit of {}", lim.canonical()),
            )),
            Some(lim) if req > lim => errs.push(FieldError::invalid(
                key(&req_path, name),
                q(&req.canonical()),
                format!("must be less than or equal to {name} limit of {}", lim.canonical()),
            )),
            None if !is_native_resource(name) => errs
                .push(FieldError::required(key(&lim_path, name), "Limit must be set for non overcommitable resources")),
            _ => {}
        }
    }
    errs
}

#[cfg(test)]
mod tests;
