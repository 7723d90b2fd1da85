//! `ApiError`: every failure the apiserver reports, rendered as a `metav1.Status` JSON body with
//! the code, reason and message kube-apiserver uses (k8s.io/apimachinery/pkg/api/errors).

use axum::response::{IntoResponse, Response};
use berth_api::{FieldError, ResourceType};
use berth_store::StoreError;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

/// Largest request body accepted (as kube-apiserver's 3 MiB limit).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// One `details.causes[]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    pub reason: String,
    pub message: String,
    pub field: String,
}

/// A failed request as a Kubernetes `Status`.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `Status.details` (boxed: errors travel in every `Result`).
    pub details: Box<Details>,
}

/// `Status.details`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Details {
    pub name: Option<String>,
    pub group: Option<String>,
    /// `details.kind` (upstream puts the plural resource here for most errors).
    pub kind: Option<String>,
    pub causes: Vec<Cause>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error without details.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError { code, reason, message: message.into(), details: Box::default() }
    }

    fn with_resource(mut self, rt: &ResourceType, name: &str) -> Self {
        self.details.name = Some(name.to_string()).filter(|n| !n.is_empty());
        self.details.group = Some(rt.group.to_string());
        self.details.kind = Some(rt.plural.to_string());
        self
    }

    /// 404 `deployments.apps "x" not found`.
    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        ApiError::new(404, "NotFound", format!("{} \"{name}\" not found", rt.qualified_plural()))
            .with_resource(rt, name)
    }

    /// 404 for a resource given by its plural and group (e.g. a missing namespace).
    pub fn not_found_named(plural: &str, group: &str, name: &str) -> Self {
        let qualified = if group.is_empty() { plural.to_string() } else { format!("{plural}.{group}") };
        let mut e = ApiError::new(404, "NotFound", format!("{qualified} \"{name}\" not found"));
        e.details.name = Some(name.to_string());
        e.details.group = Some(group.to_string());
        e.details.kind = Some(plural.to_string());
        e
    }

    /// 404 for a path the server does not serve.
    pub fn path_not_found() -> Self {
        ApiError::new(404, "NotFound", "the server could not find the requested resource")
    }

    /// 409 AlreadyExists.
    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        ApiError::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", rt.qualified_plural()))
            .with_resource(rt, name)
    }

    /// 409 Conflict for a stale resourceVersion.
    pub fn conflict(rt: &ResourceType, name: &str) -> Self {
        ApiError::conflict_msg(
            rt,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 Conflict with a custom reason text: `Operation cannot be fulfilled on X "n": msg`.
    pub fn conflict_msg(rt: &ResourceType, name: &str, msg: &str) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {} \"{name}\": {msg}", rt.qualified_plural()),
        )
        .with_resource(rt, name)
    }

    /// 422 Invalid: `Deployment.apps "web" is invalid: spec.replicas: Invalid value: ...`.
    pub fn invalid(rt: &ResourceType, name: &str, errors: &[FieldError]) -> Self {
        let qualified_kind =
            if rt.group.is_empty() { rt.kind.to_string() } else { format!("{}.{}", rt.kind, rt.group) };
        let list = match errors {
            [one] => one.to_string(),
            many => format!("[{}]", many.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")),
        };
        let mut e = ApiError::new(422, "Invalid", format!("{qualified_kind} \"{name}\" is invalid: {list}"));
        e.details.name = Some(name.to_string());
        e.details.group = Some(rt.group.to_string());
        e.details.kind = Some(rt.kind.to_string());
        e.details.causes = errors
            .iter()
            .map(|f| Cause { reason: f.kind.reason().to_string(), message: f.message(), field: f.field.clone() })
            .collect();
        e
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(403, "Forbidden", message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed() -> Self {
        ApiError::new(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
    }

    /// 406 NotAcceptable.
    pub fn not_acceptable() -> Self {
        ApiError::new(
            406,
            "NotAcceptable",
            "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf",
        )
    }

    /// 410 Expired (a compacted resourceVersion or continue token).
    pub fn expired(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }

    /// 413 RequestEntityTooLarge.
    pub fn too_large() -> Self {
        ApiError::new(413, "RequestEntityTooLarge", format!("Request entity too large: limit is {MAX_BODY_BYTES}"))
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> Self {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}{}",
                accepted.join(", "),
                if content_type.is_empty() { String::new() } else { format!(" (got {content_type})") }
            ),
        )
    }

    /// 500 InternalError.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        ApiError::new(500, "InternalError", format!("Internal error occurred: {message}"))
    }

    /// Maps a store failure on object `name` of `rt` to its Status.
    pub fn from_store(rt: &ResourceType, name: &str, err: StoreError) -> Self {
        match err {
            StoreError::NotFound { .. } => ApiError::not_found(rt, name),
            StoreError::AlreadyExists { .. } => ApiError::already_exists(rt, name),
            StoreError::Conflict { .. } => ApiError::conflict(rt, name),
            StoreError::Compacted { requested, compacted } => {
                ApiError::expired(format!("too old resource version: {requested} ({compacted})"))
            }
            StoreError::FutureRevision { requested, current } => {
                let mut e = ApiError::new(
                    504,
                    "Timeout",
                    format!("Too large resource version: {requested}, current: {current}"),
                );
                e.details.retry_after = Some(1);
                e
            }
            other => ApiError::internal(error_chain(&other)),
        }
    }

    /// The `metav1.Status` JSON body.
    pub fn status_json(&self) -> Value {
        let mut details = serde_json::Map::new();
        if let Some(n) = &self.details.name {
            details.insert("name".into(), json!(n));
        }
        if let Some(g) = &self.details.group {
            details.insert("group".into(), json!(g));
        }
        if let Some(k) = &self.details.kind {
            details.insert("kind".into(), json!(k));
        }
        if !self.details.causes.is_empty() {
            details.insert(
                "causes".into(),
                Value::Array(
                    self.details
                        .causes
                        .iter()
                        .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                        .collect(),
                ),
            );
        }
        if let Some(s) = self.details.retry_after {
            details.insert("retryAfterSeconds".into(), json!(s));
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

/// `a: b: c` for an error and its sources.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut src = err.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.status_json()).unwrap_or_default();
        let mut resp = (code, body).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(v) = self.details.retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_json_has_the_upstream_shape() {
        let e = ApiError::new(404, "NotFound", "x");
        let j = e.status_json();
        assert_eq!(j["kind"], "Status");
        assert_eq!(j["status"], "Failure");
        assert_eq!(j["code"], 404);
        assert!(j.get("details").is_none());
    }
}
