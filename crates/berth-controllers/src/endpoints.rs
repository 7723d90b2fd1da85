//! Endpoints controller (k8s `pkg/controller/endpoint`): for every Service with a selector, keeps
//! the legacy v1 Endpoints object of the same name (what `kubectl describe svc` and older clients
//! read): ready pods under `addresses`, the others under `notReadyAddresses`, grouped by port set
//! as upstream's `RepackSubsets` does. Services without a selector are user-managed and left alone;
//! the Endpoints of a deleted Service are deleted with it.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, ReconcileRequest};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::endpointslice::{
    Ctx, find_port, mark_headless, pod_addresses, pod_hostname, pod_reference, run_service_controller,
    service_selector, should_pod_be_in_endpoints,
};
use crate::error::is_status;
use crate::queue::CACHE_WAIT;
use crate::util::is_pod_ready;
use crate::{ControllersConfig, Error};

/// The controller's name in `--controllers`.
pub const NAME: &str = "endpoint";

/// Upstream `podToEndpointAddressForService` (first IP of the Service's primary family).
fn endpoint_address(svc: &Service, pod: &Pod) -> Option<EndpointAddress> {
    let family = svc
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first().cloned())
        .unwrap_or_else(|| "IPv4".into());
    let ip = pod_addresses(pod, &family).into_iter().next()?;
    Some(EndpointAddress {
        ip,
        hostname: pod_hostname(pod, svc),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()),
        target_ref: Some(pod_reference(pod)),
    })
}

/// The subsets of a Service's Endpoints given the pods it selects (pure): upstream `syncService`
/// followed by `RepackSubsets`, addresses sorted by IP, ports by name.
pub fn desired_subsets(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish = spec.publish_not_ready_addresses.unwrap_or(false);
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let svc_ports = spec.ports.unwrap_or_default();
    // (ip, uid) -> (address, ready, ports)
    let mut by_address: BTreeMap<(String, String), (EndpointAddress, bool, Vec<EndpointPort>)> = BTreeMap::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, publish) {
            continue;
        }
        let Some(addr) = endpoint_address(svc, pod) else { continue };
        let ready = publish || is_pod_ready(pod);
        let mut ports: Vec<EndpointPort> = svc_ports
            .iter()
            .filter_map(|sp| {
                Some(EndpointPort {
                    name: sp.name.clone().filter(|n| !n.is_empty()),
                    port: find_port(pod, sp)?,
                    protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: sp.app_protocol.clone(),
                })
            })
            .collect();
        if ports.is_empty() && !(svc_ports.is_empty() && headless) {
            continue;
        }
        ports.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
        let key = (addr.ip.clone(), pod.metadata.uid.clone().unwrap_or_default());
        by_address.insert(key, (addr, ready, ports));
    }
    // Group addresses with the same port set into one subset.
    let mut groups: BTreeMap<String, EndpointSubset> = BTreeMap::new();
    for (addr, ready, ports) in by_address.into_values() {
        let key = serde_json::to_string(&ports).unwrap_or_default();
        let subset = groups
            .entry(key)
            .or_insert_with(|| EndpointSubset { ports: (!ports.is_empty()).then_some(ports), ..Default::default() });
        let list = if ready { &mut subset.addresses } else { &mut subset.not_ready_addresses };
        list.get_or_insert_with(Vec::new).push(addr);
    }
    let mut out: Vec<EndpointSubset> = groups.into_values().collect();
    for s in &mut out {
        for list in [&mut s.addresses, &mut s.not_ready_addresses].into_iter().flatten() {
            list.sort_by_key(|a| sort_key(&a.ip));
        }
    }
    out
}

/// Numeric order for IPs (textual for anything unparsable).
fn sort_key(ip: &str) -> (u128, String) {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => (u128::from(u32::from(a)), String::new()),
        Ok(std::net::IpAddr::V6(a)) => (u128::from(a), String::new()),
        Err(_) => (u128::MAX, ip.to_string()),
    }
}

/// The labels of a Service's Endpoints: the Service's labels plus the headless marker.
fn endpoints_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.labels().clone();
    mark_headless(&mut labels, svc);
    labels
}

