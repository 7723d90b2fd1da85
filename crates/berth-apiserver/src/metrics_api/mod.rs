//! The resource metrics API, `metrics.k8s.io/v1beta1` (what metrics-server serves upstream):
//! `NodeMetrics` (cluster-scoped, `nodes`) and `PodMetrics` (namespaced, `pods`), get and list
//! with label and field selectors, listed in legacy and aggregated discovery so `kubectl top`
//! and the HPA controller find them. Read-only; no watch.
//!
//! The data come from an embedded collector ([`collector`]) that every `--metrics-resolution`
//! scrapes each Ready node's kubelet `/metrics/resource` and keeps the latest usage in memory
//! (nothing is stored).
//!
//! # Sim nodes
//!
//! Nodes labelled `node.berth.dev/sim=true` have no kubelet. For their Running pods the
//! collector synthesizes usage from pod annotations, the pod's total usage as a quantity:
//! - `sim.berth.dev/cpu-usage` (e.g. `250m`), default [`collector::SIM_DEFAULT_FRACTION`] of the
//!   pod's CPU requests;
//! - `sim.berth.dev/memory-usage` (e.g. `64Mi`), default the same fraction of its memory requests.
//!
//! The total is split over the containers in proportion to their requests (evenly when none
//! has one). A sim node's usage is the sum of its pods'.

pub mod collector;
pub mod prometheus;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::response::Response;
use http::StatusCode;
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::request::{Query, label_selector};
use crate::resource::json_response;

/// The API group.
pub const GROUP: &str = "metrics.k8s.io";
/// The served version.
pub const VERSION: &str = "v1beta1";

/// CPU and memory usage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpu_nanocores: u64,
    pub memory_bytes: u64,
}

/// One node's usage.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeUsage {
    pub labels: Map<String, Value>,
    pub usage: Usage,
    pub timestamp: Timestamp,
    pub window: Duration,
}

/// One pod's usage per container.
#[derive(Clone, Debug, PartialEq)]
pub struct PodUsage {
    pub labels: Map<String, Value>,
    pub containers: Vec<(String, Usage)>,
    pub timestamp: Timestamp,
    pub window: Duration,
}

/// The latest collected usage.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub nodes: BTreeMap<String, NodeUsage>,
    /// Keyed by (namespace, name).
    pub pods: BTreeMap<(String, String), PodUsage>,
}

/// The in-memory metrics the API serves (cheap to clone; shared with the collector).
#[derive(Clone, Default)]
pub struct MetricsApi {
    snapshot: Arc<RwLock<Snapshot>>,
}

impl MetricsApi {
    /// Replaces the served data.
    pub fn set(&self, snapshot: Snapshot) {
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = snapshot;
    }

    /// A copy of the served data.
    pub fn get(&self) -> Snapshot {
        self.snapshot.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// `1234567n`-style CPU, reduced to the largest exact unit (`250m`, `2`).
pub fn cpu_quantity(nanocores: u64) -> String {
    match berth_api::Quantity::parse(&format!("{nanocores}n")) {
        Ok(q) => q.canonical(),
        Err(_) => format!("{nanocores}n"),
    }
}

/// Bytes as a binary-SI quantity (`12Mi`, `1536Ki`, `1000`).
pub fn memory_quantity(bytes: u64) -> String {
    if bytes == 0 {
        return "0".into();
    }
    let (mut amount, mut exp) = (bytes, 0);
    while exp < 4 && amount.is_multiple_of(1024) {
        amount /= 1024;
        exp += 1;
    }
    format!("{amount}{}", ["", "Ki", "Mi", "Gi", "Ti"][exp])
}

fn usage_json(u: &Usage) -> Value {
    json!({"cpu": cpu_quantity(u.cpu_nanocores), "memory": memory_quantity(u.memory_bytes)})
}

fn ts(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn window(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{}s", d.as_secs_f64()) }
}

fn node_json(name: &str, n: &NodeUsage, now: &str) -> Value {
    json!({
        "metadata": {"name": name, "creationTimestamp": now, "labels": n.labels},
        "timestamp": ts(n.timestamp),
        "window": window(n.window),
        "usage": usage_json(&n.usage),
    })
}

fn pod_json(ns: &str, name: &str, p: &PodUsage, now: &str) -> Value {
    let containers: Vec<Value> = p.containers.iter().map(|(c, u)| json!({"name": c, "usage": usage_json(u)})).collect();
    json!({
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": now, "labels": p.labels},
        "timestamp": ts(p.timestamp),
        "window": window(p.window),
        "containers": containers,
    })
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"kind": kind, "apiVersion": format!("{GROUP}/{VERSION}"), "metadata": {}, "items": items})
}

fn with_kind(mut v: Value, kind: &str) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.insert("kind".into(), json!(kind));
        m.insert("apiVersion".into(), json!(format!("{GROUP}/{VERSION}")));
    }
    v
}

