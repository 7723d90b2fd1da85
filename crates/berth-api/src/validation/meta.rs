//! `metadata` validation for every kind: `ValidateObjectMeta` and `ValidateObjectMetaUpdate`
//! from apimachinery (`api/validation/objectmeta.go`) and core's `ValidateAnnotations`.

use serde_json::Value;

use super::names::{is_qualified_name, is_valid_label_value, name_is_dns_label};
use super::{ErrorList, child, index, q, render, str_or_empty, validate_immutable};
use crate::FieldError;
use crate::field_error::FieldErrorKind;

/// Upstream's `TotalAnnotationSizeLimitB`: 256 KiB over all keys and values.
pub const TOTAL_ANNOTATION_SIZE_LIMIT_B: usize = 256 * 1024;

/// A name check: `(name, is_generate_name_prefix) -> messages`.
pub type NameFn<'a> = &'a dyn Fn(&str, bool) -> Vec<String>;

/// Validates `obj.metadata`: name (or generateName), namespace presence per scope, generation,
/// labels, annotations, owner references and finalizers.
pub fn validate_object_meta(obj: &Value, namespaced: bool, name_fn: NameFn<'_>) -> ErrorList {
    let empty = Value::Null;
    let meta = obj.get("metadata").unwrap_or(&empty);
    let mut errs = Vec::new();
    let generate_name = str_or_empty(meta, "generateName");
    if !generate_name.is_empty() {
        for msg in name_fn(generate_name, true) {
            errs.push(FieldError::invalid("metadata.generateName", q(generate_name), msg));
        }
    }
    let name = str_or_empty(meta, "name");
    if name.is_empty() {
        errs.push(FieldError::required("metadata.name", "name or generateName is required"));
    } else {
        for msg in name_fn(name, false) {
            errs.push(FieldError::invalid("metadata.name", q(name), msg));
        }
    }
    let namespace = str_or_empty(meta, "namespace");
    if namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        } else {
            for msg in name_is_dns_label(namespace, false) {
                errs.push(FieldError::invalid("metadata.namespace", q(namespace), msg));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden("metadata.namespace", "not allowed on this type"));
    }
    if let Some(g) = meta.get("generation").and_then(Value::as_i64)
        && g < 0
    {
        errs.push(FieldError::invalid("metadata.generation", g, super::IS_NEGATIVE));
    }
    errs.extend(validate_labels(meta.get("labels"), "metadata.labels"));
    errs.extend(validate_annotations(meta.get("annotations"), "metadata.annotations"));
    errs.extend(validate_owner_references(meta.get("ownerReferences"), "metadata.ownerReferences"));
    errs.extend(validate_finalizers(meta.get("finalizers"), "metadata.finalizers"));
    errs
}

/// Validates a metadata update: name, namespace and (when given) uid are immutable, and
/// generation may not go down.
pub fn validate_object_meta_update(obj: &Value, old: &Value) -> ErrorList {
    let empty = Value::Null;
    let new_meta = obj.get("metadata").unwrap_or(&empty);
    let old_meta = old.get("metadata").unwrap_or(&empty);
    let mut errs = Vec::new();
    if let (Some(n), Some(o)) =
        (new_meta.get("generation").and_then(Value::as_i64), old_meta.get("generation").and_then(Value::as_i64))
        && n < o
    {
        errs.push(FieldError::invalid("metadata.generation", n, "must not be decremented"));
    }
    errs.extend(validate_immutable(new_meta.get("name"), old_meta.get("name"), "metadata.name"));
    let ns = |m: &Value| m.get("namespace").filter(|v| v.as_str() != Some("")).cloned();
    errs.extend(validate_immutable(ns(new_meta).as_ref(), ns(old_meta).as_ref(), "metadata.namespace"));
    // The apiserver copies the uid from the stored object when the update leaves it out
    // (rest.BeforeUpdate), so only a different, non-empty uid is a change.
    if !str_or_empty(new_meta, "uid").is_empty() {
        errs.extend(validate_immutable(new_meta.get("uid"), old_meta.get("uid"), "metadata.uid"));
    }
    errs
}

/// `ValidateLabels`: keys are qualified names, values label values. Errors name the map, not
/// the key, as upstream does.
pub fn validate_labels(labels: Option<&Value>, path: &str) -> ErrorList {
    let mut errs = Vec::new();
    let Some(map) = labels.and_then(Value::as_object) else {
        return errs;
    };
    for (k, v) in map {
        for msg in is_qualified_name(k) {
            errs.push(FieldError::invalid(path, q(k), msg));
        }
        let val = v.as_str().unwrap_or("");
        for msg in is_valid_label_value(val) {
            errs.push(FieldError::invalid(path, q(val), msg));
        }
    }
    errs
}

/// `ValidateAnnotations`: keys are qualified names (checked lowercased); total size at most
/// 256 KiB.
pub fn validate_annotations(annotations: Option<&Value>, path: &str) -> ErrorList {
    let mut errs = Vec::new();
    let Some(map) = annotations.and_then(Value::as_object) else {
        return errs;
    };
    let mut total = 0usize;
    for (k, v) in map {
        for msg in is_qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid(path, q(k), msg));
        }
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_B {
        errs.push(FieldError {
            kind: FieldErrorKind::TooLong,
            field: path.to_string(),
            value: None,
            detail: format!("may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT_B} bytes"),
        });
    }
    errs
}