/// Runs the Endpoints controller until cancelled.
pub async fn run(client: kube::Client, config: ControllersConfig, cancel: CancellationToken) -> Result<(), Error> {
    let owned = watcher::watcher(Api::<Endpoints>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .touched_objects()
        .map_ok(|ep: Endpoints| {
            ReconcileRequest::from(
                ObjectRef::<Service>::new(&ep.name_any()).within(&ep.namespace().unwrap_or_default()),
            )
        })
        .boxed();
    let del_client = client.clone();
    let on_service = move |ev: &Event<Service>| {
        // The applier never sees a deleted Service again: remove its Endpoints here.
        if let Event::Delete(svc) = ev
            && service_selector(svc).is_some()
        {
            let api: Api<Endpoints> = Api::namespaced(del_client.clone(), &svc.namespace().unwrap_or_default());
            let name = svc.name_any();
            tokio::spawn(async move {
                if let Err(e) = api.delete(&name, &DeleteParams::default()).await
                    && !is_status(&e, 404)
                {
                    tracing::warn!(endpoints = name, error = %e, "deleting endpoints of a deleted service");
                }
            });
        }
    };
    run_service_controller(NAME, client, config, cancel, owned, on_service, |ctx, svc, pods| {
        Box::pin(sync_service(ctx, svc, pods))
    })
    .await;
    Ok(())
}

/// Reconciles one Service's Endpoints.
async fn sync_service(ctx: &Ctx, svc: &Service, pods: Vec<Arc<Pod>>) -> Result<Action, Error> {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let subsets = desired_subsets(svc, &pods);
    let labels = endpoints_labels(svc);
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    let current = match api.get(&name).await {
        Ok(ep) => Some(ep),
        Err(e) if is_status(&e, 404) => None,
        Err(e) => return Err(Error::api(format!("get endpoints {ns}/{name}"), e)),
    };
    let want_subsets = (!subsets.is_empty()).then_some(subsets);
    match current {
        Some(ep) if ep.subsets == want_subsets && ep.labels() == &labels => {}
        Some(mut ep) => {
            ep.subsets = want_subsets;
            ep.metadata.labels = Some(labels);
            api.replace(&name, &PostParams::default(), &ep)
                .await
                .map_err(|e| Error::api(format!("update endpoints {ns}/{name}"), e))?;
        }
        None => {
            let ep = Endpoints {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns.clone()),
                    labels: Some(labels),
                    ..Default::default()
                },
                subsets: want_subsets,
            };
            match api.create(&PostParams::default(), &ep).await {
                Ok(_) => {}
                // Created meanwhile (by an earlier sync seen late): the next event brings it in line.
                Err(e) if is_status(&e, 409) => return Ok(Action::requeue(CACHE_WAIT)),
                Err(e) => return Err(Error::api(format!("create endpoints {ns}/{name}"), e)),
            }
        }
    }
    ctx.backoff.forget(&ObjectRef::from_obj(svc));
    Ok(Action::requeue(ctx.resync))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpointslice::tests::{pod, port, svc};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    #[test]
    fn ready_and_not_ready_pods_share_a_subset_sorted_by_ip() {
        let svc = svc(vec![port("", 80, IntOrString::Int(8080))], false);
        let pods = vec![
            pod("a", "10.42.0.10", true, None),
            pod("b", "10.42.0.9", true, None),
            pod("c", "10.42.0.3", false, None),
        ];
        let subsets = desired_subsets(&svc, &pods);
        assert_eq!(subsets.len(), 1);
        let ips: Vec<&str> = subsets[0].addresses.iter().flatten().map(|a| a.ip.as_str()).collect();
        assert_eq!(ips, vec!["10.42.0.9", "10.42.0.10"]);
        let nr: Vec<&str> = subsets[0].not_ready_addresses.iter().flatten().map(|a| a.ip.as_str()).collect();
        assert_eq!(nr, vec!["10.42.0.3"]);
        assert_eq!(subsets[0].ports.as_ref().map(|p| p[0].port), Some(8080));
    }
}
