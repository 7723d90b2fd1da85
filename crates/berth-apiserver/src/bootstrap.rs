//! First-start (and every-start) objects: the four system namespaces, the `kubernetes`
//! Service in `default` with the first address of the service CIDR, and its Endpoints and
//! EndpointSlice pointing at this apiserver. Idempotent: existing objects are kept, the
//! endpoints follow the current address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use berth_api::{Registry, ResourceType};
use berth_store::{Store, StoreError};
use serde_json::{Value, json};

use crate::object;

/// Why bootstrap failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("invalid service CIDR {cidr:?}")]
    ServiceCidr { cidr: String },
    #[error("failed to write {key}")]
    Write {
        key: String,
        #[source]
        source: StoreError,
    },
}

/// The namespaces every cluster has.
pub const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// The first host address of a CIDR (`10.43.0.0/16` -> `10.43.0.1`).
pub fn first_address(cidr: &str) -> Option<IpAddr> {
    let (addr, bits) = cidr.trim().split_once('/')?;
    let bits: u32 = bits.parse().ok()?;
    match addr.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) if bits <= 30 => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            Some(IpAddr::V4(Ipv4Addr::from((u32::from(a) & mask) + 1)))
        }
        IpAddr::V6(a) if bits <= 126 => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            Some(IpAddr::V6(Ipv6Addr::from((u128::from(a) & mask) + 1)))
        }
        _ => None,
    }
}

fn new_object(mut obj: Value, rt: &ResourceType) -> Value {
    let meta = object::meta_mut(&mut obj);
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(object::now_rfc3339()));
    rt.strategy.default(&mut obj);
    obj
}

/// Creates `obj` unless it exists; with `refresh`, rewrites `fields` of an existing one when they
/// differ (the endpoints after a port change).
async fn ensure(
    store: &dyn Store,
    rt: &ResourceType,
    ns: Option<&str>,
    obj: Value,
    refresh: &[&str],
) -> Result<(), BootstrapError> {
    let name = object::name_of(&obj).to_string();
    let key = rt.key(ns, &name);
    let wrap = |source| BootstrapError::Write { key: key.clone(), source };
    match store.get(&key).await.map_err(wrap)? {
        None => match store.create(&key, object::to_stored(&new_object(obj, rt))).await {
            Ok(_) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(wrap(e)),
        },
        Some(kv) => {
            let Some(mut current) = object::from_kv(&kv) else { return Ok(()) };
            let mut changed = false;
            for f in refresh {
                if current.get(*f) != obj.get(*f) {
                    current[*f] = obj[*f].clone();
                    changed = true;
                }
            }
            if changed {
                match store.update(&key, object::to_stored(&current), kv.mod_revision).await {
                    Ok(_) | Err(StoreError::Conflict { .. }) => {}
                    Err(e) => return Err(wrap(e)),
                }
            }
            Ok(())
        }
    }
}

/// Creates the bootstrap objects. `endpoint_ip`/`port` are where this apiserver listens.
pub async fn run(
    store: &dyn Store,
    registry: &Registry,
    service_cidr: &str,
    endpoint_ip: IpAddr,
    port: u16,
) -> Result<(), BootstrapError> {
    if let Some(ns_rt) = registry.by_resource("", "v1", "namespaces") {
        for ns in SYSTEM_NAMESPACES {
            let obj = json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            });
            ensure(store, ns_rt, None, obj, &[]).await?;
        }
    }
    let cluster_ip =
        first_address(service_cidr).ok_or_else(|| BootstrapError::ServiceCidr { cidr: service_cidr.into() })?;
    let family = if cluster_ip.is_ipv4() { "IPv4" } else { "IPv6" };
    if let Some(svc_rt) = registry.by_resource("", "v1", "services") {
        let svc = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": {"component": "apiserver", "provider": "kubernetes"},
            },
            "spec": {
                "type": "ClusterIP",
                "clusterIP": cluster_ip.to_string(),
                "clusterIPs": [cluster_ip.to_string()],
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
                "sessionAffinity": "None",
                "ipFamilies": [family],
                "ipFamilyPolicy": "SingleStack",
                "internalTrafficPolicy": "Cluster",
            },
            "status": {"loadBalancer": {}},
        });
        ensure(store, svc_rt, Some("default"), svc, &["spec"]).await?;
    }
    let ip = endpoint_ip.to_string();
    if let Some(ep_rt) = registry.by_resource("", "v1", "endpoints") {
        let ep = json!({
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
            },
            "subsets": [{
                "addresses": [{"ip": ip}],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            }],
        });
        ensure(store, ep_rt, Some("default"), ep, &["subsets"]).await?;
    }
    if let Some(es_rt) = registry.by_resource("discovery.k8s.io", "v1", "endpointslices") {
        let es = json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": "kubernetes"},
            },
            "addressType": if endpoint_ip.is_ipv4() { "IPv4" } else { "IPv6" },
            "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        });
        ensure(store, es_rt, Some("default"), es, &["endpoints", "ports"]).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_address_of_the_service_cidr() {
        assert_eq!(first_address("10.43.0.0/16"), Some("10.43.0.1".parse().unwrap()));
        assert_eq!(first_address("10.96.5.7/12"), Some("10.96.0.1".parse().unwrap()));
        assert_eq!(first_address("fd00::/108"), Some("fd00::1".parse().unwrap()));
        assert_eq!(first_address("nonsense"), None);
    }
}
