//! OpenAPI documents generated from the k8s-openapi types: `/openapi/v3` (index and one document
//! per group-version, with `x-kubernetes-group-version-kind` so `kubectl apply` validates
//! server-side and `kubectl explain` works) and `/openapi/v2` as JSON.
//!
//! Pure functions of the registry. The documents are large (core/v1 is over a megabyte), so they
//! are built once per distinct registry content and cached (see [`cached`]).
//!
//! What clients need from them:
//! - `kubectl apply` (client-go `queryParamVerifierV3`) walks the group-version document's
//!   `paths`, takes the first `patch` operation whose `x-kubernetes-group-version-kind` object is
//!   the kind being applied, and checks that it lists a `fieldValidation` parameter by name
//!   (inline, not `$ref`), then sends `fieldValidation=Strict`. So every patch operation lists it.
//! - `kubectl explain` finds the kind's schema in `components.schemas` by the
//!   `x-kubernetes-group-version-kind` list on it and follows `$ref`/`allOf` from there.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use k8s_openapi::{ListableResource, Resource, api, apiextensions_apiserver, kube_aggregator};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::{Registry, ResourceType, Subresource};

/// The `/openapi/v3` index: `{"paths": {"apis/apps/v1": {"serverRelativeURL": ...}}}`.
pub fn v3_index(registry: &Registry) -> Value {
    let built = cached(registry);
    let docs = built.v3();
    let mut paths = Map::new();
    for (gv, doc) in docs {
        paths.insert(gv.clone(), json!({ "serverRelativeURL": format!("/openapi/v3/{gv}?hash={}", doc.hash) }));
    }
    json!({ "paths": paths })
}

/// The document for one group-version (`api/v1`, `apis/apps/v1`), if served. A leading `/` or
/// `openapi/v3/` prefix and a `?hash=` suffix are tolerated.
pub fn v3_group_version(registry: &Registry, path: &str) -> Option<Value> {
    let key = normalize_gv_path(path);
    cached(registry).v3().get(key).map(|d| d.document.clone())
}

/// The serialized JSON of one group-version document and its hash (what the index's
/// `?hash=` carries), shared rather than cloned: cheaper than [`v3_group_version`] per request.
pub fn v3_group_version_json(registry: &Registry, path: &str) -> Option<(Arc<[u8]>, String)> {
    let key = normalize_gv_path(path);
    cached(registry).v3().get(key).map(|d| (d.bytes.clone(), d.hash.clone()))
}

/// The whole `/openapi/v2` (swagger 2.0) document.
pub fn v2(registry: &Registry) -> Value {
    cached(registry).v2().0.clone()
}

/// The serialized JSON of the `/openapi/v2` document and its hash (usable as an ETag).
pub fn v2_json(registry: &Registry) -> (Arc<[u8]>, String) {
    let built = cached(registry);
    let (_, bytes, hash) = built.v2();
    (bytes.clone(), hash.clone())
}

fn normalize_gv_path(path: &str) -> &str {
    let path = path.split('?').next().unwrap_or_default();
    let path = path.trim_start_matches('/');
    let path = path.strip_prefix("openapi/v3/").unwrap_or(path);
    path.trim_end_matches('/')
}

/// One built group-version document.
struct GvDoc {
    document: Value,
    bytes: Arc<[u8]>,
    hash: String,
}

/// Every document for one registry content, each built on first use.
struct Built {
    types: Vec<&'static ResourceType>,
    v3: OnceLock<BTreeMap<String, GvDoc>>,
    v2: OnceLock<(Value, Arc<[u8]>, String)>,
}

impl Built {
    fn v3(&self) -> &BTreeMap<String, GvDoc> {
        self.v3.get_or_init(|| {
            let mut out = BTreeMap::new();
            for (group, version) in group_versions(&self.types) {
                let document = build_v3_group_version(&self.types, group, version);
                let (bytes, hash) = serialize(&document);
                out.insert(gv_path(group, version), GvDoc { document, bytes, hash });
            }
            out
        })
    }

    fn v2(&self) -> &(Value, Arc<[u8]>, String) {
        self.v2.get_or_init(|| {
            let document = build_v2(&self.types);
            let (bytes, hash) = serialize(&document);
            (document, bytes, hash)
        })
    }
}

