//! Strategic merge patch cases, including the exact bodies kubectl sends.

use serde_json::{Value, json};

use super::apply_strategic_merge_patch;
use crate::patch::PatchError;

fn deployment(containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers, "tolerations": [{"key": "a", "operator": "Exists"}]}
            }
        }
    })
}

fn nginx() -> Value {
    json!({
        "name": "nginx",
        "image": "nginx:1.25",
        "ports": [{"containerPort": 80, "protocol": "TCP"}],
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        "resources": {}
    })
}

fn sidecar() -> Value {
    json!({"name": "sidecar", "image": "busybox"})
}

fn deploy(patch: Value) -> Result<Value, PatchError> {
    apply_strategic_merge_patch("apps", "Deployment", &deployment(json!([nginx(), sidecar()])), &patch)
}

fn containers(v: &Value) -> &Vec<Value> {
    v["spec"]["template"]["spec"]["containers"].as_array().expect("containers")
}

fn names(list: &[Value], key: &str) -> Vec<String> {
    list.iter().map(|c| c[key].as_str().unwrap_or_default().to_string()).collect()
}

#[test]
fn kubectl_set_image_body_changes_only_that_container() {
    let current = deployment(json!([{"name": "a", "image": "old", "ports": [{"containerPort": 80}]}]));
    let patch: Value = serde_json::from_str(
        r#"{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"a"}],"containers":[{"image":"x","name":"a"}]}}}}"#,
    )
    .unwrap();
    let got = apply_strategic_merge_patch("apps", "Deployment", &current, &patch).unwrap();
    assert_eq!(containers(&got), &vec![json!({"name": "a", "image": "x", "ports": [{"containerPort": 80}]})]);
    let mut want = current.clone();
    want["spec"]["template"]["spec"]["containers"][0]["image"] = json!("x");
    assert_eq!(got, want);
}

#[test]
fn kubectl_set_image_on_second_container_keeps_order() {
    let patch = json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"nginx"},{"name":"sidecar"}],
        "containers":[{"image":"busybox:2","name":"sidecar"}]}}}});
    let got = deploy(patch).unwrap();
    assert_eq!(names(containers(&got), "name"), ["nginx", "sidecar"]);
    assert_eq!(containers(&got)[1]["image"], "busybox:2");
    assert_eq!(containers(&got)[0], nginx());
}

#[test]
fn kubectl_apply_three_way_patch_with_nulls_deletes_and_element_order() {
    // What `kubectl apply` sends after the user dropped env B, the sidecar and replicas and
    // bumped the image.
    let patch: Value = serde_json::from_str(
        r#"{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}\n"}},
        "spec":{"replicas":null,"template":{"spec":{"$setElementOrder/containers":[{"name":"nginx"}],
        "containers":[{"$setElementOrder/env":[{"name":"A"}],"env":[{"$patch":"delete","name":"B"}],"image":"nginx:1.26","name":"nginx"},
        {"$patch":"delete","name":"sidecar"}]}}}}"#,
    )
    .unwrap();
    let got = deploy(patch).unwrap();
    assert!(got["spec"].get("replicas").is_none());
    assert_eq!(got["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"], "{}\n");
    let cs = containers(&got);
    assert_eq!(names(cs, "name"), ["nginx"]);
    assert_eq!(cs[0]["image"], "nginx:1.26");
    assert_eq!(cs[0]["env"], json!([{"name": "A", "value": "1"}]));
    assert_eq!(cs[0]["ports"], json!([{"containerPort": 80, "protocol": "TCP"}]));
    // No directive leaks into the stored object.
    assert!(!got.to_string().contains('$'), "{got}");
}

#[test]
fn kubectl_apply_adding_a_container_and_a_port() {
    let patch = json!({"spec":{"template":{"spec":{
        "$setElementOrder/containers":[{"name":"init"},{"name":"nginx"},{"name":"sidecar"}],
        "containers":[{"name":"init","image":"alpine"},
            {"$setElementOrder/ports":[{"containerPort":80},{"containerPort":443}],"name":"nginx","ports":[{"containerPort":443}]}]}}}});
    let got = deploy(patch).unwrap();
    let cs = containers(&got);
    assert_eq!(names(cs, "name"), ["init", "nginx", "sidecar"]);
    assert_eq!(cs[1]["ports"], json!([{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}]));
}

