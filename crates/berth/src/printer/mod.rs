//! Output formatting shared by the verbs: kubectl's tab-writer, server-side Table rendering, and
//! `-o json|yaml|name`.

pub mod age;
pub mod table;
pub mod tabwriter;
pub mod yaml;

use serde_json::Value;

use crate::threeway::sorted;

/// `-o json`: keys sorted, four-space indent, as kubectl's JSON printer.
pub fn to_json(value: &Value) -> String {
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    if serde::Serialize::serialize(&sorted(value), &mut ser).is_err() {
        return value.to_string();
    }
    let mut text = String::from_utf8(buf).unwrap_or_default();
    text.push('\n');
    text
}

/// `-o yaml`: keys sorted, as kubectl's YAML printer.
pub fn to_yaml(value: &Value) -> String {
    yaml::emit(&sorted(value))
}

/// The `List` kubectl prints for several objects with -o json/yaml.
pub fn list_of(items: Vec<Value>) -> Value {
    serde_json::json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}})
}

/// kubectl's labels.FormatLabels: `k=v,k2=v2` sorted by key, `<none>` when empty.
pub fn format_labels(labels: Option<&Value>) -> String {
    let Some(Value::Object(map)) = labels else { return "<none>".to_string() };
    if map.is_empty() {
        return "<none>".to_string();
    }
    let mut pairs: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
        .collect();
    pairs.sort();
    pairs.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_output_sorts_keys_and_indents_four_spaces() {
        let got = to_json(&json!({"kind": "Pod", "apiVersion": "v1"}));
        assert_eq!(got, "{\n    \"apiVersion\": \"v1\",\n    \"kind\": \"Pod\"\n}\n");
    }

    #[test]
    fn labels_are_sorted_and_none_when_empty() {
        assert_eq!(format_labels(Some(&json!({"b": "2", "a": "1"}))), "a=1,b=2");
        assert_eq!(format_labels(Some(&json!({}))), "<none>");
        assert_eq!(format_labels(None), "<none>");
    }
}
