//! `berth top pods|nodes`: CPU and memory usage from the resource metrics API
//! (`metrics.k8s.io/v1beta1`), printed as `kubectl top` does: `NAME CPU(cores) MEMORY(bytes)`
//! for pods (`NAMESPACE` first with -A, per container with `--containers`), and
//! `NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%)` for nodes against their allocatable.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::Ctx;
use crate::api::query;
use crate::errors::status_of;
use crate::printer::tabwriter::TabWriter;

/// `berth top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(subcommand)]
    pub command: TopCommand,
}

/// What to show usage of.
#[derive(Debug, Subcommand)]
pub enum TopCommand {
    /// Display resource (CPU/memory) usage of pods.
    #[command(alias = "pods", alias = "po")]
    Pod(TopPodArgs),
    /// Display resource (CPU/memory) usage of nodes.
    #[command(alias = "nodes", alias = "no")]
    Node(TopNodeArgs),
}

/// `berth top pod`.
#[derive(Debug, Args)]
pub struct TopPodArgs {
    /// Only this pod.
    pub name: Option<String>,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector.
    #[arg(long)]
    pub field_selector: Option<String>,
    /// Print usage per container.
    #[arg(long)]
    pub containers: bool,
    /// Sort by `cpu` or `memory`.
    #[arg(long, value_name = "cpu|memory")]
    pub sort_by: Option<String>,
    /// Do not print headers.
    #[arg(long)]
    pub no_headers: bool,
    /// Print the sum of the usage.
    #[arg(long)]
    pub sum: bool,
}

/// `berth top node`.
#[derive(Debug, Args)]
pub struct TopNodeArgs {
    /// Only this node.
    pub name: Option<String>,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Sort by `cpu` or `memory`.
    #[arg(long, value_name = "cpu|memory")]
    pub sort_by: Option<String>,
    /// Do not print headers.
    #[arg(long)]
    pub no_headers: bool,
}

/// kubectl's top printer ends every cell, the last too, with a tab: the last column is padded.
fn row(tw: &mut TabWriter, mut cells: Vec<String>) {
    cells.push(String::new());
    tw.row(cells);
}

const METRICS: &str = "/apis/metrics.k8s.io/v1beta1";

/// Millicores and bytes of a `usage` map.
fn usage(u: &Value) -> (i128, i128) {
    let q = |k: &str| {
        u.get(k)
            .and_then(Value::as_str)
            .and_then(|s| berth_api::Quantity::parse(s).ok())
            .map(|q| (q.as_millis(), q.value()))
            .unwrap_or((0, 0))
    };
    (q("cpu").0, q("memory").1)
}

/// `250m`, as kubectl prints CPU.
fn cpu(m: i128) -> String {
    format!("{m}m")
}

/// `12Mi`, as kubectl prints memory.
fn memory(bytes: i128) -> String {
    format!("{}Mi", bytes / (1024 * 1024))
}

async fn get_metrics(ctx: &Ctx, path: &str) -> anyhow::Result<Value> {
    match ctx.api.get_json(path).await {
        Ok(v) => Ok(v),
        Err(err)
            if status_of(&err).is_some_and(|s| s.code() == 404)
                && !path.contains("/nodes/")
                && !path.contains("/pods/") =>
        {
            anyhow::bail!("Metrics API not available")
        }
        Err(err) => Err(err),
    }
}

fn sort(rows: &mut [(String, i128, i128, Vec<String>)], by: Option<&str>) -> anyhow::Result<()> {
    match by {
        None | Some("") => {}
        Some("cpu") => rows.sort_by_key(|r| std::cmp::Reverse(r.1)),
        Some("memory") => rows.sort_by_key(|r| std::cmp::Reverse(r.2)),
        Some(other) => anyhow::bail!("--sort-by accepts only cpu or memory, got {other:?}"),
    }
    Ok(())
}

pub async fn run(ctx: &Ctx, args: TopArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        TopCommand::Pod(a) => top_pods(ctx, a).await,
        TopCommand::Node(a) => top_nodes(ctx, a).await,
    }
}

