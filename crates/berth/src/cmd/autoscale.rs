//! `berth autoscale`: creates an autoscaling/v1 HorizontalPodAutoscaler for a Deployment,
//! ReplicaSet, ReplicationController or StatefulSet, as `kubectl autoscale` does
//! (`horizontalpodautoscaler.autoscaling/web autoscaled`).

use std::process::ExitCode;

use clap::Args;
use serde_json::{Value, json};

use super::Ctx;
use super::apply::print_failure;
use super::label::select;

/// `berth autoscale`.
#[derive(Debug, Args)]
pub struct AutoscaleArgs {
    /// TYPE NAME or TYPE/NAME of the object to autoscale.
    #[arg(required = true, value_name = "TYPE[/NAME]")]
    pub resources: Vec<String>,
    /// The lower limit for the number of pods (-1: the server's default, 1).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub min: i32,
    /// The upper limit for the number of pods.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub max: i32,
    /// The target average CPU utilization over all the pods, in percent of the requests (-1: the
    /// controller's default, 80).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub cpu_percent: i32,
    /// The name of the new HorizontalPodAutoscaler [default: the target's name].
    #[arg(long)]
    pub name: Option<String>,
    /// Only print the object that would be sent (`client`) or send it as a dry run (`server`).
    #[arg(long, value_name = "none|client|server", default_value = "none")]
    pub dry_run: String,
}

/// Kinds kubectl autoscales.
const SCALABLE: &[(&str, &str)] =
    &[("apps", "Deployment"), ("apps", "ReplicaSet"), ("", "ReplicationController"), ("apps", "StatefulSet")];

/// The HorizontalPodAutoscaler kubectl would create.
pub fn hpa_object(name: &str, api_version: &str, kind: &str, target: &str, min: i32, max: i32, cpu: i32) -> Value {
    let mut spec = json!({
        "scaleTargetRef": {"apiVersion": api_version, "kind": kind, "name": target},
        "maxReplicas": max,
    });
    if min > 0 {
        spec["minReplicas"] = json!(min);
    }
    if cpu >= 0 {
        spec["targetCPUUtilizationPercentage"] = json!(cpu);
    }
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": spec,
    })
}

pub async fn run(ctx: &Ctx, args: AutoscaleArgs) -> anyhow::Result<ExitCode> {
    if args.max < 1 {
        anyhow::bail!("--max=MAXPODS is required and must be at least 1, max: {}", args.max);
    }
    if args.max < args.min {
        anyhow::bail!("--max=MAXPODS must be larger or equal to --min=MINPODS, max: {}, min: {}", args.max, args.min);
    }
    let targets = select(ctx, &args.resources, None, false).await?;
    let mut failed = false;
    for t in &targets {
        if !SCALABLE.contains(&(t.res.group.as_str(), t.res.kind.as_str())) {
            print_failure(&anyhow::anyhow!("cannot autoscale a {}: not scalable", t.res.kind));
            failed = true;
            continue;
        }
        // The target must exist (kubectl reads it first).
        if let Err(err) = ctx.api.get_json(&t.path()).await {
            print_failure(&err);
            failed = true;
            continue;
        }
        let name = args.name.clone().unwrap_or_else(|| t.name.clone());
        let hpa = hpa_object(&name, &t.res.api_version(), &t.res.kind, &t.name, args.min, args.max, args.cpu_percent);
        let ns = t.namespace.clone().unwrap_or_else(|| ctx.namespace.clone());
        let suffix = match args.dry_run.as_str() {
            "client" => {
                println!("horizontalpodautoscaler.autoscaling/{name} autoscaled (dry run)");
                continue;
            }
            "server" => "?dryRun=All",
            "none" => "",
            other => anyhow::bail!("Invalid dry-run value ({other}). Must be \"none\", \"server\", or \"client\"."),
        };
        match ctx
            .api
            .post(&format!("/apis/autoscaling/v1/namespaces/{ns}/horizontalpodautoscalers{suffix}"), &hpa)
            .await
        {
            Ok(_) if suffix.is_empty() => println!("horizontalpodautoscaler.autoscaling/{name} autoscaled"),
            Ok(_) => println!("horizontalpodautoscaler.autoscaling/{name} autoscaled (server dry run)"),
            Err(err) => {
                print_failure(&err);
                failed = true;
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_object_is_what_kubectl_sends() {
        let v = hpa_object("web", "apps/v1", "Deployment", "web", 2, 10, 70);
        assert_eq!(
            v,
            json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                    "maxReplicas": 10, "minReplicas": 2, "targetCPUUtilizationPercentage": 70}})
        );
        let unset = hpa_object("h", "apps/v1", "Deployment", "web", -1, 3, -1);
        assert!(
            unset["spec"].get("minReplicas").is_none() && unset["spec"].get("targetCPUUtilizationPercentage").is_none()
        );
    }
}
