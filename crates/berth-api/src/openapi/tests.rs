//! Tests of the generated OpenAPI documents: index, group-version documents, GVK extensions and
//! reference integrity.

use serde_json::Value;

use super::*;
use crate::Strategy;

struct NoStrategy;
impl Strategy for NoStrategy {}

static DEPLOYMENTS: ResourceType = ResourceType {
    group: "apps",
    versions: &["v1"],
    storage_version: "v1",
    kind: "Deployment",
    plural: "deployments",
    singular: "deployment",
    short_names: &["deploy"],
    categories: &["all"],
    namespaced: true,
    subresources: &[Subresource::Status, Subresource::Scale],
    strategy: &NoStrategy,
};

static NODES: ResourceType = ResourceType {
    group: "",
    versions: &["v1"],
    storage_version: "v1",
    kind: "Node",
    plural: "nodes",
    singular: "node",
    short_names: &["no"],
    categories: &[],
    namespaced: false,
    subresources: &[Subresource::Status],
    strategy: &NoStrategy,
};

static WIDGETS: ResourceType = ResourceType {
    group: "example.com",
    versions: &["v1alpha1"],
    storage_version: "v1alpha1",
    kind: "Widget",
    plural: "widgets",
    singular: "widget",
    short_names: &[],
    categories: &[],
    namespaced: true,
    subresources: &[],
    strategy: &NoStrategy,
};

fn local_registry() -> Registry {
    let mut r = Registry::empty();
    r.register(&NODES);
    r.register(&DEPLOYMENTS);
    r.register(&WIDGETS);
    r
}

/// Every `$ref` in the document, with the JSON pointer it names.
fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

