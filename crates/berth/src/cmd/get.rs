//! `berth get`: lists or reads objects of one or more types and prints them as kubectl does:
//! server-side Tables through the tab-writer, or `-o yaml|json|name`; `-w` streams changes.

use std::io::Write;
use std::process::ExitCode;

use futures::StreamExt;
use kube::core::WatchEvent;
use serde_json::Value;

use super::{Ctx, parse_targets};
use crate::api::{TABLE_ACCEPT, path, query};
use crate::cli::{GetArgs, OutputFormat};
use crate::discovery::ResourceInfo;
use crate::errors::status_of;
use crate::printer::age::age_of;
use crate::printer::table::{self, Table, TableOptions};
use crate::printer::tabwriter::TabWriter;
use crate::printer::{list_of, to_json, to_yaml};

/// What was asked for: resolved types, each with names (empty: list).
pub struct Request {
    pub targets: Vec<(ResourceInfo, Vec<String>)>,
    /// Several types or `all`: names print as `kind/name`.
    pub with_kind: bool,
}

/// Resolves the TYPE arguments through discovery (`all` expands to its category).
pub async fn resolve(ctx: &Ctx, args: &[String]) -> anyhow::Result<Request> {
    let discovery = ctx.discovery().await?;
    let mut targets = Vec::new();
    let mut saw_all = false;
    for (ty, names) in parse_targets(args)? {
        if ty == "all" && names.is_empty() {
            saw_all = true;
            targets.extend(discovery.all().into_iter().map(|r| (r.clone(), Vec::new())));
            continue;
        }
        targets.push((discovery.resolve(&ty)?.clone(), names));
    }
    let with_kind = saw_all || targets.len() > 1;
    Ok(Request { targets, with_kind })
}

