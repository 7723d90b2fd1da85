//! kubectl's generic describer for kinds without a dedicated one: metadata summary, then every
//! field with a humanized label.

use serde_json::Value;

use super::Related;
use super::writer::*;

/// kubectl's smartLabelFor: `creationTimestamp` -> `Creation Timestamp`, `apiVersion` -> `API Version`.
pub(super) fn smart_label(key: &str) -> String {
    if key.chars().any(|c| !c.is_alphabetic() && c != '-') {
        return key.to_string();
    }
    let mut words: Vec<String> = Vec::new();
    for c in key.chars() {
        match words.last_mut() {
            Some(w) if !(c.is_uppercase() && w.chars().last().is_some_and(|p| p.is_lowercase())) => w.push(c),
            _ => words.push(c.to_string()),
        }
    }
    words
        .into_iter()
        .map(|w| {
            let upper = w.to_uppercase();
            if ["API", "URL", "UID", "OSB", "GUID"].contains(&upper.as_str()) {
                upper
            } else {
                let mut chars = w.chars();
                chars.next().map(|f| f.to_uppercase().chain(chars).collect()).unwrap_or_default()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn generic_value(w: &mut Writer, level: usize, key: &str, value: &Value) {
    let label = smart_label(key);
    match value {
        Value::Object(m) if !m.is_empty() => {
            w.w(level, &format!("{label}:\n"));
            for (k, v) in m {
                generic_value(w, level + 1, k, v);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            w.w(level, &format!("{label}:\n"));
            for item in items {
                match item {
                    Value::Object(m) => {
                        for (k, v) in m {
                            generic_value(w, level + 1, k, v);
                        }
                    }
                    other => w.w(level + 1, &format!("{}\n", scalar_text(other))),
                }
            }
        }
        other => w.w(level, &format!("{label}:\t{}\n", scalar_text(other))),
    }
}

pub(super) fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Object(_) => String::new(),
        Value::Array(_) => String::new(),
        other => other.to_string(),
    }
}

/// kubectl's generic describer: metadata summary, then every field, then events.
pub fn describe_generic(obj: &Value, rel: &Related) -> String {
    let mut w = Writer::default();
    w.w(0, &format!("Name:\t{}\n", s(obj, "/metadata/name")));
    if !s(obj, "/metadata/namespace").is_empty() {
        w.w(0, &format!("Namespace:\t{}\n", s(obj, "/metadata/namespace")));
    }
    labels_multiline(&mut w, "Labels", obj.pointer("/metadata/labels"));
    annotations_multiline(&mut w, "Annotations", obj.pointer("/metadata/annotations"));
    if let Value::Object(m) = obj {
        let mut keys: Vec<&String> = m.keys().collect();
        keys.sort();
        for k in keys {
            let mut v = crate::threeway::sorted(&m[k]);
            if k == "metadata"
                && let Some(meta) = v.as_object_mut()
            {
                for skip in ["name", "namespace", "labels", "annotations", "managedFields"] {
                    meta.shift_remove(skip);
                }
            }
            generic_value(&mut w, 0, k, &v);
        }
    }
    if let Some(events) = &rel.events {
        describe_events(&mut w, events);
    }
    w.finish()
}
