//! The kubelet's reads of the objects that volumes and environments refer to: ConfigMaps,
//! Secrets, Services and its own Node, through the API (GET per use; the objects are small and
//! a pod start reads each once).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ConfigMap, Node, Secret, Service};
use kube::Api;

use crate::kubelet::container::EnvSources;
use crate::kubelet::error_chain;

/// Fetches the named ConfigMaps and Secrets of `namespace` (a missing one is `None`), and the
/// node's allocatable resources when `allocatable` is set.
///
/// # Errors
/// An API failure other than NotFound, naming the object.
pub async fn fetch_sources(
    client: &kube::Client,
    namespace: &str,
    config_maps: &BTreeSet<String>,
    secrets: &BTreeSet<String>,
    allocatable: bool,
    node_name: &str,
) -> Result<EnvSources, String> {
    let mut sources = EnvSources::default();
    let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    for name in config_maps {
        let cm =
            cm_api.get_opt(name).await.map_err(|e| format!("failed to get configmap {name:?}: {}", error_chain(&e)))?;
        sources.config_maps.insert(name.clone(), cm);
    }
    let secret_api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for name in secrets {
        let s = secret_api
            .get_opt(name)
            .await
            .map_err(|e| format!("failed to get secret {name:?}: {}", error_chain(&e)))?;
        sources.secrets.insert(name.clone(), s);
    }
    if allocatable {
        let node = Api::<Node>::all(client.clone())
            .get_opt(node_name)
            .await
            .map_err(|e| format!("failed to get node {node_name:?}: {}", error_chain(&e)))?;
        let status = node.and_then(|n| n.status);
        sources.node_allocatable = status.and_then(|s| s.allocatable.or(s.capacity)).unwrap_or_default();
    }
    Ok(sources)
}

/// The Services a pod's environment may name: those of its namespace (when `enableServiceLinks`)
/// and `default/kubernetes`.
///
/// # Errors
/// An API failure.
pub async fn fetch_services(client: &kube::Client, namespace: &str, links: bool) -> Result<Vec<Service>, String> {
    let mut services = Vec::new();
    if links {
        let api: Api<Service> = Api::namespaced(client.clone(), namespace);
        let list = api
            .list(&Default::default())
            .await
            .map_err(|e| format!("failed to list services when setting up env vars: {}", error_chain(&e)))?;
        services.extend(list.items.into_iter().map(|mut s| {
            s.metadata.namespace.get_or_insert_with(|| namespace.to_string());
            s
        }));
    }
    if !(links && namespace == "default") {
        let api: Api<Service> = Api::namespaced(client.clone(), "default");
        let master = api
            .get_opt("kubernetes")
            .await
            .map_err(|e| format!("failed to get service \"kubernetes\": {}", error_chain(&e)))?;
        services.extend(master.map(|mut s| {
            s.metadata.namespace.get_or_insert_with(|| "default".to_string());
            s
        }));
    }
    Ok(services)
}
