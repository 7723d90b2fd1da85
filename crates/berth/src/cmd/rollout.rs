//! `berth rollout status|history|undo|pause|resume|restart` for Deployments, following kubectl's
//! polymorphic helpers: the DeploymentStatusViewer's messages while watching, the
//! DeploymentHistoryViewer's REVISION/CHANGE-CAUSE table (from the ReplicaSets the Deployment
//! owns), the DeploymentRollbacker's JSON patch of the template, and the pauser/resumer/restarter
//! patches.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use futures::StreamExt;
use kube::core::WatchEvent;
use serde_json::{Value, json};

use super::Ctx;
use super::annotate::CHANGE_CAUSE;
use super::label::{STRATEGIC_MERGE_PATCH, Target, select};
use crate::api::{path, query};
use crate::cli::parse_duration;
use crate::errors::PlainError;

/// The annotation holding a Deployment's or ReplicaSet's revision.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The label the Deployment controller adds to its ReplicaSets' templates.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// The template annotation `rollout restart` sets.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// Annotations `rollout undo` never copies from a ReplicaSet (kubectl's `annotationsToSkip`).
const ANNOTATIONS_TO_SKIP: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// `berth rollout`.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub what: RolloutCommand,
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Show the status of the rollout.
    Status(StatusArgs),
    /// View rollout history.
    History(HistoryArgs),
    /// Undo a previous rollout.
    Undo(UndoArgs),
    /// Mark the provided resource as paused.
    Pause(TargetArgs),
    /// Resume a paused resource.
    Resume(TargetArgs),
    /// Restart a resource.
    Restart(TargetArgs),
}

/// `berth rollout status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// TYPE NAME or TYPE/NAME.
    #[arg(required = true, value_name = "TYPE[/NAME]")]
    pub resources: Vec<String>,
    /// Watch the status of the rollout until it's done.
    #[arg(short = 'w', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
        default_missing_value = "true", require_equals = true)]
    pub watch: bool,
    /// How long to wait before ending watch (0: never).
    #[arg(long, value_parser = parse_duration, default_value = "0")]
    pub timeout: Duration,
    /// Pin to a specific revision (0: the latest).
    #[arg(long, default_value_t = 0)]
    pub revision: i64,
}

/// `berth rollout history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// TYPE NAME... or TYPE/NAME...
    #[arg(required = true, value_name = "TYPE[/NAME]")]
    pub resources: Vec<String>,
    /// See the details, including the pod template, of this revision.
    #[arg(long, default_value_t = 0)]
    pub revision: i64,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

/// `berth rollout undo`.
#[derive(Debug, Args)]
pub struct UndoArgs {
    /// TYPE NAME... or TYPE/NAME...
    #[arg(required = true, value_name = "TYPE[/NAME]")]
    pub resources: Vec<String>,
    /// The revision to roll back to (0: the previous one).
    #[arg(long, default_value_t = 0)]
    pub to_revision: i64,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

/// Arguments of pause, resume and restart.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// TYPE NAME... or TYPE/NAME...
    #[arg(required = true, value_name = "TYPE[/NAME]")]
    pub resources: Vec<String>,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn int_at(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

/// The `deployment.kubernetes.io/revision` of an object (0 when absent, as kubectl).
pub fn revision_of(obj: &Value) -> i64 {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION))
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// kubectl's DeploymentStatusViewer: (message, done), or the error that ends the watch.
pub fn status_message(d: &Value, revision: i64) -> Result<(String, bool), String> {
    let name = str_at(d, "/metadata/name");
    if revision > 0 {
        let current = revision_of(d);
        if revision != current {
            return Err(format!("desired revision ({revision}) is different from the running revision ({current})"));
        }
    }
    if int_at(d, "/metadata/generation") > int_at(d, "/status/observedGeneration") {
        return Ok(("Waiting for deployment spec update to be observed...\n".to_string(), false));
    }
    let progressing = d
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| str_at(c, "/type") == "Progressing"));
    if progressing.is_some_and(|c| str_at(c, "/reason") == "ProgressDeadlineExceeded") {
        return Err(format!("deployment {name:?} exceeded its progress deadline"));
    }
    let spec_replicas = d.pointer("/spec/replicas").and_then(Value::as_i64);
    let updated = int_at(d, "/status/updatedReplicas");
    let replicas = int_at(d, "/status/replicas");
    let available = int_at(d, "/status/availableReplicas");
    if let Some(want) = spec_replicas
        && updated < want
    {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {updated} out of {want} new replicas have been updated...\n"
            ),
            false,
        ));
    }
    if replicas > updated {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...\n",
                replicas - updated
            ),
            false,
        ));
    }
    if available < updated {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available...\n"
            ),
            false,
        ));
    }
    Ok((format!("deployment {name:?} successfully rolled out\n"), true))
}

