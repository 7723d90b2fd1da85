//! API discovery for the CLI: every resource the server serves (group, preferred version, kind,
//! plural, singular, short names, scope, verbs, categories), and kubectl's rules for resolving
//! what users type (`deploy`, `deployments.apps`, `deployment.v1.apps`, `all`) to a resource.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIResource, APIResourceList};
use kube::Client;

use crate::errors::from_kube;

/// One served resource (subresources excluded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub namespaced: bool,
    pub verbs: Vec<String>,
    pub categories: Vec<String>,
}

impl ResourceInfo {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `deployments.apps` / `pods`, as in server messages.
    #[cfg(test)]
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    /// `deployment.apps` / `pod`, as kubectl prefixes names (`deployment.apps/web`).
    pub fn kind_group(&self) -> String {
        let kind = self.kind.to_lowercase();
        if self.group.is_empty() { kind } else { format!("{kind}.{}", self.group) }
    }

    fn singular_name(&self) -> String {
        if self.singular.is_empty() { self.kind.to_lowercase() } else { self.singular.clone() }
    }

    fn from_api(group: &str, version: &str, r: &APIResource) -> ResourceInfo {
        ResourceInfo {
            group: group.to_string(),
            version: version.to_string(),
            kind: r.kind.clone(),
            plural: r.name.clone(),
            singular: r.singular_name.clone(),
            short_names: r.short_names.clone().unwrap_or_default(),
            namespaced: r.namespaced,
            verbs: r.verbs.clone(),
            categories: r.categories.clone().unwrap_or_default(),
        }
    }
}

/// Why a resource type could not be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DiscoveryError {
    #[error("the server doesn't have a resource type \"{0}\"")]
    UnknownType(String),
    #[error(
        "resource mapping not found for name: {name:?} namespace: {namespace:?} from {source_name:?}: no matches for kind {kind:?} in version {api_version:?}\nensure CRDs are installed first"
    )]
    UnknownKind { name: String, namespace: String, source_name: String, kind: String, api_version: String },
}

/// kubectl's resources for `get all` when the server declares no `all` category.
const LEGACY_ALL: &[&str] = &[
    "pods",
    "replicationcontrollers",
    "services",
    "daemonsets.apps",
    "deployments.apps",
    "replicasets.apps",
    "statefulsets.apps",
    "horizontalpodautoscalers.autoscaling",
    "jobs.batch",
    "cronjobs.batch",
];

/// Everything the server serves, core group first, then groups in the server's order.
#[derive(Clone, Debug, Default)]
pub struct Discovery {
    pub resources: Vec<ResourceInfo>,
}

impl Discovery {
    /// Reads `/api/v1`, `/apis` and each group's preferred version.
    pub async fn run(client: &Client) -> anyhow::Result<Discovery> {
        let core = client.list_core_api_resources("v1").await.map_err(from_kube)?;
        let groups = client.list_api_groups().await.map_err(from_kube)?;
        let versions: Vec<(String, String)> = groups
            .groups
            .iter()
            .filter_map(|g| {
                let v = g.preferred_version.as_ref().or(g.versions.first())?;
                Some((g.name.clone(), v.version.clone()))
            })
            .collect();
        let lists = futures::future::join_all(versions.iter().map(|(group, version)| async move {
            (group, version, client.list_api_group_resources(&format!("{group}/{version}")).await)
        }))
        .await;
        let mut d = Discovery::default();
        d.add("", "v1", &core);
        for (group, version, list) in lists {
            match list {
                Ok(list) => d.add(group, version, &list),
                Err(err) => tracing::warn!(%group, %version, error = %err, "discovery failed for group"),
            }
        }
        Ok(d)
    }

    fn add(&mut self, group: &str, version: &str, list: &APIResourceList) {
        for r in list.resources.iter().filter(|r| !r.name.contains('/')) {
            self.resources.push(ResourceInfo::from_api(group, version, r));
        }
    }

