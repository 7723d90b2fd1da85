//! API discovery: legacy (`APIVersions`, `APIGroupList`, `APIResourceList`) and aggregated
//! (`apidiscovery.k8s.io` v2 and v2beta1 `APIGroupDiscoveryList`), all from the registry.

use berth_api::{Registry, ResourceType, Subresource};
use serde_json::{Value, json};

/// Verbs of a main resource.
pub const RESOURCE_VERBS: &[&str] =
    &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// `(group, version, kind, verbs)` a subresource answers with.
pub fn subresource_info(
    rt: &ResourceType,
    version: &str,
    sub: Subresource,
) -> (&'static str, String, String, Vec<&'static str>) {
    match sub {
        Subresource::Status => (rt.group, version.to_string(), rt.kind.to_string(), vec!["get", "patch", "update"]),
        Subresource::Scale => ("autoscaling", "v1".into(), "Scale".into(), vec!["get", "patch", "update"]),
        Subresource::Binding => ("", "v1".into(), "Binding".into(), vec!["create"]),
        Subresource::Eviction => ("policy", "v1".into(), "Eviction".into(), vec!["create"]),
        Subresource::Log => ("", "v1".into(), rt.kind.to_string(), vec!["get"]),
        Subresource::Exec => ("", "v1".into(), "PodExecOptions".into(), vec!["create", "get"]),
        Subresource::Attach => ("", "v1".into(), "PodAttachOptions".into(), vec!["create", "get"]),
        Subresource::PortForward => ("", "v1".into(), "PodPortForwardOptions".into(), vec!["create", "get"]),
        Subresource::Proxy => {
            ("", "v1".into(), format!("{}ProxyOptions", rt.kind), vec!["create", "delete", "get", "patch", "update"])
        }
    }
}

fn group_version_string(group: &str, version: &str) -> String {
    if group.is_empty() { version.to_string() } else { format!("{group}/{version}") }
}

/// Groups in discovery order with their versions (preferred first).
fn groups(registry: &Registry) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for t in registry.all() {
        let entry = match out.iter_mut().position(|(g, _)| *g == t.group) {
            Some(i) => &mut out[i],
            None => {
                out.push((t.group, Vec::new()));
                let last = out.len() - 1;
                &mut out[last]
            }
        };
        for v in t.versions {
            if !entry.1.contains(v) {
                entry.1.push(v);
            }
        }
    }
    out
}

/// `GET /api` (legacy).
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `GET /apis` (legacy).
pub fn api_group_list(registry: &Registry) -> Value {
    let mut groups: Vec<Value> = groups(registry)
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| {
            let vs: Vec<Value> =
                versions.iter().map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v})).collect();
            json!({"name": g, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
        })
        .collect();
    groups.push(crate::metrics_api::api_group());
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}` (legacy APIGroup), if served.
pub fn api_group(registry: &Registry, group: &str) -> Option<Value> {
    let (g, versions) = groups(registry).into_iter().find(|(g, _)| *g == group && !g.is_empty())?;
    let vs: Vec<Value> = versions.iter().map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v})).collect();
    Some(json!({"kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": vs, "preferredVersion": vs.first()}))
}

/// `GET /api/v1`, `GET /apis/{group}/{version}` (legacy APIResourceList), if served.
pub fn api_resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let types: Vec<&ResourceType> =
        registry.all().iter().copied().filter(|t| t.group == group && t.versions.contains(&version)).collect();
    if types.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for t in types {
        let mut r = json!({
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": RESOURCE_VERBS,
        });
        if !t.short_names.is_empty() {
            r["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        resources.push(r);
        for sub in t.subresources {
            let (g, v, kind, verbs) = subresource_info(t, version, *sub);
            let mut s = json!({
                "name": format!("{}/{}", t.plural, sub.name()),
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if g != t.group || v != version {
                s["group"] = json!(g);
                s["version"] = json!(v);
            }
            resources.push(s);
        }
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version_string(group, version),
        "resources": resources,
    }))
}

fn aggregated_resource(t: &ResourceType, version: &str) -> Value {
    let mut r = json!({
        "resource": t.plural,
        "responseKind": {"group": t.group, "version": version, "kind": t.kind},
        "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": t.singular,
        "verbs": RESOURCE_VERBS,
    });
    if !t.short_names.is_empty() {
        r["shortNames"] = json!(t.short_names);
    }
    if !t.categories.is_empty() {
        r["categories"] = json!(t.categories);
    }
    if !t.subresources.is_empty() {
        let subs: Vec<Value> = t
            .subresources
            .iter()
            .map(|s| {
                let (g, v, kind, verbs) = subresource_info(t, version, *s);
                json!({"subresource": s.name(), "responseKind": {"group": g, "version": v, "kind": kind}, "verbs": verbs})
            })
            .collect();
        r["subresources"] = Value::Array(subs);
    }
    r
}

/// Aggregated discovery for `/api` (`core == true`: the core group only) or `/apis` (the rest).
pub fn aggregated(registry: &Registry, core: bool, version: &str) -> Value {
    let mut items: Vec<Value> = groups(registry)
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, versions)| {
            let vs: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = registry
                        .all()
                        .iter()
                        .filter(|t| t.group == g && t.versions.contains(v))
                        .map(|t| aggregated_resource(t, v))
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": vs})
        })
        .collect();
    if !core {
        items.push(crate::metrics_api::aggregated_group());
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}
