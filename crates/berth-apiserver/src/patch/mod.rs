//! Patches as Kubernetes applies them: JSON patch (RFC 6902), JSON merge patch (RFC 7386),
//! strategic merge patch (merge keys per field of the built-in kinds) and server-side apply
//! (managedFields, conflicts). Pure functions over JSON values; no I/O.

use serde_json::Value;

mod apply;
mod fieldpath;
mod json;
mod managed_fields;
mod merge_keys;
mod strategic;

/// The patch flavours, by request `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`
    Json,
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    StrategicMerge,
    /// `application/apply-patch+yaml` (server-side apply)
    Apply,
}

impl PatchType {
    /// The patch type of a `Content-Type` header value (parameters ignored).
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        match content_type.split(';').next().unwrap_or_default().trim() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(PatchType::Apply),
            _ => None,
        }
    }
}

/// A patch that cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The patch document is malformed (400 BadRequest).
    #[error("{0}")]
    BadRequest(String),
    /// A JSON patch `test` failed or a path is missing (422 Invalid in Kubernetes).
    #[error("{0}")]
    Invalid(String),
    /// Server-side apply conflicts with other field managers (409 Conflict), worded as upstream:
    /// `Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas`.
    #[error("{}", conflicts_message(.0))]
    Conflicts(Vec<ApplyConflict>),
}

/// One field another manager owns with a different value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyConflict {
    /// The other manager's name.
    pub manager: String,
    /// `.spec.replicas`, `.spec.template.spec.containers[name="nginx"].image`
    pub field: String,
    /// The API version of the other manager's entry when its operation is `Update` (upstream
    /// prints `"manager" using apps/v1` then); None for appliers.
    pub api_version: Option<String>,
}

impl ApplyConflict {
    /// The manager as upstream prints it: `"kubectl"`, or `"kubectl-edit" using apps/v1`.
    pub fn manager_description(&self) -> String {
        match &self.api_version {
            Some(v) => format!("{:?} using {v}", self.manager),
            None => format!("{:?}", self.manager),
        }
    }

    /// The `details.causes[].message` upstream gives this conflict (its `field` is `self.field`):
    /// `conflict with "kubectl-client-side-apply" using apps/v1`.
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.manager_description())
    }
}

impl std::fmt::Display for ApplyConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.cause_message(), self.field)
    }
}

/// The Status message of a failed apply (upstream `getConflictMessage`).
fn conflicts_message(conflicts: &[ApplyConflict]) -> String {
    if let [one] = conflicts {
        return format!("Apply failed with 1 conflict: {one}");
    }
    let mut by_manager: std::collections::BTreeMap<String, Vec<&str>> = std::collections::BTreeMap::new();
    for c in conflicts {
        by_manager.entry(c.manager_description()).or_default().push(&c.field);
    }
    let mut lines = Vec::new();
    for (manager, fields) in by_manager {
        lines.push(format!("conflicts with {manager}:"));
        lines.extend(fields.into_iter().map(|f| format!("- {f}")));
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

/// Applies a JSON, merge or strategic merge patch to `current` (an object of kind `group`/`kind`).
///
/// # Errors
/// `BadRequest` for a malformed patch, `Invalid` for a JSON patch operation that does not apply
/// (failed `test`, missing path) or a strategic merge patch with lists of lists.
pub fn apply_patch(
    patch_type: PatchType,
    group: &str,
    kind: &str,
    current: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    match patch_type {
        PatchType::Json => json::apply_json_patch(current, patch),
        PatchType::Merge => json::apply_merge_patch(current, patch),
        PatchType::StrategicMerge => strategic::apply_strategic_merge_patch(group, kind, current, patch),
        PatchType::Apply => Err(PatchError::BadRequest("use server_side_apply for apply patches".into())),
    }
}

/// Server-side apply of `applied` by `manager` onto `current` (None: the object is created).
/// Updates `metadata.managedFields`; without `force`, fields owned by another manager with a
/// different value are `Conflicts`; with it, their ownership moves to `manager`. Fields `manager`
/// applied before and omits now are removed unless another manager owns them.
pub fn server_side_apply(
    group: &str,
    kind: &str,
    current: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, PatchError> {
    apply::server_side_apply(group, kind, current, applied, manager, force, &now())
}

/// Records an ordinary write (create, update, patch) by `manager` in `new`'s
/// `metadata.managedFields` (operation `Update`), given the object before the write: the fields
/// the write changed move to `manager`. A create of an object that server-side apply already
/// recorded for `manager` adds nothing.
pub fn track_update(group: &str, kind: &str, old: Option<&Value>, new: &mut Value, manager: &str) {
    apply::track_update(group, kind, old, new, manager, &now());
}

/// A field path of `obj` (an object of kind `group`/`kind`) as server-side apply prints it:
/// `.spec.template.spec.containers[name="nginx"].imagee`.
pub fn typed_path(group: &str, kind: &str, obj: &Value, path: &[berth_api::field_validation::PathSegment]) -> String {
    apply::typed_path(group, kind, obj, path)
}

/// Now, as managedFields times are written (RFC 3339, whole seconds, UTC).
fn now() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second()).unwrap_or(now).to_string()
}
