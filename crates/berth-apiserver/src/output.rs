//! Rendering objects for the negotiated representation: the object itself, a meta.k8s.io
//! `Table` (columns and cells from berth-api's table module), or `PartialObjectMetadata`.

use berth_api::ResourceType;
use serde_json::{Value, json};

use crate::negotiate::Representation;

/// `includeObject` of a Table request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

fn partial_metadata(obj: &Value, version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

fn column_definitions(rt: &ResourceType) -> Value {
    Value::Array(
        berth_api::table::columns(rt.group, rt.kind)
            .into_iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "type": c.type_,
                    "format": c.format,
                    "description": c.description,
                    "priority": c.priority,
                })
            })
            .collect(),
    )
}

fn table_row(rt: &ResourceType, obj: &Value, include: IncludeObject, version: &str, now: jiff::Timestamp) -> Value {
    let cells = berth_api::table::row(rt.group, rt.kind, obj, now);
    match include {
        IncludeObject::None => json!({"cells": cells}),
        IncludeObject::Metadata => json!({"cells": cells, "object": partial_metadata(obj, version)}),
        IncludeObject::Object => json!({"cells": cells, "object": obj}),
    }
}

/// A Table of `items` with list metadata `list_meta`.
pub fn table(rt: &ResourceType, items: &[Value], include: IncludeObject, version: &str, list_meta: Value) -> Value {
    let now = jiff::Timestamp::now();
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": list_meta,
        "columnDefinitions": column_definitions(rt),
        "rows": items.iter().map(|o| table_row(rt, o, include, version, now)).collect::<Vec<_>>(),
    })
}

/// One object in the negotiated representation.
pub fn render_object(rep: &Representation, rt: &ResourceType, obj: Value, include: IncludeObject) -> Value {
    match rep {
        Representation::Json => obj,
        Representation::Table { version } => {
            let rv = obj["metadata"]["resourceVersion"].clone();
            let meta = if rv.is_null() { json!({}) } else { json!({"resourceVersion": rv}) };
            table(rt, std::slice::from_ref(&obj), include, version, meta)
        }
        Representation::PartialMetadata { version } => partial_metadata(&obj, version),
    }
}

/// A list in the negotiated representation; `api_version` is the requested group-version.
pub fn render_list(
    rep: &Representation,
    rt: &ResourceType,
    api_version: &str,
    items: Vec<Value>,
    list_meta: Value,
    include: IncludeObject,
) -> Value {
    match rep {
        Representation::Json => json!({
            "kind": format!("{}List", rt.kind),
            "apiVersion": api_version,
            "metadata": list_meta,
            "items": items,
        }),
        Representation::Table { version } => table(rt, &items, include, version, list_meta),
        Representation::PartialMetadata { version } => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": format!("meta.k8s.io/{version}"),
            "metadata": list_meta,
            "items": items.iter().map(|o| partial_metadata(o, version)).collect::<Vec<_>>(),
        }),
    }
}
