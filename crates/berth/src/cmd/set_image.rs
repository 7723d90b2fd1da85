//! `berth set image`: changes container images of workloads (or pods) with the strategic-merge
//! PATCH kubectl computes (`$setElementOrder/containers` plus the changed entries), printing
//! `deployment.apps/web image updated`; an unchanged object is left alone and not printed.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::Ctx;
use super::apply::print_failure;
use super::label::{STRATEGIC_MERGE_PATCH, Target, select, split_resources_and_pairs};

/// `berth set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    #[command(subcommand)]
    pub what: SetCommand,
}

#[derive(Debug, Subcommand)]
pub enum SetCommand {
    /// Update the image of a pod template.
    Image(SetImageArgs),
}

/// `berth set image`.
#[derive(Debug, Args)]
pub struct SetImageArgs {
    /// TYPE NAME or TYPE/NAME..., then CONTAINER=IMAGE... (`*=IMAGE` for all containers).
    #[arg(required = true, value_name = "ARGS")]
    pub args: Vec<String>,
    /// Select all resources of the type in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

/// Where a kind keeps its pod spec, as JSON pointer segments.
pub fn pod_spec_path(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "Pod" => &["spec"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
        "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" | "ReplicationController" | "Job" => {
            &["spec", "template", "spec"]
        }
        _ => return None,
    })
}

/// The patch for a pod spec (or None when nothing changes); errors name an unknown container.
pub fn image_patch(pod_spec: &Value, images: &[(String, String)]) -> anyhow::Result<Option<Map<String, Value>>> {
    let mut patch = Map::new();
    let mut used = vec![false; images.len()];
    for field in ["initContainers", "containers"] {
        let containers = pod_spec.get(field).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
        let mut changed = Vec::new();
        for c in containers {
            let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
            let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
            // A named container wins over `*`.
            let pick = images.iter().position(|(n, _)| n == name).or_else(|| images.iter().position(|(n, _)| n == "*"));
            if let Some(i) = pick {
                used[i] = true;
                if images[i].1 != image {
                    changed.push(json!({"image": images[i].1, "name": name}));
                }
            }
        }
        if !changed.is_empty() {
            let order: Vec<Value> =
                containers.iter().map(|c| json!({"name": c.get("name").cloned().unwrap_or(Value::Null)})).collect();
            patch.insert(format!("$setElementOrder/{field}"), Value::Array(order));
            patch.insert(field.to_string(), Value::Array(changed));
        }
    }
    if let Some(i) = used.iter().position(|u| !u) {
        anyhow::bail!("unable to find container named {:?}", images[i].0);
    }
    Ok((!patch.is_empty()).then_some(patch))
}

/// Nests `leaf` under the path segments.
fn nest(path: &[&str], leaf: Map<String, Value>) -> Value {
    path.iter().rev().fold(Value::Object(leaf), |acc, seg| json!({ *seg: acc }))
}

pub async fn run(ctx: &Ctx, args: SetArgs) -> anyhow::Result<ExitCode> {
    let SetCommand::Image(args) = args.what;
    let (resources, pairs) = split_resources_and_pairs(&args.args, "image")?;
    let mut images = Vec::new();
    for pair in &pairs {
        match pair.split_once('=') {
            Some((c, i)) if !c.is_empty() && !i.is_empty() => images.push((c.to_string(), i.to_string())),
            _ => anyhow::bail!("invalid image spec: {pair}"),
        }
    }
    if images.is_empty() {
        anyhow::bail!("at least one image update is required");
    }
    let targets = select(ctx, &resources, args.selector.as_deref(), args.all).await?;
    let mut failed = false;
    for t in &targets {
        if let Err(err) = set_one(ctx, t, &images).await {
            failed = true;
            print_failure(&err);
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

async fn set_one(ctx: &Ctx, t: &Target, images: &[(String, String)]) -> anyhow::Result<()> {
    let Some(spec_path) = pod_spec_path(&t.res.kind) else {
        anyhow::bail!("{} is not supported by set image", t.display());
    };
    let obj = ctx.api.get_json(&t.path()).await?;
    let pointer: String = spec_path.iter().map(|s| format!("/{s}")).collect();
    let pod_spec = obj.pointer(&pointer).cloned().unwrap_or(Value::Null);
    let Some(leaf) = image_patch(&pod_spec, images)? else { return Ok(()) };
    ctx.api.patch(&t.path(), STRATEGIC_MERGE_PATCH, &nest(spec_path, leaf)).await?;
    println!("{} image updated", t.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imgs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn patch_lists_element_order_and_changed_containers() {
        let spec = json!({"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]});
        let patch = image_patch(&spec, &imgs(&[("b", "y:2")])).unwrap().unwrap();
        assert_eq!(
            nest(&["spec", "template", "spec"], patch),
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                "containers": [{"image": "y:2", "name": "b"}]}}}})
        );
        assert!(image_patch(&spec, &imgs(&[("a", "x:1")])).unwrap().is_none());
        let all = image_patch(&spec, &imgs(&[("*", "z")])).unwrap().unwrap();
        assert_eq!(all["containers"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            image_patch(&spec, &imgs(&[("c", "z")])).unwrap_err().to_string(),
            "unable to find container named \"c\""
        );
    }
}
