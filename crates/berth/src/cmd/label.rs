//! `berth label`: adds, overwrites (`--overwrite`) and removes (`k-`) labels on any resource as
//! kubectl does (a merge PATCH of `metadata.labels`, `deployment.apps/web labeled`), or lists them
//! (`--list`). Also home of the helpers the workload verbs share: kubectl's split of arguments into
//! resources and `key=value` pairs, and resolving `TYPE NAME`, `TYPE/NAME`, `-l` or `--all` to
//! objects.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Args;
use serde_json::{Map, Value, json};

use super::Ctx;
use super::apply::print_failure;
use super::get::{list_items, name_of, resolve};
use crate::api::{path, query};
use crate::discovery::ResourceInfo;

/// The arguments label, annotate and taint share: the objects and their changes, `--overwrite`
/// and the `--all`/`-l` selection. The help texts are label's; the other verbs reword theirs
/// with `#[command(mut_arg(...))]`.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// TYPE NAME... or TYPE/NAME..., then KEY=VAL... and KEY-...
    #[arg(required = true, value_name = "ARGS")]
    pub args: Vec<String>,
    /// Allow labels to be overwritten.
    #[arg(long)]
    pub overwrite: bool,
    /// Select all resources of the type in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

/// `berth label`.
#[derive(Debug, Args)]
pub struct LabelArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print the labels of the objects instead of changing them.
    #[arg(long)]
    pub list: bool,
}

/// A `merge-patch` content type.
pub const MERGE_PATCH: &str = "application/merge-patch+json";
/// A `strategic-merge-patch` content type.
pub const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";

/// One object a verb acts on.
#[derive(Clone, Debug)]
pub struct Target {
    pub res: ResourceInfo,
    pub namespace: Option<String>,
    pub name: String,
}

impl Target {
    /// The object's REST path.
    pub fn path(&self) -> String {
        path(&self.res, self.namespace.as_deref(), Some(&self.name))
    }

    /// `deployment.apps/web`, as kubectl's name printer writes it.
    pub fn display(&self) -> String {
        format!("{}/{}", self.res.kind_group(), self.name)
    }

    /// `deployments.apps`, as kubectl names the resource in some errors.
    pub fn group_resource(&self) -> String {
        if self.res.group.is_empty() {
            self.res.plural.clone()
        } else {
            format!("{}.{}", self.res.plural, self.res.group)
        }
    }
}

/// kubectl's `GetResourcesAndPairs`: arguments up to the first `k=v` or `k-` are resources, the
/// rest are pairs (a resource after a pair is an error).
pub fn split_resources_and_pairs(args: &[String], pair_type: &str) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let mut resources = Vec::new();
    let mut pairs = Vec::new();
    for s in args {
        let is_pair = (s.contains('=') && !s.starts_with('=')) || (s.ends_with('-') && s != "-");
        match (pairs.is_empty(), is_pair) {
            (_, true) => pairs.push(s.clone()),
            (true, false) => resources.push(s.clone()),
            (false, false) => anyhow::bail!("all resources must be specified before {pair_type} changes: {s}"),
        }
    }
    Ok((resources, pairs))
}

/// Resolves `TYPE NAME...` / `TYPE/NAME...` (or a TYPE with `-l`/`--all`) to objects.
pub async fn select(ctx: &Ctx, resources: &[String], selector: Option<&str>, all: bool) -> anyhow::Result<Vec<Target>> {
    if resources.is_empty() {
        anyhow::bail!("one or more resources must be specified as <resource> <name> or <resource>/<name>");
    }
    let request = resolve(ctx, resources).await?;
    let mut out = Vec::new();
    for (res, names) in request.targets {
        let ns = ctx.scope(&res).map(str::to_string);
        if names.is_empty() {
            if selector.is_none() && !all {
                anyhow::bail!("resource(s) were provided, but no name was specified");
            }
            let q = query(&[("labelSelector", selector)]);
            let list = ctx.api.get_json(&format!("{}{q}", path(&res, ns.as_deref(), None))).await?;
            for item in list_items(&list, &res) {
                let item_ns = item.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string);
                out.push(Target { res: res.clone(), namespace: item_ns.or_else(|| ns.clone()), name: name_of(&item) });
            }
        } else {
            out.extend(names.into_iter().map(|name| Target { res: res.clone(), namespace: ns.clone(), name }));
        }
    }
    Ok(out)
}