#[test]
fn table_of_strategic_merge_cases() {
    struct Case {
        name: &'static str,
        group: &'static str,
        kind: &'static str,
        current: Value,
        patch: Value,
        want: Value,
    }
    let cases = [
        Case {
            name: "null deletes a map key and unmatched nulls are dropped",
            group: "",
            kind: "ConfigMap",
            current: json!({"data": {"a": "1", "b": "2"}}),
            patch: json!({"data": {"a": null, "c": null, "d": "4"}}),
            want: json!({"data": {"b": "2", "d": "4"}}),
        },
        Case {
            name: "env merged by name, new entries appended",
            group: "",
            kind: "Pod",
            current: json!({"spec": {"containers": [{"name": "c", "env": [{"name": "A", "value": "1"}]}]}}),
            patch: json!({"spec": {"containers": [{"name": "c", "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "9"}]}]}}),
            want: json!({"spec": {"containers": [{"name": "c", "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "9"}]}]}}),
        },
        Case {
            name: "tolerations are replaced",
            group: "",
            kind: "Pod",
            current: json!({"spec": {"tolerations": [{"key": "a"}, {"key": "b"}]}}),
            patch: json!({"spec": {"tolerations": [{"key": "c"}]}}),
            want: json!({"spec": {"tolerations": [{"key": "c"}]}}),
        },
        Case {
            name: "finalizers are a set",
            group: "",
            kind: "Pod",
            current: json!({"metadata": {"finalizers": ["a", "b"]}}),
            patch: json!({"metadata": {"finalizers": ["b", "c"]}}),
            want: json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
        },
        Case {
            name: "deleteFromPrimitiveList and setElementOrder on finalizers",
            group: "apps",
            kind: "Deployment",
            current: json!({"metadata": {"finalizers": ["a", "b"]}}),
            patch: json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "$setElementOrder/finalizers": ["c", "b"], "finalizers": ["c"]}}),
            want: json!({"metadata": {"finalizers": ["c", "b"]}}),
        },
        Case {
            name: "map $patch replace",
            group: "",
            kind: "Pod",
            current: json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            patch: json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
            want: json!({"metadata": {"labels": {"c": "3"}}}),
        },
        Case {
            name: "map $patch delete",
            group: "",
            kind: "Pod",
            current: json!({"spec": {"affinity": {"nodeAffinity": {}}, "nodeName": "n"}}),
            patch: json!({"spec": {"affinity": {"$patch": "delete"}}}),
            want: json!({"spec": {"affinity": {}, "nodeName": "n"}}),
        },
        Case {
            name: "map $patch merge merges",
            group: "",
            kind: "Pod",
            current: json!({"metadata": {"labels": {"a": "1"}}}),
            patch: json!({"metadata": {"labels": {"$patch": "merge", "b": "2"}}}),
            want: json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
        },
        Case {
            name: "list $patch replace",
            group: "",
            kind: "Pod",
            current: json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            patch: json!({"spec": {"containers": [{"name": "z", "image": "i"}, {"$patch": "replace"}]}}),
            want: json!({"spec": {"containers": [{"name": "z", "image": "i"}]}}),
        },
        Case {
            name: "retainKeys clears the other keys of the strategy",
            group: "apps",
            kind: "Deployment",
            current: json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            patch: json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}}),
            want: json!({"spec": {"strategy": {"type": "Recreate"}}}),
        },
        Case {
            name: "status conditions merged by type",
            group: "apps",
            kind: "Deployment",
            current: json!({"status": {"conditions": [{"type": "Available", "status": "False"}, {"type": "Progressing", "status": "True"}]}}),
            patch: json!({"status": {"conditions": [{"type": "Available", "status": "True"}]}}),
            want: json!({"status": {"conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}]}}),
        },
        Case {
            name: "owner references merged by uid",
            group: "apps",
            kind: "ReplicaSet",
            current: json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}}),
            patch: json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}}),
            // Upstream (mergeSortedSlice) puts items new to the server before server-only ones.
            want: json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}, {"uid": "1", "name": "a"}]}}),
        },
        Case {
            name: "service ports merged by port",
            group: "",
            kind: "Service",
            current: json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}}),
            patch: json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}}),
            want: json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}}),
        },
        Case {
            name: "node addresses merged by type, taints replaced",
            group: "",
            kind: "Node",
            current: json!({"spec": {"taints": [{"key": "a"}]}, "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}),
            patch: json!({"spec": {"taints": [{"key": "b"}]}, "status": {"addresses": [{"type": "Hostname", "address": "n1"}]}}),
            want: json!({"spec": {"taints": [{"key": "b"}]}, "status": {"addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.1"}]}}),
        },
        Case {
            name: "cronjob pod template containers merged by name",
            group: "batch",
            kind: "CronJob",
            current: json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b"}]}}}}}}),
            patch: json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "2"}]}}}}}}),
            want: json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "2"}, {"name": "b"}]}}}}}}),
        },
        Case {
            name: "custom resources replace lists",
            group: "example.com",
            kind: "Widget",
            current: json!({"spec": {"items": [{"name": "a"}]}, "metadata": {"finalizers": ["x"]}}),
            patch: json!({"spec": {"items": [{"name": "b"}]}, "metadata": {"finalizers": ["y"]}}),
            want: json!({"spec": {"items": [{"name": "b"}]}, "metadata": {"finalizers": ["y", "x"]}}),
        },
        Case {
            name: "new map with directives and nulls is cleaned",
            group: "",
            kind: "Pod",
            current: json!({}),
            patch: json!({"metadata": {"labels": {"a": "1", "b": null}}, "spec": {"containers": [{"name": "a"}, {"$patch": "delete", "name": "b"}]}}),
            want: json!({"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "a"}]}}),
        },
    ];
    for case in cases {
        let got = apply_strategic_merge_patch(case.group, case.kind, &case.current, &case.patch)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(got, case.want, "{}", case.name);
    }
}