/// The legacy `APIGroup` entry (for `/apis` and `/apis/metrics.k8s.io`).
pub fn api_group() -> Value {
    let gv = json!({"groupVersion": format!("{GROUP}/{VERSION}"), "version": VERSION});
    json!({"name": GROUP, "versions": [gv.clone()], "preferredVersion": gv})
}

fn api_resource_list() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{GROUP}/{VERSION}"),
        "resources": [
            {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
            {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]},
        ],
    })
}

/// The aggregated discovery entry (`APIGroupDiscovery`) for `/apis`.
pub fn aggregated_group() -> Value {
    let res = |plural: &str, kind: &str, scope: &str| {
        json!({
            "resource": plural,
            "responseKind": {"group": GROUP, "version": VERSION, "kind": kind},
            "scope": scope,
            "singularResource": "",
            "verbs": ["get", "list"],
        })
    };
    json!({
        "metadata": {"name": GROUP, "creationTimestamp": null},
        "versions": [{
            "version": VERSION,
            "resources": [res("nodes", "NodeMetrics", "Cluster"), res("pods", "PodMetrics", "Namespaced")],
            "freshness": "Current",
        }],
    })
}

fn field_matches(query: &Query, obj: &Value) -> Result<bool, ApiError> {
    let raw = query.get("fieldSelector").unwrap_or_default();
    let sel = berth_api::selector::FieldSelector::parse(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?;
    Ok(sel.matches(obj))
}

/// Serves a request under `/apis/metrics.k8s.io`, or `None` when the path is elsewhere.
pub fn serve(
    api: &MetricsApi,
    method: &http::Method,
    path: &str,
    raw_query: Option<&str>,
) -> Option<Result<Response, ApiError>> {
    let rest = path.strip_prefix("/apis/")?.trim_end_matches('/');
    let segs: Vec<&str> = rest.split('/').collect();
    if segs.first() != Some(&GROUP) {
        return None;
    }
    if *method != http::Method::GET && *method != http::Method::HEAD {
        return Some(Err(ApiError::method_not_allowed()));
    }
    Some(serve_get(api, &segs[1..], &Query::parse(raw_query)))
}

fn not_found(plural: &str, name: &str) -> ApiError {
    ApiError::not_found_named(plural, GROUP, name)
}

fn serve_get(api: &MetricsApi, segs: &[&str], query: &Query) -> Result<Response, ApiError> {
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v, "application/json"));
    let now = ts(Timestamp::now());
    match segs {
        [] => {
            let mut group = api_group();
            group["kind"] = json!("APIGroup");
            group["apiVersion"] = json!("v1");
            ok(group)
        }
        [VERSION] => ok(api_resource_list()),
        [VERSION, "nodes"] => {
            let sel = label_selector(query.get("labelSelector"))?;
            let snap = api.get();
            let mut items = Vec::new();
            for (name, n) in &snap.nodes {
                let obj = node_json(name, n, &now);
                if sel.matches(&n.labels) && field_matches(query, &obj)? {
                    items.push(obj);
                }
            }
            ok(list("NodeMetricsList", items))
        }
        [VERSION, "nodes", name] => {
            let snap = api.get();
            let n = snap.nodes.get(*name).ok_or_else(|| not_found("nodes", name))?;
            ok(with_kind(node_json(name, n, &now), "NodeMetrics"))
        }
        [VERSION, "pods"] => pods(api, None, query, &now),
        [VERSION, "namespaces", ns, "pods"] => pods(api, Some(ns), query, &now),
        [VERSION, "namespaces", ns, "pods", name] => {
            let snap = api.get();
            let p = snap.pods.get(&(ns.to_string(), name.to_string())).ok_or_else(|| not_found("pods", name))?;
            ok(with_kind(pod_json(ns, name, p, &now), "PodMetrics"))
        }
        _ => Err(ApiError::path_not_found()),
    }
}

