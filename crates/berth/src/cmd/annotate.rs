//! `berth annotate`: adds, overwrites (`--overwrite`, except `kubernetes.io/change-cause` which is
//! always overwritable) and removes (`k-`) annotations as kubectl does (a merge PATCH of
//! `metadata.annotations`, `deployment.apps/web annotated`), or lists them (`--list`).

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::Ctx;
use super::label::{
    Changes, MERGE_PATCH, Target, TargetArgs, apply_changes, for_each_target, print_list, select_to_change,
    split_resources_and_pairs, string_map,
};

/// The annotation `rollout history` shows as CHANGE-CAUSE.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// `berth annotate`.
#[derive(Debug, Args)]
#[command(mut_arg("overwrite", |a| a.help("Allow annotations to be overwritten")))]
pub struct AnnotateArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print the annotations of the objects instead of changing them.
    #[arg(long)]
    pub list: bool,
}

/// kubectl's `parseAnnotations`: `key=value` (split at the first `=`) and `key-`.
pub fn parse_annotations(specs: &[String]) -> anyhow::Result<Changes> {
    let mut changes = Changes::default();
    for spec in specs {
        if let Some((key, value)) = spec.split_once('=') {
            if key.is_empty() {
                anyhow::bail!("invalid annotation format: {spec}");
            }
            changes.set.insert(key.to_string(), value.to_string());
        } else if let Some(key) = spec.strip_suffix('-') {
            changes.remove.push(key.to_string());
        } else {
            anyhow::bail!("invalid annotation format: {spec}");
        }
    }
    let both: Vec<&str> = changes.remove.iter().filter(|k| changes.set.contains_key(*k)).map(String::as_str).collect();
    if !both.is_empty() {
        anyhow::bail!(
            "can not both modify and remove the following annotation(s) in the same command: {}",
            both.join(", ")
        );
    }
    Ok(changes)
}

/// kubectl's `validateNoAnnotationOverwrites`: a different value needs --overwrite.
pub fn check_overwrites(current: &std::collections::BTreeMap<String, String>, changes: &Changes) -> anyhow::Result<()> {
    let clashes: Vec<String> = changes
        .set
        .iter()
        .filter(|(k, _)| k.as_str() != CHANGE_CAUSE)
        .filter_map(|(k, v)| {
            current.get(k).filter(|cur| *cur != v).map(|cur| format!("'{k}' already has a value ({cur})"))
        })
        .collect();
    if !clashes.is_empty() {
        anyhow::bail!("--overwrite is false but found the following declared annotation(s): {}", clashes.join("; "));
    }
    Ok(())
}

pub async fn run(ctx: &Ctx, args: AnnotateArgs) -> anyhow::Result<ExitCode> {
    let (resources, pairs) = split_resources_and_pairs(&args.target.args, "annotation")?;
    let changes = parse_annotations(&pairs)?;
    let targets = select_to_change(ctx, &resources, &args.target, &changes, args.list, "annotation").await?;
    let several = targets.len() > 1;
    Ok(for_each_target(&targets, |t| annotate_one(ctx, t, &changes, &args, several)).await)
}

async fn annotate_one(
    ctx: &Ctx,
    t: &Target,
    changes: &Changes,
    args: &AnnotateArgs,
    several: bool,
) -> anyhow::Result<()> {
    let obj = ctx.api.get_json(&t.path()).await?;
    let old = string_map(&obj, "annotations");
    if !args.target.overwrite {
        check_overwrites(&old, changes)?;
    }
    let (new, patch) = apply_changes(&old, changes);
    if args.list {
        print_list("annotations", t, &new, several);
        return Ok(());
    }
    if !patch.is_empty() {
        ctx.api.patch(&t.path(), MERGE_PATCH, &json!({"metadata": {"annotations": patch}})).await?;
    }
    println!("{} annotated", t.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::label::strings as s;
    use super::*;

    #[test]
    fn annotation_values_may_hold_equals_signs() {
        let c = parse_annotations(&s(&["a=x=y", "b-"])).unwrap();
        assert_eq!(c.set.get("a").map(String::as_str), Some("x=y"));
        assert_eq!(c.remove, s(&["b"]));
        assert_eq!(parse_annotations(&s(&["=x"])).unwrap_err().to_string(), "invalid annotation format: =x");
        assert!(parse_annotations(&s(&["a=1", "a-"])).unwrap_err().to_string().starts_with("can not both"));
    }

    #[test]
    fn overwrite_rules_follow_kubectl() {
        let cur = [("a".to_string(), "1".to_string()), (CHANGE_CAUSE.to_string(), "old".to_string())].into();
        // Same value: fine; change-cause: always fine; a different value: refused.
        assert!(check_overwrites(&cur, &parse_annotations(&s(&["a=1"])).unwrap()).is_ok());
        assert!(check_overwrites(&cur, &parse_annotations(&s(&["kubernetes.io/change-cause=new"])).unwrap()).is_ok());
        assert_eq!(
            check_overwrites(&cur, &parse_annotations(&s(&["a=2"])).unwrap()).unwrap_err().to_string(),
            "--overwrite is false but found the following declared annotation(s): 'a' already has a value (1)"
        );
    }
}
