//! Raw REST calls through the kube client: URL building for any discovered resource, JSON and
//! Table GETs, create/patch/delete and watch streams. Objects are `serde_json::Value`.

use futures::{Stream, StreamExt};
use http::Request;
use kube::Client;
use kube::core::WatchEvent;
use serde_json::Value;

use crate::discovery::ResourceInfo;
use crate::errors::from_kube;

/// The Accept header kubectl sends to get server-side tables.
pub const TABLE_ACCEPT: &str =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters pass through).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Builds `?a=b&c=d` from pairs (empty values skipped).
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs.iter().filter_map(|(k, v)| v.map(|v| format!("{k}={}", encode(v)))).collect();
    if parts.is_empty() { String::new() } else { format!("?{}", parts.join("&")) }
}

/// The collection or object path of a resource: `/apis/apps/v1/namespaces/NS/deployments[/NAME]`.
pub fn path(res: &ResourceInfo, namespace: Option<&str>, name: Option<&str>) -> String {
    let mut p = if res.group.is_empty() {
        format!("/api/{}", res.version)
    } else {
        format!("/apis/{}/{}", res.group, res.version)
    };
    if res.namespaced
        && let Some(ns) = namespace
    {
        p.push_str("/namespaces/");
        p.push_str(ns);
    }
    p.push('/');
    p.push_str(&res.plural);
    if let Some(name) = name {
        p.push('/');
        p.push_str(name);
    }
    p
}

/// Thin wrapper over `kube::Client` for untyped requests.
#[derive(Clone)]
pub struct Api {
    pub client: Client,
}

impl Api {
    async fn send(&self, req: Request<Vec<u8>>) -> anyhow::Result<Value> {
        let text = self.client.request_text(req).await.map_err(from_kube)?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_str(&text)?)
    }

    pub async fn get(&self, path: &str, accept: &str) -> anyhow::Result<Value> {
        let req = Request::get(path).header(http::header::ACCEPT, accept).body(Vec::new())?;
        self.send(req).await
    }

    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        self.get(path, "application/json").await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let req = Request::post(path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(serde_json::to_vec(body)?)?;
        self.send(req).await
    }

    pub async fn patch(&self, path: &str, content_type: &str, body: &Value) -> anyhow::Result<Value> {
        let req = Request::patch(path)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::ACCEPT, "application/json")
            .body(serde_json::to_vec(body)?)?;
        self.send(req).await
    }

    pub async fn delete(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let req = Request::delete(path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(serde_json::to_vec(body)?)?;
        self.send(req).await
    }

    /// A watch stream of `{type, object}` events at `path` (which must carry `watch=true`).
    pub async fn watch(
        &self,
        path: &str,
        accept: &str,
    ) -> anyhow::Result<impl Stream<Item = anyhow::Result<WatchEvent<Value>>> + use<>> {
        let req = Request::get(path).header(http::header::ACCEPT, accept).body(Vec::new())?;
        let stream = self.client.request_events::<Value>(req).await.map_err(from_kube)?;
        Ok(stream.map(|item| item.map_err(from_kube)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(group: &str, plural: &str, namespaced: bool) -> ResourceInfo {
        ResourceInfo {
            group: group.into(),
            version: "v1".into(),
            kind: "X".into(),
            plural: plural.into(),
            singular: String::new(),
            short_names: vec![],
            namespaced,
            verbs: vec![],
            categories: vec![],
        }
    }

    #[test]
    fn paths_follow_the_rest_layout() {
        assert_eq!(path(&res("", "pods", true), Some("default"), Some("p")), "/api/v1/namespaces/default/pods/p");
        assert_eq!(path(&res("apps", "deployments", true), None, None), "/apis/apps/v1/deployments");
        assert_eq!(path(&res("", "nodes", false), Some("default"), Some("n1")), "/api/v1/nodes/n1");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            query(&[("labelSelector", Some("app=web,tier in (a b)")), ("x", None)]),
            "?labelSelector=app%3Dweb%2Ctier%20in%20%28a%20b%29"
        );
        assert_eq!(query(&[("x", None)]), "");
    }
}
