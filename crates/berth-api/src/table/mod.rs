//! Table output (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`): kubectl's columns and
//! cells for each kind, e.g. pods NAME READY STATUS RESTARTS AGE (+ IP NODE ... with -o wide).
//!
//! Mirrors kubernetes `pkg/printers/internalversion/printers.go` as kube-apiserver runs it: the
//! server always generates the wide cells (`GenerateOptions{Wide: true}`) and kubectl hides
//! `priority: 1` columns unless `-o wide`. Kinds without a printer get the apiserver's default
//! table (`Name`, `Created At`) when built in, or a custom resource's default (`Name`, `Age`).
//! Column descriptions are the OpenAPI field descriptions upstream takes from `SwaggerDoc()`.
//! Pure functions: objects are read as JSON, missing fields read as empty.

mod cluster;
mod core;
mod workloads;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value};

use crate::selector::LabelSelector;

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

/// How one kind is printed: its columns (built once, descriptions come from the schemas) and
/// the function computing a row's cells.
pub(crate) struct Printer {
    pub group: &'static str,
    pub kind: &'static str,
    pub columns: fn() -> Vec<ColumnDefinition>,
    pub row: fn(&Value, Timestamp) -> Vec<Value>,
}

impl Printer {
    /// The printer of `kind` in `group` (`""` for the core group).
    const fn new(
        group: &'static str,
        kind: &'static str,
        columns: fn() -> Vec<ColumnDefinition>,
        row: fn(&Value, Timestamp) -> Vec<Value>,
    ) -> Self {
        Printer { group, kind, columns, row }
    }
}

fn printers() -> impl Iterator<Item = &'static Printer> {
    core::PRINTERS.iter().chain(workloads::PRINTERS).chain(cluster::PRINTERS)
}

fn printer(group: &str, kind: &str) -> Option<&'static Printer> {
    printers().find(|p| p.group == group && p.kind == kind)
}

/// Groups whose kinds are served by kube-apiserver itself: a kind there without a printer gets
/// the apiserver's default table; any other group is a custom resource's.
fn is_builtin_group(group: &str) -> bool {
    matches!(group, "" | "apps" | "batch" | "autoscaling" | "policy") || group.ends_with(".k8s.io")
}

/// The columns for a kind (`group` `""` is core).
pub fn columns(group: &str, kind: &str) -> Vec<ColumnDefinition> {
    // Built on first use per kind: descriptions come from generating the kind's schemas.
    type Cache = Mutex<HashMap<(&'static str, &'static str), Vec<ColumnDefinition>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    if let Some(p) = printer(group, kind) {
        let mut cache = CACHE.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        return cache.entry((p.group, p.kind)).or_insert_with(|| (p.columns)()).clone();
    }
    if is_builtin_group(group) {
        vec![name_column(), created_at_column()]
    } else {
        vec![name_column(), ColumnDefinition { type_: "date", ..age_column() }]
    }
}

/// The cells of one object's row, matching `columns(group, kind)`; `now` makes AGE testable.
pub fn row(group: &str, kind: &str, obj: &Value, now: Timestamp) -> Vec<Value> {
    if let Some(p) = printer(group, kind) {
        return (p.row)(obj, now);
    }
    if is_builtin_group(group) {
        let created = parse_time(&obj["metadata"]["creationTimestamp"])
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        vec![name(obj), Value::String(created)]
    } else {
        vec![name(obj), age(obj, now)]
    }
}

/// apimachinery's `duration.HumanDuration`: about two significant figures (`5s`, `119s`,
/// `2m5s`, `15m`, `3h20m`, `10h`, `3d4h`, `45d`, `3y120d`, `9y`); up to a second in the future
/// reads as `0s`, further as `<invalid>`.
pub fn human_duration(d: SignedDuration) -> String {
    // Go: int(d.Seconds()) truncates toward zero, like as_secs.
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) }
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 { format!("{}y", hours / 24 / 365) } else { format!("{}y{dy}d", hours / 24 / 365) }
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

// ---------------------------------------------------------------------------------------------
// Column helpers.

