//! `berth cordon` / `berth uncordon`: sets or clears a node's `spec.unschedulable` with a
//! strategic-merge PATCH, printing kubectl's `node/n cordoned` or `node/n already cordoned`.

use std::process::ExitCode;

use clap::Args;
use serde_json::{Value, json};

use super::Ctx;
use super::apply::print_failure;
use super::label::{STRATEGIC_MERGE_PATCH, Target, select};

/// `berth cordon` and `berth uncordon`.
#[derive(Debug, Args)]
pub struct CordonArgs {
    /// Node names.
    #[arg(value_name = "NODE")]
    pub nodes: Vec<String>,
    /// Label selector of the nodes.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

/// Resolves node names (or `-l`) to targets.
pub async fn nodes(ctx: &Ctx, names: &[String], selector: Option<&str>, verb: &str) -> anyhow::Result<Vec<Target>> {
    if names.is_empty() && selector.is_none() {
        anyhow::bail!("USAGE: {verb} NODE [flags]\nSee 'berth {verb} -h' for help and examples");
    }
    let mut args = vec!["nodes".to_string()];
    args.extend(names.iter().cloned());
    select(ctx, &args, selector, false).await
}

/// Cordons (or uncordons) one node and prints what happened as kubectl does.
pub async fn set_unschedulable(ctx: &Ctx, node: &Target, desired: bool) -> anyhow::Result<()> {
    let obj = ctx.api.get_json(&node.path()).await?;
    let current = obj.pointer("/spec/unschedulable").and_then(Value::as_bool).unwrap_or(false);
    let verb = if desired { "cordoned" } else { "uncordoned" };
    if current == desired {
        println!("{} already {verb}", node.display());
        return Ok(());
    }
    // kubectl's two-way patch of a `bool,omitempty` field: false becomes null.
    let value = if desired { json!(true) } else { Value::Null };
    ctx.api.patch(&node.path(), STRATEGIC_MERGE_PATCH, &json!({"spec": {"unschedulable": value}})).await?;
    println!("{} {verb}", node.display());
    Ok(())
}

pub async fn run(ctx: &Ctx, args: CordonArgs, desired: bool) -> anyhow::Result<ExitCode> {
    let verb = if desired { "cordon" } else { "uncordon" };
    let targets = nodes(ctx, &args.nodes, args.selector.as_deref(), verb).await?;
    let mut failed = false;
    for t in &targets {
        if let Err(err) = set_unschedulable(ctx, t, desired).await {
            failed = true;
            print_failure(&err);
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
