//! How pods reach the DNS servers: the `kube-system/kube-dns` Service (created by the server with
//! the cluster DNS IP and no selector) and one EndpointSlice per node running DNS (managed by
//! berth-dns) that points at the node's listen address, so the Service proxy forwards
//! `ClusterIP:53` to `nodeIP:port` like any other Service.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use tokio_util::sync::CancellationToken;

use crate::DnsError;
use crate::zone::SERVICE_NAME_LABEL;

/// The Service's name, as in every Kubernetes distribution.
pub const SERVICE_NAME: &str = "kube-dns";
/// Its namespace.
pub const NAMESPACE: &str = "kube-system";
/// The `endpointslice.kubernetes.io/managed-by` value of the slices berth-dns keeps (the
/// EndpointSlice controller leaves slices of other managers alone).
pub const MANAGED_BY: &str = "berth-dns";
const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// How often a node's slice is re-asserted (in case it was deleted or edited).
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(30);
/// How long the slice's deletion may take on shutdown.
const DELETE_TIMEOUT: Duration = Duration::from_secs(2);

fn service_port(name: &str, protocol: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        protocol: Some(protocol.into()),
        port,
        target_port: Some(IntOrString::Int(port)),
        ..Default::default()
    }
}

/// The `kube-dns` Service: clusterIP `cluster_ip`, ports dns 53/UDP, dns-tcp 53/TCP and metrics
/// 9153/TCP, label `k8s-app=kube-dns`, no selector (its endpoints come from the DNS servers).
pub fn kube_dns_service(cluster_ip: IpAddr) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(SERVICE_NAME.into()),
            namespace: Some(NAMESPACE.into()),
            labels: Some(BTreeMap::from([
                ("k8s-app".to_string(), "kube-dns".to_string()),
                ("kubernetes.io/name".to_string(), "CoreDNS".to_string()),
                ("kubernetes.io/cluster-service".to_string(), "true".to_string()),
            ])),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(cluster_ip.to_string()),
            cluster_ips: Some(vec![cluster_ip.to_string()]),
            ports: Some(vec![
                service_port("dns", "UDP", 53),
                service_port("dns-tcp", "TCP", 53),
                service_port("metrics", "TCP", 9153),
            ]),
            type_: Some("ClusterIP".into()),
            ..Default::default()
        }),
        status: None,
    }
}

/// Creates the `kube-dns` Service if it is missing (idempotent). An existing Service with another
/// cluster IP is left alone (clusterIP is immutable) with a warning.
pub async fn ensure_service(client: &kube::Client, cluster_ip: IpAddr) -> Result<(), DnsError> {
    let api: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let api_err = |what: &'static str| move |source| DnsError::Api { what, name: SERVICE_NAME.to_string(), source };
    if let Some(existing) = api.get_opt(SERVICE_NAME).await.map_err(api_err("get Service"))? {
        let ip = existing.spec.as_ref().and_then(|s| s.cluster_ip.clone()).unwrap_or_default();
        if ip != cluster_ip.to_string() {
            tracing::warn!(existing = %ip, wanted = %cluster_ip, "Service kube-system/kube-dns has another cluster IP; pods' resolv.conf will not reach it");
        }
        return Ok(());
    }
    match api.create(&PostParams::default(), &kube_dns_service(cluster_ip)).await {
        Ok(_) => {
            tracing::info!(cluster_ip = %cluster_ip, "created Service kube-system/kube-dns");
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(source) => Err(api_err("create Service")(source)),
    }
}

/// The name of a node's slice.
pub fn endpoint_slice_name(node_name: &str) -> String {
    format!("{SERVICE_NAME}-{node_name}")
}

/// The EndpointSlice of one node's DNS server at `addr`.
pub fn node_endpoint_slice(node_name: &str, addr: SocketAddr) -> EndpointSlice {
    let port = i32::from(addr.port());
    let endpoint_port = |name: &str, protocol: &str| EndpointPort {
        name: Some(name.into()),
        protocol: Some(protocol.into()),
        port: Some(port),
        ..Default::default()
    };
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(endpoint_slice_name(node_name)),
            namespace: Some(NAMESPACE.into()),
            labels: Some(BTreeMap::from([
                (SERVICE_NAME_LABEL.to_string(), SERVICE_NAME.to_string()),
                (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
            ])),
            ..Default::default()
        },
        address_type: if addr.is_ipv4() { "IPv4" } else { "IPv6" }.into(),
        endpoints: vec![Endpoint {
            addresses: vec![addr.ip().to_string()],
            conditions: Some(EndpointConditions { ready: Some(true), serving: Some(true), terminating: Some(false) }),
            node_name: Some(node_name.into()),
            ..Default::default()
        }],
        ports: Some(vec![endpoint_port("dns", "UDP"), endpoint_port("dns-tcp", "TCP")]),
    }
}

/// Creates or updates this node's slice so it matches `desired`.
async fn apply_slice(api: &Api<EndpointSlice>, desired: &EndpointSlice) -> Result<(), kube::Error> {
    let name = desired.metadata.name.clone().unwrap_or_default();
    match api.get_opt(&name).await? {
        None => match api.create(&PostParams::default(), desired).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(e) => Err(e),
        },
        Some(current) => {
            let same = current.endpoints == desired.endpoints
                && current.ports == desired.ports
                && current.address_type == desired.address_type
                && current.metadata.labels == desired.metadata.labels;
            if same {
                return Ok(());
            }
            let mut updated = desired.clone();
            updated.metadata.resource_version = current.metadata.resource_version.clone();
            api.replace(&name, &PostParams::default(), &updated).await.map(|_| ())
        }
    }
}

/// Keeps this node's kube-dns EndpointSlice pointing at `addr` until `cancel` fires, then deletes
/// it so the proxy stops sending queries to a stopped server.
pub async fn maintain_endpoint_slice(
    client: kube::Client,
    node_name: String,
    addr: SocketAddr,
    cancel: CancellationToken,
) {
    let api: Api<EndpointSlice> = Api::namespaced(client, NAMESPACE);
    let desired = node_endpoint_slice(&node_name, addr);
    let mut tick = tokio::time::interval(RESYNC_INTERVAL);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {
                if let Err(err) = apply_slice(&api, &desired).await {
                    tracing::warn!(node = %node_name, error = %crate::error_chain(&err), "cannot update the kube-dns EndpointSlice");
                }
            }
        }
    }
    // Bounded: on a full shutdown the apiserver may already be gone.
    let name = endpoint_slice_name(&node_name);
    match tokio::time::timeout(DELETE_TIMEOUT, api.delete(&name, &DeleteParams::default())).await {
        Ok(Ok(_)) => tracing::debug!(slice = %name, "deleted the kube-dns EndpointSlice"),
        Ok(Err(err)) => tracing::debug!(slice = %name, error = %err, "kube-dns EndpointSlice not deleted"),
        Err(_) => tracing::debug!(slice = %name, "kube-dns EndpointSlice not deleted: the apiserver did not answer"),
    }
}
