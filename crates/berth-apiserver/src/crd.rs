//! CustomResourceDefinitions: the registry of served kinds is the built-in one plus one entry
//! per stored CRD, rebuilt after every CRD write (and at start). A new CRD is marked
//! `Established`; the custom objects of a deleted CRD are deleted with it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use berth_api::{Registry, ResourceType, Strategy, Subresource};
use berth_store::{RangeRequest, Store, StoreError};
use serde_json::{Value, json};

use crate::object;

/// Store prefix of CRD objects.
const CRD_PREFIX: &str = "/registry/apiextensions.k8s.io/customresourcedefinitions/";

/// Custom objects: no defaulting beyond metadata, no conversion; unknown fields pruned per the
/// version's structural schema (server-side field validation).
struct CustomStrategy {
    /// `(version, schema)` for each version whose schema prunes anything.
    schemas: Vec<(String, berth_api::field_validation::KindSchema)>,
}

impl Strategy for CustomStrategy {
    fn field_schema(&self, version: &str) -> Option<berth_api::field_validation::KindSchema> {
        self.schemas.iter().find(|(v, _)| v == version).map(|(_, s)| *s)
    }
}

/// The structural schemas of a CRD's versions (none with `spec.preserveUnknownFields`).
fn custom_strategy(spec: &Value) -> &'static CustomStrategy {
    let mut schemas = Vec::new();
    if spec["preserveUnknownFields"].as_bool() != Some(true) {
        for v in spec["versions"].as_array().into_iter().flatten() {
            let (Some(name), Some(schema)) = (v["name"].as_str(), v["schema"].get("openAPIV3Schema")) else {
                continue;
            };
            if let Some(s) = berth_api::field_validation::compile_structural(schema) {
                schemas.push((name.to_string(), s));
            }
        }
    }
    Box::leak(Box::new(CustomStrategy { schemas }))
}

/// The current registry, swapped as CRDs come and go. Cheap to clone.
#[derive(Clone)]
pub struct RegistryHandle {
    current: Arc<RwLock<Arc<Registry>>>,
    /// Leaked entries by CRD content, so an unchanged CRD never leaks a second entry.
    entries: Arc<Mutex<HashMap<String, &'static ResourceType>>>,
}

impl RegistryHandle {
    pub fn new(registry: Registry) -> Self {
        RegistryHandle { current: Arc::new(RwLock::new(Arc::new(registry))), entries: Arc::default() }
    }

    /// A snapshot of the served kinds.
    pub fn get(&self) -> Arc<Registry> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, registry: Registry) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(registry);
    }
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn leak_list(v: &Value) -> &'static [&'static str] {
    let items: Vec<&'static str> = v.as_array().into_iter().flatten().filter_map(Value::as_str).map(leak).collect();
    Box::leak(items.into_boxed_slice())
}

/// Kubernetes version priority: GA before beta before alpha, higher numbers first, then others
/// alphabetically.
fn version_key(v: &str) -> (u8, i64, i64, String) {
    let parse = |s: &str| -> Option<(u8, i64, i64)> {
        let rest = s.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let major: i64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((0, -major, 0));
        }
        for (level, word) in [(1u8, "beta"), (2u8, "alpha")] {
            if let Some(n) = tail.strip_prefix(word) {
                let minor: i64 = n.parse().ok()?;
                return Some((level, -major, -minor));
            }
        }
        None
    };
    match parse(v) {
        Some((l, a, b)) => (l, a, b, String::new()),
        None => (3, 0, 0, v.to_string()),
    }
}

/// The registry entry a CRD object defines, if it is well-formed.
fn resource_type(crd: &Value) -> Option<ResourceType> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().filter(|s| !s.is_empty())?;
    let names = &spec["names"];
    let plural = names["plural"].as_str().filter(|s| !s.is_empty())?;
    let kind = names["kind"].as_str().filter(|s| !s.is_empty())?;
    let singular =
        names["singular"].as_str().filter(|s| !s.is_empty()).map(String::from).unwrap_or_else(|| kind.to_lowercase());
    let versions = spec["versions"].as_array()?;
    let mut served: Vec<&str> =
        versions.iter().filter(|v| v["served"].as_bool().unwrap_or(true)).filter_map(|v| v["name"].as_str()).collect();
    served.sort_by_key(|v| version_key(v));
    if served.is_empty() {
        return None;
    }
    let storage = versions
        .iter()
        .find(|v| v["storage"].as_bool() == Some(true))
        .and_then(|v| v["name"].as_str())
        .unwrap_or(served[0]);
    let mut subs = Vec::new();
    if versions.iter().any(|v| v["subresources"]["status"].is_object()) {
        subs.push(Subresource::Status);
    }
    if versions.iter().any(|v| v["subresources"]["scale"].is_object()) {
        subs.push(Subresource::Scale);
    }
    Some(ResourceType {
        group: leak(group),
        versions: Box::leak(served.into_iter().map(leak).collect::<Vec<_>>().into_boxed_slice()),
        storage_version: leak(storage),
        kind: leak(kind),
        plural: leak(plural),
        singular: leak(&singular),
        short_names: leak_list(&names["shortNames"]),
        categories: leak_list(&names["categories"]),
        namespaced: spec["scope"].as_str() != Some("Cluster"),
        subresources: Box::leak(subs.into_boxed_slice()),
        strategy: custom_strategy(spec),
    })
}