fn validate_owner_references(refs: Option<&Value>, path: &str) -> ErrorList {
    let mut errs = Vec::new();
    let Some(list) = refs.and_then(Value::as_array) else {
        return errs;
    };
    let mut controllers = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let p = index(path, i);
        let api_version = str_or_empty(r, "apiVersion");
        let version = api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            errs.push(FieldError::invalid(child(&p, "apiVersion"), q(api_version), "version must not be empty"));
        }
        for (field, msg) in [("kind", "kind"), ("name", "name"), ("uid", "uid")] {
            let v = str_or_empty(r, field);
            if v.is_empty() {
                errs.push(FieldError::invalid(child(&p, field), q(v), format!("{msg} must not be empty")));
            }
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            controllers.push(format!("{}/{}", str_or_empty(r, "kind"), str_or_empty(r, "name")));
        }
    }
    if controllers.len() > 1 {
        errs.push(FieldError::invalid(
            path,
            render(refs.unwrap_or(&Value::Null)),
            format!(
                "Only one reference can have Controller set to true. Found \"true\" in references for {} and {}",
                controllers[0], controllers[1]
            ),
        ));
    }
    errs
}

fn validate_finalizers(finalizers: Option<&Value>, path: &str) -> ErrorList {
    let mut errs = Vec::new();
    let Some(list) = finalizers.and_then(Value::as_array) else {
        return errs;
    };
    for (i, f) in list.iter().enumerate() {
        let name = f.as_str().unwrap_or("");
        for msg in is_qualified_name(name) {
            errs.push(FieldError::invalid(index(path, i), q(name), msg));
        }
    }
    let has = |s: &str| list.iter().any(|f| f.as_str() == Some(s));
    if has("orphan") && has("foregroundDeletion") {
        errs.push(FieldError::invalid(
            path,
            render(finalizers.unwrap_or(&Value::Null)),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::validation::names::name_is_dns_subdomain;

    fn meta_errs(obj: Value, namespaced: bool) -> Vec<String> {
        validate_object_meta(&obj, namespaced, &name_is_dns_subdomain).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn valid_metadata_passes() {
        let obj = json!({"metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
            "annotations": {"example.com/x": "y"}, "finalizers": ["kubernetes.io/pvc-protection"]}});
        assert_eq!(meta_errs(obj, true), Vec::<String>::new());
    }

    #[test]
    fn name_is_required_unless_generate_name() {
        assert_eq!(
            meta_errs(json!({"metadata": {"namespace": "default"}}), true),
            vec!["metadata.name: Required value: name or generateName is required"]
        );
    }

    #[test]
    fn invalid_name_is_reported_with_quoted_value() {
        let errs = meta_errs(json!({"metadata": {"name": "Web_1", "namespace": "default"}}), true);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("metadata.name: Invalid value: \"Web_1\": a lowercase RFC 1123 subdomain"));
    }

    #[test]
    fn invalid_generate_name_is_reported() {
        let errs = meta_errs(json!({"metadata": {"generateName": "Web-", "name": "web-x", "namespace": "d"}}), true);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("metadata.generateName: Invalid value: \"Web-\""));
    }

    #[test]
    fn namespace_required_for_namespaced_and_forbidden_for_cluster_kinds() {
        assert_eq!(meta_errs(json!({"metadata": {"name": "a"}}), true), vec!["metadata.namespace: Required value"]);
        assert_eq!(
            meta_errs(json!({"metadata": {"name": "a", "namespace": "x"}}), false),
            vec!["metadata.namespace: Forbidden: not allowed on this type"]
        );
    }

    #[test]
    fn label_keys_and_values_are_checked() {
        let errs = meta_errs(json!({"metadata": {"name": "a", "labels": {"bad key": "ok", "ok": "bad value"}}}), false);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].starts_with("metadata.labels: Invalid value: \"bad key\": name part must consist"));
        assert!(errs[1].starts_with("metadata.labels: Invalid value: \"bad value\": a valid label must be"));
    }

    #[test]
    fn annotation_keys_are_checked_and_size_capped() {
        let errs = meta_errs(json!({"metadata": {"name": "a", "annotations": {"a/b/c": "x"}}}), false);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("metadata.annotations: Invalid value: \"a/b/c\": a qualified name"));
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_B + 1);
        let errs = meta_errs(json!({"metadata": {"name": "a", "annotations": {"k": big}}}), false);
        assert_eq!(errs, vec!["metadata.annotations: Too long: may not be more than 262144 bytes"]);
    }

    #[test]
    fn owner_references_need_version_kind_name_uid() {
        let errs = meta_errs(json!({"metadata": {"name": "a", "ownerReferences": [{"apiVersion": "apps/"}]}}), false);
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert_eq!(
            errs[0],
            "metadata.ownerReferences[0].apiVersion: Invalid value: \"apps/\": version must not be empty"
        );
    }

    #[test]
    fn name_and_namespace_are_immutable() {
        let old = json!({"metadata": {"name": "a", "namespace": "x", "uid": "1"}});
        let new = json!({"metadata": {"name": "b", "namespace": "y"}});
        let errs: Vec<String> = validate_object_meta_update(&new, &old).iter().map(ToString::to_string).collect();
        assert_eq!(
            errs,
            vec![
                "metadata.name: Invalid value: \"b\": field is immutable",
                "metadata.namespace: Invalid value: \"y\": field is immutable"
            ]
        );
    }

    #[test]
    fn uid_change_is_rejected_but_omission_is_not() {
        let old = json!({"metadata": {"name": "a", "uid": "1"}});
        assert!(validate_object_meta_update(&json!({"metadata": {"name": "a"}}), &old).is_empty());
        assert_eq!(validate_object_meta_update(&json!({"metadata": {"name": "a", "uid": "2"}}), &old).len(), 1);
    }
}
