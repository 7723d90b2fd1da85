//! Keeps the zone snapshot current: reflector stores of all Services and EndpointSlices, and a
//! rebuild of the [`Zone`] after every change (bursts coalesce into one rebuild).

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::server::ZoneCell;
use crate::zone::{ClusterDomain, Zone};

/// Watches `K` into a store, waking `changed` after every event.
fn reflect<K>(api: Api<K>, changed: Arc<Notify>, cancel: CancellationToken) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + Send + Sync + serde::de::DeserializeOwned + 'static,
{
    let (reader, writer) = reflector::store::<K>();
    let stream = watcher(api, watcher::Config::default()).default_backoff().reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            let event = tokio::select! {
                _ = cancel.cancelled() => return,
                event = stream.next() => event,
            };
            match event {
                Some(Ok(_)) => changed.notify_one(),
                Some(Err(err)) => {
                    tracing::warn!(kind = K::kind(&()).as_ref(), error = %crate::error_chain(&err), "DNS watch failed; retrying")
                }
                None => return,
            }
        }
    });
    reader
}

/// Rebuilds the zone in `cell` from the API until `cancel` fires.
pub async fn sync_zone(client: kube::Client, domain: ClusterDomain, cell: Arc<ZoneCell>, cancel: CancellationToken) {
    let changed = Arc::new(Notify::new());
    let services = reflect(Api::<Service>::all(client.clone()), changed.clone(), cancel.clone());
    let slices = reflect(Api::<EndpointSlice>::all(client), changed.clone(), cancel.clone());
    tokio::select! {
        _ = cancel.cancelled() => return,
        ready = async { (services.wait_until_ready().await, slices.wait_until_ready().await) } => {
            if let (Err(err), _) | (_, Err(err)) = ready {
                tracing::warn!(error = %err, "DNS watch stopped before its first list");
                return;
            }
        }
    }
    let mut serial: u32 = 0;
    loop {
        serial = serial.wrapping_add(1);
        let (svc, eps) = (services.state(), slices.state());
        let zone = Zone::build(&domain, svc.iter().map(|s| s.as_ref()), eps.iter().map(|s| s.as_ref()), serial);
        tracing::debug!(services = zone.service_count(), serial, "cluster DNS zone rebuilt");
        cell.set(zone);
        tokio::select! {
            _ = cancel.cancelled() => return,
            () = changed.notified() => {}
        }
    }
}
