//! Core group validation other than pods and services (`pkg/apis/core/validation`): Namespace,
//! Node, ConfigMap, Secret, Event (core/v1 and events.k8s.io/v1), Endpoints,
//! PersistentVolume, PersistentVolumeClaim.

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::Value;

use super::names::{
    is_config_map_key, is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_label_value,
    is_valid_port_num,
};
use super::pod::validate_protocol;
use super::{ErrorList, arr, child, index, key, q, str_at, str_or_empty, validate_immutable};
use crate::FieldError;
use crate::field_error::FieldErrorKind;
use crate::quantity::Quantity;

/// Upstream's `MaxSecretSize` (also the ConfigMap limit): 1 MiB.
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;

const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

fn too_long(field: &str, max: usize) -> FieldError {
    FieldError {
        kind: FieldErrorKind::TooLong,
        field: field.to_string(),
        value: None,
        detail: format!("may not be more than {max} bytes"),
    }
}

/// `validateFinalizerName` for `spec.finalizers`.
fn validate_finalizer_name(name: &str, path: &str) -> ErrorList {
    let mut errs: ErrorList =
        is_qualified_name(name).into_iter().map(|m| FieldError::invalid(path, q(name), m)).collect();
    if !name.contains('/') && !STANDARD_FINALIZERS.contains(&name) {
        errs.push(FieldError::invalid(
            path,
            q(name),
            "name is neither a standard finalizer name nor is it fully qualified",
        ));
    }
    errs
}

/// `ValidateNamespace`: finalizer names.
pub fn validate_namespace(obj: &Value) -> ErrorList {
    let mut errs = Vec::new();
    for f in obj.pointer("/spec/finalizers").and_then(Value::as_array).into_iter().flatten() {
        errs.extend(validate_finalizer_name(f.as_str().unwrap_or(""), "spec.finalizers"));
    }
    errs
}

/// `ValidateNamespaceUpdate`.
pub fn validate_namespace_update(obj: &Value, _old: &Value) -> ErrorList {
    validate_namespace(obj)
}

/// `ValidateNode`: pod CIDRs, taints (key, value, effect, no duplicates), capacity quantities.
pub fn validate_node(obj: &Value) -> ErrorList {
    static NULL: Value = Value::Null;
    let spec = obj.get("spec").unwrap_or(&NULL);
    let mut errs = Vec::new();
    for (i, cidr) in arr(spec, "podCIDRs").iter().enumerate() {
        let c = cidr.as_str().unwrap_or("");
        if !is_valid_cidr(c) {
            errs.push(FieldError::invalid(
                index("spec.podCIDRs", i),
                q(c),
                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            ));
        }
    }
    let mut seen = HashSet::new();
    for (i, t) in arr(spec, "taints").iter().enumerate() {
        let p = index("spec.taints", i);
        let k = str_or_empty(t, "key");
        for msg in is_qualified_name(k) {
            errs.push(FieldError::invalid(child(&p, "key"), q(k), msg));
        }
        let v = str_or_empty(t, "value");
        for msg in is_valid_label_value(v) {
            errs.push(FieldError::invalid(child(&p, "value"), q(v), msg));
        }
        let effect = str_or_empty(t, "effect");
        match effect {
            "" => errs.push(FieldError::required(child(&p, "effect"), "")),
            "NoSchedule" | "PreferNoSchedule" | "NoExecute" => {}
            other => errs.push(FieldError::not_supported(
                child(&p, "effect"),
                q(other),
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            )),
        }
        if !seen.insert((k.to_string(), effect.to_string())) {
            errs.push(
                FieldError::duplicate(&p, format!("{{key: {}, effect: {}}}", q(k), q(effect)))
                    .with_detail("taints must be unique by key and effect pair"),
            );
        }
    }
    for list in ["capacity", "allocatable"] {
        let path = child("status", list);
        if let Some(m) = obj.pointer(&format!("/status/{list}")).and_then(Value::as_object) {
            for (name, v) in m {
                let text = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
                match Quantity::parse(&text) {
                    Ok(qty) if qty.as_nanos() < 0 => {
                        errs.push(FieldError::invalid(key(&path, name), q(&text), super::IS_NEGATIVE))
                    }
                    Ok(_) => {}
                    Err(e) => errs.push(FieldError::invalid(key(&path, name), q(&text), e.to_string())),
                }
            }
        }
    }
    errs
}

