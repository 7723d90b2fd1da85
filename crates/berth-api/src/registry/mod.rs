//! The resource registry: every kind Berth serves, with its names, scope, subresources and
//! strategy. The apiserver's generic handler is driven entirely by these entries.
//!
//! # Write pipeline
//! As kube-apiserver decodes, defaults, then validates, a write should: convert the body to the
//! storage version ([`Strategy::convert`]); on a main-resource update, carry server-owned values
//! over ([`Strategy::prepare_for_update`]); assign uid/creationTimestamp (the Job defaults derive
//! the selector from the uid); [`Strategy::default`]; then [`ResourceType::validate_create`] or
//! [`ResourceType::validate_update`] (old object as stored, i.e. defaulted). Validation assumes
//! defaulted input: e.g. a port without `protocol` is reported as required.

mod builtin;

use serde_json::Value;

use crate::FieldError;
use crate::validation::meta;

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

    /// Why `name` is not a valid object name of this kind, if it is not (one message per rule
    /// broken). `prefix` is set when checking a `generateName` prefix. Defaults to a DNS-1123
    /// subdomain, as `ValidateObjectMeta` with `NameIsDNSSubdomain`.
    fn validate_name(&self, name: &str, prefix: bool) -> Vec<String> {
        crate::validation::names::name_is_dns_subdomain(name, prefix)
    }

    /// Kind-specific validation of a new object (metadata is validated by the registry).
    fn validate_create(&self, _obj: &Value) -> Vec<FieldError> {
        Vec::new()
    }

    /// Kind-specific validation of an update, including immutable fields.
    fn validate_update(&self, obj: &Value, _old: &Value) -> Vec<FieldError> {
        self.validate_create(obj)
    }

    /// Carries server-owned values over from the stored object `old` into an update `obj`
    /// (upstream `PrepareForUpdate`): a Service keeps its allocated clusterIP and nodePorts when
    /// the update leaves them out; a Namespace keeps its `status`. Call it on a
    /// main-resource update (not on `/status` or other subresources), before [`Strategy::default`].
    fn prepare_for_update(&self, _obj: &mut Value, _old: &Value) {}

    /// The schema server-side field validation prunes a body of `version` with, for kinds
    /// without a typed one (custom resources with a structural schema). Built-in kinds need none:
    /// see [`crate::field_validation::kind_schema`].
    fn field_schema(&self, _version: &str) -> Option<crate::field_validation::KindSchema> {
        None
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
        let mut errs = meta::validate_object_meta(obj, self.namespaced, &|n, p| self.strategy.validate_name(n, p));
        errs.extend(self.strategy.validate_create(obj));
        errs
    }

    /// Validates an update: metadata, immutable fields, then the kind's rules.
    ///
    /// The old object is defaulted (on a copy) first, as kube-apiserver defaults what it reads
    /// from storage: an object stored before a default existed must not count as changed in
    /// the defaulted field.
    pub fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldError> {
        let mut old = old.clone();
        self.strategy.default(&mut old);
        let mut errs = meta::validate_object_meta(obj, self.namespaced, &|n, p| self.strategy.validate_name(n, p));
        errs.extend(meta::validate_object_meta_update(obj, &old));
        errs.extend(self.strategy.validate_update(obj, &old));
        errs
    }

    /// Prepares a main-resource update (see [`Strategy::prepare_for_update`]).
    pub fn prepare_for_update(&self, obj: &mut Value, old: &Value) {
        self.strategy.prepare_for_update(obj, old)
    }

    /// Applies the kind's defaults (see [`Strategy::default`]).
    pub fn default(&self, obj: &mut Value) {
        self.strategy.default(obj)
    }

    /// Converts `obj` to `to_api_version` (see [`Strategy::convert`]).
    pub fn convert(&self, obj: Value, to_api_version: &str) -> Result<Value, FieldError> {
        self.strategy.convert(obj, to_api_version)
    }
}

/// All kinds Berth serves.
pub struct Registry {
    types: Vec<&'static ResourceType>,
}

impl Registry {
    /// The built-in kinds: the core group first, then the other groups in the order
    /// kube-apiserver lists them in discovery, resources alphabetical within a group.
    pub fn builtin() -> Self {
        Registry { types: builtin::BUILTIN.iter().collect() }
    }

    /// An empty registry (for tests and for building one up by hand).
    pub fn empty() -> Self {
        Registry { types: Vec::new() }
    }

    /// Adds a kind (e.g. one a CustomResourceDefinition defines); it is listed after the rest.
    /// A kind with the same group and plural replaces the earlier entry.
    pub fn register(&mut self, t: &'static ResourceType) {
        if let Some(slot) = self.types.iter_mut().find(|x| x.group == t.group && x.plural == t.plural) {
            *slot = t;
        } else {
            self.types.push(t);
        }
    }

    /// Removes the kind with this group and plural, if any.
    pub fn unregister(&mut self, group: &str, plural: &str) -> Option<&'static ResourceType> {
        let i = self.types.iter().position(|t| t.group == group && t.plural == plural)?;
        Some(self.types.remove(i))
    }

    /// Looks up a resource in a group by plural, singular or short name (as kubectl resolves
    /// `deploy`, `deployment`, `deployments`), case-insensitively.
    pub fn resolve(&self, group: &str, name: &str) -> Option<&'static ResourceType> {
        let name = name.to_ascii_lowercase();
        let by = |f: &dyn Fn(&ResourceType) -> bool| self.types.iter().copied().find(|t| t.group == group && f(t));
        by(&|t| t.plural == name)
            .or_else(|| by(&|t| t.singular == name))
            .or_else(|| by(&|t| t.short_names.contains(&name.as_str())))
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

#[cfg(test)]
mod tests;