/// Label or annotation changes parsed from `k=v` / `k-` arguments.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub set: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

/// Whether `value` is a valid label value (empty, or at most 63 alphanumerics, `-`, `_`, `.`,
/// starting and ending alphanumeric).
pub fn is_valid_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// kubectl's `parseLabels`.
pub fn parse_labels(specs: &[String]) -> anyhow::Result<Changes> {
    let mut changes = Changes::default();
    for spec in specs {
        if spec.contains('=') {
            let parts: Vec<&str> = spec.split('=').collect();
            if parts.len() != 2 {
                anyhow::bail!("invalid label spec: {spec}");
            }
            if !is_valid_label_value(parts[1]) {
                anyhow::bail!(
                    "invalid label value: {spec:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                );
            }
            changes.set.insert(parts[0].to_string(), parts[1].to_string());
        } else if let Some(key) = spec.strip_suffix('-') {
            changes.remove.push(key.to_string());
        } else {
            anyhow::bail!("unknown label spec: {spec}");
        }
    }
    if changes.remove.iter().any(|k| changes.set.contains_key(k)) {
        anyhow::bail!("can not both modify and remove a label in the same command");
    }
    Ok(changes)
}

/// The string map at `metadata.<field>` of an object.
pub fn string_map(obj: &Value, field: &str) -> BTreeMap<String, String> {
    obj.pointer(&format!("/metadata/{field}"))
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default()
}

/// Applies `changes` to `old`; the merge patch body of `metadata.<field>` for the difference.
pub fn apply_changes(
    old: &BTreeMap<String, String>,
    changes: &Changes,
) -> (BTreeMap<String, String>, Map<String, Value>) {
    let mut new = old.clone();
    for (k, v) in &changes.set {
        new.insert(k.clone(), v.clone());
    }
    for k in &changes.remove {
        new.remove(k);
    }
    let mut patch = Map::new();
    for (k, v) in &new {
        if old.get(k) != Some(v) {
            patch.insert(k.clone(), json!(v));
        }
    }
    for k in old.keys() {
        if !new.contains_key(k) {
            patch.insert(k.clone(), Value::Null);
        }
    }
    (new, patch)
}

/// kubectl's `updateDataChangeMsg`: `labeled`, `unlabeled` (shrunk without --overwrite) or
/// `not labeled`.
pub fn label_change_message(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    overwrite: bool,
) -> &'static str {
    if old == new {
        return "not labeled";
    }
    let size = |m: &BTreeMap<String, String>| if m.is_empty() { 0 } else { json!(m).to_string().len() };
    if !overwrite && size(new) < size(old) { "unlabeled" } else { "labeled" }
}

/// Prints `key=value` lines (indented, under a heading, when several objects are listed).
pub fn print_list(what: &str, target: &Target, map: &BTreeMap<String, String>, several: bool) {
    let indent = if several {
        let group = &target.res.group;
        println!("Listing {what} for {}.{group}/{}:", target.res.kind, target.name);
        " "
    } else {
        ""
    };
    for (k, v) in map {
        println!("{indent}{k}={v}");
    }
}

/// The checks label and annotate share before resolving their targets: `--all` and `-l` exclude
/// each other, and unless only listing there must be a `what` (label, annotation) to change.
pub async fn select_to_change(
    ctx: &Ctx,
    resources: &[String],
    args: &TargetArgs,
    changes: &Changes,
    list: bool,
    what: &str,
) -> anyhow::Result<Vec<Target>> {
    if args.all && args.selector.is_some() {
        anyhow::bail!("cannot set --all and --selector at the same time");
    }
    if changes.set.is_empty() && changes.remove.is_empty() && !list {
        anyhow::bail!("at least one {what} update is required");
    }
    select(ctx, resources, args.selector.as_deref(), args.all).await
}

