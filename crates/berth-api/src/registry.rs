//! The resource registry: every kind Berth serves, with its names, scope, subresources and
//! strategy. The apiserver's generic handler is driven entirely by these entries.

use serde_json::Value;

use crate::FieldError;

/// A subresource served under `/.../{plural}/{name}/{sub}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subresource {
    Status,
    Scale,
    Binding,
    Eviction,
    Log,
    Exec,
    Attach,
    PortForward,
    Proxy,
}

impl Subresource {
    /// The path segment, e.g. `status`, `portforward`.
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
            Subresource::Binding => "binding",
            Subresource::Eviction => "eviction",
            Subresource::Log => "log",
            Subresource::Exec => "exec",
            Subresource::Attach => "attach",
            Subresource::PortForward => "portforward",
            Subresource::Proxy => "proxy",
        }
    }
}

/// Per-kind behaviour: defaulting, validation and version conversion. Objects are JSON values
/// in the version named by their `apiVersion`.
pub trait Strategy: Send + Sync {
    /// Fills server-side defaults (port protocol TCP, Deployment strategy, ...). Called on create
    /// and update, on the object in its storage version.
    fn default(&self, _obj: &mut Value) {}

    /// Kind-specific validation of a new object (metadata is validated by the registry).
    fn validate_create(&self, _obj: &Value) -> Vec<FieldError> {
        Vec::new()
    }

    /// Kind-specific validation of an update, including immutable fields.
    fn validate_update(&self, obj: &Value, _old: &Value) -> Vec<FieldError> {
        self.validate_create(obj)
    }

    /// Converts the object's content between served versions of this kind (e.g. HPA v1 <-> v2).
    /// `obj` carries its current `apiVersion`; the result must carry `to_api_version`.
    fn convert(&self, mut obj: Value, to_api_version: &str) -> Result<Value, FieldError> {
        obj["apiVersion"] = Value::String(to_api_version.to_string());
        Ok(obj)
    }
}

/// One kind as the API serves it.
pub struct ResourceType {
    /// API group; `""` for the core group.
    pub group: &'static str,
    /// Served versions, preferred first.
    pub versions: &'static [&'static str],
    /// The version objects are stored in.
    pub storage_version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub namespaced: bool,
    pub subresources: &'static [Subresource],
    pub strategy: &'static dyn Strategy,
}

impl std::fmt::Debug for ResourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResourceType({}/{})", self.group, self.plural)
    }
}

impl ResourceType {
    /// `apps/v1` or `v1` for the given version.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() { version.to_string() } else { format!("{}/{}", self.group, version) }
    }

    /// `deployments.apps`, or `pods` for the core group (as used in Status messages).
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() { self.plural.to_string() } else { format!("{}.{}", self.plural, self.group) }
    }

    pub fn has_subresource(&self, sub: Subresource) -> bool {
        self.subresources.contains(&sub)
    }

    /// The store prefix of all objects of this kind (in a namespace, when given):
    /// `/registry/{group}/{plural}/[{namespace}/]`, group `core` for the core group.
    pub fn key_prefix(&self, namespace: Option<&str>) -> String {
        let group = if self.group.is_empty() { "core" } else { self.group };
        match namespace {
            Some(ns) if self.namespaced => format!("/registry/{group}/{}/{ns}/", self.plural),
            _ => format!("/registry/{group}/{}/", self.plural),
        }
    }

    /// The store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.key_prefix(namespace))
    }

    /// Validates a new object: metadata (name, labels, annotations) then the kind's rules.
    pub fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        self.strategy.validate_create(obj)
    }

    /// Validates an update: metadata, immutable fields, then the kind's rules.
    pub fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldError> {
        self.strategy.validate_update(obj, old)
    }
}

/// All kinds Berth serves.
pub struct Registry {
    types: Vec<&'static ResourceType>,
}

impl Registry {
    /// The built-in kinds.
    pub fn builtin() -> Self {
        Registry { types: Vec::new() }
    }

    pub fn all(&self) -> &[&'static ResourceType] {
        &self.types
    }

    /// Looks up `(group, version, plural)` as it appears in a request path.
    pub fn by_resource(&self, group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
        self.types.iter().copied().find(|t| t.group == group && t.plural == plural && t.versions.contains(&version))
    }

    /// Looks up `(group, kind)`.
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<&'static ResourceType> {
        self.types.iter().copied().find(|t| t.group == group && t.kind == kind)
    }

    /// All `(group, version)` pairs served, in discovery order (core first).
    pub fn group_versions(&self) -> Vec<(&'static str, &'static str)> {
        let mut out: Vec<(&'static str, &'static str)> = Vec::new();
        for t in &self.types {
            for v in t.versions {
                if !out.contains(&(t.group, *v)) {
                    out.push((t.group, v));
                }
            }
        }
        out
    }
}
