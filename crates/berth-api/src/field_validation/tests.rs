//! Unit tests of unknown- and duplicate-field detection.

use serde_json::json;

use super::*;

fn pod_schema() -> KindSchema {
    kind_schema("", "v1", "Pod").expect("Pod has a schema")
}

fn unknown(paths: &[&str]) -> Vec<FieldProblem> {
    paths.iter().map(|p| FieldProblem::Unknown(p.to_string())).collect()
}

#[test]
fn prune_reports_and_removes_unknown_fields_with_upstream_paths() {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "labelz": {"a": "b"}},
        "spec": {"containers": [
            {"name": "a", "image": "busybox"},
            {"name": "b", "imagee": "busybox", "resources": {"limits": {"cpu": "1"}, "limitz": {}}}
        ]},
        "extra": null
    });
    let found = pod_schema().unknown_fields(&pod);
    let problems = pod_schema().prune(&mut pod);
    assert_eq!(found, problems);
    assert_eq!(
        problems,
        unknown(&["metadata.labelz", "spec.containers[1].imagee", "spec.containers[1].resources.limitz", "extra"])
    );
    assert_eq!(
        pod,
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [
                {"name": "a", "image": "busybox"},
                {"name": "b", "resources": {"limits": {"cpu": "1"}}}
            ]}
        })
    );
}

#[test]
fn free_form_maps_and_int_or_string_values_are_never_unknown() {
    let mut deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"any/key": "v"}, "annotations": {"x.io/y": "z"},
            "managedFields": [{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:replicas": {}}}}]},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "nodeSelector": {"disk": "ssd"},
                    "containers": [{"name": "c", "image": "i",
                        "ports": [{"containerPort": 80, "name": "http"}],
                        "readinessProbe": {"httpGet": {"port": "http", "path": "/"}},
                        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": 0.1}}}]
                }
            }
        },
        "status": {"conditions": [{"type": "Available", "status": "True"}]}
    });
    let before = deploy.clone();
    let schema = kind_schema("apps", "v1", "Deployment").expect("Deployment has a schema");
    assert_eq!(schema.prune(&mut deploy), Vec::new());
    assert_eq!(deploy, before);

    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
        "data": {"spec.replica": "1", "nested": "{\"a\": 1}"}, "binaryData": {"b": "AAE="}});
    let before = cm.clone();
    assert_eq!(kind_schema("", "v1", "ConfigMap").expect("schema").prune(&mut cm), Vec::new());
    assert_eq!(cm, before);
}

#[test]
fn recursive_schemas_are_checked_at_every_depth() {
    let mut crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {"group": "stable.example.com", "names": {"plural": "crontabs", "kind": "CronTab"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {"type": "object", "propertiez": {}, "x-kubernetes-preserve-unknown-fields": true,
                    "default": {"anything": {"goes": 1}}}}}}}]}
    });
    let schema = kind_schema("apiextensions.k8s.io", "v1", "CustomResourceDefinition").expect("schema");
    assert_eq!(
        schema.prune(&mut crd),
        unknown(&["spec.versions[0].schema.openAPIV3Schema.properties.spec.propertiez"])
    );
    assert_eq!(
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["default"]["anything"]["goes"],
        1
    );
}

#[test]
fn kinds_without_a_typed_schema_have_none() {
    assert!(kind_schema("stable.example.com", "v1", "CronTab").is_none());
    assert!(kind_schema("apps", "v1beta1", "Deployment").is_none());
    assert!(kind_schema("autoscaling", "v1", "Scale").is_some());
    assert!(kind_schema("autoscaling", "v2", "HorizontalPodAutoscaler").is_some());
}

#[test]
fn decode_json_reports_unknown_and_duplicate_fields_in_document_order() {
    let body = br#"{
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "a", "name": "b", "unknownMeta": 1},
        "spec": {
            "unknown1": "v", "unknownDupe": 1, "unknownDupe": 2,
            "paused": true, "paused": false,
            "selector": {"matchLabels": {"app": "x", "app": "y"}},
            "template": {"spec": {"containers": [{"name": "c", "unknownNested": 1,
                "imagePullPolicy": "Always", "imagePullPolicy": "Never"}]}}
        }
    }"#;
    let schema = kind_schema("apps", "v1", "Deployment");
    let (value, problems) = decode_json(body, schema).expect("valid JSON");
    let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        texts,
        [
            r#"duplicate field "metadata.name""#,
            r#"unknown field "metadata.unknownMeta""#,
            r#"unknown field "spec.unknown1""#,
            r#"unknown field "spec.unknownDupe""#,
            r#"duplicate field "spec.paused""#,
            r#"duplicate field "spec.selector.matchLabels.app""#,
            r#"unknown field "spec.template.spec.containers[0].unknownNested""#,
            r#"duplicate field "spec.template.spec.containers[0].imagePullPolicy""#,
        ]
    );
    assert_eq!(value["metadata"], json!({"name": "b"}));
    assert_eq!(value["spec"]["paused"], false);
    assert_eq!(value["spec"]["selector"]["matchLabels"]["app"], "y");
    assert!(value["spec"].get("unknown1").is_none());
    assert_eq!(value["spec"]["template"]["spec"]["containers"][0], json!({"name": "c", "imagePullPolicy": "Never"}));
}

#[test]
fn decode_json_without_a_schema_keeps_everything_and_reports_duplicates() {
    let (value, problems) =
        decode_json(br#"{"spec": {"a": 1, "a": 2.5, "b": [true, null, "s"]}}"#, None).expect("json");
    assert_eq!(value, json!({"spec": {"a": 2.5, "b": [true, null, "s"]}}));
    assert_eq!(problems, vec![FieldProblem::Duplicate("spec.a".into())]);
}

#[test]
fn decode_json_matches_serde_json_on_valid_input_and_rejects_malformed_input() {
    let body = br#"{"a": [1, -2, 3.5, 18446744073709551615, "x\u00e9\n", {"b": {}}], "c": null}"#;
    let (value, problems) = decode_json(body, None).expect("json");
    assert_eq!(value, serde_json::from_slice::<Value>(body).expect("json"));
    assert!(problems.is_empty());
    assert!(decode_json(br#"{"a": 1"#, None).is_err());
    assert!(decode_json(br#"{"a": 1} x"#, None).is_err());
}

#[test]
fn structural_schemas_of_custom_resources_prune_as_the_apiextensions_apiserver_does() {
    let schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "cronSpec": {"type": "string"},
            "ports": {"type": "array", "items": {"type": "object", "properties": {"containerPort": {"type": "integer"}}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "port": {"x-kubernetes-int-or-string": true},
            "template": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}}
        }}
    }});
    let schema = compile_structural(&schema).expect("structural");
    let mut obj = json!({"apiVersion": "example.com/v1", "kind": "CronTab", "metadata": {"name": "c"},
        "spec": {"cronSpec": "* * * * *", "cronSpek": "x",
            "ports": [{"containerPort": 80, "hostPort": 1}],
            "labels": {"any": "thing"}, "free": {"a": {"b": 1}}, "port": "http",
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": 1}, "y": 2}},
        "status": {"phase": "x"}});
    assert_eq!(
        schema.prune(&mut obj),
        unknown(&["spec.cronSpek", "spec.ports[0].hostPort", "spec.template.spec.x", "spec.template.y", "status"])
    );
    assert_eq!(obj["spec"]["free"], json!({"a": {"b": 1}}));
    assert_eq!(
        obj["spec"]["template"],
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}})
    );
    assert!(compile_structural(&json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})).is_none());
}
