//! The HTTP routes: /version, health, /metrics, OpenAPI, discovery and every resource path,
//! behind authentication, authorization, metrics and request logging.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, Method, StatusCode, header};

use crate::authn::Authenticator;
use crate::error::ApiError;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::negotiate::aggregated_discovery;
use crate::request::{ApiPath, Query, parse_path};
use crate::resource::json_response;
use crate::state::AppState;
use crate::{authz, discovery};

/// Builds the complete application.
pub fn build(state: AppState, health: Health, metrics: Metrics, authn: Arc<Authenticator>) -> Router {
    let api = Router::new()
        .route("/openapi/v3", get(openapi_v3_index))
        .route("/openapi/v3/{*path}", get(openapi_v3_group_version))
        .route("/openapi/v2", get(openapi_v2))
        .fallback(api)
        .with_state(state);
    let metrics_routes = Router::new().route("/metrics", get(crate::metrics::handler)).with_state(metrics.clone());
    Router::new()
        .route("/version", get(crate::version::handler))
        .merge(crate::health::router(health))
        .merge(metrics_routes)
        .merge(api)
        .layer(middleware::from_fn_with_state(authn, authenticate))
        .layer(middleware::from_fn_with_state(metrics, crate::metrics::track))
        .layer(middleware::from_fn(log_request))
}

/// Paths anyone may GET without credentials (upstream `system:public-info-viewer`).
fn is_public(path: &str) -> bool {
    matches!(path, "/version" | "/livez" | "/readyz" | "/healthz")
        || ["/livez/", "/readyz/", "/healthz/"].iter().any(|p| path.starts_with(p))
}

async fn authenticate(State(authn): State<Arc<Authenticator>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let user = match authn.authenticate(&parts) {
        Ok(u) => u,
        Err(_) if is_public(parts.uri.path()) && parts.method == Method::GET => {
            return next.run(Request::from_parts(parts, body)).await;
        }
        Err(_) => return ApiError::unauthorized().into_response(),
    };
    let attrs = authz::RequestAttributes::from_request(&parts.method, &parts.uri);
    if let Err(denied) = authz::authorize(&user, &attrs) {
        return json_response(StatusCode::FORBIDDEN, &denied.status(), "application/json");
    }
    let mut req = Request::from_parts(parts, body);
    req.extensions_mut().insert(user);
    next.run(req).await
}

async fn log_request(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let resp = next.run(req).await;
    tracing::debug!(%method, %uri, status = resp.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request");
    resp
}

async fn openapi_v3_index(State(state): State<AppState>) -> Response {
    json_response(StatusCode::OK, &berth_api::openapi::v3_index(&state.registry.get()), "application/json")
}

fn json_bytes(bytes: std::sync::Arc<[u8]>, hash: &str) -> Response {
    let mut resp = (StatusCode::OK, bytes.to_vec()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{hash}\"")) {
        resp.headers_mut().insert(header::ETAG, etag);
    }
    resp
}

async fn openapi_v3_group_version(State(state): State<AppState>, Path(path): Path<String>) -> Response {
    match berth_api::openapi::v3_group_version_json(&state.registry.get(), &path) {
        Some((bytes, hash)) => json_bytes(bytes, &hash),
        None => ApiError::path_not_found().into_response(),
    }
}

async fn openapi_v2(State(state): State<AppState>) -> Response {
    let (bytes, hash) = berth_api::openapi::v2_json(&state.registry.get());
    json_bytes(bytes, &hash)
}

/// Everything under `/api` and `/apis`; any other path is a 404 Status.
async fn api(State(state): State<AppState>, req: Request) -> Response {
    use futures::FutureExt;
    // A bug in a strategy or patch function must cost one request a 500, not the connection.
    match std::panic::AssertUnwindSafe(serve_api(&state, req)).catch_unwind().await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => e.into_response(),
        Err(_) => {
            tracing::error!("request handler panicked");
            ApiError::internal("the request handler panicked").into_response()
        }
    }
}

fn discovery_only_get(method: &Method) -> Result<(), ApiError> {
    if *method == Method::GET || *method == Method::HEAD { Ok(()) } else { Err(ApiError::method_not_allowed()) }
}

async fn serve_api(state: &AppState, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    if let Some(r) = crate::metrics_api::serve(&state.metrics_api, &parts.method, parts.uri.path(), parts.uri.query()) {
        return r;
    }
    let registry = state.registry.get();
    let accept = parts.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let aggregated = |core: bool| {
        aggregated_discovery(accept).map(|v| {
            let ct = format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList");
            let mut resp = json_response(StatusCode::OK, &discovery::aggregated(&registry, core, v), &ct);
            resp.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept"));
            resp
        })
    };
    match parse_path(&registry, parts.uri.path())? {
        ApiPath::CoreRoot => {
            discovery_only_get(&parts.method)?;
            Ok(aggregated(true).unwrap_or_else(|| {
                json_response(StatusCode::OK, &discovery::api_versions(&state.server_address), "application/json")
            }))
        }
        ApiPath::GroupsRoot => {
            discovery_only_get(&parts.method)?;
            Ok(aggregated(false).unwrap_or_else(|| {
                json_response(StatusCode::OK, &discovery::api_group_list(&registry), "application/json")
            }))
        }
        ApiPath::Group(g) => {
            discovery_only_get(&parts.method)?;
            let doc = discovery::api_group(&registry, &g).ok_or_else(ApiError::path_not_found)?;
            Ok(json_response(StatusCode::OK, &doc, "application/json"))
        }
        ApiPath::GroupVersion { group, version } => {
            discovery_only_get(&parts.method)?;
            let doc = discovery::api_resource_list(&registry, &group, &version).ok_or_else(ApiError::path_not_found)?;
            Ok(json_response(StatusCode::OK, &doc, "application/json"))
        }
        ApiPath::Resource(rp) => {
            let query = Query::parse(parts.uri.query());
            crate::resource::handle(state, &rp, parts, &query, body).await
        }
    }
}
