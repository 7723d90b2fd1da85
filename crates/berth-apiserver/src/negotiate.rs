//! Content negotiation: which representation the `Accept` header asks for (plain JSON, a
//! meta.k8s.io Table, PartialObjectMetadata, aggregated discovery) and decoding request bodies
//! (JSON, YAML, protobuf) into JSON values.

use serde_json::Value;

use crate::error::ApiError;

/// One media range of an `Accept` header.
#[derive(Clone, Debug, PartialEq, Eq)]
struct MediaRange {
    mime: String,
    params: Vec<(String, String)>,
}

impl MediaRange {
    fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn parse_accept(accept: &str) -> Vec<MediaRange> {
    accept
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let mime = parts.next()?.trim().to_ascii_lowercase();
            if mime.is_empty() {
                return None;
            }
            let params = parts
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    Some((k.trim().to_ascii_lowercase(), v.trim().trim_matches('"').to_string()))
                })
                .collect();
            Some(MediaRange { mime, params })
        })
        .collect()
}

fn is_json_like(mime: &str) -> bool {
    matches!(mime, "application/json" | "*/*" | "application/*" | "application/yaml" | "text/plain")
}

/// What an object-serving endpoint should answer with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Representation {
    /// The object or list itself.
    Json,
    /// `meta.k8s.io/{version}` Table.
    Table { version: &'static str },
    /// `PartialObjectMetadata` / `PartialObjectMetadataList` (meta.k8s.io/{version}).
    PartialMetadata { version: &'static str },
}

impl Representation {
    /// The response `Content-Type`.
    pub fn content_type(&self, list: bool) -> String {
        match self {
            Representation::Json => "application/json".to_string(),
            Representation::Table { version } => format!("application/json;as=Table;v={version};g=meta.k8s.io"),
            Representation::PartialMetadata { version } => format!(
                "application/json;as={};v={version};g=meta.k8s.io",
                if list { "PartialObjectMetadataList" } else { "PartialObjectMetadata" }
            ),
        }
    }
}

fn meta_version(v: Option<&str>) -> Option<&'static str> {
    match v {
        Some("v1") => Some("v1"),
        Some("v1beta1") => Some("v1beta1"),
        _ => None,
    }
}

/// Picks the representation for a get/list/watch from the `Accept` header. `list` tells whether
/// `PartialObjectMetadataList` or `PartialObjectMetadata` is the matching form.
pub fn representation(accept: Option<&str>, list: bool) -> Result<Representation, ApiError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Representation::Json);
    };
    let ranges = parse_accept(accept);
    for r in &ranges {
        if !matches!(r.mime.as_str(), "application/json" | "application/yaml" | "application/vnd.kubernetes.protobuf")
            && !is_json_like(&r.mime)
        {
            continue;
        }
        match r.param("as") {
            None if is_json_like(&r.mime) => return Ok(Representation::Json),
            Some("Table") if r.param("g") == Some("meta.k8s.io") => {
                if let Some(version) = meta_version(r.param("v")) {
                    return Ok(Representation::Table { version });
                }
            }
            Some(kind @ ("PartialObjectMetadata" | "PartialObjectMetadataList"))
                if r.param("g") == Some("meta.k8s.io") =>
            {
                // Clients ask for the list form on lists and the single form on gets; accept either.
                let _ = (kind, list);
                if let Some(version) = meta_version(r.param("v")) {
                    return Ok(Representation::PartialMetadata { version });
                }
            }
            _ => {}
        }
    }
    Err(ApiError::not_acceptable())
}

/// The aggregated discovery version asked for, in the client's order of preference: the exact
/// content type to echo back (`v2` or `v2beta1`), or `None` for legacy discovery.
pub fn aggregated_discovery(accept: Option<&str>) -> Option<&'static str> {
    for r in parse_accept(accept.unwrap_or_default()) {
        if r.mime != "application/json" {
            if is_json_like(&r.mime) {
                return None;
            }
            continue;
        }
        match (r.param("as"), r.param("g"), r.param("v")) {
            (Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io"), Some("v2")) => return Some("v2"),
            (Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io"), Some("v2beta1")) => return Some("v2beta1"),
            (None, _, _) => return None,
            _ => {}
        }
    }
    None
}

/// The media type of a `Content-Type` header without parameters, lowercased.
pub fn mime_of(content_type: Option<&str>) -> String {
    content_type.unwrap_or_default().split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// Decodes a JSON document, reporting serde's message as upstream reports its decoder's.
pub fn decode_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}")))
}

/// Decodes a YAML (or JSON) document.
pub fn decode_yaml(body: &[u8]) -> Result<Value, ApiError> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    serde_saphyr::from_str::<Value>(text).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

/// Decodes an object body (create, update) by its `Content-Type`.
pub fn decode_object(content_type: Option<&str>, body: &[u8]) -> Result<Value, ApiError> {
    let mime = mime_of(content_type);
    let v = match mime.as_str() {
        "" | "application/json" | "*/*" => decode_json(body)?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => decode_yaml(body)?,
        "application/vnd.kubernetes.protobuf" => crate::body::decode_protobuf(body)?,
        other => {
            return Err(ApiError::unsupported_media_type(
                other,
                &["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"],
            ));
        }
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "couldn't get version/kind; json parse error: the request body is not an object".to_string(),
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_table_accept_picks_table_v1() {
        let a = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(representation(Some(a), true).unwrap(), Representation::Table { version: "v1" });
    }

    #[test]
    fn protobuf_only_is_not_acceptable_but_with_fallback_is_json() {
        assert!(representation(Some("application/vnd.kubernetes.protobuf"), false).is_err());
        assert_eq!(
            representation(Some("application/vnd.kubernetes.protobuf, */*"), false).unwrap(),
            Representation::Json
        );
    }

    #[test]
    fn aggregated_discovery_echoes_the_first_offered_version() {
        let a = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_discovery(Some(a)), Some("v2beta1"));
        assert_eq!(aggregated_discovery(Some("application/json")), None);
    }

    #[test]
    fn yaml_bodies_decode() {
        let v = decode_yaml(b"a: 1\nb: [x]\n").unwrap();
        assert_eq!(v["a"], 1);
    }
}