fn serialize(doc: &Value) -> (Arc<[u8]>, String) {
    // Serializing a Value cannot fail (all keys are strings).
    let bytes = serde_json::to_vec(doc).unwrap_or_default();
    let hash = hex::encode_upper(Sha256::digest(&bytes));
    (bytes.into(), hash)
}

/// The cache: registries are small to fingerprint but their documents are big to build, and the
/// registry changes when CRDs come and go, so entries are keyed by content, not identity.
fn cached(registry: &Registry) -> Arc<Built> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Built>>>> = OnceLock::new();
    let key = fingerprint(registry.all());
    let cache = CACHE.get_or_init(Default::default);
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    // Bound memory if CRDs churn: keep only a handful of registry generations.
    if map.len() > 8 && !map.contains_key(&key) {
        map.clear();
    }
    map.entry(key)
        .or_insert_with(|| Arc::new(Built { types: registry.all().to_vec(), v3: OnceLock::new(), v2: OnceLock::new() }))
        .clone()
}

fn fingerprint(types: &[&'static ResourceType]) -> String {
    let mut s = String::new();
    for t in types {
        s.push_str(t.group);
        s.push('/');
        s.push_str(&t.versions.join(","));
        s.push('/');
        s.push_str(t.kind);
        s.push('/');
        s.push_str(t.plural);
        s.push_str(if t.namespaced { "/n/" } else { "/c/" });
        for sub in t.subresources {
            s.push_str(sub.name());
            s.push(',');
        }
        s.push(';');
    }
    s
}

/// `(group, version)` pairs in registry order, without duplicates.
fn group_versions(types: &[&'static ResourceType]) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for t in types {
        for v in t.versions {
            if !out.contains(&(t.group, *v)) {
                out.push((t.group, v));
            }
        }
    }
    out
}

/// `api/v1` or `apis/apps/v1`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

// ---------------------------------------------------------------------------------------------
// Known kinds: the k8s-openapi types whose schemas describe them.

/// A kind with a generated schema.
struct KnownKind {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    list_kind: &'static str,
    /// Registers the kind's schema (and everything it references) and returns its `$ref`.
    schema: fn(&mut SchemaGenerator) -> Value,
}

fn schema_ref<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    generator.subschema_for::<T>().to_value()
}

const fn listable<T: ListableResource + JsonSchema>() -> KnownKind {
    KnownKind { group: T::GROUP, version: T::VERSION, kind: T::KIND, list_kind: T::LIST_KIND, schema: schema_ref::<T> }
}

/// Kinds whose schema is served but that have no list (subresource bodies).
const fn single<T: Resource + JsonSchema>() -> KnownKind {
    KnownKind { group: T::GROUP, version: T::VERSION, kind: T::KIND, list_kind: "", schema: schema_ref::<T> }
}