/// The OpenAPI description of `T`'s property `field` (upstream's `T{}.SwaggerDoc()[field]`).
/// Built once per column while the column cache is filled, hence leaked.
pub(crate) fn doc<T: JsonSchema>(field: &str) -> &'static str {
    let schema = T::json_schema(&mut SchemaGenerator::default());
    let text = schema
        .as_object()
        .and_then(|o| o.get("properties"))
        .and_then(|p| p.get(field))
        .and_then(|f| f.get("description"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    Box::leak(text.to_string().into_boxed_str())
}

pub(crate) fn col(name: &'static str, type_: &'static str, description: &'static str) -> ColumnDefinition {
    ColumnDefinition { name, type_, format: "", description, priority: 0 }
}

pub(crate) fn wide(name: &'static str, type_: &'static str, description: &'static str) -> ColumnDefinition {
    ColumnDefinition { priority: 1, ..col(name, type_, description) }
}

pub(crate) fn name_column() -> ColumnDefinition {
    ColumnDefinition { format: "name", ..col("Name", "string", doc::<ObjectMeta>("name")) }
}

pub(crate) fn age_column() -> ColumnDefinition {
    col("Age", "string", doc::<ObjectMeta>("creationTimestamp"))
}

fn created_at_column() -> ColumnDefinition {
    col("Created At", "date", doc::<ObjectMeta>("creationTimestamp"))
}

pub(crate) fn containers_columns() -> [ColumnDefinition; 2] {
    [
        wide("Containers", "string", "Names of each container in the template."),
        wide("Images", "string", "Images referenced by each container in the template."),
    ]
}

// ---------------------------------------------------------------------------------------------
// Cell helpers: read JSON leniently, never panic on odd shapes.

pub(crate) fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

pub(crate) fn string(v: &Value) -> Value {
    Value::String(s(v).to_string())
}

pub(crate) fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or_default()
}

pub(crate) fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

pub(crate) fn obj(v: &Value) -> Option<&Map<String, Value>> {
    v.as_object()
}

pub(crate) fn name(o: &Value) -> Value {
    string(&o["metadata"]["name"])
}

pub(crate) fn parse_time(v: &Value) -> Option<Timestamp> {
    v.as_str().and_then(|t| t.parse::<Timestamp>().ok())
}

/// `translateTimestampSince`: `<unknown>` for a missing time.
pub(crate) fn since(v: &Value, now: Timestamp) -> String {
    match parse_time(v) {
        Some(t) => human_duration(now.duration_since(t)),
        None => "<unknown>".into(),
    }
}

pub(crate) fn age(o: &Value, now: Timestamp) -> Value {
    Value::String(since(&o["metadata"]["creationTimestamp"], now))
}

/// `labels.FormatLabels`: `k=v` sorted by key, comma-joined; `<none>` when empty.
pub(crate) fn format_labels(v: &Value) -> String {
    let Some(m) = obj(v).filter(|m| !m.is_empty()) else { return "<none>".into() };
    let mut pairs: Vec<(&String, &str)> = m.iter().map(|(k, v)| (k, s(v))).collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// `metav1.FormatLabelSelector`: `<none>` for null or empty, `<error>` when invalid.
pub(crate) fn format_label_selector(v: &Value) -> String {
    match LabelSelector::from_label_selector_json(v) {
        Ok(sel) => {
            let text = sel.to_string();
            if text.is_empty() { "<none>".into() } else { text }
        }
        Err(_) => "<error>".into(),
    }
}

/// `layoutContainerCells`: container names and images, comma-joined.
pub(crate) fn container_cells(containers: &Value) -> [Value; 2] {
    let list = arr(containers);
    let names: Vec<&str> = list.iter().map(|c| s(&c["name"])).collect();
    let images: Vec<&str> = list.iter().map(|c| s(&c["image"])).collect();
    [Value::String(names.join(",")), Value::String(images.join(","))]
}

/// An IntOrString as `intstr.String()` prints it.
pub(crate) fn int_or_string(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

/// `listWithMoreString`: at most `max` items then ` + N more...`; `<unset>` when empty.
pub(crate) fn list_with_more(list: &[String], count: usize, max: usize) -> String {
    let ret = list.join(",");
    if count > max {
        return format!("{ret} + {} more...", count - max);
    }
    if ret.is_empty() { "<unset>".into() } else { ret }
}

#[cfg(test)]
mod tests;
