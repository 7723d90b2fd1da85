//! Namespace controller (k8s `pkg/controller/namespace`): when a Namespace is being deleted,
//! deletes everything namespaced inside it (every discoverable kind), reports what remains in the
//! `NamespaceContentRemaining`/`NamespaceDeletionContentFailure` conditions, and once it is empty
//! removes the `kubernetes` finalizer through `namespaces/{name}/finalize` so the apiserver can
//! remove the Namespace.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::discovery::{self, Resource};
use crate::error::is_status;
use crate::queue::{Backoff, on_error};
use crate::{ControllersConfig, Error};

/// The finalizer this controller owns.
pub const FINALIZER: &str = "kubernetes";
/// How soon to look again while content remains.
const RECHECK: Duration = Duration::from_millis(500);

struct Ctx {
    client: kube::Client,
    backoff: Backoff<ObjectRef<Namespace>>,
}

/// Runs the namespace controller until cancelled.
pub async fn run(client: kube::Client, config: ControllersConfig, cancel: CancellationToken) -> Result<(), Error> {
    let ctx = Arc::new(Ctx { client: client.clone(), backoff: Backoff::default() });
    let err_ctx = ctx.clone();
    Controller::new(Api::<Namespace>::all(client), watcher::Config::default())
        .with_config(kube::runtime::controller::Config::default().concurrency(config.concurrency))
        .graceful_shutdown_on(cancel.cancelled_owned())
        .run(
            |ns: Arc<Namespace>, ctx: Arc<Ctx>| async move { sync_namespace(&ctx, &ns).await },
            move |ns: Arc<Namespace>, err: &Error, _| on_error(&err_ctx.backoff, ObjectRef::from_obj(&*ns), err),
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
    Ok(())
}

async fn sync_namespace(ctx: &Ctx, ns: &Namespace) -> Result<Action, Error> {
    let has_finalizer =
        ns.spec.as_ref().and_then(|s| s.finalizers.as_ref()).is_some_and(|f| f.iter().any(|f| f == FINALIZER));
    if ns.metadata.deletion_timestamp.is_none() || !has_finalizer {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let resources = discovery::resources(&ctx.client).await?;
    let mut remaining: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for r in resources.iter().filter(|r| r.namespaced) {
        match delete_all(ctx, &name, r).await {
            Ok(0) => {}
            Ok(n) => {
                remaining.insert(format!("{}.{}", r.ar.plural, r.ar.group).trim_end_matches('.').to_string(), n);
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    ctx.backoff.forget(&ObjectRef::from_obj(ns));
    set_conditions(ctx, ns, &remaining, &failures).await?;
    if !remaining.is_empty() || !failures.is_empty() {
        return Ok(Action::requeue(RECHECK));
    }
    let finalizers: Vec<String> = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f != FINALIZER)
        .collect();
    let mut body = ns.clone();
    body.spec.get_or_insert_with(Default::default).finalizers = Some(finalizers);
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    match api.replace_subresource("finalize", &name, &PostParams::default(), &body).await {
        Ok(_) => Ok(Action::await_change()),
        Err(e) if is_status(&e, 404) => Ok(Action::await_change()),
        Err(e) => Err(Error::api(format!("finalize namespace {name}"), e)),
    }
}

/// Deletes every object of resource `r` in `ns`; returns how many are left afterwards.
async fn delete_all(ctx: &Ctx, ns: &str, r: &Resource) -> Result<usize, Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &r.ar);
    let what = |verb: &str| format!("{verb} {} in namespace {ns}", r.ar.plural);
    let list = match api.list(&ListParams::default()).await {
        Ok(l) => l,
        Err(e) if is_status(&e, 404) || is_status(&e, 405) => return Ok(0),
        Err(e) => return Err(Error::api(what("list"), e)),
    };
    let live: Vec<&DynamicObject> = list.items.iter().filter(|o| o.metadata.deletion_timestamp.is_none()).collect();
    if live.is_empty() {
        return Ok(list.items.len());
    }
    let dp = DeleteParams::background();
    if r.delete_collection {
        match api.delete_collection(&dp, &ListParams::default()).await {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(Error::api(what("deletecollection"), e)),
        }
    } else {
        for o in live {
            match api.delete(&o.name_any(), &dp).await {
                Ok(_) => {}
                Err(e) if is_status(&e, 404) || is_status(&e, 409) => {}
                Err(e) => return Err(Error::api(what("delete"), e)),
            }
        }
    }
    match api.list(&ListParams::default()).await {
        Ok(l) => Ok(l.items.len()),
        Err(e) => Err(Error::api(what("list"), e)),
    }
}

fn condition(type_: &str, ok: bool, reason_ok: &str, reason_bad: &str, message: String) -> NamespaceCondition {
    NamespaceCondition {
        type_: type_.into(),
        status: if ok { "False".into() } else { "True".into() },
        reason: Some(if ok { reason_ok.into() } else { reason_bad.into() }),
        message: Some(message),
        last_transition_time: Some(Time(jiff::Timestamp::now())),
    }
}

/// Writes upstream's deletion conditions, keeping transition times of unchanged ones.
async fn set_conditions(
    ctx: &Ctx,
    ns: &Namespace,
    remaining: &BTreeMap<String, usize>,
    failures: &[String],
) -> Result<(), Error> {
    let content_msg = if remaining.is_empty() {
        "All content successfully removed".to_string()
    } else {
        let parts: Vec<String> = remaining.iter().map(|(r, n)| format!("{r} has {n} resource instances")).collect();
        format!("Some resources are remaining: {}", parts.join(", "))
    };
    let failure_msg =
        if failures.is_empty() { "All content successfully deleted".to_string() } else { failures.join("; ") };
    let wanted = vec![
        condition(
            "NamespaceDeletionContentFailure",
            failures.is_empty(),
            "ContentDeleted",
            "ContentDeletionFailed",
            failure_msg,
        ),
        condition(
            "NamespaceContentRemaining",
            remaining.is_empty(),
            "ContentRemoved",
            "SomeResourcesRemain",
            content_msg,
        ),
    ];
    let current = ns.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let mut changed = false;
    let mut merged: Vec<NamespaceCondition> =
        current.iter().filter(|c| !wanted.iter().any(|w| w.type_ == c.type_)).cloned().collect();
    for mut w in wanted {
        match current.iter().find(|c| c.type_ == w.type_) {
            Some(c) if c.status == w.status && c.reason == w.reason && c.message == w.message => merged.push(c.clone()),
            Some(c) if c.status == w.status => {
                w.last_transition_time = c.last_transition_time.clone();
                changed = true;
                merged.push(w);
            }
            _ => {
                changed = true;
                merged.push(w);
            }
        }
    }
    if !changed {
        return Ok(());
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let patch = serde_json::json!({"status": {"conditions": merged}});
    match api.patch_status(&ns.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(Error::api(format!("update conditions of namespace {}", ns.name_any()), e)),
    }
}