static KNOWN: &[KnownKind] = &[
    listable::<api::admissionregistration::v1::MutatingWebhookConfiguration>(),
    listable::<api::admissionregistration::v1::ValidatingAdmissionPolicy>(),
    listable::<api::admissionregistration::v1::ValidatingAdmissionPolicyBinding>(),
    listable::<api::admissionregistration::v1::ValidatingWebhookConfiguration>(),
    listable::<api::apps::v1::ControllerRevision>(),
    listable::<api::apps::v1::DaemonSet>(),
    listable::<api::apps::v1::Deployment>(),
    listable::<api::apps::v1::ReplicaSet>(),
    listable::<api::apps::v1::StatefulSet>(),
    listable::<api::autoscaling::v1::HorizontalPodAutoscaler>(),
    listable::<api::autoscaling::v2::HorizontalPodAutoscaler>(),
    single::<api::autoscaling::v1::Scale>(),
    listable::<api::batch::v1::CronJob>(),
    listable::<api::batch::v1::Job>(),
    listable::<api::certificates::v1::CertificateSigningRequest>(),
    listable::<api::coordination::v1::Lease>(),
    listable::<api::core::v1::ComponentStatus>(),
    listable::<api::core::v1::ConfigMap>(),
    listable::<api::core::v1::Endpoints>(),
    listable::<api::core::v1::Event>(),
    listable::<api::core::v1::LimitRange>(),
    listable::<api::core::v1::Namespace>(),
    listable::<api::core::v1::Node>(),
    listable::<api::core::v1::PersistentVolume>(),
    listable::<api::core::v1::PersistentVolumeClaim>(),
    listable::<api::core::v1::Pod>(),
    listable::<api::core::v1::PodTemplate>(),
    listable::<api::core::v1::ReplicationController>(),
    listable::<api::core::v1::ResourceQuota>(),
    listable::<api::core::v1::Secret>(),
    listable::<api::core::v1::Service>(),
    listable::<api::core::v1::ServiceAccount>(),
    single::<api::core::v1::Binding>(),
    listable::<api::discovery::v1::EndpointSlice>(),
    listable::<api::events::v1::Event>(),
    listable::<api::flowcontrol::v1::FlowSchema>(),
    listable::<api::flowcontrol::v1::PriorityLevelConfiguration>(),
    listable::<api::networking::v1::IPAddress>(),
    listable::<api::networking::v1::Ingress>(),
    listable::<api::networking::v1::IngressClass>(),
    listable::<api::networking::v1::NetworkPolicy>(),
    listable::<api::networking::v1::ServiceCIDR>(),
    listable::<api::node::v1::RuntimeClass>(),
    listable::<api::policy::v1::PodDisruptionBudget>(),
    single::<api::policy::v1::Eviction>(),
    listable::<api::rbac::v1::ClusterRole>(),
    listable::<api::rbac::v1::ClusterRoleBinding>(),
    listable::<api::rbac::v1::Role>(),
    listable::<api::rbac::v1::RoleBinding>(),
    listable::<api::scheduling::v1::PriorityClass>(),
    listable::<api::storage::v1::CSIDriver>(),
    listable::<api::storage::v1::CSINode>(),
    listable::<api::storage::v1::CSIStorageCapacity>(),
    listable::<api::storage::v1::StorageClass>(),
    listable::<api::storage::v1::VolumeAttachment>(),
    listable::<apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>(),
    listable::<kube_aggregator::pkg::apis::apiregistration::v1::APIService>(),
];

fn known(group: &str, version: &str, kind: &str) -> Option<&'static KnownKind> {
    KNOWN.iter().find(|k| k.group == group && k.version == version && k.kind == kind)
}

/// `(group, version, kind)`.
pub(crate) type Gvk = (&'static str, &'static str, &'static str);

/// The generated schemas of every kind with a k8s-openapi type, for server-side field
/// validation: the definitions (OpenAPI v3 flavour, `$ref`s rooted at `#/components/schemas/`)
/// and, per `(group, version, kind)`, the name of the kind's definition.
pub(crate) fn known_kind_schemas() -> (Map<String, Value>, Vec<(Gvk, String)>) {
    let mut generator = Flavor::V3.generator();
    let prefix = Flavor::V3.ref_prefix();
    let mut roots = Vec::with_capacity(KNOWN.len());
    for k in KNOWN {
        let r = (k.schema)(&mut generator);
        if let Some(name) = r["$ref"].as_str().and_then(|s| s.strip_prefix(prefix)) {
            roots.push(((k.group, k.version, k.kind), name.to_string()));
        }
    }
    (generator.take_definitions(true), roots)
}

/// The schema name a kind without a k8s-openapi type gets: the reversed group as upstream
/// names CRD schemas (`com.example.stable.v1.CronTab`); `io.k8s.api.core` for the core group.
fn fallback_schema_name(group: &str, version: &str, kind: &str) -> String {
    if group.is_empty() {
        return format!("io.k8s.api.core.{version}.{kind}");
    }
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "kind": kind, "version": version })
}

/// Which flavour of document is being built: differences in `$ref` roots and operation shapes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    V3,
    V2,
}

impl Flavor {
    fn ref_prefix(self) -> &'static str {
        match self {
            Flavor::V3 => "#/components/schemas/",
            Flavor::V2 => "#/definitions/",
        }
    }

    fn generator(self) -> SchemaGenerator {
        SchemaSettings::openapi3()
            .with(|s| {
                s.meta_schema = None;
                if self == Flavor::V2 {
                    s.definitions_path = "/definitions".into();
                }
            })
            .into_generator()
    }
}

/// The schema names and definitions for a set of `(ResourceType, version)` pairs.
struct Schemas {
    defs: Map<String, Value>,
    /// `(group, version, kind)` → schema name of the kind and of its list.
    names: HashMap<(String, String, String), (String, String)>,
}

