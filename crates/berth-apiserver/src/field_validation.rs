//! Server-side field validation: the `fieldValidation` query parameter of create, update and
//! patch (`Ignore`, `Warn` — the default — or `Strict`, what kubectl 1.27+ sends), as
//! k8s.io/apiserver's handlers apply it (`handlers/{create,update,patch}.go`).
//!
//! Unknown fields (per the kind's schema, see `berth_api::field_validation`) are always dropped
//! before anything is stored. `Warn` reports each unknown or duplicate field in a
//! `Warning: 299 - "unknown field \"spec.foo\""` response header; `Strict` fails the request
//! instead, worded per verb as upstream words it:
//! - create / update body: 400 `Pod in version "v1" cannot be handled as a Pod: strict decoding
//!   error: unknown field "spec.foo"`;
//! - json / merge / strategic merge patch: 422 ` "" is invalid: patch: Invalid value: "...":
//!   strict decoding error: ...`;
//! - server-side apply: unknown fields always fail (the typed conversion of the applied
//!   configuration rejects them whatever `fieldValidation` says): `failed to create typed patch
//!   object (ns/name; apps/v1, Kind=Deployment): .spec.foo: field not declared in schema`
//!   (a 500 upstream, a 400 here: it is the client's input that is wrong).
//!
//! Custom resources are checked against their CRD version's structural schema (see
//! `crd.rs`); without one (`x-kubernetes-preserve-unknown-fields` at the root) they are stored
//! as sent.

use berth_api::ResourceType;
use berth_api::field_validation::{self as fv, FieldProblem, KindSchema};
use http::HeaderValue;
use serde_json::Value;

use crate::error::{ApiError, Cause};
use crate::negotiate::{decode_object, mime_of};
use crate::patch::PatchType;
use crate::request::Query;

/// What to do with unknown and duplicate fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Directive {
    /// Drop unknown fields silently.
    Ignore,
    /// Drop them and report each in a `Warning` header (the default).
    Warn,
    /// Fail the request.
    Strict,
}

/// The options kind a write carries its `fieldValidation` in (named in the 422 for a bad value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Create,
    Update,
    Patch,
}

impl Verb {
    fn options_kind(self) -> &'static str {
        match self {
            Verb::Create => "CreateOptions",
            Verb::Update => "UpdateOptions",
            Verb::Patch => "PatchOptions",
        }
    }
}

impl Directive {
    /// The request's `fieldValidation`; an unsupported value is 422 as upstream's
    /// `ValidateFieldValidation` reports it.
    pub fn from_query(query: &Query, verb: Verb) -> Result<Self, ApiError> {
        match query.get("fieldValidation").unwrap_or_default() {
            "" | "Warn" => Ok(Directive::Warn),
            "Ignore" => Ok(Directive::Ignore),
            "Strict" => Ok(Directive::Strict),
            other => {
                let err = berth_api::FieldError::not_supported(
                    "fieldValidation",
                    format!("{other:?}"),
                    &["", "Ignore", "Strict", "Warn"],
                );
                let mut e = ApiError::new(
                    422,
                    "Invalid",
                    format!("{}.meta.k8s.io \"\" is invalid: {err}", verb.options_kind()),
                );
                e.details.group = Some("meta.k8s.io".into());
                e.details.kind = Some(verb.options_kind().into());
                e.details.causes =
                    vec![Cause { reason: err.kind.reason().into(), message: err.message(), field: err.field.clone() }];
                Err(e)
            }
        }
    }

    fn reports(self) -> bool {
        self != Directive::Ignore
    }
}

/// Where the warnings of one request collect (deduplicated: retried writes check again).
#[derive(Debug, Default)]
pub struct Warnings(std::sync::Mutex<Vec<String>>);

impl Warnings {
    /// Adds a warning text unless it is already there.
    pub fn add(&self, text: String) {
        let mut w = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !w.contains(&text) {
            w.push(text);
        }
    }

    /// Each warning as a `Warning` header value: `299 - "text"` (quotes and backslashes escaped,
    /// as k8s.io/apimachinery `NewWarningHeader`). Texts no header can carry are skipped.
    pub fn header_values(&self) -> Vec<HeaderValue> {
        let w = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        w.iter().filter_map(|t| HeaderValue::from_bytes(warning_header(t).as_bytes()).ok()).collect()
    }
}