/// Whether `s` is an `address/prefix` CIDR.
pub fn is_valid_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    bits.parse::<u8>().is_ok_and(|b| b <= max) && !bits.starts_with('+')
}

/// Keys of `data` and `binaryData` (or `stringData`) are config keys; no key in both; total
/// size at most 1 MiB.
fn validate_data_keys(obj: &Value, maps: &[&str]) -> ErrorList {
    let mut errs = Vec::new();
    let mut seen = HashSet::new();
    let mut total = 0usize;
    for m in maps {
        let Some(map) = obj.get(*m).and_then(Value::as_object) else {
            continue;
        };
        for (k, v) in map {
            for msg in is_config_map_key(k) {
                errs.push(FieldError::invalid(key(m, k), q(k), msg));
            }
            if *m == "binaryData" && !seen.insert(k.clone()) {
                errs.push(FieldError::invalid(key(m, k), q(k), "duplicate of key present in data"));
            } else {
                seen.insert(k.clone());
            }
            total += v.as_str().map_or(0, str::len);
        }
    }
    if total > MAX_SECRET_SIZE {
        errs.push(too_long("data", MAX_SECRET_SIZE));
    }
    errs
}

/// `ValidateConfigMap`.
pub fn validate_config_map(obj: &Value) -> ErrorList {
    validate_data_keys(obj, &["data", "binaryData"])
}

fn validate_immutable_data(obj: &Value, old: &Value, fields: &[&str]) -> ErrorList {
    let mut errs = Vec::new();
    if old.get("immutable").and_then(Value::as_bool) == Some(true) {
        if obj.get("immutable").and_then(Value::as_bool) != Some(true) {
            errs.push(FieldError::forbidden("immutable", "field is immutable when `immutable` is set"));
        }
        for f in fields {
            let norm =
                |v: Option<&Value>| v.filter(|v| !v.is_null() && v.as_object().is_none_or(|m| !m.is_empty())).cloned();
            if norm(obj.get(*f)) != norm(old.get(*f)) {
                errs.push(FieldError::forbidden(*f, "field is immutable when `immutable` is set"));
            }
        }
    }
    errs
}

/// `ValidateConfigMapUpdate`: data frozen once `immutable` is set.
pub fn validate_config_map_update(obj: &Value, old: &Value) -> ErrorList {
    let mut errs = validate_config_map(obj);
    errs.extend(validate_immutable_data(obj, old, &["data", "binaryData"]));
    errs
}

/// `ValidateSecret`: keys, size, and the keys each well-known type needs.
pub fn validate_secret(obj: &Value) -> ErrorList {
    let mut errs = validate_data_keys(obj, &["data", "stringData"]);
    let has = |k: &str| {
        obj.get("data").and_then(|d| d.get(k)).is_some() || obj.get("stringData").and_then(|d| d.get(k)).is_some()
    };
    match str_or_empty(obj, "type") {
        "kubernetes.io/service-account-token" => {
            let ann = obj.pointer("/metadata/annotations/kubernetes.io~1service-account.name").and_then(Value::as_str);
            if ann.is_none_or(str::is_empty) {
                errs.push(FieldError::required("metadata.annotations[kubernetes.io/service-account.name]", ""));
            }
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(FieldError::required("data[username]", ""));
            errs.push(FieldError::required("data[password]", ""));
        }
        ty => {
            let needed: &[&str] = match ty {
                "kubernetes.io/dockercfg" => &[".dockercfg"],
                "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
                "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
                "kubernetes.io/tls" => &["tls.crt", "tls.key"],
                _ => &[],
            };
            for k in needed {
                if !has(k) {
                    errs.push(FieldError::required(format!("data[{k}]"), ""));
                }
            }
        }
    }
    errs
}

/// `ValidateSecretUpdate`: type immutable; data frozen once `immutable` is set.
pub fn validate_secret_update(obj: &Value, old: &Value) -> ErrorList {
    let mut errs = validate_secret(obj);
    errs.extend(validate_immutable(obj.get("type"), old.get("type"), "type"));
    errs.extend(validate_immutable_data(obj, old, &["data"]));
    errs
}