fn build_schemas(flavor: Flavor, kinds: &[(&'static ResourceType, &'static str)]) -> Schemas {
    let mut generator = flavor.generator();
    let prefix = flavor.ref_prefix();
    // Shared bodies referenced by the operations.
    generator.subschema_for::<meta::Status>();
    generator.subschema_for::<meta::DeleteOptions>();
    generator.subschema_for::<meta::ObjectMeta>();
    generator.subschema_for::<meta::ListMeta>();
    let mut names = HashMap::new();
    let mut gvks: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut lists: Vec<(String, String, Value)> = Vec::new();
    let mut generic: Vec<(String, Value)> = Vec::new();
    let mut push_kind =
        |names: &mut HashMap<_, _>, generator: &mut SchemaGenerator, group: &str, version: &str, kind: &str| {
            let (name, list_kind) = match known(group, version, kind) {
                Some(k) => {
                    let r = (k.schema)(generator);
                    let name = r["$ref"].as_str().and_then(|s| s.strip_prefix(prefix)).unwrap_or_default().to_string();
                    let list_kind = if k.list_kind.is_empty() { String::new() } else { k.list_kind.to_string() };
                    (name, list_kind)
                }
                None => {
                    let name = fallback_schema_name(group, version, kind);
                    generic.push((name.clone(), generic_kind_schema(prefix, kind)));
                    (name, format!("{kind}List"))
                }
            };
            gvks.entry(name.clone()).or_default().push(gvk(group, version, kind));
            let list_name = if list_kind.is_empty() {
                String::new()
            } else {
                let list_name = format!("{}List", name);
                gvks.entry(list_name.clone()).or_default().push(gvk(group, version, &list_kind));
                lists.push((list_name.clone(), list_kind, json!({ "$ref": format!("{prefix}{name}") })));
                list_name
            };
            names.insert((group.to_string(), version.to_string(), kind.to_string()), (name, list_name));
        };
    for (t, version) in kinds {
        push_kind(&mut names, &mut generator, t.group, version, t.kind);
        if t.has_subresource(Subresource::Scale) {
            push_kind(&mut names, &mut generator, "autoscaling", "v1", "Scale");
        }
    }
    let mut defs = generator.take_definitions(true);
    for (name, schema) in generic {
        defs.entry(name).or_insert(schema);
    }
    for (list_name, list_kind, item_ref) in lists {
        defs.entry(list_name).or_insert_with(|| list_schema(prefix, &list_kind, item_ref));
    }
    for (name, list) in gvks {
        if let Some(Value::Object(schema)) = defs.get_mut(&name) {
            schema.insert("x-kubernetes-group-version-kind".into(), Value::Array(list));
        }
    }
    patch_meta::annotate(&mut defs);
    defs.sort_keys();
    Schemas { defs, names }
}

fn type_meta_properties() -> Map<String, Value> {
    let mut p = Map::new();
    p.insert(
        "apiVersion".into(),
        json!({ "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources", "type": "string" }),
    );
    p.insert(
        "kind".into(),
        json!({ "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds", "type": "string" }),
    );
    p
}

fn list_schema(prefix: &str, list_kind: &str, item_ref: Value) -> Value {
    let mut p = type_meta_properties();
    p.insert("items".into(), json!({ "description": format!("List of {}.", list_kind.trim_end_matches("List")), "type": "array", "items": item_ref }));
    p.insert(
        "metadata".into(),
        json!({ "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds", "allOf": [{ "$ref": format!("{prefix}io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta") }] }),
    );
    json!({
        "description": format!("{list_kind} is a list of {}.", list_kind.trim_end_matches("List")),
        "type": "object",
        "required": ["items"],
        "properties": p,
    })
}