    /// Resolves a resource type as typed by a user: plural, singular, short name or kind, each
    /// optionally qualified `.group` or `.version.group`.
    pub fn resolve(&self, typed: &str) -> Result<&ResourceInfo, DiscoveryError> {
        let want = typed.to_lowercase();
        let names = |r: &ResourceInfo| {
            let mut n = vec![r.plural.clone(), r.singular_name(), r.kind.to_lowercase()];
            n.extend(r.short_names.iter().map(|s| s.to_lowercase()));
            n
        };
        // Exact unqualified names first (so `pods` never becomes `pods.metrics.k8s.io`).
        for pass in 0..2 {
            for r in &self.resources {
                for n in names(r) {
                    let hit = if pass == 0 {
                        want == n
                    } else {
                        want == format!("{n}.{}", r.group)
                            || want == format!("{n}.{}.{}", r.version, r.group)
                            || (r.group.is_empty() && want == format!("{n}.{}", r.version))
                    };
                    if hit {
                        return Ok(r);
                    }
                }
            }
        }
        Err(DiscoveryError::UnknownType(typed.to_string()))
    }

    /// The resource of a manifest's `apiVersion` + `kind`, addressed at the manifest's version
    /// (which may differ from the group's preferred one).
    pub fn for_kind(&self, api_version: &str, kind: &str) -> Option<ResourceInfo> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let found = self.resources.iter().find(|r| r.group == group && r.kind == kind)?;
        Some(ResourceInfo { version: version.to_string(), ..found.clone() })
    }

    /// The resources `get all` lists: the `all` category, else kubectl's legacy list.
    pub fn all(&self) -> Vec<&ResourceInfo> {
        let by_category: Vec<&ResourceInfo> =
            self.resources.iter().filter(|r| r.categories.iter().any(|c| c == "all")).collect();
        if !by_category.is_empty() {
            return by_category;
        }
        LEGACY_ALL.iter().filter_map(|n| self.resolve(n).ok()).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn res(group: &str, kind: &str, plural: &str, short: &[&str], namespaced: bool) -> ResourceInfo {
        ResourceInfo {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            short_names: short.iter().map(|s| s.to_string()).collect(),
            namespaced,
            verbs: vec!["get".into(), "list".into()],
            categories: vec![],
        }
    }

    pub fn sample() -> Discovery {
        Discovery {
            resources: vec![
                res("", "Pod", "pods", &["po"], true),
                res("", "Service", "services", &["svc"], true),
                res("", "Namespace", "namespaces", &["ns"], false),
                res("", "ConfigMap", "configmaps", &["cm"], true),
                res("", "Event", "events", &["ev"], true),
                res("apps", "Deployment", "deployments", &["deploy"], true),
                res("apps", "ReplicaSet", "replicasets", &["rs"], true),
                res("events.k8s.io", "Event", "events", &["ev"], true),
            ],
        }
    }

    #[test]
    fn resolves_plural_singular_short_and_kind() {
        let d = sample();
        for typed in ["deployments", "deployment", "deploy", "Deployment", "deployments.apps", "deployment.v1.apps"] {
            assert_eq!(d.resolve(typed).unwrap().group_resource(), "deployments.apps", "{typed}");
        }
        assert_eq!(d.resolve("po").unwrap().plural, "pods");
    }

    #[test]
    fn core_group_wins_over_later_groups() {
        let d = sample();
        assert_eq!(d.resolve("events").unwrap().group, "");
        assert_eq!(d.resolve("events.events.k8s.io").unwrap().group, "events.k8s.io");
    }

    #[test]
    fn unknown_type_is_reported_as_kubectl_does() {
        let err = sample().resolve("foo").unwrap_err();
        assert_eq!(err.to_string(), "the server doesn't have a resource type \"foo\"");
    }

    #[test]
    fn all_falls_back_to_legacy_list() {
        let names: Vec<String> = sample().all().iter().map(|r| r.group_resource()).collect();
        assert_eq!(names, ["pods", "services", "deployments.apps", "replicasets.apps"]);
    }
}
