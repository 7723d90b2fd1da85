//! Client-side apply's three-way patch: from the last-applied configuration (original), the new
//! configuration (modified) and the live object (current), a JSON merge patch that sets what the
//! user changed and removes (null) what the user dropped since the last apply, leaving fields
//! other writers (defaulting, controllers) set alone. Lists are atomic: a list the user changed is
//! sent whole; a list that only gained server defaults inside its elements is left as it is.

use serde_json::{Map, Value};

/// kubectl's annotation holding the last applied configuration.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The merge patch turning `current` into `modified`, deleting fields present in `original` but
/// absent from `modified`. An empty object means nothing to do (`unchanged`).
pub fn three_way_merge_patch(original: Option<&Value>, modified: &Value, current: &Value) -> Value {
    let empty = Map::new();
    let original = original.and_then(Value::as_object).unwrap_or(&empty);
    match (modified.as_object(), current.as_object()) {
        (Some(m), Some(c)) => Value::Object(diff_maps(original, m, c)),
        _ => modified.clone(),
    }
}

fn diff_maps(
    original: &Map<String, Value>,
    modified: &Map<String, Value>,
    current: &Map<String, Value>,
) -> Map<String, Value> {
    let empty = Map::new();
    let mut patch = Map::new();
    for (key, mv) in modified {
        let cv = current.get(key);
        let ov = original.get(key);
        match (mv, cv) {
            (Value::Object(m), Some(Value::Object(c))) => {
                let o = ov.and_then(Value::as_object).unwrap_or(&empty);
                let sub = diff_maps(o, m, c);
                if !sub.is_empty() {
                    patch.insert(key.clone(), Value::Object(sub));
                }
            }
            (Value::Null, None) => {}
            (_, None) => {
                patch.insert(key.clone(), mv.clone());
            }
            (Value::Array(_), Some(c)) => {
                let user_changed = ov.is_some_and(|o| o != mv);
                if user_changed || !contains(mv, c) {
                    patch.insert(key.clone(), mv.clone());
                }
            }
            (_, Some(c)) => {
                if !contains(mv, c) {
                    patch.insert(key.clone(), mv.clone());
                }
            }
        }
    }
    for key in original.keys() {
        if !modified.contains_key(key) && current.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    patch
}

/// Whether `current` has everything `wanted` sets (extra fields in `current` are fine).
fn contains(wanted: &Value, current: &Value) -> bool {
    match (wanted, current) {
        (Value::Object(w), Value::Object(c)) => w.iter().all(|(k, wv)| match c.get(k) {
            Some(cv) => contains(wv, cv),
            None => wv.is_null(),
        }),
        (Value::Array(w), Value::Array(c)) => w.len() == c.len() && w.iter().zip(c).all(|(wv, cv)| contains(wv, cv)),
        (Value::Number(w), Value::Number(c)) => w == c || w.as_f64() == c.as_f64(),
        _ => wanted == current,
    }
}

/// Returns `value` with object keys sorted recursively (Go's encoding/json order).
pub fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&map[k]))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// The configuration as stored in the annotation: the object without the annotation itself,
/// compact JSON with sorted keys and a trailing newline, as kubectl writes it.
pub fn last_applied_of(config: &Value) -> String {
    let mut clean = config.clone();
    remove_annotation(&mut clean);
    format!("{}\n", sorted(&clean))
}

/// kubectl serializes the object with `metadata.annotations` present (possibly `{}`) and without
/// the last-applied annotation itself; matching it byte for byte keeps kubectl and berth applies
/// of the same file `unchanged` after each other.
fn remove_annotation(obj: &mut Value) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    let ann = meta.entry("annotations").or_insert_with(|| Value::Object(Map::new()));
    match ann.as_object_mut() {
        Some(ann) => {
            ann.remove(LAST_APPLIED);
        }
        None => *ann = Value::Object(Map::new()),
    }
}

/// `config` with the last-applied annotation set to itself.
pub fn with_last_applied(config: &Value) -> Value {
    let annotation = last_applied_of(config);
    let mut out = config.clone();
    if let Some(obj) = out.as_object_mut() {
        let meta = obj.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            let ann = meta.entry("annotations").or_insert_with(|| Value::Object(Map::new()));
            if let Some(ann) = ann.as_object_mut() {
                ann.insert(LAST_APPLIED.to_string(), Value::String(annotation));
            }
        }
    }
    out
}

/// The last-applied configuration recorded on a live object, if any.
pub fn last_applied_on(current: &Value) -> Option<Value> {
    let text = current.pointer("/metadata/annotations")?.get(LAST_APPLIED)?.as_str()?;
    serde_json::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "web", "image": image}]}}}})
    }

    /// What the server has after defaulting: extra fields everywhere.
    fn live(config: &Value) -> Value {
        let mut c = with_last_applied(config);
        c["metadata"]["uid"] = json!("u1");
        c["metadata"]["resourceVersion"] = json!("7");
        c["spec"]["strategy"] = json!({"type": "RollingUpdate"});
        c["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("Always");
        c["status"] = json!({"replicas": 1});
        c
    }

    #[test]
    fn same_config_gives_an_empty_patch_despite_server_defaults() {
        let config = with_last_applied(&deployment(2, "nginx"));
        let current = live(&deployment(2, "nginx"));
        let patch = three_way_merge_patch(last_applied_on(&current).as_ref(), &config, &current);
        assert_eq!(patch, json!({}));
    }

    #[test]
    fn changed_scalar_is_set_and_annotation_updated() {
        let current = live(&deployment(2, "nginx"));
        let config = with_last_applied(&deployment(3, "nginx"));
        let patch = three_way_merge_patch(last_applied_on(&current).as_ref(), &config, &current);
        assert_eq!(patch["spec"], json!({"replicas": 3}));
        assert_eq!(patch["metadata"]["annotations"][LAST_APPLIED], json!(last_applied_of(&deployment(3, "nginx"))));
        assert!(patch["metadata"].get("uid").is_none());
    }

    #[test]
    fn field_dropped_since_last_apply_is_nulled_but_server_fields_stay() {
        let current = live(&deployment(2, "nginx"));
        let mut new = deployment(2, "nginx");
        new["metadata"].as_object_mut().unwrap().remove("labels");
        let config = with_last_applied(&new);
        let patch = three_way_merge_patch(last_applied_on(&current).as_ref(), &config, &current);
        assert_eq!(patch["metadata"]["labels"], Value::Null);
        assert!(patch["metadata"].as_object().unwrap().contains_key("labels"));
        assert!(patch.get("status").is_none());
        assert!(patch["spec"].get("strategy").is_none());
    }

    #[test]
    fn changed_list_is_sent_whole() {
        let current = live(&deployment(2, "nginx"));
        let config = with_last_applied(&deployment(2, "nginx:2"));
        let patch = three_way_merge_patch(last_applied_on(&current).as_ref(), &config, &current);
        assert_eq!(patch["spec"]["template"]["spec"]["containers"], json!([{"name": "web", "image": "nginx:2"}]));
    }

    #[test]
    fn last_applied_is_sorted_compact_json_without_itself() {
        let cfg = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "a", "annotations": {LAST_APPLIED: "old"}}});
        assert_eq!(
            last_applied_of(&cfg),
            "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"annotations\":{},\"name\":\"a\"}}\n"
        );
    }
}
