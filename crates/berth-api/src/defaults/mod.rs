//! Server-side defaulting as Kubernetes does it (`pkg/apis/*/v1/defaults.go` and the generated
//! `zz_generated.defaults.go`), applied in place on objects as JSON values in their storage
//! version. Every function is idempotent: applying it twice changes nothing. Fields of the wrong
//! JSON type are left alone for validation to report; defaulting never panics.

pub mod apps;
pub mod autoscaling;
pub mod core;
pub mod misc;
pub mod pod;
pub mod service;

use serde_json::{Map, Value};

/// The object at `v[k]` if `v` is an object and `v[k]` is one.
pub(crate) fn child_mut<'a>(v: &'a mut Value, k: &str) -> Option<&'a mut Map<String, Value>> {
    v.get_mut(k).and_then(Value::as_object_mut)
}

/// The object at `m[k]`, created empty when absent or null; `None` when it is something else.
pub(crate) fn ensure<'a>(m: &'a mut Map<String, Value>, k: &str) -> Option<&'a mut Map<String, Value>> {
    if m.get(k).is_none_or(Value::is_null) {
        m.insert(k.to_string(), Value::Object(Map::new()));
    }
    m.get_mut(k).and_then(Value::as_object_mut)
}

/// Sets `m[k] = val` when `m[k]` is absent or null, or an empty string and `val` a string
/// (upstream defaults `string` fields when `""` and pointer fields when nil).
pub(crate) fn set_default(m: &mut Map<String, Value>, k: &str, val: Value) {
    let unset = match m.get(k) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty() && val.is_string(),
        Some(_) => false,
    };
    if unset {
        m.insert(k.to_string(), val);
    }
}

/// Every object in the array at `m[k]`.
pub(crate) fn each_mut<'a>(
    m: &'a mut Map<String, Value>,
    k: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> + use<'a> {
    m.get_mut(k).and_then(Value::as_array_mut).into_iter().flatten().filter_map(Value::as_object_mut)
}

/// The string at `m[k]`, or `""`.
pub(crate) fn str_of<'a>(m: &'a Map<String, Value>, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod proptests;