fn warning_header(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str("299 - \"");
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `strict decoding error: unknown field "a", duplicate field "b"`.
fn strict_message(problems: &[String]) -> String {
    format!("strict decoding error: {}", problems.join(", "))
}

fn texts(problems: Vec<FieldProblem>) -> Vec<String> {
    problems.iter().map(ToString::to_string).collect()
}

/// Reports `problems` per `directive`: warnings, or the error `strict` builds.
fn report(
    directive: Directive,
    warnings: &Warnings,
    problems: Vec<String>,
    strict: impl FnOnce(&[String]) -> ApiError,
) -> Result<(), ApiError> {
    if problems.is_empty() || !directive.reports() {
        return Ok(());
    }
    if directive == Directive::Strict {
        return Err(strict(&problems));
    }
    for p in problems {
        warnings.add(p);
    }
    Ok(())
}

/// The schema bodies of `rt` in `version` are checked against: the typed one of a built-in
/// kind, or a custom resource's structural schema.
pub fn schema_for(rt: &ResourceType, version: &str) -> Option<KindSchema> {
    fv::kind_schema(rt.group, version, rt.kind).or_else(|| rt.strategy.field_schema(version))
}

/// Decodes a create or update body (of `kind` in `version`, checked against `schema`) by its
/// `Content-Type`, without the fields the schema does not declare; reports them (and repeated
/// JSON keys) per `directive`.
pub fn decode_body(
    content_type: Option<&str>,
    bytes: &[u8],
    schema: Option<KindSchema>,
    (version, kind): (&str, &str),
    directive: Directive,
    warnings: &Warnings,
) -> Result<Value, ApiError> {
    let (obj, problems) = match mime_of(content_type).as_str() {
        "" | "application/json" | "*/*" => {
            let (obj, problems) = fv::decode_json(bytes, schema)
                .map_err(|e| ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}")))?;
            if !obj.is_object() {
                return Err(ApiError::bad_request(
                    "couldn't get version/kind; json parse error: the request body is not an object",
                ));
            }
            (obj, problems)
        }
        _ => {
            let mut obj = decode_object(content_type, bytes)?;
            let problems = schema.map(|s| s.prune(&mut obj)).unwrap_or_default();
            (obj, problems)
        }
    };
    report(directive, warnings, texts(problems), |p| {
        ApiError::bad_request(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: {}",
            strict_message(p)
        ))
    })?;
    Ok(obj)
}

/// A decoded patch body.
#[derive(Debug)]
pub struct PatchBody {
    pub patch_type: PatchType,
    pub doc: Value,
    /// Problems found in the patch document itself: repeated keys, and for a JSON patch,
    /// operation fields other than op/path/from/value (`json patch unknown field "foo"`), as
    /// the texts upstream reports.
    pub problems: Vec<String>,
}

/// Decodes a patch document (JSON; an apply patch may also be YAML).
pub fn decode_patch(patch_type: PatchType, bytes: &[u8]) -> Result<PatchBody, ApiError> {
    let decoded = fv::decode_json(bytes, None);
    let (doc, problems) = match (decoded, patch_type) {
        (Ok(d), _) => d,
        (Err(_), PatchType::Apply) => (crate::negotiate::decode_yaml(bytes)?, Vec::new()),
        (Err(e), _) => {
            return Err(ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}")));
        }
    };
    let problems = match patch_type {
        PatchType::Json => json_patch_problems(&doc, problems),
        _ => texts(problems),
    };
    Ok(PatchBody { patch_type, doc, problems })
}

/// A JSON patch's own problems as upstream reports them (`json patch unknown field "foo"`,
/// `json patch duplicate field "path"`): only the operations' fields count, not their values.
fn json_patch_problems(doc: &Value, duplicates: Vec<FieldProblem>) -> Vec<String> {
    let mut out = Vec::new();
    for op in doc.as_array().into_iter().flatten().filter_map(Value::as_object) {
        for key in op.keys().filter(|k| !matches!(k.as_str(), "op" | "path" | "from" | "value")) {
            out.push(format!("json patch unknown field {key:?}"));
        }
    }
    for d in duplicates {
        // `[3].path`: a key repeated in an operation itself.
        if let Some((index, key)) = d.path().split_once("].")
            && index.starts_with('[')
            && !key.contains(['.', '['])
        {
            out.push(format!("json patch duplicate field {key:?}"));
        }
    }
    out
}

