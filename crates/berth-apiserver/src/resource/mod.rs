//! The generic resource handler: one implementation of get, list, watch, create, update, patch,
//! delete and deletecollection for every kind, driven by its registry entry and strategy (the
//! shape of k8s.io/apiserver's generic registry store).

mod delete;
mod prepare;
pub mod read;
mod subresource;
mod write;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use berth_api::ResourceType;
use berth_store::KeyValue;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::Value;

use crate::error::ApiError;
use crate::object;
use crate::request::{Query, ResourcePath};
use crate::state::AppState;

/// Everything a resource handler needs about one request.
pub struct Ctx<'a> {
    pub state: &'a AppState,
    pub rp: &'a ResourcePath,
    pub query: &'a Query,
    pub headers: &'a HeaderMap,
    /// The request's query string as sent (passed on when proxying).
    pub raw_query: Option<String>,
    /// The client connection's pending protocol upgrade (exec, attach, port-forward).
    pub upgrade: std::sync::Mutex<Option<hyper::upgrade::OnUpgrade>>,
    /// Warnings for the response's `Warning` headers (unknown fields under `fieldValidation=Warn`).
    pub warnings: crate::field_validation::Warnings,
}

impl Ctx<'_> {
    pub fn rt(&self) -> &'static ResourceType {
        self.rp.rt
    }

    pub fn ns(&self) -> Option<&str> {
        if self.rp.rt.namespaced { self.rp.namespace.as_deref() } else { None }
    }

    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The field manager of a write: `fieldManager`, else the user agent's product name.
    pub fn field_manager(&self) -> String {
        if let Some(m) = self.query.get("fieldManager").filter(|m| !m.is_empty()) {
            return m.to_string();
        }
        let ua = self.header(header::USER_AGENT).unwrap_or("unknown");
        ua.split('/').next().unwrap_or("unknown").to_string()
    }

    /// Converts a stored object to the requested version.
    pub fn to_served(&self, obj: Value) -> Result<Value, ApiError> {
        to_version(self.rt(), obj, &self.rp.version)
    }

    /// The store key of `name`.
    pub fn key(&self, name: &str) -> String {
        self.rt().key(self.ns(), name)
    }

    /// The current stored object (storage version, resourceVersion set) and its key-value.
    pub async fn current(&self, name: &str) -> Result<Option<(Value, KeyValue)>, ApiError> {
        let kv = self.state.store.get(&self.key(name)).await.map_err(|e| ApiError::from_store(self.rt(), name, e))?;
        Ok(kv.and_then(|kv| object::from_kv(&kv).map(|v| (v, kv))))
    }
}

/// Converts `obj` (of kind `rt`) to `version`, setting apiVersion and kind.
pub fn to_version(rt: &ResourceType, obj: Value, version: &str) -> Result<Value, ApiError> {
    let target = rt.api_version(version);
    let mut out = if obj.get("apiVersion").and_then(Value::as_str) == Some(target.as_str()) {
        obj
    } else {
        let name = object::name_of(&obj).to_string();
        rt.strategy.convert(obj, &target).map_err(|e| ApiError::invalid(rt, &name, &[e]))?
    };
    if let Some(m) = out.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(target));
        m.insert("kind".into(), Value::String(rt.kind.to_string()));
    }
    Ok(out)
}

/// Converts `obj` to the storage version.
pub fn to_storage(rt: &ResourceType, obj: Value) -> Result<Value, ApiError> {
    to_version(rt, obj, rt.storage_version)
}

/// A JSON response.
pub fn json_response(code: StatusCode, body: &Value, content_type: &str) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = (code, bytes).into_response();
    let ct = HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    resp
}

/// Dispatches a resource request by method and path shape.
pub async fn handle(
    state: &AppState,
    rp: &ResourcePath,
    mut parts: http::request::Parts,
    query: &Query,
    body: Body,
) -> Result<Response, ApiError> {
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let method = &parts.method;
    let ctx = Ctx {
        state,
        rp,
        query,
        headers: &parts.headers,
        raw_query: parts.uri.query().map(String::from),
        upgrade: std::sync::Mutex::new(upgrade),
        warnings: Default::default(),
    };
    let mut result = dispatch(&ctx, method, body).await;
    if let Ok(resp) = &mut result {
        for v in ctx.warnings.header_values() {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    let is_crd = rp.rt.group == "apiextensions.k8s.io" && rp.rt.plural == "customresourcedefinitions";
    if is_crd
        && *method != Method::GET
        && result.is_ok()
        && let Err(e) = crate::crd::sync(state.store.as_ref(), &state.registry).await
    {
        tracing::warn!(error = %crate::error::error_chain(&e), "syncing CustomResourceDefinitions failed");
    }
    result
}

async fn dispatch(ctx: &Ctx<'_>, method: &Method, body: Body) -> Result<Response, ApiError> {
    let (rp, query) = (ctx.rp, ctx.query);
    let watch = rp.watch || query.flag("watch");
    match (method.as_str(), rp.name.as_deref(), rp.sub.as_deref()) {
        ("GET", None, None) if watch => crate::watch::watch(ctx, None).await,
        ("GET", Some(name), None) if watch => crate::watch::watch(ctx, Some(name)).await,
        ("GET", None, None) => read::list(ctx).await,
        ("GET", Some(name), None) => read::get(ctx, name).await,
        ("POST", None, None) => write::create(ctx, body).await,
        ("PUT", Some(name), None) => write::update(ctx, name, body).await,
        ("PATCH", Some(name), None) => write::patch(ctx, name, body).await,
        ("DELETE", Some(name), None) => delete::delete(ctx, name, body).await,
        ("DELETE", None, None) => delete::delete_collection(ctx, body).await,
        (_, Some(name), Some(sub)) => subresource::handle(ctx, method, name, sub, body).await,
        _ => Err(ApiError::method_not_allowed()),
    }
}
