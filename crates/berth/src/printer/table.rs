//! Rendering a server-side `meta.k8s.io/v1` Table as kubectl's human-readable printer does
//! (`decorateTable` + `printTable`): uppercase headers, priority-1 columns only with -o wide,
//! NAMESPACE first with -A, LABELS last with --show-labels, `kind/name` names, an EVENT column
//! for watch events, nil cells empty, multi-line cells cut with `...`.

use serde_json::Value;

use super::format_labels;

/// One column definition of a Table.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub format: String,
    pub type_: String,
    pub priority: i64,
}

/// A decoded Table: columns and rows (cells plus the row's object metadata).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<(Vec<Value>, Value)>,
}

impl Table {
    /// Decodes a Table response; None when the body is not a Table.
    pub fn from_value(v: &Value) -> Option<Table> {
        if v.get("kind").and_then(Value::as_str) != Some("Table") {
            return None;
        }
        let columns = v
            .get("columnDefinitions")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .map(|c| Column {
                        name: c.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
                        format: c.get("format").and_then(Value::as_str).unwrap_or_default().to_string(),
                        type_: c.get("type").and_then(Value::as_str).unwrap_or_default().to_string(),
                        priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let rows = v
            .get("rows")
            .and_then(Value::as_array)
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        let cells = r.get("cells").and_then(Value::as_array).cloned().unwrap_or_default();
                        (cells, r.get("object").cloned().unwrap_or(Value::Null))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Table { columns, rows })
    }
}

/// How to decorate a table.
#[derive(Clone, Debug, Default)]
pub struct TableOptions {
    pub wide: bool,
    pub with_namespace: bool,
    pub show_labels: bool,
    /// `deployment.apps`: names print as `deployment.apps/web`.
    pub kind_prefix: Option<String>,
    /// Watch event type: an EVENT column first.
    pub event: Option<String>,
}

/// kubectl's cell formatting: strings as they are (cut at the first line break), numbers and
/// booleans as Go prints them, nil as nothing.
pub fn cell_text(cell: &Value) -> String {
    let s = match cell {
        Value::Null => return String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    };
    match s.find(['\n', '\r', '\x0c']) {
        Some(i) => format!("{}...", &s[..i]),
        None => s,
    }
}

/// The header row of a decorated table.
pub fn header(table: &Table, opts: &TableOptions) -> Vec<String> {
    let mut out = Vec::new();
    if opts.event.is_some() {
        out.push("EVENT".to_string());
    }
    if opts.with_namespace {
        out.push("NAMESPACE".to_string());
    }
    out.extend(table.columns.iter().filter(|c| opts.wide || c.priority == 0).map(|c| c.name.to_uppercase()));
    if opts.show_labels {
        out.push("LABELS".to_string());
    }
    out
}

/// The data rows of a decorated table.
pub fn rows(table: &Table, opts: &TableOptions) -> Vec<Vec<String>> {
    let name_col = table.columns.iter().position(|c| c.format == "name" && c.type_ == "string");
    table
        .rows
        .iter()
        .map(|(cells, object)| {
            let mut out = Vec::new();
            if let Some(event) = &opts.event {
                out.push(event.clone());
            }
            if opts.with_namespace {
                out.push(object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default().to_string());
            }
            for (i, col) in table.columns.iter().enumerate() {
                if !opts.wide && col.priority != 0 {
                    continue;
                }
                let mut text = cells.get(i).map(cell_text).unwrap_or_default();
                if Some(i) == name_col
                    && let Some(prefix) = &opts.kind_prefix
                {
                    text = format!("{prefix}/{text}");
                }
                out.push(text);
            }
            if opts.show_labels {
                out.push(format_labels(object.pointer("/metadata/labels")));
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::printer::tabwriter::TabWriter;
    use serde_json::json;

    fn pods_table() -> Table {
        Table::from_value(&json!({
            "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": "5"},
            "columnDefinitions": [
                {"name": "Name", "type": "string", "format": "name", "priority": 0},
                {"name": "Ready", "type": "string", "format": "", "priority": 0},
                {"name": "Status", "type": "string", "format": "", "priority": 0},
                {"name": "Restarts", "type": "string", "format": "", "priority": 0},
                {"name": "Age", "type": "string", "format": "", "priority": 0},
                {"name": "IP", "type": "string", "format": "", "priority": 1},
                {"name": "Node", "type": "string", "format": "", "priority": 1}
            ],
            "rows": [
                {"cells": ["web-7d4b9c6f5-abcde", "1/1", "Running", 0, "3m", "10.42.0.5", "node1"],
                 "object": {"kind": "PartialObjectMetadata", "metadata": {"name": "web-7d4b9c6f5-abcde", "namespace": "default", "labels": {"app": "web", "pod-template-hash": "7d4b9c6f5"}}}},
                {"cells": ["db-0", "0/1", "Pending", 12, "45s", null, null],
                 "object": {"kind": "PartialObjectMetadata", "metadata": {"name": "db-0", "namespace": "prod"}}}
            ]
        }))
        .unwrap()
    }

    fn render(table: &Table, opts: &TableOptions) -> String {
        let mut tw = TabWriter::new();
        tw.row(header(table, opts));
        for r in rows(table, opts) {
            tw.row(r);
        }
        tw.flush()
    }

    #[test]
    fn default_output_hides_priority_columns() {
        let got = render(&pods_table(), &TableOptions::default());
        let want = "NAME                  READY   STATUS    RESTARTS   AGE\n\
                    web-7d4b9c6f5-abcde   1/1     Running   0          3m\n\
                    db-0                  0/1     Pending   12         45s\n";
        assert_eq!(got, want);
    }

    #[test]
    fn wide_all_namespaces_and_labels() {
        let opts = TableOptions { wide: true, with_namespace: true, show_labels: true, ..Default::default() };
        let got = render(&pods_table(), &opts);
        let want = "NAMESPACE   NAME                  READY   STATUS    RESTARTS   AGE   IP          NODE    LABELS\n\
                    default     web-7d4b9c6f5-abcde   1/1     Running   0          3m    10.42.0.5   node1   app=web,pod-template-hash=7d4b9c6f5\n\
                    prod        db-0                  0/1     Pending   12         45s                       <none>\n";
        assert_eq!(got, want);
    }

    #[test]
    fn kind_prefix_and_event_column() {
        let opts = TableOptions { kind_prefix: Some("pod".into()), event: Some("ADDED".into()), ..Default::default() };
        let t = pods_table();
        assert_eq!(header(&t, &opts)[0], "EVENT");
        assert_eq!(rows(&t, &opts)[1][..2], ["ADDED".to_string(), "pod/db-0".to_string()]);
    }

    #[test]
    fn multi_line_cells_are_cut() {
        assert_eq!(cell_text(&json!("a\nb")), "a...");
        assert_eq!(cell_text(&json!(true)), "true");
        assert_eq!(cell_text(&Value::Null), "");
    }
}