pub async fn run(ctx: &Ctx, args: GetArgs) -> anyhow::Result<ExitCode> {
    let request = resolve(ctx, &args.resources).await?;
    if args.watch {
        return watch(ctx, &args, &request).await;
    }
    let mut failed: Vec<String> = Vec::new();
    let mut stdout = std::io::stdout().lock();
    match args.output {
        None | Some(OutputFormat::Wide) => {
            let mut total = 0usize;
            let mut printed_any = false;
            for (res, names) in &request.targets {
                let tables = fetch_tables(ctx, res, names, &args, &mut failed).await?;
                let opts = table_options(ctx, res, &args, request.with_kind, None);
                let mut tw = TabWriter::new();
                let mut header_done = args.no_headers;
                let mut rows = 0usize;
                for t in &tables {
                    if t.rows.is_empty() {
                        continue;
                    }
                    if !header_done {
                        tw.row(table::header(t, &opts));
                        header_done = true;
                    }
                    for r in table::rows(t, &opts) {
                        tw.row(r);
                        rows += 1;
                    }
                }
                if rows > 0 {
                    if printed_any && !args.no_headers {
                        writeln!(stdout)?;
                    }
                    write!(stdout, "{}", tw.flush())?;
                    printed_any = true;
                }
                total += rows;
            }
            if total == 0 && failed.is_empty() {
                eprintln!("{}", no_resources_message(ctx, &request));
            }
        }
        Some(format) => {
            let mut objects = Vec::new();
            let mut single = request.targets.len() == 1 && request.targets[0].1.len() == 1;
            for (res, names) in &request.targets {
                if names.is_empty() {
                    single = false;
                }
                objects.extend(fetch_objects(ctx, res, names, &args, &mut failed).await?);
            }
            match format {
                OutputFormat::Name => {
                    for (res, obj) in &objects {
                        writeln!(stdout, "{}/{}", res.kind_group(), name_of(obj))?;
                    }
                }
                OutputFormat::Json | OutputFormat::Yaml => {
                    if !args.show_managed_fields {
                        for (_, o) in objects.iter_mut() {
                            strip_managed_fields(o);
                        }
                    }
                    let value = if single && objects.len() == 1 {
                        objects.pop().map(|(_, o)| o).unwrap_or(Value::Null)
                    } else if single && objects.is_empty() {
                        Value::Null
                    } else {
                        list_of(objects.into_iter().map(|(_, o)| o).collect())
                    };
                    if !value.is_null() {
                        let text = if format == OutputFormat::Json { to_json(&value) } else { to_yaml(&value) };
                        write!(stdout, "{text}")?;
                    }
                }
                OutputFormat::Wide => unreachable!("handled with tables"),
            }
        }
    }
    stdout.flush()?;
    for message in &failed {
        eprintln!("{message}");
    }
    Ok(if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn no_resources_message(ctx: &Ctx, request: &Request) -> String {
    let namespaced = request.targets.iter().any(|(r, _)| r.namespaced);
    if namespaced && !ctx.all_namespaces {
        format!("No resources found in {} namespace.", ctx.namespace)
    } else {
        "No resources found".to_string()
    }
}

fn table_options(
    ctx: &Ctx,
    res: &ResourceInfo,
    args: &GetArgs,
    with_kind: bool,
    event: Option<String>,
) -> TableOptions {
    TableOptions {
        wide: args.output == Some(OutputFormat::Wide),
        with_namespace: ctx.all_namespaces && res.namespaced,
        show_labels: args.show_labels,
        kind_prefix: with_kind.then(|| res.kind_group()),
        event,
    }
}

fn list_query(args: &GetArgs) -> String {
    query(&[("labelSelector", args.selector.as_deref()), ("fieldSelector", args.field_selector.as_deref())])
}

/// Reports a per-object failure as kubectl does and remembers it for the exit code.
/// Remembers a per-object failure; kubectl prints them after the output and exits 1.
fn report(err: anyhow::Error, failed: &mut Vec<String>) -> anyhow::Result<()> {
    match status_of(&err) {
        Some(status) => failed.push(status.to_string()),
        None => return Err(err),
    }
    Ok(())
}

async fn fetch_tables(
    ctx: &Ctx,
    res: &ResourceInfo,
    names: &[String],
    args: &GetArgs,
    failed: &mut Vec<String>,
) -> anyhow::Result<Vec<Table>> {
    let ns = ctx.scope(res);
    let mut out = Vec::new();
    if names.is_empty() {
        let body = ctx.api.get(&format!("{}{}", path(res, ns, None), list_query(args)), TABLE_ACCEPT).await;
        match body {
            Ok(v) => out.push(as_table(&v)),
            Err(err) => report(err, failed)?,
        }
    }
    for name in names {
        match ctx.api.get(&path(res, ns, Some(name)), TABLE_ACCEPT).await {
            Ok(v) => out.push(as_table(&v)),
            Err(err) => report(err, failed)?,
        }
    }
    Ok(out)
}

/// The Table in a response, or NAME/AGE columns built from plain objects (a server without Table
/// support, as kubectl falls back).
pub fn as_table(v: &Value) -> Table {
    if let Some(t) = Table::from_value(v) {
        return t;
    }
    let items: Vec<Value> = match v.get("items").and_then(Value::as_array) {
        Some(items) => items.clone(),
        None if v.get("metadata").is_some() => vec![v.clone()],
        None => Vec::new(),
    };
    let columns = vec![
        table::Column { name: "Name".into(), format: "name".into(), type_: "string".into(), priority: 0 },
        table::Column { name: "Age".into(), format: String::new(), type_: "string".into(), priority: 0 },
    ];
    let rows = items
        .into_iter()
        .map(|item| {
            let cells =
                vec![Value::String(name_of(&item)), Value::String(age_of(item.pointer("/metadata/creationTimestamp")))];
            let object = serde_json::json!({"metadata": item.get("metadata").cloned().unwrap_or(Value::Null)});
            (cells, object)
        })
        .collect();
    Table { columns, rows }
}

/// kubectl hides `metadata.managedFields` unless --show-managed-fields.
pub fn strip_managed_fields(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
}

pub fn name_of(obj: &Value) -> String {
    obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string()
}

/// Items of a list with `kind`/`apiVersion` filled in (lists leave them out of their items).
pub fn list_items(list: &Value, res: &ResourceInfo) -> Vec<Value> {
    let Some(items) = list.get("items").and_then(Value::as_array) else { return Vec::new() };
    items
        .iter()
        .map(|item| {
            let mut item = item.clone();
            if let Some(obj) = item.as_object_mut() {
                obj.entry("apiVersion").or_insert_with(|| Value::String(res.api_version()));
                obj.entry("kind").or_insert_with(|| Value::String(res.kind.clone()));
            }
            item
        })
        .collect()
}

async fn fetch_objects(
    ctx: &Ctx,
    res: &ResourceInfo,
    names: &[String],
    args: &GetArgs,
    failed: &mut Vec<String>,
) -> anyhow::Result<Vec<(ResourceInfo, Value)>> {
    let ns = ctx.scope(res);
    let mut out = Vec::new();
    if names.is_empty() {
        match ctx.api.get_json(&format!("{}{}", path(res, ns, None), list_query(args))).await {
            Ok(list) => out.extend(list_items(&list, res).into_iter().map(|o| (res.clone(), o))),
            Err(err) => report(err, failed)?,
        }
    }
    for name in names {
        match ctx.api.get_json(&path(res, ns, Some(name))).await {
            Ok(obj) => out.push((res.clone(), obj)),
            Err(err) => report(err, failed)?,
        }
    }
    Ok(out)
}

/// `get -w`: the current state, then every change, until the server ends the watch.
async fn watch(ctx: &Ctx, args: &GetArgs, request: &Request) -> anyhow::Result<ExitCode> {
    let [(res, names)] = request.targets.as_slice() else {
        anyhow::bail!(
            "watch is only supported on individual resources and resource collections, but {} resources were found",
            request.targets.len()
        );
    };
    if names.len() > 1 {
        anyhow::bail!(
            "watch is only supported on individual resources and resource collections, but {} resources were found",
            names.len()
        );
    }
    let ns = ctx.scope(res);
    let field_selector = match (names.first(), &args.field_selector) {
        (Some(name), Some(fs)) => Some(format!("metadata.name={name},{fs}")),
        (Some(name), None) => Some(format!("metadata.name={name}")),
        (None, fs) => fs.clone(),
    };
    let list_q = query(&[("labelSelector", args.selector.as_deref()), ("fieldSelector", field_selector.as_deref())]);
    let tables = args.output.is_none() || args.output == Some(OutputFormat::Wide);
    let accept = if tables { TABLE_ACCEPT } else { "application/json" };
    let list = ctx.api.get(&format!("{}{list_q}", path(res, ns, None)), accept).await?;
    let rv = list.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("0").to_string();
    // kubectl pads event types to the width of MODIFIED.
    let event_name = |e: &str| args.output_watch_events.then(|| format!("{e:<8}"));

    let mut tw = TabWriter::new();
    let mut printed_header = args.no_headers;
    let mut columns: Vec<table::Column> = Vec::new();
    let mut emit = |t: Table, event: Option<String>, tw: &mut TabWriter| -> anyhow::Result<()> {
        let mut t = t;
        if t.columns.is_empty() {
            t.columns = columns.clone();
        } else {
            columns = t.columns.clone();
        }
        let opts = table_options(ctx, res, args, false, event);
        if !printed_header && !t.rows.is_empty() {
            tw.row(table::header(&t, &opts));
            printed_header = true;
        }
        for r in table::rows(&t, &opts) {
            tw.row(r);
        }
        let mut out = std::io::stdout().lock();
        write!(out, "{}", tw.flush())?;
        out.flush()?;
        Ok(())
    };
    // kubectl's YAML printer separates documents with `---` before every one but the first.
    let yaml_docs = std::cell::Cell::new(0usize);
    let print_object = |obj: &Value| -> anyhow::Result<()> {
        let mut obj = obj.clone();
        if !args.show_managed_fields {
            strip_managed_fields(&mut obj);
        }
        let obj = &obj;
        let mut out = std::io::stdout().lock();
        match args.output {
            Some(OutputFormat::Name) => writeln!(out, "{}/{}", res.kind_group(), name_of(obj))?,
            Some(OutputFormat::Json) => write!(out, "{}", to_json(obj))?,
            _ => {
                if yaml_docs.replace(yaml_docs.get() + 1) > 0 {
                    writeln!(out, "---")?;
                }
                write!(out, "{}", to_yaml(obj))?;
            }
        }
        out.flush()?;
        Ok(())
    };

    if tables {
        emit(as_table(&list), event_name("ADDED"), &mut tw)?;
    } else {
        for item in list_items(&list, res) {
            print_object(&item)?;
        }
    }

    let watch_q = query(&[
        ("labelSelector", args.selector.as_deref()),
        ("fieldSelector", field_selector.as_deref()),
        ("resourceVersion", Some(rv.as_str())),
        ("watch", Some("true")),
    ]);
    let watch_path = format!("{}{watch_q}", path(res, ns, None));
    let stream = ctx.api.watch(&watch_path, accept);
    let follow = async {
        let mut stream = Box::pin(stream.await?);
        while let Some(event) = stream.next().await {
            let (kind, obj) = match event? {
                WatchEvent::Added(o) => ("ADDED", o),
                WatchEvent::Modified(o) => ("MODIFIED", o),
                WatchEvent::Deleted(o) => ("DELETED", o),
                WatchEvent::Bookmark(_) => continue,
                WatchEvent::Error(status) => return Err(crate::errors::from_kube(kube::Error::Api(status))),
            };
            if tables {
                emit(as_table(&obj), event_name(kind), &mut tw)?;
            } else {
                print_object(&obj)?;
            }
        }
        anyhow::Ok(())
    };
    if ctx.request_timeout.is_zero() {
        follow.await?;
    } else if let Ok(result) = tokio::time::timeout(ctx.request_timeout, follow).await {
        // Running out of --request-timeout ends a watch quietly, as kubectl does.
        result?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::tests::res;
    use serde_json::json;

    #[test]
    fn plain_lists_fall_back_to_name_and_age_columns() {
        let list = json!({"kind": "ConfigMapList", "items": [{"metadata": {"name": "a", "namespace": "default"}}]});
        let t = as_table(&list);
        assert_eq!(t.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["Name", "Age"]);
        assert_eq!(t.rows[0].0, vec![json!("a"), json!("<unknown>")]);
        assert_eq!(t.rows[0].1["metadata"]["namespace"], "default");
    }

    #[test]
    fn list_items_get_kind_and_api_version() {
        let r = res("apps", "Deployment", "deployments", &[], true);
        let items = list_items(&json!({"items": [{"metadata": {"name": "web"}}]}), &r);
        assert_eq!(items[0]["kind"], "Deployment");
        assert_eq!(items[0]["apiVersion"], "apps/v1");
    }
}
