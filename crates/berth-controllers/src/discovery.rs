//! API discovery for the garbage collector and the namespace controller: every listable,
//! watchable, deletable resource the apiserver serves (preferred version per group), minus Events.

use kube::core::discovery::{ApiCapabilities, Scope, verbs};
use kube::discovery::{ApiResource, Discovery};

use crate::Error;

/// A resource the controllers can list, watch and delete.
#[derive(Clone, Debug)]
pub struct Resource {
    /// Group/version/kind/plural.
    pub ar: ApiResource,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Whether `deletecollection` is supported.
    pub delete_collection: bool,
}

/// Discovers the resources (events excluded: they are never owners or garbage here).
pub async fn resources(client: &kube::Client) -> Result<Vec<Resource>, Error> {
    let discovery = Discovery::new(client.clone()).run().await.map_err(Error::Discovery)?;
    let mut out = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if ar.plural == "events" || !usable(&caps) {
                continue;
            }
            out.push(Resource {
                namespaced: caps.scope == Scope::Namespaced,
                delete_collection: caps.supports_operation(verbs::DELETE_COLLECTION),
                ar,
            });
        }
    }
    Ok(out)
}

fn usable(caps: &ApiCapabilities) -> bool {
    [verbs::LIST, verbs::WATCH, verbs::DELETE].iter().all(|v| caps.supports_operation(v))
}

/// Splits `apps/v1` into (`apps`, `v1`) and `v1` into (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}
