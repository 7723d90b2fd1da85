//! `metadata.managedFields` as Kubernetes stores it: one entry per (manager, operation, and for
//! updates apiVersion, subresource), each with a FieldsV1 set; read from and written to objects,
//! sorted as upstream (`sortEncodedManagedFields`: operation, time, manager, apiVersion).

use serde_json::{Map, Value, json};

use super::fieldpath::FieldSet;

/// `Apply` or `Update`.
pub(crate) const APPLY: &str = "Apply";
pub(crate) const UPDATE: &str = "Update";

/// One managedFields entry.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: Option<String>,
    pub subresource: Option<String>,
    pub set: FieldSet,
}

impl Entry {
    /// Whether this entry is the one `manager` writes with `operation` (and, for updates, with
    /// `api_version`): upstream's manager identifier leaves the apiVersion out for appliers.
    pub(crate) fn is(&self, manager: &str, operation: &str, api_version: &str) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.is_none()
            && (operation == APPLY || self.api_version == api_version)
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation));
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.set.to_fields_v1());
        if let Some(s) = &self.subresource {
            m.insert("subresource".into(), json!(s));
        }
        Value::Object(m)
    }

    fn from_json(v: &Value) -> Option<Entry> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let set = match v.get("fieldsV1") {
            Some(f) => FieldSet::from_fields_v1(f).ok()?,
            None => FieldSet::default(),
        };
        Some(Entry {
            manager: s("manager").unwrap_or_default(),
            operation: s("operation")?,
            api_version: s("apiVersion").unwrap_or_default(),
            time: s("time"),
            subresource: s("subresource").filter(|s| !s.is_empty()),
            set,
        })
    }
}

/// Whether the object carries a `metadata.managedFields` list (possibly empty).
pub(crate) fn has_managed_fields(obj: &Value) -> bool {
    obj.get("metadata").and_then(|m| m.get("managedFields")).is_some_and(Value::is_array)
}

/// The entries of `obj`'s managedFields; entries that cannot be read are dropped, as
/// kube-apiserver resets managedFields it cannot decode.
pub(crate) fn decode(obj: &Value) -> Vec<Entry> {
    obj.get("metadata")
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
        .map(|entries| entries.iter().filter_map(Entry::from_json).collect())
        .unwrap_or_default()
}

/// Removes `metadata.managedFields` from `obj`.
pub(crate) fn strip(obj: &mut Value) {
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        meta.shift_remove("managedFields");
    }
}

/// Writes `entries` (empty ones dropped, sorted) to `obj`'s `metadata.managedFields`, or removes
/// the field when none is left.
pub(crate) fn encode(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|a, b| {
        (&a.operation, &a.time, &a.manager, &a.api_version).cmp(&(&b.operation, &b.time, &b.manager, &b.api_version))
    });
    let Value::Object(root) = obj else { return };
    let meta = root.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(meta) = meta else { return };
    if entries.is_empty() {
        meta.shift_remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(entries.iter().map(Entry::to_json).collect()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_sort_apply_first() {
        let obj = json!({"metadata": {"managedFields": [
            {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1",
             "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:replicas": {}}}},
            {"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
             "time": "2026-01-02T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            {"manager": "broken", "operation": "Update", "fieldsV1": {"x:bad": {}}}
        ]}});
        let entries = decode(&obj);
        assert_eq!(entries.len(), 2);
        let mut out = json!({"metadata": {"name": "a"}});
        encode(&mut out, entries);
        let mf = out["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(mf[0]["manager"], "kubectl");
        assert_eq!(mf[1]["manager"], "kube-controller-manager");
        assert_eq!(mf[0], obj["metadata"]["managedFields"][1]);
        assert_eq!(mf[1], obj["metadata"]["managedFields"][0]);
    }

    #[test]
    fn empty_entries_remove_the_field() {
        let mut obj = json!({"metadata": {"managedFields": []}});
        encode(&mut obj, vec![]);
        assert_eq!(obj, json!({"metadata": {}}));
    }
}