/// A kind Berth serves without a typed schema (e.g. a custom resource): any fields allowed.
fn generic_kind_schema(prefix: &str, kind: &str) -> Value {
    let mut p = type_meta_properties();
    p.insert(
        "metadata".into(),
        json!({ "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata", "allOf": [{ "$ref": format!("{prefix}io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta") }] }),
    );
    json!({
        "description": format!("{kind} is a resource served without a published schema."),
        "type": "object",
        "properties": p,
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

// ---------------------------------------------------------------------------------------------
// Paths and operations.

/// A query or path parameter: name, location, description, JSON type.
struct Param {
    name: &'static str,
    location: &'static str,
    description: &'static str,
    type_: &'static str,
}

const fn query(name: &'static str, type_: &'static str, description: &'static str) -> Param {
    Param { name, location: "query", description, type_ }
}

const PRETTY: Param = query(
    "pretty",
    "string",
    "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget).",
);
const DRY_RUN: Param = query(
    "dryRun",
    "string",
    "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed",
);
const FIELD_MANAGER: Param = query(
    "fieldManager",
    "string",
    "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.",
);
const FIELD_VALIDATION: Param = query(
    "fieldValidation",
    "string",
    "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. This is the default behavior prior to v1.23. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.",
);
const FORCE: Param = query(
    "force",
    "boolean",
    "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.",
);
const GRACE: Param = query(
    "gracePeriodSeconds",
    "integer",
    "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used. Defaults to a per object value if not specified. zero means delete immediately.",
);
const ORPHAN: Param = query(
    "orphanDependents",
    "boolean",
    "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned. If true/false, the \"orphan\" finalizer will be added to/removed from the object's finalizers list. Either this field or PropagationPolicy may be set, but not both.",
);
const PROPAGATION: Param = query(
    "propagationPolicy",
    "string",
    "Whether and how garbage collection will be performed. Either this field or OrphanDependents may be set, but not both. The default policy is decided by the existing finalizer set in the metadata.finalizers and the resource-specific default policy. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow the garbage collector to delete the dependents in the background; 'Foreground' - a cascading policy that deletes all dependents in the foreground.",
);
const LIST_PARAMS: &[Param] = &[
    query(
        "allowWatchBookmarks",
        "boolean",
        "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion. Clients should not assume bookmarks are returned at any specific interval, nor may they assume the server will send any BOOKMARK event during a session. If this is not a watch, this field is ignored.",
    ),
    query(
        "continue",
        "string",
        "The continue option should be set when retrieving more results from the server. Since this value is server defined, clients may only use the continue value from a previous query result with identical query parameters (except for the value of continue) and the server may reject a continue value it does not recognize.",
    ),
    query(
        "fieldSelector",
        "string",
        "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
    ),
    query(
        "labelSelector",
        "string",
        "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
    ),
    query(
        "limit",
        "integer",
        "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results.",
    ),
    query(
        "resourceVersion",
        "string",
        "resourceVersion sets a constraint on what resource versions a request may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details. Defaults to unset",
    ),
    query(
        "resourceVersionMatch",
        "string",
        "resourceVersionMatch determines how resourceVersion is applied to list calls. It is highly recommended that resourceVersionMatch be set for list calls where resourceVersion is set See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details. Defaults to unset",
    ),
    query(
        "sendInitialEvents",
        "boolean",
        "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection.",
    ),
    query(
        "timeoutSeconds",
        "integer",
        "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity.",
    ),
    query(
        "watch",
        "boolean",
        "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion.",
    ),
];
const NAME_PARAM: Param =
    Param { name: "name", location: "path", description: "name of the resource", type_: "string" };
const NAMESPACE_PARAM: Param = Param {
    name: "namespace",
    location: "path",
    description: "object name and auth scope, such as for teams and projects",
    type_: "string",
};

fn param_json(flavor: Flavor, p: &Param) -> Value {
    let mut v = json!({ "name": p.name, "in": p.location, "description": p.description });
    if p.location == "path" {
        v["required"] = Value::Bool(true);
    }
    match flavor {
        Flavor::V3 => v["schema"] = json!({ "type": p.type_, "uniqueItems": true }),
        Flavor::V2 => {
            v["type"] = Value::String(p.type_.to_string());
            v["uniqueItems"] = Value::Bool(true);
        }
    }
    v
}

const JSON_TYPES: &[&str] = &["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"];
const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];
/// Custom resources take no strategic merge patch (kubectl then sends a merge patch).
const GENERIC_PATCH_TYPES: &[&str] =
    &["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"];

/// Everything needed to write one operation of a path.
struct Op<'a> {
    /// The HTTP method the operation is under (`get`, `put`, ...).
    method: &'static str,
    action: &'static str,
    operation_id: String,
    description: String,
    params: &'a [&'a Param],
    /// The request body schema name and content types.
    body: Option<(&'a str, &'a [&'a str])>,
    /// Response codes with their schema name.
    responses: &'a [(&'static str, &'a str)],
}

impl<'a> Op<'a> {
    /// An operation without parameters or request body.
    fn new(
        method: &'static str,
        action: &'static str,
        operation_id: String,
        description: String,
        responses: &'a [(&'static str, &'a str)],
    ) -> Self {
        Op { method, action, operation_id, description, params: &[], body: None, responses }
    }

    /// The same operation with query parameters.
    fn params(self, params: &'a [&'a Param]) -> Self {
        Op { params, ..self }
    }

    /// The same operation with a request body of schema `schema` in content `types`.
    fn body(self, schema: &'a str, types: &'a [&'a str]) -> Self {
        Op { body: Some((schema, types)), ..self }
    }
}

/// What every operation of one path shares: the document flavor, the
/// `x-kubernetes-group-version-kind` and the tag.
struct PathCtx<'a> {
    flavor: Flavor,
    gvk: &'a Value,
    tag: &'a str,
}

impl PathCtx<'_> {
    /// A path item: its operations in order, then the path-level `parameters`.
    fn path_item(&self, ops: &[Op<'_>], params: &[&Param]) -> Value {
        let mut item = Map::new();
        for op in ops {
            item.insert(op.method.into(), op_json(self, op));
        }
        item.insert("parameters".into(), Value::Array(params.iter().map(|p| param_json(self.flavor, p)).collect()));
        Value::Object(item)
    }
}

fn op_json(ctx: &PathCtx<'_>, op: &Op<'_>) -> Value {
    let flavor = ctx.flavor;
    let prefix = flavor.ref_prefix();
    let mut params: Vec<Value> = op.params.iter().map(|p| param_json(flavor, p)).collect();
    let mut o = Map::new();
    o.insert("tags".into(), json!([ctx.tag]));
    o.insert("description".into(), Value::String(op.description.clone()));
    o.insert("operationId".into(), Value::String(op.operation_id.clone()));
    let mut responses = Map::new();
    for (code, schema) in op.responses {
        let desc = match *code {
            "200" => "OK",
            "201" => "Created",
            "202" => "Accepted",
            _ => "",
        };
        let schema = json!({ "$ref": format!("{prefix}{schema}") });
        let r = match flavor {
            Flavor::V3 => {
                let content: Map<String, Value> =
                    JSON_TYPES.iter().map(|t| (t.to_string(), json!({ "schema": schema.clone() }))).collect();
                json!({ "description": desc, "content": content })
            }
            Flavor::V2 => json!({ "description": desc, "schema": schema }),
        };
        responses.insert(code.to_string(), r);
    }
    responses.insert("401".into(), json!({ "description": "Unauthorized" }));
    match (flavor, op.body) {
        (Flavor::V3, Some((schema, types))) => {
            let content: Map<String, Value> = types
                .iter()
                .map(|t| (t.to_string(), json!({ "schema": { "$ref": format!("{prefix}{schema}") } })))
                .collect();
            o.insert("requestBody".into(), json!({ "content": content, "required": true }));
        }
        (Flavor::V2, Some((schema, types))) => {
            params.insert(
                0,
                json!({ "name": "body", "in": "body", "required": true, "schema": { "$ref": format!("{prefix}{schema}") } }),
            );
            o.insert("consumes".into(), json!(types));
        }
        _ => {}
    }
    if flavor == Flavor::V2 {
        o.insert("produces".into(), json!(JSON_TYPES));
        o.insert("schemes".into(), json!(["https"]));
    }
    if !params.is_empty() {
        o.insert("parameters".into(), Value::Array(params));
    }
    o.insert("responses".into(), Value::Object(responses));
    o.insert("x-kubernetes-action".into(), Value::String(op.action.to_string()));
    o.insert("x-kubernetes-group-version-kind".into(), ctx.gvk.clone());
    Value::Object(o)
}

/// `AppsV1`, `CoreV1`, `NetworkingV1` as upstream operation ids spell the group-version.
fn op_id_gv(group: &str, version: &str) -> String {
    let g = group.split('.').next().unwrap_or_default();
    let g = if g.is_empty() { "core" } else { g };
    let mut s = String::new();
    for word in [g, version] {
        let mut chars = word.chars();
        if let Some(c) = chars.next() {
            s.extend(c.to_uppercase());
            s.push_str(chars.as_str());
        }
    }
    s
}

/// Adds the paths of one kind in one version.
fn add_kind_paths(flavor: Flavor, paths: &mut Map<String, Value>, t: &ResourceType, version: &str, schemas: &Schemas) {
    let key = (t.group.to_string(), version.to_string(), t.kind.to_string());
    let Some((name, list_name)) = schemas.names.get(&key) else { return };
    let base = if t.group.is_empty() { format!("/api/{version}") } else { format!("/apis/{}/{version}", t.group) };
    let scope = if t.namespaced { "/namespaces/{namespace}" } else { "" };
    let ns_word = if t.namespaced { "Namespaced" } else { "" };
    let gv_id = op_id_gv(t.group, version);
    let tag = format!(
        "{}_{version}",
        if t.group.is_empty() { "core" } else { t.group.split('.').next().unwrap_or_default() }
    );
    let kind = t.kind;
    let gvk_value = gvk(t.group, version, kind);
    let status = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
    let delete_options = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
    let patch = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
    let path_params: Vec<&Param> =
        if t.namespaced { vec![&NAME_PARAM, &NAMESPACE_PARAM, &PRETTY] } else { vec![&NAME_PARAM, &PRETTY] };
    let collection_params: Vec<&Param> = if t.namespaced { vec![&NAMESPACE_PARAM, &PRETTY] } else { vec![&PRETTY] };
    let write_params: [&Param; 3] = [&DRY_RUN, &FIELD_MANAGER, &FIELD_VALIDATION];
    let patch_params: [&Param; 4] = [&DRY_RUN, &FIELD_MANAGER, &FIELD_VALIDATION, &FORCE];
    let delete_params: [&Param; 4] = [&DRY_RUN, &GRACE, &ORPHAN, &PROPAGATION];
    let patch_types = if known(t.group, version, kind).is_some() { PATCH_TYPES } else { GENERIC_PATCH_TYPES };
    let list_params: Vec<&Param> = LIST_PARAMS.iter().collect();
    let mut delete_collection_params: Vec<&Param> =
        LIST_PARAMS.iter().filter(|p| p.name != "watch" && p.name != "allowWatchBookmarks").collect();
    delete_collection_params.extend(delete_params.iter().copied());

    let ctx = PathCtx { flavor, gvk: &gvk_value, tag: &tag };
    let id = format!("{gv_id}{ns_word}{kind}");

    // Item path: get, put, delete, patch.
    let item = ctx.path_item(
        &[
            Op::new("get", "get", format!("read{id}"), format!("read the specified {kind}"), &[("200", name)]),
            Op::new(
                "put",
                "put",
                format!("replace{id}"),
                format!("replace the specified {kind}"),
                &[("200", name), ("201", name)],
            )
            .params(&write_params)
            .body(name, JSON_TYPES),
            Op::new(
                "delete",
                "delete",
                format!("delete{id}"),
                format!("delete a {kind}"),
                &[("200", status), ("202", status)],
            )
            .params(&delete_params)
            .body(delete_options, JSON_TYPES),
            Op::new(
                "patch",
                "patch",
                format!("patch{id}"),
                format!("partially update the specified {kind}"),
                &[("200", name), ("201", name)],
            )
            .params(&patch_params)
            .body(patch, patch_types),
        ],
        &path_params,
    );
    paths.insert(format!("{base}{scope}/{}/{{name}}", t.plural), item);

    // Collection path: list, create, deletecollection.
    if !list_name.is_empty() {
        let list_description = format!("list or watch objects of kind {kind}");
        let coll = ctx.path_item(
            &[
                Op::new("get", "list", format!("list{id}"), list_description.clone(), &[("200", list_name)])
                    .params(&list_params),
                Op::new(
                    "post",
                    "post",
                    format!("create{id}"),
                    format!("create a {kind}"),
                    &[("200", name), ("201", name), ("202", name)],
                )
                .params(&write_params)
                .body(name, JSON_TYPES),
                Op::new(
                    "delete",
                    "deletecollection",
                    format!("deletecollection{id}"),
                    format!("delete collection of {kind}"),
                    &[("200", status)],
                )
                .params(&delete_collection_params)
                .body(delete_options, JSON_TYPES),
            ],
            &collection_params,
        );
        paths.insert(format!("{base}{scope}/{}", t.plural), coll);
        if t.namespaced {
            let all = ctx.path_item(
                &[Op::new(
                    "get",
                    "list",
                    format!("list{gv_id}{kind}ForAllNamespaces"),
                    list_description,
                    &[("200", list_name)],
                )
                .params(&list_params)],
                &[&PRETTY],
            );
            paths.insert(format!("{base}/{}", t.plural), all);
        }
    }

    // Subresources with a body of their own: status (the kind itself) and scale (autoscaling/v1).
    let subs: [(Subresource, &str, Value, &str); 2] = [
        (Subresource::Status, name.as_str(), gvk_value.clone(), "Status"),
        (Subresource::Scale, "io.k8s.api.autoscaling.v1.Scale", gvk("autoscaling", "v1", "Scale"), "Scale"),
    ];
    for (sub, body, sub_gvk, word) in subs {
        if !t.has_subresource(sub) {
            continue;
        }
        let sub_ctx = PathCtx { gvk: &sub_gvk, ..ctx };
        let what = format!("{} of the specified {kind}", sub.name());
        let item = sub_ctx.path_item(
            &[
                Op::new("get", "get", format!("read{id}{word}"), format!("read {what}"), &[("200", body)]),
                Op::new(
                    "put",
                    "put",
                    format!("replace{id}{word}"),
                    format!("replace {what}"),
                    &[("200", body), ("201", body)],
                )
                .params(&write_params)
                .body(body, JSON_TYPES),
                Op::new(
                    "patch",
                    "patch",
                    format!("patch{id}{word}"),
                    format!("partially update {what}"),
                    &[("200", body), ("201", body)],
                )
                .params(&patch_params)
                .body(patch, patch_types),
            ],
            &path_params,
        );
        paths.insert(format!("{base}{scope}/{}/{{name}}/{}", t.plural, sub.name()), item);
    }
}

/// The `Patch` body schema (upstream's `io.k8s.apimachinery.pkg.apis.meta.v1.Patch`).
fn patch_schema() -> Value {
    json!({ "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.", "type": "object" })
}

/// The schema definitions (with `Patch`) and the paths of `kinds`, each sorted by key.
fn build_defs_and_paths(
    flavor: Flavor,
    kinds: &[(&'static ResourceType, &'static str)],
) -> (Map<String, Value>, Map<String, Value>) {
    let mut schemas = build_schemas(flavor, kinds);
    schemas.defs.insert("io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(), patch_schema());
    schemas.defs.sort_keys();
    let mut paths = Map::new();
    for (t, v) in kinds {
        add_kind_paths(flavor, &mut paths, t, v, &schemas);
    }
    paths.sort_keys();
    (schemas.defs, paths)
}

/// The `BearerToken` security scheme both document flavors declare.
fn bearer_token_scheme() -> Value {
    json!({ "type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header" })
}

fn build_v3_group_version(types: &[&'static ResourceType], group: &str, version: &str) -> Value {
    let kinds: Vec<(&'static ResourceType, &'static str)> = types
        .iter()
        .filter(|t| t.group == group)
        .filter_map(|t| t.versions.iter().find(|v| **v == version).map(|v| (*t, *v)))
        .collect();
    let (defs, paths) = build_defs_and_paths(Flavor::V3, &kinds);
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": "v1.33.0" },
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": { "BearerToken": bearer_token_scheme() },
        },
    })
}

fn build_v2(types: &[&'static ResourceType]) -> Value {
    let kinds: Vec<(&'static ResourceType, &'static str)> =
        types.iter().flat_map(|t| t.versions.iter().map(move |v| (*t, *v))).collect();
    let (defs, paths) = build_defs_and_paths(Flavor::V2, &kinds);
    json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": "v1.33.0" },
        "paths": paths,
        "definitions": defs,
        "securityDefinitions": { "BearerToken": bearer_token_scheme() },
        "security": [{ "BearerToken": [] }],
    })
}

mod patch_meta;

pub use patch_meta::{PATCH_META, PatchMeta, lookup as patch_meta};

#[cfg(test)]
mod tests;