/// After a JSON, merge or strategic merge patch: drops the fields of the patched object the
/// kind does not declare and reports them after the patch document's own problems.
pub fn check_patched(
    body: &PatchBody,
    patched: &mut Value,
    schema: Option<KindSchema>,
    directive: Directive,
    warnings: &Warnings,
) -> Result<(), ApiError> {
    let strict_value = (directive == Directive::Strict).then(|| match body.patch_type {
        PatchType::StrategicMerge => go_format(&body.doc),
        _ => serde_json::to_string(patched).unwrap_or_default(),
    });
    let mut problems = body.problems.clone();
    if let Some(s) = schema {
        problems.extend(texts(s.prune(patched)));
    }
    report(directive, warnings, problems, |p| {
        let message = format!("Invalid value: {:?}: {}", strict_value.unwrap_or_default(), strict_message(p));
        let mut e = ApiError::new(422, "Invalid", format!(" \"\" is invalid: patch: {message}"));
        e.details.causes = vec![Cause { reason: "FieldValueInvalid".into(), message, field: "patch".into() }];
        e
    })
}

/// Server-side apply: the applied configuration may hold only declared fields, whatever
/// `fieldValidation` says (see the module doc).
pub fn check_applied(
    applied: &Value,
    schema: Option<KindSchema>,
    (group, api_version, kind): (&str, &str, &str),
) -> Result<(), ApiError> {
    let Some(schema) = schema else { return Ok(()) };
    let unknown = schema.unknown_field_paths(applied);
    if unknown.is_empty() {
        return Ok(());
    }
    let errors: Vec<String> = unknown
        .iter()
        .map(|p| format!("{}: field not declared in schema", crate::patch::typed_path(group, kind, applied, p)))
        .collect();
    let errors = match errors.as_slice() {
        [one] => one.clone(),
        many => format!("errors:\n  {}", many.join("\n  ")),
    };
    let meta = &applied["metadata"];
    let (ns, name) = (meta["namespace"].as_str().unwrap_or_default(), meta["name"].as_str().unwrap_or_default());
    let gv = if api_version.contains('/') { api_version.to_string() } else { format!("/{api_version}") };
    Err(ApiError::bad_request(format!(
        "failed to create typed patch object ({ns}/{name}; {gv}, Kind={kind}): {errors}"
    )))
}

