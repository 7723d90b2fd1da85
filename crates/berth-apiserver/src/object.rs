//! Helpers over objects as JSON values: metadata access, the stored form (no resourceVersion)
//! versus the served form (resourceVersion = the store's mod_revision), and timestamps.

use berth_store::{KeyValue, Revision};
use serde_json::{Map, Value, json};

/// `metadata` of an object (created empty when missing or not an object).
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let m = obj.as_object_mut().expect("object ensured above");
    let meta = m.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut().expect("object ensured above")
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// The object's name ("" when missing).
pub fn name_of(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or_default()
}

/// The object's labels (empty when missing).
pub fn labels_of(obj: &Value) -> Map<String, Value> {
    obj.get("metadata").and_then(|m| m.get("labels")).and_then(|l| l.as_object()).cloned().unwrap_or_default()
}

/// The object's finalizers.
pub fn finalizers_of(obj: &Value) -> Vec<String> {
    obj.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(|f| f.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// Serialises an object for the store, without `metadata.resourceVersion`.
pub fn to_stored(obj: &Value) -> Vec<u8> {
    let mut o = obj.clone();
    meta_mut(&mut o).remove("resourceVersion");
    serde_json::to_vec(&o).unwrap_or_default()
}

/// Decodes a stored value and sets `metadata.resourceVersion` to `rev`.
pub fn from_stored(value: &[u8], rev: Revision) -> Option<Value> {
    let mut v: Value = serde_json::from_slice(value).ok()?;
    meta_mut(&mut v).insert("resourceVersion".into(), Value::String(rev.to_string()));
    Some(v)
}

/// Decodes a key-value as served (resourceVersion = mod_revision).
pub fn from_kv(kv: &KeyValue) -> Option<Value> {
    from_stored(&kv.value, kv.mod_revision)
}

/// RFC 3339 UTC with second precision, as Kubernetes renders `metav1.Time`.
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second()).map(|t| t.to_string()).unwrap_or_else(|_| now.to_string())
}

/// `now + secs` as RFC 3339.
pub fn rfc3339_in(secs: i64) -> String {
    let t = jiff::Timestamp::now().as_second().saturating_add(secs);
    jiff::Timestamp::from_second(t).map(|t| t.to_string()).unwrap_or_else(|_| now_rfc3339())
}

/// Everything but `metadata` and `status` (what bumps `generation` when it changes).
pub fn spec_part(obj: &Value) -> Value {
    match obj {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Sets `obj.path = val`, creating objects on the way. `false` (and nothing changed) when a
/// non-object value is in the way, so malformed objects never panic the server.
pub fn set_path(obj: &mut Value, path: &[&str], val: Value) -> bool {
    let Some((last, parents)) = path.split_last() else { return false };
    let mut cur = obj;
    for p in parents {
        if cur.is_null() {
            *cur = json!({});
        }
        let Some(m) = cur.as_object_mut() else { return false };
        cur = m.entry(p.to_string()).or_insert(Value::Null);
    }
    if cur.is_null() {
        *cur = json!({});
    }
    match cur.as_object_mut() {
        Some(m) => {
            m.insert(last.to_string(), val);
            true
        }
        None => false,
    }
}

/// Five random characters as `generateName` appends (upstream's alphabet avoids vowels).
pub fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_has_no_resource_version_and_served_form_has_the_revision() {
        let obj = json!({"metadata": {"name": "a", "resourceVersion": "7"}});
        let stored = to_stored(&obj);
        let back: Value = serde_json::from_slice(&stored).unwrap();
        assert!(back["metadata"].get("resourceVersion").is_none());
        let served = from_stored(&stored, 12).unwrap();
        assert_eq!(served["metadata"]["resourceVersion"], "12");
    }

    #[test]
    fn set_path_creates_objects_and_refuses_non_objects() {
        let mut v = json!({"spec": null});
        assert!(set_path(&mut v, &["spec", "replicas"], json!(3)));
        assert_eq!(v["spec"]["replicas"], 3);
        let mut bad = json!({"spec": "x"});
        assert!(!set_path(&mut bad, &["spec", "replicas"], json!(3)));
        assert_eq!(bad["spec"], "x");
    }

    #[test]
    fn random_suffix_is_five_chars() {
        assert_eq!(random_suffix().len(), 5);
    }
}