/// The ReplicaSets (of a namespace's list) controlled by the Deployment, by owner uid.
pub fn owned_replica_sets(deployment: &Value, replica_sets: &[Value]) -> Vec<Value> {
    let uid = str_at(deployment, "/metadata/uid");
    replica_sets
        .iter()
        .filter(|rs| {
            rs.pointer("/metadata/ownerReferences").and_then(Value::as_array).is_some_and(|refs| {
                refs.iter()
                    .any(|r| str_at(r, "/uid") == uid && r.get("controller").and_then(Value::as_bool) == Some(true))
            })
        })
        .cloned()
        .collect()
}

/// kubectl's `ViewHistory` table: REVISION and CHANGE-CAUSE, revisions ascending, Go's tab-writer
/// with padding 2.
pub fn history_table(history: &BTreeMap<i64, Value>) -> String {
    let mut text = String::from("REVISION\tCHANGE-CAUSE\n");
    for (rev, rs) in history {
        let cause = rs
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(CHANGE_CAUSE))
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .unwrap_or("<none>");
        text.push_str(&format!("{rev}\t{cause}\n"));
    }
    crate::printer::tabwriter::align(&text, 0, 2)
}

/// A template without the `pod-template-hash` label.
fn template_without_hash(rs: &Value) -> Value {
    let mut template = rs.pointer("/spec/template").cloned().unwrap_or(Value::Null);
    if let Some(labels) = template.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.remove(POD_TEMPLATE_HASH);
    }
    template
}

/// kubectl's rollback patch: replace the template (from the ReplicaSet, minus its hash label) and
/// the annotations (the Deployment's skipped ones kept, the ReplicaSet's others copied).
pub fn undo_patch(deployment: &Value, rs: &Value) -> Value {
    let mut annotations = serde_json::Map::new();
    if let Some(d) = deployment.pointer("/metadata/annotations").and_then(Value::as_object) {
        for (k, v) in d {
            if ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
                annotations.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(r) = rs.pointer("/metadata/annotations").and_then(Value::as_object) {
        for (k, v) in r {
            if !ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
                annotations.insert(k.clone(), v.clone());
            }
        }
    }
    json!([
        {"op": "replace", "path": "/spec/template", "value": template_without_hash(rs)},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ])
}

/// Picks the ReplicaSet to roll back to: `to_revision`, or the second-highest revision.
pub fn replica_set_for_revision(name: &str, history: &BTreeMap<i64, Value>, to_revision: i64) -> anyhow::Result<Value> {
    if to_revision == 0 {
        if history.len() < 2 {
            anyhow::bail!("no rollout history found for deployment {name:?}");
        }
        return Ok(history.values().rev().nth(1).cloned().unwrap_or(Value::Null));
    }
    history
        .get(&to_revision)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("unable to find specified revision {to_revision} in history"))
}

pub async fn run(ctx: &Ctx, args: RolloutArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        RolloutCommand::Status(a) => status(ctx, a).await,
        RolloutCommand::History(a) => {
            let targets = deployments(ctx, &a.resources, a.selector.as_deref(), "history viewer").await?;
            for t in &targets {
                history(ctx, t, a.revision).await?;
            }
            Ok(ExitCode::SUCCESS)
        }
        RolloutCommand::Undo(a) => {
            let targets = deployments(ctx, &a.resources, a.selector.as_deref(), "rollbacker").await?;
            for t in &targets {
                undo(ctx, t, a.to_revision).await?;
            }
            Ok(ExitCode::SUCCESS)
        }
        RolloutCommand::Pause(a) => set_paused(ctx, a, true).await,
        RolloutCommand::Resume(a) => set_paused(ctx, a, false).await,
        RolloutCommand::Restart(a) => restart(ctx, a).await,
    }
}

/// Resolves the arguments and refuses kinds other than Deployment as kubectl words it.
async fn deployments(
    ctx: &Ctx,
    resources: &[String],
    selector: Option<&str>,
    what: &str,
) -> anyhow::Result<Vec<Target>> {
    let targets = select(ctx, resources, selector, false).await?;
    if let Some(t) = targets.iter().find(|t| t.res.kind != "Deployment" || t.res.group != "apps") {
        anyhow::bail!("no {what} has been implemented for {:?}", format!("{}.{}", t.res.kind, t.res.group));
    }
    Ok(targets)
}