async fn top_pods(ctx: &Ctx, args: TopPodArgs) -> anyhow::Result<ExitCode> {
    let base = if ctx.all_namespaces {
        format!("{METRICS}/pods")
    } else {
        format!("{METRICS}/namespaces/{}/pods", ctx.namespace)
    };
    let items: Vec<Value> = match &args.name {
        Some(name) => vec![get_metrics(ctx, &format!("{base}/{name}")).await?],
        None => {
            let q = query(&[
                ("labelSelector", args.selector.as_deref()),
                ("fieldSelector", args.field_selector.as_deref()),
            ]);
            let list = get_metrics(ctx, &format!("{base}{q}")).await?;
            list.get("items").and_then(Value::as_array).cloned().unwrap_or_default()
        }
    };
    if items.is_empty() {
        // kubectl tells "no metrics yet" apart from "no pods".
        let pods_path = if ctx.all_namespaces {
            "/api/v1/pods".to_string()
        } else {
            format!("/api/v1/namespaces/{}/pods", ctx.namespace)
        };
        let q =
            query(&[("labelSelector", args.selector.as_deref()), ("fieldSelector", args.field_selector.as_deref())]);
        let pods = ctx.api.get_json(&format!("{pods_path}{q}")).await?;
        if pods.get("items").and_then(Value::as_array).is_some_and(|a| !a.is_empty()) {
            anyhow::bail!("metrics not available yet");
        }
        if ctx.all_namespaces {
            eprintln!("No resources found");
        } else {
            eprintln!("No resources found in {} namespace.", ctx.namespace);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = Vec::new();
    for item in &items {
        let ns = item.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default().to_string();
        let name = item.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
        let containers = item.get("containers").and_then(Value::as_array).cloned().unwrap_or_default();
        let prefix = |extra: Vec<String>| {
            let mut cells = Vec::new();
            if ctx.all_namespaces {
                cells.push(ns.clone());
            }
            cells.push(name.clone());
            cells.extend(extra);
            cells
        };
        if args.containers {
            for c in &containers {
                let (m, b) = usage(c.get("usage").unwrap_or(&Value::Null));
                let cname = c.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
                rows.push((name.clone(), m, b, prefix(vec![cname, cpu(m), memory(b)])));
            }
        } else {
            let (m, b) = containers
                .iter()
                .map(|c| usage(c.get("usage").unwrap_or(&Value::Null)))
                .fold((0, 0), |a, u| (a.0 + u.0, a.1 + u.1));
            rows.push((name.clone(), m, b, prefix(vec![cpu(m), memory(b)])));
        }
    }
    sort(&mut rows, args.sort_by.as_deref())?;
    let mut tw = TabWriter::new();
    if !args.no_headers {
        let mut h: Vec<String> = Vec::new();
        if ctx.all_namespaces {
            h.push("NAMESPACE".into());
        }
        if args.containers {
            h.extend(["POD".into(), "NAME".into()]);
        } else {
            h.push("NAME".into());
        }
        h.extend(["CPU(cores)".into(), "MEMORY(bytes)".into()]);
        row(&mut tw, h);
    }
    let (total_m, total_b) = rows.iter().fold((0, 0), |a, r| (a.0 + r.1, a.1 + r.2));
    let width = rows.first().map(|r| r.3.len()).unwrap_or(2);
    for r in rows {
        row(&mut tw, r.3);
    }
    if args.sum {
        let mut dashes = vec![String::new(); width - 2];
        dashes.extend(["________".to_string(), "________".to_string()]);
        row(&mut tw, dashes);
        let mut sum = vec![String::new(); width - 2];
        sum.extend([cpu(total_m), memory(total_b)]);
        row(&mut tw, sum);
    }
    print!("{}", tw.flush());
    Ok(ExitCode::SUCCESS)
}

async fn top_nodes(ctx: &Ctx, args: TopNodeArgs) -> anyhow::Result<ExitCode> {
    let (metrics, nodes): (Vec<Value>, Vec<Value>) = match &args.name {
        Some(name) => (
            vec![get_metrics(ctx, &format!("{METRICS}/nodes/{name}")).await?],
            vec![ctx.api.get_json(&format!("/api/v1/nodes/{name}")).await?],
        ),
        None => {
            let q = query(&[("labelSelector", args.selector.as_deref())]);
            let list = get_metrics(ctx, &format!("{METRICS}/nodes{q}")).await?;
            let nodes = ctx.api.get_json(&format!("/api/v1/nodes{q}")).await?;
            let items = |v: &Value| v.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
            (items(&list), items(&nodes))
        }
    };
    if metrics.is_empty() && nodes.is_empty() {
        eprintln!("No resources found");
        return Ok(ExitCode::SUCCESS);
    }
    if metrics.is_empty() {
        anyhow::bail!("metrics not available yet");
    }
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for node in &nodes {
        let name = node.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
        let Some(m) =
            metrics.iter().find(|m| m.pointer("/metadata/name").and_then(Value::as_str) == Some(name.as_str()))
        else {
            missing.push(name);
            continue;
        };
        let (mc, b) = usage(m.get("usage").unwrap_or(&Value::Null));
        let (alloc_mc, alloc_b) = usage(node.pointer("/status/allocatable").unwrap_or(&Value::Null));
        let pct =
            |used: i128, total: i128| if total > 0 { format!("{}%", used * 100 / total) } else { "<unknown>".into() };
        let cells = vec![name.clone(), cpu(mc), pct(mc, alloc_mc), memory(b), pct(b, alloc_b)];
        rows.push((name, mc, b, cells));
    }
    sort(&mut rows, args.sort_by.as_deref())?;
    let mut tw = TabWriter::new();
    if !args.no_headers {
        row(&mut tw, ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"].map(String::from).to_vec());
    }
    for r in rows {
        row(&mut tw, r.3);
    }
    // kubectl lists nodes without metrics last, with unknown usage.
    for name in missing {
        row(&mut tw, vec![name, "<unknown>".into(), "<unknown>".into(), "<unknown>".into(), "<unknown>".into()]);
    }
    print!("{}", tw.flush());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usage_is_printed_in_millicores_and_mebibytes() {
        let (m, b) = usage(&json!({"cpu": "250000000n", "memory": "12Mi"}));
        assert_eq!((cpu(m), memory(b)), ("250m".to_string(), "12Mi".to_string()));
        let (m, b) = usage(&json!({"cpu": "1", "memory": "1536Ki"}));
        assert_eq!((cpu(m), memory(b)), ("1000m".to_string(), "1Mi".to_string()));
    }
}
