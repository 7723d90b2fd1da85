//! `metav1.LabelSelector` validation (`ValidateLabelSelector`) and matching against a label
//! map, for workload selectors and template labels. (String selectors from list/watch queries
//! are parsed in `crate::selector`.)

use serde_json::{Map, Value};

use super::meta::validate_labels;
use super::names::{is_qualified_name, is_valid_label_value};
use super::{ErrorList, arr, child, index, q, str_or_empty};
use crate::FieldError;

const OPERATORS: &[&str] = &["In", "NotIn", "Exists", "DoesNotExist"];

/// `ValidateLabelSelector`: matchLabels as labels, matchExpressions with a qualified key, a known
/// operator, and values exactly when the operator takes them.
pub fn validate_label_selector(sel: &Value, path: &str) -> ErrorList {
    let mut errs = validate_labels(sel.get("matchLabels"), &child(path, "matchLabels"));
    for (i, expr) in arr(sel, "matchExpressions").iter().enumerate() {
        let p = index(&child(path, "matchExpressions"), i);
        let values = arr(expr, "values");
        let op = str_or_empty(expr, "operator");
        match op {
            "In" | "NotIn" if values.is_empty() => errs.push(FieldError::required(
                child(&p, "values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.push(FieldError::forbidden(
                child(&p, "values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::not_supported(child(&p, "operator"), q(other), OPERATORS)),
        }
        let k = str_or_empty(expr, "key");
        for msg in is_qualified_name(k) {
            errs.push(FieldError::invalid(child(&p, "key"), q(k), msg));
        }
        for (j, v) in values.iter().enumerate() {
            let v = v.as_str().unwrap_or("");
            for msg in is_valid_label_value(v) {
                errs.push(FieldError::invalid(index(&child(&p, "values"), j), q(v), msg));
            }
        }
    }
    errs
}

/// Whether the selector has no requirements (matches everything).
pub fn selector_is_empty(sel: &Value) -> bool {
    sel.get("matchLabels").and_then(Value::as_object).is_none_or(Map::is_empty)
        && arr(sel, "matchExpressions").is_empty()
}

/// Whether `labels` satisfy a `metav1.LabelSelector`.
pub fn selector_matches(sel: &Value, labels: Option<&Map<String, Value>>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            if get(k) != v.as_str() {
                return false;
            }
        }
    }
    for expr in arr(sel, "matchExpressions") {
        let k = str_or_empty(expr, "key");
        let values: Vec<&str> = arr(expr, "values").iter().filter_map(Value::as_str).collect();
        let ok = match str_or_empty(expr, "operator") {
            "In" => get(k).is_some_and(|v| values.contains(&v)),
            "NotIn" => get(k).is_none_or(|v| !values.contains(&v)),
            "Exists" => get(k).is_some(),
            "DoesNotExist" => get(k).is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// A label map as Go prints it in an error: `map[string]string{"app":"web"}`.
pub fn render_label_map(labels: Option<&Value>) -> String {
    let Some(m) = labels.and_then(Value::as_object) else {
        return "map[string]string(nil)".to_string();
    };
    let mut pairs: Vec<String> = m.iter().map(|(k, v)| format!("{}:{}", q(k), q(v.as_str().unwrap_or("")))).collect();
    pairs.sort();
    format!("map[string]string{{{}}}", pairs.join(", "))
}

/// A label selector as Go prints it in an error.
pub fn render_selector(sel: Option<&Value>) -> String {
    match sel {
        None | Some(Value::Null) => "null".to_string(),
        Some(s) => {
            let exprs = if arr(s, "matchExpressions").is_empty() {
                "[]v1.LabelSelectorRequirement(nil)".to_string()
            } else {
                s.get("matchExpressions").map(ToString::to_string).unwrap_or_default()
            };
            format!(
                "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{exprs}}}",
                render_label_map(s.get("matchLabels"))
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn match_labels_and_expressions() {
        let sel = json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]},
                {"key": "legacy", "operator": "DoesNotExist"}]});
        let ok = json!({"app": "web", "tier": "fe"});
        let bad = json!({"app": "web", "tier": "db"});
        let legacy = json!({"app": "web", "tier": "fe", "legacy": "1"});
        assert!(selector_matches(&sel, ok.as_object()));
        assert!(!selector_matches(&sel, bad.as_object()));
        assert!(!selector_matches(&sel, legacy.as_object()));
        assert!(!selector_matches(&sel, None));
    }

    #[test]
    fn operators_and_values_are_checked() {
        let sel = json!({"matchExpressions": [{"key": "a", "operator": "In"}, {"key": "b", "operator": "Exists",
            "values": ["x"]}, {"key": "c", "operator": "Near", "values": ["x"]}]});
        let errs: Vec<String> =
            validate_label_selector(&sel, "spec.selector").iter().map(ToString::to_string).collect();
        assert_eq!(
            errs,
            vec![
                "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
                "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                "spec.selector.matchExpressions[2].operator: Unsupported value: \"Near\": supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\"",
            ]
        );
    }

    #[test]
    fn label_maps_render_as_go_does() {
        assert_eq!(render_label_map(Some(&json!({"b": "2", "a": "1"}))), "map[string]string{\"a\":\"1\", \"b\":\"2\"}");
    }
}