fn assert_no_dangling_refs(doc: &Value) {
    let mut refs = Vec::new();
    collect_refs(doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("non-local ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
    }
}

#[test]
fn index_lists_every_served_group_version_with_a_hash() {
    let index = v3_index(&local_registry());
    let paths = index["paths"].as_object().expect("paths");
    let keys: Vec<&str> = paths.keys().map(String::as_str).collect();
    assert_eq!(keys, ["api/v1", "apis/apps/v1", "apis/example.com/v1alpha1"]);
    let url = paths["apis/apps/v1"]["serverRelativeURL"].as_str().expect("url");
    let hash = url.strip_prefix("/openapi/v3/apis/apps/v1?hash=").expect("url shape");
    assert_eq!(hash.len(), 64);
    // Deterministic: a second registry with the same content gives the same hash.
    assert_eq!(v3_index(&local_registry()), index);
    let (_, h) = v3_group_version_json(&local_registry(), url).expect("doc by url");
    assert_eq!(h, hash);
}

#[test]
fn apps_v1_document_has_deployment_schema_with_gvk_and_reachable_template() {
    let doc = v3_group_version(&local_registry(), "apis/apps/v1").expect("apps/v1");
    assert_eq!(doc["openapi"], "3.0.0");
    let schemas = &doc["components"]["schemas"];
    let deployment = &schemas["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        deployment["x-kubernetes-group-version-kind"],
        serde_json::json!([{ "group": "apps", "kind": "Deployment", "version": "v1" }])
    );
    // spec -> DeploymentSpec -> template -> PodTemplateSpec -> spec -> PodSpec, all present.
    let spec_ref = deployment["properties"]["spec"]["allOf"][0]["$ref"].as_str().expect("spec ref");
    assert_eq!(spec_ref, "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec");
    let template_ref = schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["template"]["allOf"][0]["$ref"]
        .as_str()
        .expect("template ref");
    assert_eq!(template_ref, "#/components/schemas/io.k8s.api.core.v1.PodTemplateSpec");
    assert!(schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"].is_object());
    assert_eq!(
        schemas["io.k8s.api.apps.v1.DeploymentList"]["x-kubernetes-group-version-kind"][0]["kind"],
        "DeploymentList"
    );
    assert_eq!(
        schemas["io.k8s.api.autoscaling.v1.Scale"]["x-kubernetes-group-version-kind"][0]["group"],
        "autoscaling"
    );
    assert_no_dangling_refs(&doc);
}

#[test]
fn every_patch_operation_has_gvk_and_field_validation() {
    let doc = v3_group_version(&local_registry(), "/openapi/v3/apis/apps/v1?hash=x").expect("apps/v1");
    let item = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
    for method in ["get", "put", "patch", "delete"] {
        assert_eq!(item[method]["x-kubernetes-group-version-kind"]["kind"], "Deployment", "{method}");
    }
    let coll = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"];
    assert_eq!(coll["get"]["x-kubernetes-action"], "list");
    assert_eq!(coll["post"]["x-kubernetes-action"], "post");
    assert_eq!(coll["delete"]["x-kubernetes-action"], "deletecollection");
    assert!(doc["paths"]["/apis/apps/v1/deployments"]["get"].is_object());
    let mut patches = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if let Some(patch) = item.get("patch") {
            patches += 1;
            assert!(patch["x-kubernetes-group-version-kind"]["kind"].is_string(), "{path}");
            let names: Vec<&str> =
                patch["parameters"].as_array().expect("params").iter().filter_map(|p| p["name"].as_str()).collect();
            assert!(names.contains(&"fieldValidation"), "{path}");
        }
    }
    assert_eq!(patches, 3, "item, status, scale");
}

#[test]
fn core_and_unknown_kinds_are_documented_without_dangling_refs() {
    let core = v3_group_version(&local_registry(), "api/v1").expect("api/v1");
    assert!(core["paths"]["/api/v1/nodes/{name}"]["patch"].is_object());
    assert!(core["paths"]["/api/v1/nodes/{name}/status"]["patch"].is_object());
    assert_eq!(
        core["components"]["schemas"]["io.k8s.api.core.v1.Node"]["x-kubernetes-group-version-kind"][0]["kind"],
        "Node"
    );
    assert_no_dangling_refs(&core);
    let widgets = v3_group_version(&local_registry(), "apis/example.com/v1alpha1").expect("widgets");
    assert_eq!(
        widgets["components"]["schemas"]["com.example.v1alpha1.Widget"]["x-kubernetes-group-version-kind"][0]["kind"],
        "Widget"
    );
    assert_no_dangling_refs(&widgets);
    assert!(v3_group_version(&local_registry(), "apis/nope/v1").is_none());
}

#[test]
fn v2_is_swagger_with_definitions_and_gvk() {
    let doc = v2(&local_registry());
    assert_eq!(doc["swagger"], "2.0");
    let deployment = &doc["definitions"]["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(deployment["x-kubernetes-group-version-kind"][0]["version"], "v1");
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(patch["parameters"][0]["in"], "body");
    assert_no_dangling_refs(&doc);
    let text = serde_json::to_string(&doc).expect("serialize");
    assert!(!text.contains("#/components/"));
}

#[test]
fn builtin_registry_documents_have_no_dangling_refs() {
    let registry = Registry::builtin();
    let index = v3_index(&registry);
    for gv in index["paths"].as_object().expect("paths").keys() {
        let doc = v3_group_version(&registry, gv).expect("doc");
        assert_no_dangling_refs(&doc);
    }
}

#[test]
fn strategic_merge_metadata_is_published_for_kubectl_apply() {
    let doc = v3_group_version(&local_registry(), "apis/apps/v1").expect("apps/v1");
    let schemas = &doc["components"]["schemas"];
    let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(
        schemas["io.k8s.api.core.v1.Container"]["properties"]["ports"]["x-kubernetes-patch-merge-key"],
        "containerPort"
    );
    assert_eq!(
        schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"]["x-kubernetes-patch-strategy"],
        "retainKeys"
    );
    // kubectl computes a strategic merge patch only when the patch operation accepts one.
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert!(patch["requestBody"]["content"]["application/strategic-merge-patch+json"].is_object());
    let widgets = v3_group_version(&local_registry(), "apis/example.com/v1alpha1").expect("widgets");
    let patch = &widgets["paths"]["/apis/example.com/v1alpha1/namespaces/{namespace}/widgets/{name}"]["patch"];
    assert!(patch["requestBody"]["content"]["application/strategic-merge-patch+json"].is_null());
    assert!(patch["requestBody"]["content"]["application/merge-patch+json"].is_object());
    assert_eq!(patch_meta("io.k8s.api.core.v1.Container", "env").and_then(|p| p.merge_key), Some("name"));
    // Every entry names a real schema property.
    let all = v2(&Registry::builtin());
    for p in PATCH_META {
        if let Some(def) = all["definitions"].get(p.schema) {
            assert!(def["properties"][p.field].is_object(), "{}.{}", p.schema, p.field);
        }
    }
}
