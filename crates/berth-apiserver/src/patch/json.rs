//! JSON patch (RFC 6902) and JSON merge patch (RFC 7386), with errors worded as kube-apiserver
//! (evanphx/json-patch) words them.

use json_patch::{PatchErrorKind, PatchOperation};
use serde_json::Value;

use super::PatchError;

/// Applies an RFC 6902 patch. A malformed patch is `BadRequest`; an operation that cannot be
/// applied (failed `test`, missing path) is `Invalid` (422), as upstream.
pub(crate) fn apply_json_patch(current: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_array() {
        return Err(PatchError::BadRequest(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch".to_string(),
        ));
    }
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError::BadRequest(format!("invalid JSON patch: {e}")))?;
    let mut out = current.clone();
    json_patch::patch(&mut out, &ops.0).map_err(|e| {
        let op = ops.0.get(e.operation);
        PatchError::Invalid(describe_failure(op, &e.path.to_string(), &e.kind))
    })?;
    Ok(out)
}

/// The evanphx/json-patch wording of a failed operation.
fn describe_failure(op: Option<&PatchOperation>, path: &str, kind: &PatchErrorKind) -> String {
    match (op, kind) {
        (Some(PatchOperation::Test(_)), _) | (_, PatchErrorKind::TestFailed) => {
            format!("testing value {path} failed: test failed")
        }
        (Some(PatchOperation::Remove(_)), _) => {
            format!("unable to remove nonexistent key: {}: missing value", last_token(path))
        }
        (Some(PatchOperation::Replace(_)), _) => {
            format!("replace operation does not apply: doc is missing key: {path}: missing value")
        }
        (Some(PatchOperation::Add(_)), _) => {
            format!("add operation does not apply: doc is missing path: \"{path}\": missing value")
        }
        (Some(PatchOperation::Move(m)), PatchErrorKind::InvalidFromPointer) => {
            format!("move operation does not apply: doc is missing from path: {}: missing value", m.from)
        }
        (Some(PatchOperation::Copy(c)), PatchErrorKind::InvalidFromPointer) => {
            format!("copy operation does not apply: doc is missing from path: {}: missing value", c.from)
        }
        (Some(PatchOperation::Move(_)), PatchErrorKind::CannotMoveInsideItself) => {
            format!("move operation does not apply: cannot move {path} into itself")
        }
        (Some(PatchOperation::Move(_)), _) => {
            format!("move operation does not apply: doc is missing destination path: {path}: missing value")
        }
        (Some(PatchOperation::Copy(_)), _) => {
            format!("copy operation does not apply: doc is missing destination path: {path}: missing value")
        }
        (None, kind) => format!("{path}: {kind}"),
    }
}

fn last_token(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Applies an RFC 7386 merge patch. The patch must be a JSON object, as for every Kubernetes object.
pub(crate) fn apply_merge_patch(current: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::BadRequest("invalid JSON document: a merge patch must be a JSON object".to_string()));
    }
    let mut out = current.clone();
    json_patch::merge(&mut out, patch);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment() -> Value {
        json!({"metadata": {"name": "web", "annotations": {"a": "1"}}, "spec": {"replicas": 1, "template": {}}})
    }

    #[test]
    fn json_patch_cases() {
        struct Case {
            name: &'static str,
            patch: Value,
            want: Result<Value, &'static str>,
        }
        let cases = [
            Case {
                name: "replace replicas",
                patch: json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]),
                want: Ok(
                    json!({"metadata": {"name": "web", "annotations": {"a": "1"}}, "spec": {"replicas": 3, "template": {}}}),
                ),
            },
            Case {
                name: "rollout undo style replace of annotations and template",
                patch: json!([
                    {"op": "replace", "path": "/spec/template", "value": {"spec": {"containers": [{"name": "a"}]}}},
                    {"op": "replace", "path": "/metadata/annotations", "value": {"b": "2"}}
                ]),
                want: Ok(json!({"metadata": {"name": "web", "annotations": {"b": "2"}},
                    "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a"}]}}}})),
            },
            Case {
                name: "passing test then remove",
                patch: json!([{"op": "test", "path": "/spec/replicas", "value": 1}, {"op": "remove", "path": "/metadata/annotations/a"}]),
                want: Ok(
                    json!({"metadata": {"name": "web", "annotations": {}}, "spec": {"replicas": 1, "template": {}}}),
                ),
            },
            Case {
                name: "failed test",
                patch: json!([{"op": "test", "path": "/spec/replicas", "value": 2}]),
                want: Err("Invalid: testing value /spec/replicas failed: test failed"),
            },
            Case {
                name: "remove missing key",
                patch: json!([{"op": "remove", "path": "/metadata/labels"}]),
                want: Err("Invalid: unable to remove nonexistent key: labels: missing value"),
            },
            Case {
                name: "replace missing key",
                patch: json!([{"op": "replace", "path": "/status/phase", "value": "x"}]),
                want: Err(
                    "Invalid: replace operation does not apply: doc is missing key: /status/phase: missing value",
                ),
            },
            Case { name: "unknown op", patch: json!([{"op": "frobnicate", "path": "/spec"}]), want: Err("BadRequest") },
            Case { name: "object instead of list", patch: json!({"op": "add"}), want: Err("BadRequest") },
        ];
        for case in cases {
            let got = apply_json_patch(&deployment(), &case.patch);
            match (got, case.want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{}", case.name),
                (Err(PatchError::Invalid(msg)), Err(want)) => {
                    assert_eq!(format!("Invalid: {msg}"), want, "{}", case.name)
                }
                (Err(PatchError::BadRequest(_)), Err(want)) => assert_eq!("BadRequest", want, "{}", case.name),
                (got, want) => panic!("{}: got {got:?}, want {want:?}", case.name),
            }
        }
    }

    #[test]
    fn merge_patch_sets_replaces_lists_and_deletes_with_null() {
        let current = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 1, "list": [1, 2]}});
        let patch = json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"replicas": 5, "list": [3]}});
        let got = apply_merge_patch(&current, &patch).unwrap();
        assert_eq!(got, json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"replicas": 5, "list": [3]}}));
    }

    #[test]
    fn kubectl_scale_merge_patch_sets_replicas() {
        let got = apply_merge_patch(&deployment(), &json!({"spec": {"replicas": 4}})).unwrap();
        assert_eq!(got["spec"]["replicas"], 4);
        assert_eq!(got["metadata"]["annotations"]["a"], "1");
    }

    #[test]
    fn merge_patch_must_be_an_object() {
        assert!(matches!(apply_merge_patch(&deployment(), &json!([1])), Err(PatchError::BadRequest(_))));
    }
}
