//! `berth delete`: by file, by TYPE NAME..., or by TYPE with -l/--all; sends kubectl's
//! DeleteOptions (propagation policy, grace period), prints `kind.group "name" deleted`, and with
//! --wait (the default) returns only once every deleted object is gone.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

use super::Ctx;
use super::apply::{print_failure, target_of};
use super::get::{list_items, name_of, resolve};
use crate::api::{path, query};
use crate::cli::{Cascade, DeleteArgs};
use crate::discovery::ResourceInfo;
use crate::errors::is_not_found;
use crate::manifest::read_all;

/// kubectl's wait when --timeout is 0.
const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often --wait re-checks whether a deleted object is gone.
const WAIT_POLL: Duration = Duration::from_millis(250);

/// The DeleteOptions body kubectl sends.
pub fn delete_options(cascade: Cascade, grace_period: i64, force: bool) -> Value {
    let policy = match cascade {
        Cascade::Background => "Background",
        Cascade::Foreground => "Foreground",
        Cascade::Orphan => "Orphan",
    };
    // kubectl: --grace-period=0 without --force means 1 (no accidental immediate deletion);
    // --force without a grace period means 0.
    let grace = match (grace_period, force) {
        (0, false) => 1,
        (g, true) if g < 0 => 0,
        (g, _) => g,
    };
    let mut body = json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy});
    if grace >= 0 {
        body["gracePeriodSeconds"] = json!(grace);
    }
    body
}

pub async fn run(ctx: &Ctx, args: DeleteArgs) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    // (resource, namespace, name)
    let mut targets: Vec<(ResourceInfo, Option<String>, String)> = Vec::new();
    if !args.filenames.is_empty() {
        for m in read_all(&args.filenames)? {
            match target_of(ctx, &m).await {
                Ok(t) => targets.push((t.res, t.namespace, t.name)),
                Err(err) => {
                    failed = true;
                    print_failure(&err);
                }
            }
        }
    } else {
        if args.resources.is_empty() {
            anyhow::bail!("You must provide one or more resources by argument or filename.");
        }
        let request = resolve(ctx, &args.resources).await?;
        for (res, names) in request.targets {
            let ns = ctx.scope(&res).map(str::to_string);
            if names.is_empty() {
                if args.selector.is_none() && !args.all {
                    anyhow::bail!("resource(s) were provided, but no name was specified");
                }
                let q = query(&[("labelSelector", args.selector.as_deref())]);
                let list = ctx.api.get_json(&format!("{}{q}", path(&res, ns.as_deref(), None))).await?;
                for item in list_items(&list, &res) {
                    let item_ns = item.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string);
                    targets.push((res.clone(), item_ns.or_else(|| ns.clone()), name_of(&item)));
                }
            } else {
                targets.extend(names.into_iter().map(|n| (res.clone(), ns.clone(), n)));
            }
        }
        if targets.is_empty() && !failed {
            println!("No resources found");
            return Ok(ExitCode::SUCCESS);
        }
    }

    if args.force {
        eprintln!(
            "Warning: Immediate deletion does not wait for confirmation that the running resource has been terminated. The resource may continue to run on the cluster indefinitely."
        );
    }
    let body = delete_options(args.cascade, args.grace_period, args.force);
    // (path, "deployments/web", uid) of each deleted object, for --wait.
    let mut deleted = Vec::new();
    for (res, ns, name) in targets {
        let object_path = path(&res, ns.as_deref(), Some(&name));
        match ctx.api.delete(&object_path, &body).await {
            Ok(response) => {
                println!("{} {name:?} deleted", res.kind_group());
                // The object, or a Status whose details carry its uid.
                let uid = [&response["metadata"]["uid"], &response["details"]["uid"]]
                    .into_iter()
                    .find_map(|u| u.as_str().map(String::from));
                deleted.push((object_path, format!("{}/{name}", res.plural), uid));
            }
            Err(err) if args.ignore_not_found && is_not_found(&err) => {}
            Err(err) => {
                failed = true;
                print_failure(&err);
            }
        }
    }
    if args.wait {
        let timeout = if args.timeout.is_zero() { WEEK } else { args.timeout };
        let deadline = tokio::time::Instant::now() + timeout;
        for (object_path, what, uid) in &deleted {
            if tokio::time::timeout_at(deadline, wait_gone(ctx, object_path, uid.as_deref())).await.is_err() {
                anyhow::bail!("timed out waiting for the condition on {what}");
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Polls until the object answers 404, or (as kubectl's wait) another object of the same name
/// stands in its place: a controller re-created it with a new uid.
async fn wait_gone(ctx: &Ctx, object_path: &str, uid: Option<&str>) -> anyhow::Result<()> {
    loop {
        match ctx.api.get_json(object_path).await {
            Err(err) if is_not_found(&err) => return Ok(()),
            Err(err) => return Err(err),
            Ok(object) if uid.is_some_and(|uid| object["metadata"]["uid"].as_str().is_some_and(|u| u != uid)) => {
                return Ok(());
            }
            // Polling (rather than a watch) also works against servers without field-selector
            // watches; the interval bounds the load.
            Ok(_) => tokio::time::sleep(WAIT_POLL).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_options_follow_kubectl() {
        assert_eq!(
            delete_options(Cascade::Background, -1, false),
            json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"})
        );
        assert_eq!(delete_options(Cascade::Foreground, 0, true)["gracePeriodSeconds"], 0);
        assert_eq!(delete_options(Cascade::Orphan, -1, true)["gracePeriodSeconds"], 0);
        assert_eq!(delete_options(Cascade::Background, 0, false)["gracePeriodSeconds"], 1);
        assert_eq!(delete_options(Cascade::Orphan, 30, false)["propagationPolicy"], "Orphan");
    }
}
