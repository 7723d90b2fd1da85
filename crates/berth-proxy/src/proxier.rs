//! The sync loop: reflects Services and EndpointSlices, and after each burst of changes (debounced)
//! renders the table and applies it when the text changed. Installs the blackhole route and
//! `route_localnet` first; removes table and route on cancellation only if configured to.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::ruleset::{self, RenderOptions};
use crate::service_port::{SERVICE_NAME_LABEL, service_ports};
use crate::{Error, Host, ProxyConfig};

/// How long to wait before retrying a failed apply, at most.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Runs the proxy on this host until `cancel` fires.
///
/// # Errors
/// Fails only if the blackhole route or `route_localnet` cannot be set up; a failing `nft`
/// apply is logged and retried with backoff.
pub async fn run(client: kube::Client, config: ProxyConfig, cancel: CancellationToken) -> Result<(), Error> {
    run_on(client, config, Host::new(), cancel).await
}

/// [`run`] against `host` (tests pass a network namespace).
pub async fn run_on(
    client: kube::Client,
    config: ProxyConfig,
    host: Host,
    cancel: CancellationToken,
) -> Result<(), Error> {
    host.enable_route_localnet(&config.route_localnet).await?;
    if let Some(route) = &config.blackhole {
        host.add_blackhole(config.service_cidr, route).await?;
    }
    tracing::info!(table = %config.table, service_cidr = %config.service_cidr, "service proxy starting");

    let (services, svc_writer) = reflector::store::<Service>();
    let (slices, slice_writer) = reflector::store::<EndpointSlice>();
    let changed = Arc::new(Notify::new());
    let svc_events = reflector(svc_writer, watcher(Api::<Service>::all(client.clone()), watcher::Config::default()))
        .default_backoff()
        .map(|r| r.map(drop).map_err(|e| e.to_string()));
    let slice_events = reflector(slice_writer, watcher(Api::<EndpointSlice>::all(client), watcher::Config::default()))
        .default_backoff()
        .map(|r| r.map(drop).map_err(|e| e.to_string()));
    let notify = changed.clone();
    let watch_cancel = cancel.clone();
    let watching = tokio::spawn(async move {
        let mut events = std::pin::pin!(futures::stream::select(svc_events, slice_events));
        loop {
            tokio::select! {
                _ = watch_cancel.cancelled() => break,
                ev = events.next() => match ev {
                    Some(Ok(())) => notify.notify_one(),
                    Some(Err(err)) => tracing::warn!(error = %err, "watching Services/EndpointSlices"),
                    None => break,
                },
            }
        }
    });

    let options = RenderOptions::from_config(&config);
    let ready = async {
        let _ = services.wait_until_ready().await;
        let _ = slices.wait_until_ready().await;
    };
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = ready => {
            let mut last: Option<String> = None;
            let mut retry = Duration::from_millis(500);
            let mut force = true;
            loop {
                let text = render_state(&services.state(), &slices.state(), &options, &config.node_name);
                if force || last.as_deref() != Some(text.as_str()) {
                    let started = tokio::time::Instant::now();
                    // Updated in place when the table is known to hold `last`, else replaced.
                    let applied = match &last {
                        Some(previous) => host.nft(&ruleset::update_batch(&config.table, previous, &text)).await,
                        None => host.apply_table(&config.table, &text).await,
                    };
                    match applied {
                        Ok(()) => {
                            tracing::debug!(table = %config.table, bytes = text.len(), elapsed = ?started.elapsed(), "synced");
                            last = Some(text);
                            retry = Duration::from_millis(500);
                            force = false;
                        }
                        Err(err) => {
                            tracing::warn!(table = %config.table, error = %err, "applying the ruleset failed; retrying");
                            last = None;
                            force = true;
                        }
                    }
                }
                let wait = if force { retry } else { config.resync };
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = changed.notified() => {}
                    _ = tokio::time::sleep(wait) => {
                        // Resync: re-apply if someone removed or changed the table.
                        if !force && !host.table_exists(&config.table).await.unwrap_or(false) {
                            force = true;
                            last = None;
                        }
                        retry = (retry * 2).min(MAX_RETRY);
                    }
                }
                // Debounce: let the rest of a burst arrive, then sync once.
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(config.debounce) => {}
                }
            }
        }
    }
    watching.abort();
    if config.cleanup_on_exit {
        tracing::info!(table = %config.table, "removing the service proxy's table and route");
        if let Err(err) = host.delete_table(&config.table).await {
            tracing::warn!(error = %err, "deleting the nftables table");
        }
        if let Some(route) = &config.blackhole {
            host.delete_blackhole(config.service_cidr, route).await?;
        }
    }
    Ok(())
}

/// Renders the table for these Services and EndpointSlices, as seen from `node_name`.
pub fn render_state(
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
    options: &RenderOptions,
    node_name: &str,
) -> String {
    let mut by_service: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
    for slice in slices {
        let Some(service) = slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) else { continue };
        let ns = slice.metadata.namespace.as_deref().unwrap_or("default");
        by_service.entry((ns, service.as_str())).or_default().push(slice);
    }
    let mut ports = Vec::new();
    for svc in services {
        let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
        let name = svc.metadata.name.as_deref().unwrap_or("");
        let slices = by_service.get(&(ns, name)).map(Vec::as_slice).unwrap_or(&[]);
        ports.extend(service_ports(svc, slices, node_name));
    }
    ruleset::render(options, &ports)
}