/// A JSON value as Go's `fmt.Sprintf("%+v", v)` prints the decoded `map[string]interface{}`
/// (upstream quotes a strategic merge patch this way in its strict-validation error).
fn go_format(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!("[{}]", items.iter().map(go_format).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys.into_iter().map(|k| format!("{k}:{}", go_format(&m[k]))).collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: &str) -> Query {
        Query::parse(Some(q))
    }

    #[test]
    fn directive_defaults_to_warn_and_rejects_unsupported_values_as_upstream() {
        assert_eq!(Directive::from_query(&query(""), Verb::Create).ok(), Some(Directive::Warn));
        assert_eq!(Directive::from_query(&query("fieldValidation=Strict"), Verb::Create).ok(), Some(Directive::Strict));
        assert_eq!(Directive::from_query(&query("fieldValidation=Ignore"), Verb::Patch).ok(), Some(Directive::Ignore));
        let e = Directive::from_query(&query("fieldValidation=strict"), Verb::Update).expect_err("unsupported");
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            r#"UpdateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "strict": supported values: "", "Ignore", "Strict", "Warn""#
        );
    }

    #[test]
    fn warning_headers_escape_quotes_and_deduplicate() {
        let w = Warnings::default();
        w.add(r#"unknown field "spec.foo""#.into());
        w.add(r#"unknown field "spec.foo""#.into());
        let values = w.header_values();
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].to_str().ok(), Some(r#"299 - "unknown field \"spec.foo\"""#));
    }

    #[test]
    fn strict_create_body_fails_with_the_upstream_message_and_warn_drops_the_field() {
        let body = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
            "spec":{"containers":[{"name":"c","image":"i","imagee":"x"}]}}"#;
        let w = Warnings::default();
        let pod = fv::kind_schema("", "v1", "Pod");
        let e = decode_body(None, body, pod, ("v1", "Pod"), Directive::Strict, &w).expect_err("strict");
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            r#"Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.containers[0].imagee""#
        );
        let obj = decode_body(Some("application/json"), body, pod, ("v1", "Pod"), Directive::Warn, &w).expect("warn");
        assert!(obj["spec"]["containers"][0].get("imagee").is_none());
        assert_eq!(w.header_values().len(), 1);
        let ignored = Warnings::default();
        let yaml = b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  replica: 1\n  containers: []\n";
        let obj = decode_body(Some("application/yaml"), yaml, pod, ("v1", "Pod"), Directive::Ignore, &ignored)
            .expect("ignore");
        assert!(obj["spec"].get("replica").is_none());
        assert!(ignored.header_values().is_empty());
    }

    #[test]
    fn strict_patch_is_invalid_with_the_patch_quoted() {
        let body = decode_patch(PatchType::StrategicMerge, br#"{"spec":{"replica":2,"paused":true,"paused":false}}"#)
            .expect("patch");
        let mut patched =
            serde_json::json!({"apiVersion":"apps/v1","kind":"Deployment","spec":{"replica":2,"paused":false}});
        let schema = fv::kind_schema("apps", "v1", "Deployment");
        let e = check_patched(&body, &mut patched.clone(), schema, Directive::Strict, &Warnings::default())
            .expect_err("strict");
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            r#" "" is invalid: patch: Invalid value: "map[spec:map[paused:false replica:2]]": strict decoding error: duplicate field "spec.paused", unknown field "spec.replica""#
        );
        assert_eq!(e.details.causes[0].field, "patch");
        check_patched(&body, &mut patched, schema, Directive::Ignore, &Warnings::default()).expect("ignore");
        assert!(patched["spec"].get("replica").is_none());
    }

    #[test]
    fn json_patch_problems_name_the_operation_fields() {
        let body = decode_patch(
            PatchType::Json,
            br#"[{"op":"add","path":"/spec/x","value":{"a":1,"a":2},"foo":"bar"},{"op":"add","path":"/a","path":"/b","value":1}]"#,
        )
        .expect("patch");
        assert_eq!(body.problems, [r#"json patch unknown field "foo""#, r#"json patch duplicate field "path""#]);
    }

    #[test]
    fn applied_configuration_with_unknown_fields_is_rejected() {
        let applied = serde_json::json!({"apiVersion":"apps/v1","kind":"Deployment",
            "metadata":{"name":"web","namespace":"default"},"spec":{"replica":1}});
        let gvk = ("apps", "apps/v1", "Deployment");
        let e = check_applied(&applied, fv::kind_schema("apps", "v1", "Deployment"), gvk).expect_err("unknown");
        assert_eq!(
            e.message,
            "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): .spec.replica: field not declared in schema"
        );
        assert!(check_applied(&applied, None, ("example.com", "example.com/v1", "Thing")).is_ok());
        let pod = serde_json::json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{
            "containers":[{"name":"c","imagee":"x","ports":[{"containerPort":80,"hostPot":1}]}],
            "tolerations":[{"key":"k","effect":"NoSchedule","operater":"Exists"}]}});
        let e = check_applied(&pod, fv::kind_schema("", "v1", "Pod"), ("", "v1", "Pod")).expect_err("unknown");
        assert_eq!(
            e.message,
            "failed to create typed patch object (/p; /v1, Kind=Pod): errors:\n  \
             .spec.containers[name=\"c\"].imagee: field not declared in schema\n  \
             .spec.containers[name=\"c\"].ports[containerPort=80,protocol=\"TCP\"].hostPot: field not declared in schema\n  \
             .spec.tolerations[0].operater: field not declared in schema"
        );
    }
}