/// Rebuilds the registry from the stored CRDs, marks new ones Established and deletes the
/// objects of kinds that disappeared.
pub async fn sync(store: &dyn Store, handle: &RegistryHandle) -> Result<(), StoreError> {
    let resp = store.range(RangeRequest { prefix: CRD_PREFIX.into(), ..Default::default() }).await?;
    let builtin = Registry::builtin();
    let before: Vec<&'static ResourceType> = {
        handle.get().all().iter().copied().filter(|t| !builtin.all().iter().any(|b| std::ptr::eq(*b, *t))).collect()
    };
    let mut registry = Registry::builtin();
    let mut custom = Vec::new();
    for kv in &resp.kvs {
        let Some(crd) = object::from_kv(kv) else { continue };
        let spec = &crd["spec"];
        let cache_key = serde_json::to_string(&json!([spec["group"], spec["names"], spec["scope"], spec["versions"]]))
            .unwrap_or_default();
        let entry = {
            let mut entries = handle.entries.lock().unwrap_or_else(|e| e.into_inner());
            match entries.get(&cache_key) {
                Some(t) => Some(*t),
                None => resource_type(&crd).map(|t| {
                    let leaked: &'static ResourceType = Box::leak(Box::new(t));
                    entries.insert(cache_key.clone(), leaked);
                    leaked
                }),
            }
        };
        let Some(t) = entry else { continue };
        // A CRD may not shadow a built-in kind.
        if builtin.all().iter().any(|b| b.group == t.group && b.plural == t.plural) {
            continue;
        }
        registry.register(t);
        custom.push(t);
        establish(store, kv.mod_revision, &crd, t).await;
    }
    handle.set(registry);
    for gone in before.iter().filter(|t| !custom.iter().any(|c| c.group == t.group && c.plural == t.plural)) {
        let prefix = gone.key_prefix(None);
        if let Ok(objs) = store.range(RangeRequest { prefix, ..Default::default() }).await {
            for kv in objs.kvs {
                let _ = store.delete(&kv.key, None).await;
            }
        }
    }
    Ok(())
}

/// Sets the CRD's status as the apiextensions controllers would (names accepted, established).
async fn establish(store: &dyn Store, rev: berth_store::Revision, crd: &Value, t: &ResourceType) {
    let established = crd["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Established" && c["status"] == "True"));
    if established {
        return;
    }
    let now = object::now_rfc3339();
    let mut updated = crd.clone();
    let status = json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "acceptedNames": crd["spec"]["names"],
        "storedVersions": [t.storage_version],
    });
    if let Some(m) = updated.as_object_mut() {
        m.insert("status".into(), status);
    }
    let key = format!("{CRD_PREFIX}{}", object::name_of(crd));
    // A concurrent CRD write triggers another sync, which retries.
    let _ = store.update(&key, object::to_stored(&updated), rev).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_by_kubernetes_priority() {
        let mut v = vec!["v1alpha1", "v2beta1", "v1", "v1beta2", "v2", "foo"];
        v.sort_by_key(|s| version_key(s));
        assert_eq!(v, ["v2", "v1", "v2beta1", "v1beta2", "v1alpha1", "foo"]);
    }

    #[test]
    fn a_crd_defines_its_kind() {
        let crd = json!({"spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wd"]},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}}]
        }});
        let t = resource_type(&crd).unwrap();
        assert_eq!((t.group, t.kind, t.plural, t.singular), ("example.com", "Widget", "widgets", "widget"));
        assert_eq!(t.short_names, ["wd"]);
        assert!(t.namespaced && t.has_subresource(Subresource::Status));
    }
}