fn validate_new_style_event(obj: &Value, controller_field: &str, note_field: &str) -> ErrorList {
    let mut errs = Vec::new();
    let controller = str_or_empty(obj, "reportingController");
    if controller.is_empty() {
        errs.push(FieldError::required(controller_field, ""));
    } else {
        for msg in is_qualified_name(controller) {
            errs.push(FieldError::invalid(controller_field, q(controller), msg));
        }
    }
    for (field, limit) in [("reportingInstance", 128), ("action", 128), ("reason", 128)] {
        let v = str_or_empty(obj, field);
        if v.is_empty() {
            errs.push(FieldError::required(field, ""));
        } else if v.len() > limit {
            errs.push(FieldError::invalid(field, q(v), format!("can have at most {limit} characters")));
        }
    }
    let note = str_or_empty(obj, note_field);
    if note.len() > 1024 {
        errs.push(FieldError::invalid(note_field, q(note), "can have at most 1024 characters"));
    }
    let ty = str_or_empty(obj, "type");
    if ty != "Normal" && ty != "Warning" {
        errs.push(FieldError::invalid("type", "\"\"", format!("has invalid value: {ty}")));
    }
    errs
}

/// Core/v1 Event (`legacyValidateEvent`): involvedObject.namespace agrees with the Event's
/// namespace; events with `eventTime` need the reporting fields.
pub fn validate_event(obj: &Value) -> ErrorList {
    let mut errs = Vec::new();
    let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
    let involved_ns = obj.pointer("/involvedObject/namespace").and_then(Value::as_str).unwrap_or("");
    let mismatch = |errs: &mut ErrorList| {
        errs.push(FieldError::invalid("involvedObject.namespace", q(involved_ns), "does not match event.namespace"))
    };
    if obj.get("eventTime").is_none_or(Value::is_null) {
        if involved_ns.is_empty() {
            if !ns.is_empty() && ns != "default" {
                mismatch(&mut errs);
            }
        } else if ns != involved_ns {
            mismatch(&mut errs);
        }
    } else {
        if involved_ns.is_empty() && ns != "default" && ns != "kube-system" {
            mismatch(&mut errs);
        }
        errs.extend(validate_new_style_event(obj, "reportingComponent", "message"));
    }
    errs
}

/// events.k8s.io/v1 Event: eventTime and the reporting fields required, note at most 1024
/// characters, type Normal or Warning, regarding.namespace agrees.
pub fn validate_event_v1(obj: &Value) -> ErrorList {
    let mut errs = Vec::new();
    if obj.get("eventTime").is_none_or(Value::is_null) {
        errs.push(FieldError::required("eventTime", ""));
    }
    let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
    let regarding_ns = obj.pointer("/regarding/namespace").and_then(Value::as_str).unwrap_or("");
    if (regarding_ns.is_empty() && ns != "default" && ns != "kube-system")
        || (!regarding_ns.is_empty() && regarding_ns != ns)
    {
        errs.push(FieldError::invalid("regarding.namespace", q(regarding_ns), "does not match event.namespace"));
    }
    errs.extend(validate_new_style_event(obj, "reportingController", "note"));
    errs
}

/// `ValidateEndpoints`: addresses are IPs; ports valid and named when several.
pub fn validate_endpoints(obj: &Value) -> ErrorList {
    let mut errs = Vec::new();
    for (i, subset) in arr(obj, "subsets").iter().enumerate() {
        let sp = index("subsets", i);
        for list in ["addresses", "notReadyAddresses"] {
            for (j, a) in arr(subset, list).iter().enumerate() {
                let ip = str_or_empty(a, "ip");
                if ip.parse::<IpAddr>().is_err() {
                    errs.push(FieldError::invalid(
                        child(&index(&child(&sp, list), j), "ip"),
                        q(ip),
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    ));
                }
            }
        }
        let ports = arr(subset, "ports");
        for (j, port) in ports.iter().enumerate() {
            let pp = index(&child(&sp, "ports"), j);
            let name = str_or_empty(port, "name");
            if ports.len() > 1 && name.is_empty() {
                errs.push(FieldError::required(child(&pp, "name"), ""));
            } else if !name.is_empty() {
                for msg in is_dns1123_label(name) {
                    errs.push(FieldError::invalid(child(&pp, "name"), q(name), msg));
                }
            }
            let n = port.get("port").and_then(Value::as_i64).unwrap_or(0);
            for msg in is_valid_port_num(n) {
                errs.push(FieldError::invalid(child(&pp, "port"), n, msg));
            }
            errs.extend(validate_protocol(port, &child(&pp, "protocol")));
        }
    }
    errs
}

