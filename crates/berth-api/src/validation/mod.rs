//! Validation of objects (as JSON values) with Kubernetes field paths and messages, mirroring
//! `pkg/apis/*/validation` and apimachinery's `util/validation`. Each function returns every
//! [`FieldError`] it finds; an empty list means valid.

pub mod apps;
pub mod autoscaling;
pub mod core;
pub mod meta;
pub mod misc;
pub mod names;
pub mod pod;
pub mod selector;
pub mod service;
#[cfg(test)]
mod test_util;

use serde_json::Value;

use crate::FieldError;

/// A list of field errors, as upstream's `field.ErrorList`.
pub type ErrorList = Vec<FieldError>;

/// `parent.child`, or `child` at the root.
pub fn child(parent: &str, name: &str) -> String {
    if parent.is_empty() { name.to_string() } else { format!("{parent}.{name}") }
}

/// `parent[i]`.
pub fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// `parent[key]` (map entries, as upstream's `Path.Key`).
pub fn key(parent: &str, k: &str) -> String {
    format!("{parent}[{k}]")
}

/// A string value as Go's `%q` renders it in `Invalid value: "x"`.
pub fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// A JSON value rendered as the offending value of an error: strings quoted, numbers bare.
pub fn render(v: &Value) -> String {
    match v {
        Value::String(s) => q(s),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

/// The string at `v[k]`, if it is one.
pub(crate) fn str_at<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// The string at `v[k]`, or `""`.
pub(crate) fn str_or_empty<'a>(v: &'a Value, k: &str) -> &'a str {
    str_at(v, k).unwrap_or("")
}

/// The array at `v[k]`, or an empty slice.
pub(crate) fn arr<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// `must be greater than or equal to 0` for a negative integer at `v[k]`.
pub(crate) fn validate_nonnegative(v: &Value, k: &str, path: &str) -> ErrorList {
    match v.get(k).and_then(Value::as_i64) {
        Some(n) if n < 0 => vec![FieldError::invalid(path, n, IS_NEGATIVE)],
        _ => Vec::new(),
    }
}

/// Upstream's `isNegativeErrorMsg`.
pub const IS_NEGATIVE: &str = "must be greater than or equal to 0";

/// Upstream's `ValidateImmutableField` for JSON values.
pub fn validate_immutable(new: Option<&Value>, old: Option<&Value>, path: &str) -> ErrorList {
    let norm = |v: Option<&Value>| v.filter(|v| !v.is_null()).cloned();
    if norm(new) != norm(old) {
        let shown = new.map(render).unwrap_or_else(|| "null".to_string());
        vec![FieldError::invalid(path, shown, FIELD_IMMUTABLE)]
    } else {
        Vec::new()
    }
}

/// Upstream's `FieldImmutableErrorMsg`.
pub const FIELD_IMMUTABLE: &str = "field is immutable";
