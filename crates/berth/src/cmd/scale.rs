//! `berth scale`: sets `spec.replicas` through the scale subresource with a merge PATCH, as kubectl
//! does (`deployment.apps/web scaled`); `--current-replicas` is checked against the Scale first.

use std::process::ExitCode;

use clap::Args;
use serde_json::{Value, json};

use super::Ctx;
use super::apply::print_failure;
use super::label::{MERGE_PATCH, Target, select};
use crate::errors::status_of;

/// kubectl's retry parameters for a scale that meets a conflict.
const CONFLICT_RETRY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
const CONFLICT_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(300);

/// `berth scale`.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// TYPE NAME... or TYPE/NAME...
    #[arg(required = true, value_name = "TYPE[/NAME]")]
    pub resources: Vec<String>,
    /// The new desired number of replicas.
    #[arg(long, required = true)]
    pub replicas: i32,
    /// Precondition: the current size must be this (-1: no condition).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub current_replicas: i32,
    /// Select all resources of the type in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

pub async fn run(ctx: &Ctx, args: ScaleArgs) -> anyhow::Result<ExitCode> {
    if args.replicas < 0 {
        anyhow::bail!("The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0");
    }
    let targets = select(ctx, &args.resources, args.selector.as_deref(), args.all).await?;
    if targets.is_empty() {
        eprintln!("No resources found in {} namespace.", ctx.namespace);
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = false;
    for t in &targets {
        if let Err(err) = scale_one(ctx, t, &args).await {
            failed = true;
            print_failure(&err);
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

async fn scale_one(ctx: &Ctx, t: &Target, args: &ScaleArgs) -> anyhow::Result<()> {
    let scale_path = format!("{}/scale", t.path());
    if args.current_replicas >= 0 {
        let scale = ctx.api.get_json(&scale_path).await?;
        let current = scale.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
        if current != i64::from(args.current_replicas) {
            anyhow::bail!("Expected replicas to be {}, was {current}", args.current_replicas);
        }
    }
    let body = json!({"spec": {"replicas": args.replicas}});
    // kubectl's ScaleCondition: a conflict is retried every second (for up to 5 minutes).
    let deadline = tokio::time::Instant::now() + CONFLICT_RETRY_FOR;
    loop {
        match ctx.api.patch(&scale_path, MERGE_PATCH, &body).await {
            Ok(_) => break,
            Err(err) if status_of(&err).is_some_and(|s| s.code() == 409) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(CONFLICT_RETRY_INTERVAL).await;
            }
            Err(err) => return Err(err),
        }
    }
    println!("{} scaled", t.display());
    Ok(())
}