/// Runs `one` on every target in turn, printing each failure as kubectl does and going on; the
/// exit code fails when any target failed.
pub async fn for_each_target<'a, F, Fut>(targets: &'a [Target], mut one: F) -> ExitCode
where
    F: FnMut(&'a Target) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut failed = false;
    for t in targets {
        if let Err(err) = one(t).await {
            failed = true;
            print_failure(&err);
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

pub async fn run(ctx: &Ctx, args: LabelArgs) -> anyhow::Result<ExitCode> {
    let (resources, pairs) = split_resources_and_pairs(&args.target.args, "label")?;
    let changes = parse_labels(&pairs)?;
    let targets = select_to_change(ctx, &resources, &args.target, &changes, args.list, "label").await?;
    let several = targets.len() > 1;
    Ok(for_each_target(&targets, |t| label_one(ctx, t, &changes, &args, several)).await)
}

async fn label_one(ctx: &Ctx, t: &Target, changes: &Changes, args: &LabelArgs, several: bool) -> anyhow::Result<()> {
    let obj = ctx.api.get_json(&t.path()).await?;
    let old = string_map(&obj, "labels");
    if !args.list {
        for k in &changes.remove {
            if !old.contains_key(k) {
                println!("label {k:?} not found.");
            }
        }
    }
    if !args.target.overwrite {
        let clashes: Vec<String> = changes
            .set
            .keys()
            .filter_map(|k| old.get(k).map(|v| format!("'{k}' already has a value ({v}), and --overwrite is false")))
            .collect();
        if !clashes.is_empty() {
            let msg = if clashes.len() == 1 { clashes[0].clone() } else { format!("[{}]", clashes.join(", ")) };
            anyhow::bail!("{msg}");
        }
    }
    let (new, patch) = apply_changes(&old, changes);
    if args.list {
        print_list("labels", t, &new, several);
        return Ok(());
    }
    if !patch.is_empty() {
        ctx.api.patch(&t.path(), MERGE_PATCH, &json!({"metadata": {"labels": patch}})).await?;
    }
    println!("{} {}", t.display(), label_change_message(&old, &new, args.target.overwrite));
    Ok(())
}

/// Owned strings from literals, for the verbs' unit tests.
#[cfg(test)]
pub(crate) fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::strings as s;
    use super::*;

    #[test]
    fn resources_come_before_pairs() {
        let (r, p) = split_resources_and_pairs(&s(&["deploy", "web", "a=b", "c-"]), "label").unwrap();
        assert_eq!((r, p), (s(&["deploy", "web"]), s(&["a=b", "c-"])));
        let err = split_resources_and_pairs(&s(&["deploy", "a=b", "web"]), "label").unwrap_err();
        assert_eq!(err.to_string(), "all resources must be specified before label changes: web");
    }

    #[test]
    fn label_specs_parse_as_kubectl() {
        let c = parse_labels(&s(&["app=web", "tier-", "empty="])).unwrap();
        assert_eq!(c.set.get("app").map(String::as_str), Some("web"));
        assert_eq!(c.set.get("empty").map(String::as_str), Some(""));
        assert_eq!(c.remove, s(&["tier"]));
        assert_eq!(parse_labels(&s(&["a=b=c"])).unwrap_err().to_string(), "invalid label spec: a=b=c");
        assert!(parse_labels(&s(&["a=-bad"])).unwrap_err().to_string().starts_with("invalid label value: \"a=-bad\""));
        assert_eq!(parse_labels(&s(&["a"])).unwrap_err().to_string(), "unknown label spec: a");
        assert_eq!(
            parse_labels(&s(&["a=b", "a-"])).unwrap_err().to_string(),
            "can not both modify and remove a label in the same command"
        );
    }

    #[test]
    fn changes_become_a_minimal_merge_patch() {
        let old: BTreeMap<String, String> = [("a".into(), "1".into()), ("b".into(), "2".into())].into();
        let changes = Changes { set: [("a".into(), "9".into()), ("c".into(), "3".into())].into(), remove: s(&["b"]) };
        let (new, patch) = apply_changes(&old, &changes);
        assert_eq!(Value::Object(patch), json!({"a": "9", "b": null, "c": "3"}));
        assert_eq!(new.len(), 2);
        assert_eq!(label_change_message(&old, &new, true), "labeled");
        assert_eq!(label_change_message(&old, &old, false), "not labeled");
        let removed: BTreeMap<String, String> = [("a".into(), "1".into())].into();
        assert_eq!(label_change_message(&old, &removed, false), "unlabeled");
        assert_eq!(label_change_message(&old, &removed, true), "labeled");
    }
}