const ACCESS_MODES: &[&str] = &["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"];

fn validate_access_modes(spec: &Value, path: &str, required_detail: &str) -> ErrorList {
    let mut errs = Vec::new();
    let modes = arr(spec, "accessModes");
    if modes.is_empty() {
        errs.push(FieldError::required(path, required_detail));
    }
    for m in modes {
        let m = m.as_str().unwrap_or("");
        if !ACCESS_MODES.contains(&m) {
            errs.push(FieldError::not_supported(path, q(m), ACCESS_MODES));
        }
    }
    errs
}

const VOLUME_SOURCES: &[&str] = &[
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "hostPath",
    "glusterfs",
    "nfs",
    "rbd",
    "iscsi",
    "cinder",
    "cephfs",
    "fc",
    "flocker",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "local",
    "storageos",
    "csi",
];

/// `ValidatePersistentVolume`: capacity storage, access modes, exactly one source, reclaim
/// policy.
pub fn validate_persistent_volume(obj: &Value) -> ErrorList {
    static NULL: Value = Value::Null;
    let spec = obj.get("spec").unwrap_or(&NULL);
    let mut errs = validate_access_modes(spec, "spec.accessModes", "");
    match spec.pointer("/capacity/storage") {
        None => errs.push(FieldError::required("spec.capacity", "")),
        Some(v) => {
            let text = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            if let Err(e) = Quantity::parse(&text) {
                errs.push(FieldError::invalid("spec.capacity[storage]", q(&text), e.to_string()));
            }
        }
    }
    let sources = VOLUME_SOURCES.iter().filter(|s| spec.get(**s).is_some_and(|v| !v.is_null())).count();
    if sources == 0 {
        errs.push(FieldError::required("spec", "must specify a volume type"));
    } else if sources > 1 {
        errs.push(FieldError::forbidden("spec", "may not specify more than 1 volume type"));
    }
    if let Some(p) = str_at(spec, "persistentVolumeReclaimPolicy")
        && !["Delete", "Recycle", "Retain"].contains(&p)
    {
        errs.push(FieldError::not_supported(
            "spec.persistentVolumeReclaimPolicy",
            q(p),
            &["Delete", "Recycle", "Retain"],
        ));
    }
    if let Some(m) = str_at(spec, "volumeMode")
        && !["Block", "Filesystem"].contains(&m)
    {
        errs.push(FieldError::not_supported("spec.volumeMode", q(m), &["Block", "Filesystem"]));
    }
    errs
}

/// `ValidatePersistentVolumeClaim`: access modes, a positive storage request.
pub fn validate_persistent_volume_claim(obj: &Value) -> ErrorList {
    static NULL: Value = Value::Null;
    let spec = obj.get("spec").unwrap_or(&NULL);
    let mut errs = validate_access_modes(spec, "spec.accessModes", "at least 1 access mode is required");
    match spec.pointer("/resources/requests/storage") {
        None => errs.push(FieldError::required("spec.resources[storage]", "")),
        Some(v) => {
            let text = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            match Quantity::parse(&text) {
                Ok(qty) if qty.as_nanos() <= 0 => {
                    errs.push(FieldError::invalid("spec.resources[storage]", q(&text), "must be greater than zero"))
                }
                Ok(_) => {}
                Err(e) => errs.push(FieldError::invalid("spec.resources[storage]", q(&text), e.to_string())),
            }
        }
    }
    if let Some(m) = str_at(spec, "volumeMode")
        && !["Block", "Filesystem"].contains(&m)
    {
        errs.push(FieldError::not_supported("spec.volumeMode", q(m), &["Block", "Filesystem"]));
    }
    let sc = str_or_empty(spec, "storageClassName");
    if !sc.is_empty() {
        for msg in is_dns1123_subdomain(sc) {
            errs.push(FieldError::invalid("spec.storageClassName", q(sc), msg));
        }
    }
    errs
}

trait WithDetail {
    fn with_detail(self, detail: &str) -> Self;
}

impl WithDetail for FieldError {
    fn with_detail(mut self, detail: &str) -> Self {
        self.detail = detail.to_string();
        self
    }
}

#[cfg(test)]
mod tests;
