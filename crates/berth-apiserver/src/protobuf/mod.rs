//! Protobuf request bodies (`Content-Type: application/vnd.kubernetes.protobuf`), which kubectl
//! 1.32+ sends for `create deployment` and `autoscale`: the magic `k8s\0`, then a
//! `runtime.Unknown{typeMeta{apiVersion, kind}, raw, contentEncoding, contentType}` whose `raw` is
//! the object's own protobuf message. [`decode_protobuf`] turns that into the JSON object the
//! client would have sent as JSON, so handlers only ever see JSON. Pure: no I/O.
//!
//! The per-message conversions in `generated.rs` come from `generate.py` (k8s-pb message fields,
//! JSON names from k8s-openapi). Go's protobuf encoder writes every non-pointer field, so empty
//! strings are omitted here (as `omitempty` would in JSON), and so are zero numbers and `false`
//! for the value fields listed in `generate.py`'s `OMIT_ZERO`; other numbers and booleans are kept
//! even when zero, because pointer fields such as `replicas: 0` or
//! `automountServiceAccountToken: false` mean it.

mod generated;

use std::collections::BTreeMap;

use base64::Engine;
use prost::Message;
use serde_json::{Map, Value};

/// The media type of Kubernetes protobuf bodies.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The 4-byte prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// `(apiVersion, kind)` pairs [`decode_protobuf`] can convert.
pub const SUPPORTED: &[(&str, &str)] = &[
    ("apps/v1", "Deployment"),
    ("apps/v1", "ReplicaSet"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("autoscaling/v1", "HorizontalPodAutoscaler"),
    ("autoscaling/v1", "Scale"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("v1", "Namespace"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "Pod"),
    ("v1", "ServiceAccount"),
];

/// Why a protobuf body could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    #[error("protobuf body does not start with the k8s magic prefix")]
    MissingMagic,
    #[error("failed to decode the protobuf envelope (runtime.Unknown)")]
    DecodeEnvelope(#[source] prost::DecodeError),
    #[error("protobuf envelope has no apiVersion/kind")]
    MissingTypeMeta,
    #[error("failed to decode {api_version} {kind} from protobuf")]
    DecodeObject {
        api_version: String,
        kind: String,
        #[source]
        source: prost::DecodeError,
    },
    #[error("failed to parse the JSON payload of the protobuf envelope")]
    DecodeJson(#[source] serde_json::Error),
    #[error("protobuf content encoding {0:?} is not supported")]
    UnsupportedEncoding(String),
    #[error("protobuf bodies of {api_version} {kind} are not supported; send JSON")]
    Unsupported { api_version: String, kind: String },
}

impl ProtobufError {
    /// 415 Unsupported Media Type for kinds this server cannot convert, 400 for broken bodies.
    pub fn status_code(&self) -> http::StatusCode {
        match self {
            ProtobufError::Unsupported { .. } | ProtobufError::UnsupportedEncoding(_) => {
                http::StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            _ => http::StatusCode::BAD_REQUEST,
        }
    }
}

/// Whether a `Content-Type` header value is the Kubernetes protobuf media type (parameters ignored).
pub fn is_protobuf(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case(PROTOBUF_CONTENT_TYPE))
}

/// Decodes a Kubernetes protobuf body into the equivalent JSON object, `apiVersion` and `kind`
/// first.
///
/// # Errors
/// [`ProtobufError::Unsupported`] for kinds not in [`SUPPORTED`] (answer 415); the other variants
/// for malformed bodies (answer 400).
pub fn decode_protobuf(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtobufError::MissingMagic)?;
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown::decode(rest).map_err(ProtobufError::DecodeEnvelope)?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    if api_version.is_empty() || kind.is_empty() {
        return Err(ProtobufError::MissingTypeMeta);
    }
    if let Some(encoding) = unknown.content_encoding.filter(|e| !e.is_empty()) {
        return Err(ProtobufError::UnsupportedEncoding(encoding));
    }
    let raw = unknown.raw.unwrap_or_default();
    let inner_type = unknown.content_type.unwrap_or_default();
    let object = if inner_type.split(';').next().is_some_and(|m| m.trim() == "application/json") {
        serde_json::from_slice(&raw).map_err(ProtobufError::DecodeJson)?
    } else {
        convert(&api_version, &kind, &raw)?
    };
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(api_version));
    out.insert("kind".into(), Value::String(kind));
    if let Value::Object(fields) = object {
        for (k, v) in fields {
            if k != "apiVersion" && k != "kind" {
                out.insert(k, v);
            }
        }
    }
    Ok(Value::Object(out))
}

fn convert(api_version: &str, kind: &str, raw: &[u8]) -> Result<Value, ProtobufError> {
    fn decode<T: Message + Default + ToJson>(
        api_version: &str,
        kind: &str,
        raw: &[u8],
    ) -> Result<Value, ProtobufError> {
        T::decode(raw).map(|obj| obj.to_json()).map_err(|source| ProtobufError::DecodeObject {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            source,
        })
    }
    use k8s_pb::api::{apps, autoscaling, batch, core};
    let decoder = match (api_version, kind) {
        ("apps/v1", "Deployment") => decode::<apps::v1::Deployment>,
        ("apps/v1", "ReplicaSet") => decode::<apps::v1::ReplicaSet>,
        ("apps/v1", "StatefulSet") => decode::<apps::v1::StatefulSet>,
        ("apps/v1", "DaemonSet") => decode::<apps::v1::DaemonSet>,
        ("autoscaling/v1", "HorizontalPodAutoscaler") => decode::<autoscaling::v1::HorizontalPodAutoscaler>,
        ("autoscaling/v1", "Scale") => decode::<autoscaling::v1::Scale>,
        ("autoscaling/v2", "HorizontalPodAutoscaler") => decode::<autoscaling::v2::HorizontalPodAutoscaler>,
        ("batch/v1", "Job") => decode::<batch::v1::Job>,
        ("batch/v1", "CronJob") => decode::<batch::v1::CronJob>,
        ("v1", "Namespace") => decode::<core::v1::Namespace>,
        ("v1", "ConfigMap") => decode::<core::v1::ConfigMap>,
        ("v1", "Secret") => decode::<core::v1::Secret>,
        ("v1", "Service") => decode::<core::v1::Service>,
        ("v1", "Pod") => decode::<core::v1::Pod>,
        ("v1", "ServiceAccount") => decode::<core::v1::ServiceAccount>,
        _ => {
            return Err(ProtobufError::Unsupported { api_version: api_version.to_string(), kind: kind.to_string() });
        }
    };
    decoder(api_version, kind, raw)
}

/// Conversion of one protobuf message to its Kubernetes JSON form. `Null` means "omit".
pub(crate) trait ToJson {
    fn to_json(&self) -> Value;
}

impl<T: ToJson> ToJson for Box<T> {
    fn to_json(&self) -> Value {
        (**self).to_json()
    }
}

// Field writers used by generated.rs, one per protobuf field shape.

fn string(m: &mut Map<String, Value>, key: &str, v: &Option<String>) {
    if let Some(s) = v.as_ref().filter(|s| !s.is_empty()) {
        m.insert(key.to_string(), Value::String(s.clone()));
    }
}

fn strings(m: &mut Map<String, Value>, key: &str, v: &[String]) {
    if !v.is_empty() {
        m.insert(key.to_string(), Value::Array(v.iter().cloned().map(Value::String).collect()));
    }
}

fn scalar<T: Into<Value>>(m: &mut Map<String, Value>, key: &str, v: Option<T>) {
    if let Some(v) = v {
        m.insert(key.to_string(), v.into());
    }
}

/// A Go value field tagged `omitempty`: zero (or false) means unset.
fn scalar_nonzero<T: Into<Value> + Default + PartialEq>(m: &mut Map<String, Value>, key: &str, v: Option<T>) {
    if let Some(v) = v.filter(|v| *v != T::default()) {
        m.insert(key.to_string(), v.into());
    }
}

fn scalars<T: Into<Value> + Copy>(m: &mut Map<String, Value>, key: &str, v: &[T]) {
    if !v.is_empty() {
        m.insert(key.to_string(), Value::Array(v.iter().map(|x| (*x).into()).collect()));
    }
}

fn msg<T: ToJson>(m: &mut Map<String, Value>, key: &str, v: &Option<T>) {
    if let Some(v) = v {
        let json = v.to_json();
        if !json.is_null() {
            m.insert(key.to_string(), json);
        }
    }
}

fn msgs<T: ToJson>(m: &mut Map<String, Value>, key: &str, v: &[T]) {
    if !v.is_empty() {
        m.insert(key.to_string(), Value::Array(v.iter().map(ToJson::to_json).collect()));
    }
}

/// A Go embedded struct (`json:",inline"`): its fields go into the parent object.
fn inline<T: ToJson>(m: &mut Map<String, Value>, v: &Option<T>) {
    if let Some(Value::Object(fields)) = v.as_ref().map(ToJson::to_json) {
        m.extend(fields);
    }
}

fn string_map(m: &mut Map<String, Value>, key: &str, v: &BTreeMap<String, String>) {
    if !v.is_empty() {
        let obj = v.iter().map(|(k, s)| (k.clone(), Value::String(s.clone()))).collect();
        m.insert(key.to_string(), Value::Object(obj));
    }
}

fn msg_map<T: ToJson>(m: &mut Map<String, Value>, key: &str, v: &BTreeMap<String, T>) {
    if !v.is_empty() {
        let obj = v.iter().map(|(k, x)| (k.clone(), x.to_json())).collect();
        m.insert(key.to_string(), Value::Object(obj));
    }
}

fn b64(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

// Kept for generate.py: no message reachable from today's roots has a plain bytes field.
#[allow(dead_code)]
fn bytes(m: &mut Map<String, Value>, key: &str, v: &Option<Vec<u8>>) {
    if let Some(v) = v {
        m.insert(key.to_string(), b64(v));
    }
}

fn bytes_map(m: &mut Map<String, Value>, key: &str, v: &BTreeMap<String, Vec<u8>>) {
    if !v.is_empty() {
        let obj = v.iter().map(|(k, x)| (k.clone(), b64(x))).collect();
        m.insert(key.to_string(), Value::Object(obj));
    }
}

// Messages whose JSON form is not an object of their fields.

impl ToJson for k8s_pb::apimachinery::pkg::apis::meta::v1::Time {
    /// RFC 3339 at second precision; the zero time (encoded as an empty message) is omitted.
    fn to_json(&self) -> Value {
        match self.seconds.and_then(|s| jiff::Timestamp::from_second(s).ok()) {
            Some(ts) => Value::String(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
            None => Value::Null,
        }
    }
}

impl ToJson for k8s_pb::apimachinery::pkg::apis::meta::v1::MicroTime {
    /// RFC 3339 with microseconds, as metav1.MicroTime marshals.
    fn to_json(&self) -> Value {
        let nanos = self.nanos.unwrap_or(0);
        match self.seconds.and_then(|s| jiff::Timestamp::new(s, nanos).ok()) {
            Some(ts) => Value::String(ts.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()),
            None => Value::Null,
        }
    }
}

impl ToJson for k8s_pb::apimachinery::pkg::apis::meta::v1::Duration {
    fn to_json(&self) -> Value {
        self.duration.map(|ns| Value::String(go_duration(ns))).unwrap_or(Value::Null)
    }
}

impl ToJson for k8s_pb::apimachinery::pkg::apis::meta::v1::FieldsV1 {
    fn to_json(&self) -> Value {
        self.raw.as_deref().and_then(|raw| serde_json::from_slice(raw).ok()).unwrap_or(Value::Null)
    }
}

impl ToJson for k8s_pb::apimachinery::pkg::runtime::RawExtension {
    /// Raw holds the embedded object's JSON; anything else cannot be represented and is dropped.
    fn to_json(&self) -> Value {
        self.raw.as_deref().and_then(|raw| serde_json::from_slice(raw).ok()).unwrap_or(Value::Null)
    }
}

impl ToJson for k8s_pb::apimachinery::pkg::api::resource::Quantity {
    fn to_json(&self) -> Value {
        self.string.clone().map(Value::String).unwrap_or(Value::Null)
    }
}

impl ToJson for k8s_pb::apimachinery::pkg::util::intstr::IntOrString {
    /// `type` 1 is a string, anything else the integer.
    fn to_json(&self) -> Value {
        if self.r#type == Some(1) {
            Value::String(self.str_val.clone().unwrap_or_default())
        } else {
            Value::from(self.int_val.unwrap_or(0))
        }
    }
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5s`, `250ms`, `0s`.
fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let n = ns.unsigned_abs();
    let frac = |value: u64, unit: u64| {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            whole.to_string()
        } else {
            let digits = unit.to_string().len() - 1;
            let s = format!("{whole}.{rest:0digits$}");
            s.trim_end_matches('0').to_string()
        }
    };
    if n < 1_000 {
        return format!("{sign}{n}ns");
    }
    if n < 1_000_000 {
        return format!("{sign}{}µs", frac(n, 1_000));
    }
    if n < 1_000_000_000 {
        return format!("{sign}{}ms", frac(n, 1_000_000));
    }
    let hours = n / 3_600_000_000_000;
    let minutes = (n / 60_000_000_000) % 60;
    let seconds = frac(n % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, m) => format!("{sign}{m}m{seconds}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}s"),
    }
}

#[cfg(test)]
mod tests;
