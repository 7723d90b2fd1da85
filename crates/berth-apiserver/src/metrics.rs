//! Prometheus metrics for the apiserver: `apiserver_request_total{verb,group,version,resource,code}`
//! and `apiserver_request_duration_seconds{verb,resource}` (names and verb spelling as upstream's
//! apiserver `endpoints/metrics`), the [`track`] middleware that records them, and the `/metrics`
//! handler (OpenMetrics text). Other components may register their own metrics in the same
//! registry via [`Metrics::register`].

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};
use tokio::time::Instant;

use crate::authz::RequestAttributes;

/// Upstream's `apiserver_request_duration_seconds` buckets.
const DURATION_BUCKETS: [f64; 17] =
    [0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 60.0];

/// OpenMetrics text, which Prometheus scrapes natively.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: String,
    group: String,
    version: String,
    resource: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    verb: String,
    resource: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The apiserver's metrics registry. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    requests: Family<RequestLabels, Counter>,
    durations: Family<DurationLabels, Histogram, fn() -> Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        // The counter type appends `_total` on encoding.
        registry.register(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, API group, version, resource and HTTP response code.",
            requests.clone(),
        );
        let durations: Family<DurationLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(duration_histogram);
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb and resource.",
            durations.clone(),
        );
        Metrics { registry: Arc::new(Mutex::new(registry)), requests, durations }
    }

    /// Registers another metric (e.g. from the store) to be exposed on `/metrics`.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner).register(name, help, metric);
    }

    /// Records one finished request.
    pub fn observe(&self, attrs: &RequestAttributes, reported_verb: &str, code: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                verb: reported_verb.to_string(),
                group: attrs.group.clone(),
                version: attrs.api_version.clone(),
                resource: attrs.resource.clone(),
                code: code.to_string(),
            })
            .inc();
        self.durations
            .get_or_create(&DurationLabels { verb: reported_verb.to_string(), resource: attrs.resource.clone() })
            .observe(seconds);
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// Middleware recording every request: `axum::middleware::from_fn_with_state(metrics, track)`.
/// Streaming responses (watch, logs) are counted when their headers are sent.
pub async fn track(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let attrs = RequestAttributes::from_request(req.method(), req.uri());
    let verb = reported_verb(&attrs, req.method(), req.headers());
    let response = next.run(req).await;
    metrics.observe(&attrs, &verb, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

/// The `/metrics` handler: `get(metrics::handler).with_state(metrics)`.
pub async fn handler(State(metrics): State<Metrics>) -> Response {
    ([(http::header::CONTENT_TYPE, CONTENT_TYPE)], metrics.encode()).into_response()
}

/// Upstream's `CleanVerb`: upper-case HTTP-ish verbs, LIST/WATCH for collection reads, APPLY for
/// server-side apply, CONNECT for exec/attach/port-forward/proxy.
fn reported_verb(attrs: &RequestAttributes, method: &http::Method, headers: &http::HeaderMap) -> String {
    if !attrs.is_resource_request() {
        return method.as_str().to_string();
    }
    if matches!(attrs.subresource.as_str(), "exec" | "attach" | "portforward" | "proxy") {
        return "CONNECT".to_string();
    }
    let is_apply = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/apply-patch"));
    match attrs.verb.as_str() {
        "list" => "LIST",
        "watch" => "WATCH",
        "get" => "GET",
        "create" => "POST",
        "update" => "PUT",
        "patch" if is_apply => "APPLY",
        "patch" => "PATCH",
        "delete" => "DELETE",
        "deletecollection" => "DELETECOLLECTION",
        other => return other.to_ascii_uppercase(),
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn send(router: &axum::Router, method: http::Method, uri: &str, ctype: Option<&str>) -> (u16, String) {
        let mut req = http::Request::builder().method(method).uri(uri);
        if let Some(c) = ctype {
            req = req.header(http::header::CONTENT_TYPE, c);
        }
        let resp = router.clone().oneshot(req.body(axum::body::Body::empty()).expect("req")).await.expect("infallible");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn track_counts_requests_by_verb_group_version_resource_and_code() {
        let metrics = Metrics::new();
        let router = axum::Router::new()
            .route("/api/v1/namespaces/{ns}/pods", get(|| async { "[]" }))
            .route("/apis/apps/v1/namespaces/{ns}/deployments/{name}", axum::routing::patch(|| async { "{}" }))
            .route("/metrics", get(handler).with_state(metrics.clone()))
            .layer(axum::middleware::from_fn_with_state(metrics.clone(), track));

        send(&router, http::Method::GET, "/api/v1/namespaces/default/pods", None).await;
        send(&router, http::Method::GET, "/api/v1/namespaces/default/pods?watch=true", None).await;
        send(&router, http::Method::GET, "/api/v1/namespaces/default/pods", None).await;
        send(
            &router,
            http::Method::PATCH,
            "/apis/apps/v1/namespaces/d/deployments/web",
            Some("application/apply-patch+yaml"),
        )
        .await;
        send(&router, http::Method::GET, "/api/v1/nodes", None).await;

        let (status, text) = send(&router, http::Method::GET, "/metrics", None).await;
        assert_eq!(status, 200);
        let has = |line: &str| text.lines().any(|l| l == line);
        assert!(
            has(r#"apiserver_request_total{verb="LIST",group="",version="v1",resource="pods",code="200"} 2"#),
            "{text}"
        );
        assert!(has(r#"apiserver_request_total{verb="WATCH",group="",version="v1",resource="pods",code="200"} 1"#));
        assert!(has(
            r#"apiserver_request_total{verb="APPLY",group="apps",version="v1",resource="deployments",code="200"} 1"#
        ));
        assert!(has(r#"apiserver_request_total{verb="LIST",group="",version="v1",resource="nodes",code="404"} 1"#));
        assert!(has(r#"apiserver_request_duration_seconds_count{verb="LIST",resource="pods"} 2"#), "{text}");
        assert!(text.contains(r#"apiserver_request_duration_seconds_bucket{le="60.0",verb="LIST",resource="pods"} 2"#));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn reported_verbs_follow_upstream_clean_verb() {
        let headers = http::HeaderMap::new();
        let verb = |m: http::Method, uri: &str| {
            let attrs = RequestAttributes::from_request(&m, &uri.parse().expect("uri"));
            reported_verb(&attrs, &m, &headers)
        };
        assert_eq!(verb(http::Method::POST, "/api/v1/namespaces/d/pods"), "POST");
        assert_eq!(verb(http::Method::PUT, "/api/v1/namespaces/d/pods/p"), "PUT");
        assert_eq!(verb(http::Method::GET, "/api/v1/namespaces/d/pods/p"), "GET");
        assert_eq!(verb(http::Method::GET, "/api/v1/namespaces/d/pods/p/exec"), "CONNECT");
        assert_eq!(verb(http::Method::DELETE, "/api/v1/namespaces/d/pods"), "DELETECOLLECTION");
        assert_eq!(verb(http::Method::GET, "/version"), "GET");
    }

    #[test]
    fn other_components_can_register_metrics() {
        let metrics = Metrics::new();
        let counter = Counter::<u64>::default();
        metrics.register("berth_store_compactions", "Compactions run.", counter.clone());
        counter.inc();
        assert!(metrics.encode().contains("berth_store_compactions_total 1"));
    }
}