#[test]
fn table_of_strategic_merge_errors() {
    let cases = [
        (
            "unknown map directive",
            json!({"metadata": {"labels": {"$patch": "bogus"}}}),
            "unknown patch type: \"bogus\"",
        ),
        (
            "retainKeys not a list",
            json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
            "invalid patch format of retainKeys",
        ),
        (
            "patch key outside retainKeys",
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
            "invalid patch format of retainKeys",
        ),
        (
            "setElementOrder not a list",
            json!({"spec": {"template": {"spec": {"$setElementOrder/containers": {}}}}}),
            "invalid patch format of setElementOrder list",
        ),
        (
            "deleteFromPrimitiveList not a list",
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
            "invalid patch format of primitive list",
        ),
        (
            "merge key missing",
            json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
            "does not contain declared merge key: name",
        ),
        (
            "order mismatch",
            json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "nginx"}], "containers": [{"name": "other"}]}}}}),
            "doesn't match $setElementOrder list",
        ),
        ("patch not an object", json!([1]), "invalid JSON document"),
    ];
    for (name, patch, want) in cases {
        match deploy(patch) {
            Err(PatchError::BadRequest(msg)) => assert!(msg.contains(want), "{name}: {msg}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn lists_of_lists_are_invalid() {
    let got = apply_strategic_merge_patch(
        "",
        "Pod",
        &json!({"metadata": {"finalizers": [["a"]]}}),
        &json!({"metadata": {"finalizers": [["b"]]}}),
    );
    assert!(matches!(got, Err(PatchError::Invalid(m)) if m == "lists of lists are not supported"));
}

#[test]
fn kubectl_apply_switching_a_volume_source_uses_retain_keys() {
    let current = json!({"spec": {"template": {"spec": {"volumes": [
        {"name": "data", "emptyDir": {}},
        {"name": "keep", "secret": {"secretName": "s"}}
    ]}}}});
    let patch: Value = serde_json::from_str(
        r#"{"spec":{"template":{"spec":{"$setElementOrder/volumes":[{"name":"data"},{"name":"keep"}],
        "volumes":[{"$retainKeys":["configMap","name"],"configMap":{"name":"cm"},"emptyDir":null,"name":"data"}]}}}}"#,
    )
    .unwrap();
    let got = apply_strategic_merge_patch("apps", "Deployment", &current, &patch).unwrap();
    assert_eq!(
        got["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "data", "configMap": {"name": "cm"}}, {"name": "keep", "secret": {"secretName": "s"}}])
    );
}

#[test]
fn new_items_go_before_server_only_items_as_upstream() {
    let current = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
    let patch = json!({"spec": {"containers": [{"name": "c"}]}});
    let got = apply_strategic_merge_patch("", "Pod", &current, &patch).unwrap();
    assert_eq!(names(got["spec"]["containers"].as_array().unwrap(), "name"), ["c", "a", "b"]);
}

mod properties {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::apply_strategic_merge_patch;

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            (0i64..5).prop_map(Value::from),
            "[a-c]{0,2}".prop_map(Value::String),
            prop::collection::vec((0i64..3).prop_map(Value::from), 0..3).prop_map(Value::Array),
        ]
    }

    /// Objects over a few keys; with `nulls`, values may be null (patch deletions).
    fn object(nulls: bool) -> impl Strategy<Value = Value> {
        let value = leaf().prop_recursive(3, 24, 4, move |inner| {
            let v = if nulls { prop_oneof![1 => Just(Value::Null), 4 => inner].boxed() } else { inner.boxed() };
            prop::collection::btree_map("[a-d]", v, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
        });
        let v = if nulls { prop_oneof![1 => Just(Value::Null), 4 => value].boxed() } else { value.boxed() };
        prop::collection::btree_map("[a-d]", v, 0..4).prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
    }

    proptest! {
        /// Without directives or schema, a strategic merge patch is a JSON merge patch.
        #[test]
        fn strategic_merge_without_schema_is_json_merge(doc in object(false), patch in object(true)) {
            let got = apply_strategic_merge_patch("example.com", "Widget", &doc, &patch).unwrap();
            let mut want = doc.clone();
            json_patch::merge(&mut want, &patch);
            prop_assert_eq!(got, want);
        }
    }
}