async fn status(ctx: &Ctx, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let targets = deployments(ctx, &args.resources, None, "status viewer").await?;
    let [t] = targets.as_slice() else {
        anyhow::bail!("rollout status is only supported on individual resources and resource collections");
    };
    let wait = watch_status(ctx, t, &args);
    if args.timeout.is_zero() {
        wait.await?;
    } else {
        match tokio::time::timeout(args.timeout, wait).await {
            Ok(result) => result?,
            Err(_elapsed) => anyhow::bail!("timed out waiting for the condition"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the status on every change until done (or once without --watch).
async fn watch_status(ctx: &Ctx, t: &Target, args: &StatusArgs) -> anyhow::Result<()> {
    let show = |d: &Value| -> anyhow::Result<bool> {
        let (msg, done) = status_message(d, args.revision).map_err(anyhow::Error::msg)?;
        print!("{msg}");
        Ok(done || !args.watch)
    };
    loop {
        let d = ctx.api.get_json(&t.path()).await?;
        if show(&d)? {
            return Ok(());
        }
        let selector = format!("metadata.name={}", t.name);
        let q = query(&[
            ("fieldSelector", Some(&selector)),
            ("resourceVersion", Some(str_at(&d, "/metadata/resourceVersion"))),
            ("watch", Some("true")),
        ]);
        let url = format!("{}{q}", path(&t.res, t.namespace.as_deref(), None));
        let mut events = Box::pin(ctx.api.watch(&url, "application/json").await?);
        while let Some(event) = events.next().await {
            match event? {
                WatchEvent::Added(d) | WatchEvent::Modified(d) => {
                    if show(&d)? {
                        return Ok(());
                    }
                }
                WatchEvent::Deleted(_) => anyhow::bail!("object has been deleted"),
                WatchEvent::Bookmark(_) => {}
                // An expired resourceVersion: read again and watch from there.
                WatchEvent::Error(_) => break,
            }
        }
    }
}

/// The Deployment's ReplicaSets by revision.
async fn history_of(ctx: &Ctx, t: &Target, deployment: &Value) -> anyhow::Result<BTreeMap<i64, Value>> {
    let rs_path = format!("/apis/apps/v1/namespaces/{}/replicasets", t.namespace.as_deref().unwrap_or("default"));
    let list = ctx.api.get_json(&rs_path).await?;
    let items = list.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
    Ok(owned_replica_sets(deployment, &items).into_iter().map(|rs| (revision_of(&rs), rs)).collect())
}

async fn history(ctx: &Ctx, t: &Target, revision: i64) -> anyhow::Result<()> {
    let d = ctx.api.get_json(&t.path()).await?;
    let history = history_of(ctx, t, &d).await?;
    if revision > 0 {
        let Some(rs) = history.get(&revision) else {
            anyhow::bail!("unable to find the specified revision");
        };
        let template = rs.pointer("/spec/template").cloned().unwrap_or(Value::Null);
        print!("{} with revision #{revision}\n{}\n", t.display(), super::describe::pod_template_raw(&template));
        return Ok(());
    }
    if history.is_empty() {
        print!("{} \nNo rollout history found.\n", t.display());
        return Ok(());
    }
    print!("{} \n{}\n", t.display(), history_table(&history));
    Ok(())
}

async fn undo(ctx: &Ctx, t: &Target, to_revision: i64) -> anyhow::Result<()> {
    let d = ctx.api.get_json(&t.path()).await?;
    if d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        anyhow::bail!(
            "you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again"
        );
    }
    let history = history_of(ctx, t, &d).await?;
    let rs = replica_set_for_revision(&t.name, &history, to_revision)?;
    let wanted = template_without_hash(&rs);
    let current = d.pointer("/spec/template").cloned().unwrap_or(Value::Null);
    if wanted == current {
        println!("{} skipped rollback (current template already matches revision {})", t.display(), revision_of(&rs));
        return Ok(());
    }
    ctx.api.patch(&t.path(), "application/json-patch+json", &undo_patch(&d, &rs)).await?;
    println!("{} rolled back", t.display());
    Ok(())
}

async fn set_paused(ctx: &Ctx, args: TargetArgs, paused: bool) -> anyhow::Result<ExitCode> {
    let what = if paused { "pauser" } else { "resumer" };
    let targets = deployments(ctx, &args.resources, args.selector.as_deref(), what).await?;
    let mut errors = Vec::new();
    for t in &targets {
        let d = ctx.api.get_json(&t.path()).await?;
        let now = d.pointer("/spec/paused").and_then(Value::as_bool).unwrap_or(false);
        if now == paused {
            let why = if paused { "is already paused" } else { "is not paused" };
            errors.push(format!("error: {} {:?} {why}", t.group_resource(), t.name));
            continue;
        }
        let value = if paused { json!(true) } else { Value::Null };
        ctx.api.patch(&t.path(), STRATEGIC_MERGE_PATCH, &json!({"spec": {"paused": value}})).await?;
        println!("{} {}", t.display(), if paused { "paused" } else { "resumed" });
    }
    if !errors.is_empty() {
        return Err(anyhow::Error::new(PlainError(errors.join("\n"))));
    }
    Ok(ExitCode::SUCCESS)
}

/// RFC 3339 local time to the second, as Go's `time.RFC3339` formats `time.Now()`.
fn rfc3339_now() -> String {
    let now = jiff::Zoned::now();
    if now.offset().seconds() == 0 {
        now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        now.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

async fn restart(ctx: &Ctx, args: TargetArgs) -> anyhow::Result<ExitCode> {
    let targets = deployments(ctx, &args.resources, args.selector.as_deref(), "restarter").await?;
    let mut errors = Vec::new();
    for t in &targets {
        let d = ctx.api.get_json(&t.path()).await?;
        if d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
            errors.push(format!(
                "error: {} {:?} can't restart paused deployment (run rollout resume first)",
                t.group_resource(),
                t.name
            ));
            continue;
        }
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: rfc3339_now()}}}}});
        ctx.api.patch(&t.path(), STRATEGIC_MERGE_PATCH, &patch).await?;
        println!("{} restarted", t.display());
    }
    if !errors.is_empty() {
        return Err(anyhow::Error::new(PlainError(errors.join("\n"))));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(generation: i64, observed: i64, spec: i64, replicas: i64, updated: i64, available: i64) -> Value {
        json!({"metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": spec},
            "status": {"observedGeneration": observed, "replicas": replicas, "updatedReplicas": updated,
                "availableReplicas": available}})
    }

    #[test]
    fn status_messages_follow_the_deployment_status_viewer() {
        let msg = |d: &Value| status_message(d, 0).unwrap();
        assert_eq!(
            msg(&deploy(2, 1, 3, 3, 3, 3)),
            ("Waiting for deployment spec update to be observed...\n".into(), false)
        );
        assert_eq!(
            msg(&deploy(1, 1, 3, 3, 1, 1)).0,
            "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...\n"
        );
        assert_eq!(
            msg(&deploy(1, 1, 3, 4, 3, 3)).0,
            "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...\n"
        );
        assert_eq!(
            msg(&deploy(1, 1, 3, 3, 3, 1)).0,
            "Waiting for deployment \"web\" rollout to finish: 1 of 3 updated replicas are available...\n"
        );
        assert_eq!(msg(&deploy(1, 1, 3, 3, 3, 3)), ("deployment \"web\" successfully rolled out\n".into(), true));
        let mut stuck = deploy(1, 1, 3, 3, 3, 0);
        stuck["status"]["conditions"] =
            json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]);
        assert_eq!(status_message(&stuck, 0).unwrap_err(), "deployment \"web\" exceeded its progress deadline");
        assert_eq!(
            status_message(&stuck, 4).unwrap_err(),
            "desired revision (4) is different from the running revision (0)"
        );
    }

    fn rs(rev: i64, cause: Option<&str>, image: &str) -> Value {
        let mut ann = json!({REVISION: rev.to_string(), "deployment.kubernetes.io/desired-replicas": "3"});
        if let Some(c) = cause {
            ann[CHANGE_CAUSE] = json!(c);
        }
        json!({"metadata": {"annotations": ann, "ownerReferences": [{"uid": "u1", "controller": true}]},
            "spec": {"template": {"metadata": {"labels": {"app": "web", POD_TEMPLATE_HASH: "abc"}},
                "spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    #[test]
    fn history_table_lists_revisions_and_change_causes() {
        let history: BTreeMap<i64, Value> = [(1, rs(1, None, "a")), (12, rs(12, Some("set image to b"), "b"))].into();
        assert_eq!(history_table(&history), "REVISION  CHANGE-CAUSE\n1         <none>\n12        set image to b\n");
    }

    #[test]
    fn undo_replaces_template_without_hash_and_annotations() {
        let d = json!({"metadata": {"uid": "u1", "annotations": {REVISION: "2", "keep-me-not": "x"}}});
        let old = rs(1, Some("first"), "a");
        let patch = undo_patch(&d, &old);
        assert_eq!(patch[0]["path"], "/spec/template");
        assert_eq!(patch[0]["value"]["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(patch[1]["value"], json!({REVISION: "2", CHANGE_CAUSE: "first"}));
        let history: BTreeMap<i64, Value> = [(1, old.clone()), (2, rs(2, None, "b")), (3, rs(3, None, "c"))].into();
        assert_eq!(revision_of(&replica_set_for_revision("web", &history, 0).unwrap()), 2);
        assert_eq!(revision_of(&replica_set_for_revision("web", &history, 1).unwrap()), 1);
        assert_eq!(
            replica_set_for_revision("web", &history, 9).unwrap_err().to_string(),
            "unable to find specified revision 9 in history"
        );
        let one: BTreeMap<i64, Value> = [(1, old)].into();
        assert_eq!(
            replica_set_for_revision("web", &one, 0).unwrap_err().to_string(),
            "no rollout history found for deployment \"web\""
        );
        assert_eq!(owned_replica_sets(&d, &[rs(1, None, "a"), json!({"metadata": {}})]).len(), 1);
    }
}
