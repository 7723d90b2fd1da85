//! ServiceAccounts controller (k8s `pkg/controller/serviceaccount/serviceaccounts_controller.go`):
//! every active Namespace gets a ServiceAccount named `default`, re-created if deleted; nothing is
//! created in a terminating Namespace. Also hosts the per-namespace runner the root-CA publisher
//! shares: a Namespace-keyed queue that one named object in each Namespace also triggers.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::core::NamespaceResourceScope;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::error::is_status;
use crate::queue::{Backoff, on_error};
use crate::{ControllersConfig, Error};

/// The controller's name in `--controllers`.
pub const NAME: &str = "serviceaccount";
/// The ServiceAccount every Namespace gets.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// Whether the Namespace is being deleted (no new objects go into it).
pub fn is_terminating(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating")
}

/// What a per-namespace sync function is given.
pub(crate) struct NsCtx<S> {
    pub client: kube::Client,
    pub state: S,
    backoff: Backoff<ObjectRef<Namespace>>,
    resync: Duration,
}

/// Runs `sync` for every active Namespace, on changes to the Namespace and to the object of kind
/// `K` named `object_name` inside it, and every `resync`, until cancelled.
pub(crate) async fn run_per_namespace<K, S, F, Fut>(
    client: kube::Client,
    config: &ControllersConfig,
    cancel: CancellationToken,
    object_name: &'static str,
    state: S,
    sync: F,
) where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    S: Send + Sync + 'static,
    F: Fn(Arc<NsCtx<S>>, String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Error>> + Send + 'static,
{
    let ctx = Arc::new(NsCtx { client: client.clone(), state, backoff: Backoff::default(), resync: config.resync });
    let err_ctx = ctx.clone();
    let sync = Arc::new(sync);
    Controller::new(Api::<Namespace>::all(client.clone()), watcher::Config::default())
        .watches(Api::<K>::all(client), watcher::Config::default(), move |o: K| {
            let ns = o.namespace()?;
            (o.name_any() == object_name).then(|| ObjectRef::new(&ns))
        })
        .with_config(kube::runtime::controller::Config::default().concurrency(config.concurrency))
        .graceful_shutdown_on(cancel.cancelled_owned())
        .run(
            move |ns: Arc<Namespace>, ctx: Arc<NsCtx<S>>| {
                let sync = sync.clone();
                async move {
                    if is_terminating(&ns) {
                        return Ok(Action::await_change());
                    }
                    sync(ctx.clone(), ns.name_any()).await?;
                    ctx.backoff.forget(&ObjectRef::from_obj(&*ns));
                    Ok(Action::requeue(ctx.resync))
                }
            },
            move |ns: Arc<Namespace>, err: &Error, _| on_error(&err_ctx.backoff, ObjectRef::from_obj(&*ns), err),
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// Runs the ServiceAccounts controller until cancelled.
pub async fn run(client: kube::Client, config: ControllersConfig, cancel: CancellationToken) -> Result<(), Error> {
    run_per_namespace::<ServiceAccount, _, _, _>(
        client,
        &config,
        cancel,
        DEFAULT_SERVICE_ACCOUNT,
        (),
        |ctx, ns| async move { sync_namespace(&ctx.client, &ns).await },
    )
    .await;
    Ok(())
}

/// Creates the `default` ServiceAccount in `ns` if it is missing.
async fn sync_namespace(client: &kube::Client, ns: &str) -> Result<(), Error> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let what = |verb: &str| format!("{verb} serviceaccount {ns}/{DEFAULT_SERVICE_ACCOUNT}");
    if api.get_opt(DEFAULT_SERVICE_ACCOUNT).await.map_err(|e| Error::api(what("get"), e))?.is_some() {
        return Ok(());
    }
    let sa = ServiceAccount {
        metadata: ObjectMeta { name: Some(DEFAULT_SERVICE_ACCOUNT.into()), ..Default::default() },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &sa).await {
        Ok(_) => Ok(()),
        // Created meanwhile, or the namespace started terminating / went away: nothing to do.
        Err(e) if is_status(&e, 409) || is_status(&e, 404) => Ok(()),
        Err(e) if is_status(&e, 403) && is_forbidden_terminating(&e) => Ok(()),
        Err(e) => Err(Error::api(what("create"), e)),
    }
}

/// Whether a 403 is the apiserver refusing new objects in a terminating namespace.
pub(crate) fn is_forbidden_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.message.contains("terminat"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn deleting_or_terminating_namespaces_are_skipped() {
        let mut ns = Namespace::default();
        assert!(!is_terminating(&ns));
        ns.status = Some(NamespaceStatus { phase: Some("Active".into()), ..Default::default() });
        assert!(!is_terminating(&ns));
        ns.status = Some(NamespaceStatus { phase: Some("Terminating".into()), ..Default::default() });
        assert!(is_terminating(&ns));
        let ns = Namespace {
            metadata: ObjectMeta { deletion_timestamp: Some(Time(jiff::Timestamp::UNIX_EPOCH)), ..Default::default() },
            ..Default::default()
        };
        assert!(is_terminating(&ns));
    }
}