fn pods(api: &MetricsApi, ns: Option<&str>, query: &Query, now: &str) -> Result<Response, ApiError> {
    let sel = label_selector(query.get("labelSelector"))?;
    let snap = api.get();
    let mut items = Vec::new();
    for ((pns, name), p) in &snap.pods {
        if ns.is_some_and(|n| n != pns) || !sel.matches(&p.labels) {
            continue;
        }
        let obj = pod_json(pns, name, p, now);
        if field_matches(query, &obj)? {
            items.push(obj);
        }
    }
    Ok(json_response(StatusCode::OK, &list("PodMetricsList", items), "application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_printed_as_metrics_server_does() {
        assert_eq!(cpu_quantity(250_000_000), "250m");
        assert_eq!(cpu_quantity(1_234_567), "1234567n");
        assert_eq!(cpu_quantity(0), "0");
        assert_eq!(memory_quantity(12 * 1024 * 1024), "12Mi");
        assert_eq!(memory_quantity(1536 * 1024), "1536Ki");
        assert_eq!(memory_quantity(1000), "1000");
    }

    #[test]
    fn discovery_lists_the_metrics_group_in_both_forms() {
        let registry = berth_api::Registry::builtin();
        let legacy = crate::discovery::api_group_list(&registry);
        let names: Vec<&str> =
            legacy["groups"].as_array().into_iter().flatten().filter_map(|g| g["name"].as_str()).collect();
        assert!(names.contains(&GROUP), "{names:?}");
        let aggregated = crate::discovery::aggregated(&registry, false, "v2");
        let group = aggregated["items"].as_array().into_iter().flatten().find(|g| g["metadata"]["name"] == GROUP);
        let resources = &group.expect("metrics group")["versions"][0]["resources"];
        assert_eq!(resources[0]["responseKind"]["kind"], "NodeMetrics");
        assert_eq!(resources[1]["scope"], "Namespaced");
        let core = crate::discovery::aggregated(&registry, true, "v2");
        assert!(!core.to_string().contains(GROUP), "the core document stays core-only");
    }

    #[tokio::test]
    async fn pods_are_listed_by_namespace_and_label_and_got_by_name() {
        let api = MetricsApi::default();
        let mut snap = Snapshot::default();
        let labels: Map<String, Value> = serde_json::from_value(json!({"app": "web"})).expect("labels");
        let usage = Usage { cpu_nanocores: 100_000_000, memory_bytes: 1024 * 1024 };
        for (ns, name, l) in [("default", "a", labels.clone()), ("default", "b", Map::new()), ("other", "c", labels)] {
            snap.pods.insert(
                (ns.into(), name.into()),
                PodUsage {
                    labels: l,
                    containers: vec![("app".into(), usage)],
                    timestamp: Timestamp::now(),
                    window: Duration::from_secs(15),
                },
            );
        }
        api.set(snap);
        let body = |r: Response| async move {
            let bytes = http_body_util::BodyExt::collect(r.into_body()).await.expect("body").to_bytes();
            serde_json::from_slice::<Value>(&bytes).expect("json")
        };
        let get = http::Method::GET;
        let r =
            serve(&api, &get, "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods", Some("labelSelector=app%3Dweb"))
                .expect("ours")
                .expect("ok");
        let v = body(r).await;
        assert_eq!(v["kind"], "PodMetricsList");
        assert_eq!(v["items"].as_array().map(Vec::len), Some(1));
        assert_eq!(v["items"][0]["containers"][0]["usage"]["cpu"], "100m");
        assert_eq!(v["items"][0]["containers"][0]["usage"]["memory"], "1Mi");
        let all = body(serve(&api, &get, "/apis/metrics.k8s.io/v1beta1/pods", None).expect("ours").expect("ok")).await;
        assert_eq!(all["items"].as_array().map(Vec::len), Some(3));
        let one =
            serve(&api, &get, "/apis/metrics.k8s.io/v1beta1/namespaces/other/pods/c", None).expect("ours").expect("ok");
        assert_eq!(body(one).await["kind"], "PodMetrics");
        let missing = serve(&api, &get, "/apis/metrics.k8s.io/v1beta1/namespaces/other/pods/zz", None).expect("ours");
        assert_eq!(missing.expect_err("404").code, 404);
        assert!(serve(&api, &get, "/apis/apps/v1/deployments", None).is_none());
    }
}
