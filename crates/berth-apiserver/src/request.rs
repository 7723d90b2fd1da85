//! Parsing request paths (`/api/v1/namespaces/ns/pods/name/status`, `/apis/g/v/watch/...`)
//! and the query options the handlers understand. Unknown query parameters are ignored.

use std::collections::HashMap;

use berth_api::selector::{FieldSelector, LabelSelector};
use berth_api::{Registry, ResourceType};

use crate::error::ApiError;

/// What a path under `/api` or `/apis` names.
#[derive(Debug)]
pub enum ApiPath {
    /// `/api`
    CoreRoot,
    /// `/apis`
    GroupsRoot,
    /// `/apis/{group}`
    Group(String),
    /// `/api/v1`, `/apis/{group}/{version}`
    GroupVersion { group: String, version: String },
    /// A resource, object or subresource.
    Resource(ResourcePath),
}

/// A resolved resource path.
#[derive(Debug, Clone)]
pub struct ResourcePath {
    pub rt: &'static ResourceType,
    /// The requested version (objects are served in it).
    pub version: String,
    /// The `/watch/` prefix was used.
    pub watch: bool,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}

impl ResourcePath {
    /// `apps/v1`
    pub fn api_version(&self) -> String {
        self.rt.api_version(&self.version)
    }
}

/// Parses a request path. `None`: not an API path this server serves (404).
pub fn parse_path(registry: &Registry, path: &str) -> Result<ApiPath, ApiError> {
    let segs: Vec<&str> = path.trim_start_matches('/').trim_end_matches('/').split('/').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(ApiError::path_not_found());
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api"] => return Ok(ApiPath::CoreRoot),
        ["apis"] => return Ok(ApiPath::GroupsRoot),
        ["apis", g] => return Ok(ApiPath::Group(g.to_string())),
        ["api", v] => return Ok(ApiPath::GroupVersion { group: String::new(), version: v.to_string() }),
        ["apis", g, v] => return Ok(ApiPath::GroupVersion { group: g.to_string(), version: v.to_string() }),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::path_not_found()),
    };
    let (watch, rest) = match rest {
        ["watch", r @ ..] if !r.is_empty() => (true, r),
        r => (false, r),
    };
    let (namespace, rest) = match rest {
        ["namespaces", _, sub] if matches!(*sub, "status" | "finalize") => (None, rest),
        ["namespaces", ns, r @ ..] if !r.is_empty() => (Some(ns.to_string()), r),
        r => (None, r),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
        // `pods/NAME/proxy/PATH...`
        [p, n, s, ..] if *s == "proxy" => (*p, Some(n.to_string()), Some(s.to_string())),
        _ => return Err(ApiError::path_not_found()),
    };
    let rt = registry.by_resource(group, version, plural).ok_or_else(ApiError::path_not_found)?;
    if namespace.is_some() && !rt.namespaced {
        return Err(ApiError::path_not_found());
    }
    if let Some(s) = sub.as_deref() {
        let known = rt.subresources.iter().any(|x| x.name() == s) || (rt.plural == "namespaces" && s == "finalize");
        if !known || watch {
            return Err(ApiError::path_not_found());
        }
    }
    Ok(ApiPath::Resource(ResourcePath { rt, version: version.to_string(), watch, namespace, name, sub }))
}

/// Query parameters, last value wins.
#[derive(Debug, Default, Clone)]
pub struct Query(pub HashMap<String, String>);

impl Query {
    pub fn parse(query: Option<&str>) -> Self {
        let mut map = HashMap::new();
        for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(percent_decode(k), percent_decode(v));
        }
        Query(map)
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    /// A boolean flag (`watch=true`, `watch=1`).
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1" | "True"))
    }

    /// An integer parameter; malformed is 400.
    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.get(k).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => s
                .parse::<i64>()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {s:?} is not an integer"))),
        }
    }

    /// `dryRun=All`.
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => {
                Err(ApiError::bad_request(format!("Invalid dry run value: {other:?}: supported values: \"All\"")))
            }
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` and `+` (form encoding) into a string; invalid UTF-8 is replaced.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses and checks a field selector against the fields the kind supports (400 otherwise, in
/// upstream's words).
pub fn field_selector(rt: &ResourceType, raw: Option<&str>) -> Result<FieldSelector, ApiError> {
    let raw = raw.unwrap_or_default();
    let selector =
        FieldSelector::parse(raw).map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?;
    selector.check_supported(rt.group, rt.kind).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(selector)
}

/// Parses a label selector (400 when malformed).
pub fn label_selector(raw: Option<&str>) -> Result<LabelSelector, ApiError> {
    LabelSelector::parse(raw.unwrap_or_default()).map_err(|e| ApiError::bad_request(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_handles_escapes_and_plus() {
        assert_eq!(percent_decode("app%3Dweb%2Cx+y"), "app=web,x y");
        assert_eq!(percent_decode("50%"), "50%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
