//! Server-side apply and update tracking cases.

use serde_json::{Value, json};

use super::{server_side_apply, track_update};
use crate::patch::{ApplyConflict, PatchError};

const T0: &str = "2026-11-22T05:00:00Z";
const T1: &str = "2026-11-22T06:00:00Z";

fn config(replicas: Option<i64>, image: &str) -> Value {
    let mut v = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": image}]}
            }
        }
    });
    if let Some(r) = replicas {
        v["spec"]["replicas"] = json!(r);
    }
    v
}

fn apply(current: Option<&Value>, applied: &Value, manager: &str, force: bool) -> Result<Value, PatchError> {
    server_side_apply("apps", "Deployment", current, applied, manager, force, T1)
}

fn entry<'a>(obj: &'a Value, manager: &str, operation: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"].as_array()?.iter().find(|e| e["manager"] == manager && e["operation"] == operation)
}

fn conflicts(r: Result<Value, PatchError>) -> (Vec<ApplyConflict>, String) {
    match r {
        Err(e @ PatchError::Conflicts(_)) => {
            let msg = e.to_string();
            let PatchError::Conflicts(cs) = e else { unreachable!() };
            (cs, msg)
        }
        other => panic!("expected conflicts, got {other:?}"),
    }
}

#[test]
fn apply_on_create_returns_the_object_with_apply_managed_fields() {
    let got = apply(None, &config(Some(3), "nginx:1.25"), "kubectl", false).unwrap();
    assert_eq!(got["spec"]["replicas"], 3);
    assert_eq!(got["metadata"]["name"], "web");
    assert_eq!(
        got["metadata"]["managedFields"],
        json!([{
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": T1,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}}}
                    }
                }
            }
        }])
    );
}

#[test]
fn reapplying_the_same_configuration_is_a_no_op() {
    let created =
        server_side_apply("apps", "Deployment", None, &config(Some(3), "nginx"), "kubectl", false, T0).unwrap();
    let again = apply(Some(&created), &config(Some(3), "nginx"), "kubectl", false).unwrap();
    assert_eq!(again, created);
    assert_eq!(entry(&again, "kubectl", "Apply").unwrap()["time"], T0);
}

#[test]
fn apply_changing_a_value_updates_it_and_the_time() {
    let created =
        server_side_apply("apps", "Deployment", None, &config(Some(3), "nginx"), "kubectl", false, T0).unwrap();
    let got = apply(Some(&created), &config(Some(3), "nginx:2"), "kubectl", false).unwrap();
    assert_eq!(got["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:2");
    assert_eq!(entry(&got, "kubectl", "Apply").unwrap()["time"], T1);
}

#[test]
fn apply_omitting_a_field_removes_it() {
    let mut cfg = config(Some(3), "nginx");
    cfg["metadata"]["labels"]["tier"] = json!("front");
    cfg["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "b"}));
    let created = apply(None, &cfg, "kubectl", false).unwrap();
    let got = apply(Some(&created), &config(None, "nginx"), "kubectl", false).unwrap();
    assert!(got["spec"].get("replicas").is_none(), "{got}");
    assert_eq!(got["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(got["spec"]["template"]["spec"]["containers"], json!([{"name": "nginx", "image": "nginx"}]));
    let fields = &entry(&got, "kubectl", "Apply").unwrap()["fieldsV1"];
    assert!(fields["f:spec"].get("f:replicas").is_none());
}

#[test]
fn a_dropped_field_another_manager_owns_is_kept() {
    let created = apply(None, &config(Some(3), "nginx"), "kubectl", false).unwrap();
    let other =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}});
    let shared = apply(Some(&created), &other, "ops", false).unwrap();
    let got = apply(Some(&shared), &config(None, "nginx"), "kubectl", false).unwrap();
    assert_eq!(got["spec"]["replicas"], 3);
    assert!(entry(&got, "ops", "Apply").unwrap()["fieldsV1"]["f:spec"].get("f:replicas").is_some());
}

#[test]
fn apply_conflicting_with_an_update_manager_is_refused_with_upstream_wording() {
    let mut created = config(Some(2), "nginx");
    track_update("apps", "Deployment", None, &mut created, "kubectl-client-side-apply", T0);
    let (cs, msg) = conflicts(apply(Some(&created), &config(Some(3), "nginx"), "kubectl", false));
    assert_eq!(
        cs,
        vec![ApplyConflict {
            manager: "kubectl-client-side-apply".into(),
            field: ".spec.replicas".into(),
            api_version: Some("apps/v1".into())
        }]
    );
    assert_eq!(
        msg,
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );
    assert_eq!(cs[0].cause_message(), "conflict with \"kubectl-client-side-apply\" using apps/v1");
}

#[test]
fn applying_the_same_value_shares_ownership() {
    let mut created = config(Some(2), "nginx");
    track_update("apps", "Deployment", None, &mut created, "kubectl-client-side-apply", T0);
    let got = apply(Some(&created), &config(Some(2), "nginx"), "kubectl", false).unwrap();
    assert!(entry(&got, "kubectl", "Apply").unwrap()["fieldsV1"]["f:spec"].get("f:replicas").is_some());
    assert!(
        entry(&got, "kubectl-client-side-apply", "Update").unwrap()["fieldsV1"]["f:spec"].get("f:replicas").is_some()
    );
}

#[test]
fn force_takes_ownership_of_conflicting_fields() {
    let mut created = config(Some(2), "nginx");
    track_update("apps", "Deployment", None, &mut created, "kubectl-client-side-apply", T0);
    let got = apply(Some(&created), &config(Some(3), "nginx:2"), "kubectl", true).unwrap();
    assert_eq!(got["spec"]["replicas"], 3);
    let old = &entry(&got, "kubectl-client-side-apply", "Update").unwrap()["fieldsV1"];
    assert!(old["f:spec"].get("f:replicas").is_none(), "{old}");
    let containers = &old["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"];
    assert!(containers.get("f:image").is_none());
    assert!(containers.get("f:name").is_some());
    assert!(entry(&got, "kubectl", "Apply").unwrap()["fieldsV1"]["f:spec"].get("f:replicas").is_some());
}

#[test]
fn scale_then_apply_conflicts_with_the_scaler() {
    let created = apply(None, &config(Some(3), "nginx"), "kubectl", false).unwrap();
    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = json!(5);
    track_update("apps", "Deployment", Some(&created), &mut scaled, "kubectl-scale", T1);
    assert!(entry(&scaled, "kubectl", "Apply").unwrap()["fieldsV1"]["f:spec"].get("f:replicas").is_none());
    assert_eq!(entry(&scaled, "kubectl-scale", "Update").unwrap()["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    let (_, msg) = conflicts(apply(Some(&scaled), &config(Some(3), "nginx"), "kubectl", false));
    assert_eq!(msg, "Apply failed with 1 conflict: conflict with \"kubectl-scale\" using apps/v1: .spec.replicas");
    // Leaving replicas out of the configuration lets the scaler keep it.
    let got = apply(Some(&scaled), &config(None, "nginx"), "kubectl", false).unwrap();
    assert_eq!(got["spec"]["replicas"], 5);
}

#[test]
fn several_conflicts_are_grouped_by_manager() {
    let created = apply(None, &config(Some(3), "nginx"), "alice", false).unwrap();
    let (cs, msg) = conflicts(apply(Some(&created), &config(Some(4), "httpd"), "bob", false));
    assert_eq!(cs.len(), 2);
    assert_eq!(
        msg,
        "Apply failed with 2 conflicts: conflicts with \"alice\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"nginx\"].image"
    );
}

#[test]
fn keyed_lists_merge_between_appliers() {
    let a = config(None, "nginx");
    let mut b = config(None, "nginx");
    b["spec"]["template"]["spec"]["containers"] = json!([{"name": "sidecar", "image": "envoy"}]);
    let created = apply(None, &a, "a", false).unwrap();
    let both = apply(Some(&created), &b, "b", false).unwrap();
    let names: Vec<&str> = both["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nginx", "sidecar"]);
    let mut a2 = config(None, "nginx");
    a2["spec"]["template"]["spec"]["containers"] = json!([]);
    let got = apply(Some(&both), &a2, "a", false).unwrap();
    assert_eq!(got["spec"]["template"]["spec"]["containers"], json!([{"name": "sidecar", "image": "envoy"}]));
}

#[test]
fn container_ports_are_keyed_by_port_and_defaulted_protocol() {
    let mut cfg = config(None, "nginx");
    cfg["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80}]);
    let created = apply(None, &cfg, "kubectl", false).unwrap();
    let fields = &entry(&created, "kubectl", "Apply").unwrap()["fieldsV1"];
    let ports = &fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"]["f:ports"];
    assert_eq!(ports, &json!({"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}));
    // The server defaults the protocol; re-applying without it still matches the item.
    let mut defaulted = created.clone();
    defaulted["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] = json!("TCP");
    let again = apply(Some(&defaulted), &cfg, "kubectl", false).unwrap();
    assert_eq!(
        again["spec"]["template"]["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}])
    );
}

#[test]
fn finalizers_are_set_items() {
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["a/b"]}, "data": {"k": "v"}});
    let got = server_side_apply("", "ConfigMap", None, &cfg, "m", false, T1).unwrap();
    assert_eq!(
        got["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:data": {"f:k": {}}, "f:metadata": {"f:finalizers": {"v:\"a/b\"": {}}}})
    );
}

#[test]
fn first_apply_to_an_object_without_managed_fields_conflicts_with_before_first_apply() {
    let current = config(Some(1), "nginx");
    let (cs, _) = conflicts(apply(Some(&current), &config(Some(3), "nginx"), "kubectl", false));
    assert_eq!(cs[0].manager, "before-first-apply");
    assert_eq!(cs[0].field, ".spec.replicas");
}

#[test]
fn apply_rejects_non_objects_and_managed_fields() {
    assert!(matches!(apply(None, &json!([1]), "m", false), Err(PatchError::BadRequest(_))));
    let mut cfg = config(None, "x");
    cfg["metadata"]["managedFields"] = json!([]);
    assert!(matches!(apply(None, &cfg, "m", false), Err(PatchError::BadRequest(_))));
}

#[test]
fn track_update_on_create_records_every_field_as_upstream() {
    let mut obj = config(Some(1), "nginx");
    obj["metadata"]["uid"] = json!("u");
    obj["status"] = json!({"replicas": 0});
    track_update("apps", "Deployment", None, &mut obj, "kubectl-create", T0);
    assert_eq!(
        obj["metadata"]["managedFields"],
        json!([{
            "manager": "kubectl-create",
            "operation": "Update",
            "apiVersion": "apps/v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}}}
                    }
                }
            }
        }])
    );
}

#[test]
fn track_update_after_server_side_apply_create_adds_nothing() {
    let mut obj = apply(None, &config(Some(3), "nginx"), "kubectl", false).unwrap();
    let before = obj.clone();
    track_update("apps", "Deployment", None, &mut obj, "kubectl", T1);
    assert_eq!(obj, before);
}

#[test]
fn track_update_moves_changed_fields_and_drops_removed_ones() {
    let mut created = config(Some(1), "nginx");
    track_update("apps", "Deployment", None, &mut created, "creator", T0);
    let mut edited = created.clone();
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    edited["metadata"]["labels"].as_object_mut().unwrap().remove("app");
    track_update("apps", "Deployment", Some(&created), &mut edited, "kubectl-edit", T1);
    let creator = &entry(&edited, "creator", "Update").unwrap()["fieldsV1"];
    assert!(creator["f:metadata"]["f:labels"].get("f:app").is_none(), "{creator}");
    assert!(
        creator["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"].get("f:image").is_none()
    );
    assert_eq!(
        entry(&edited, "kubectl-edit", "Update").unwrap()["fieldsV1"],
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {"f:image": {}}}}}}})
    );
    // A write that changes nothing leaves managedFields alone.
    let mut same = edited.clone();
    track_update("apps", "Deployment", Some(&edited), &mut same, "other", T1);
    assert_eq!(same, edited);
}

#[test]
fn status_and_server_metadata_are_never_owned() {
    let mut obj = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "resourceVersion": "5", "generation": 1,
        "creationTimestamp": "x"}, "status": {"phase": "Running"}});
    track_update("", "Pod", None, &mut obj, "m", T0);
    assert!(obj["metadata"].get("managedFields").is_none(), "{obj}");
}

#[test]
fn duplicate_keys_in_the_configuration_are_invalid() {
    let mut cfg = config(None, "a");
    cfg["spec"]["template"]["spec"]["containers"] = json!([{"name": "x", "image": "a"}, {"name": "x", "image": "b"}]);
    match apply(None, &cfg, "m", false) {
        Err(PatchError::Invalid(msg)) => assert_eq!(
            msg,
            "failed to create typed patch object (apps/v1, Kind=Deployment): \
             .spec.template.spec.containers: duplicate entries for key [name=\"x\"]"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn atomic_lists_are_replaced_whole_and_owned_whole() {
    let mut cfg = config(None, "nginx");
    cfg["spec"]["template"]["spec"]["tolerations"] =
        json!([{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]);
    let created = apply(None, &cfg, "alice", false).unwrap();
    let fields = &entry(&created, "alice", "Apply").unwrap()["fieldsV1"]["f:spec"]["f:template"]["f:spec"];
    assert_eq!(fields["f:tolerations"], json!({}));
    let mut other = config(None, "nginx");
    other["spec"]["template"]["spec"]["tolerations"] = json!([{"key": "c", "operator": "Exists"}]);
    let (cs, _) = conflicts(apply(Some(&created), &other, "bob", false));
    assert_eq!(cs[0].field, ".spec.template.spec.tolerations");
    assert_eq!(cs[0].api_version, None);
    let forced = apply(Some(&created), &other, "bob", true).unwrap();
    assert_eq!(forced["spec"]["template"]["spec"]["tolerations"], json!([{"key": "c", "operator": "Exists"}]));
}

#[test]
fn custom_resources_merge_maps_and_replace_lists() {
    let cr = |items: Value, size: i64| json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"items": items, "size": size}});
    let created = server_side_apply("example.com", "Widget", None, &cr(json!([1, 2]), 1), "m", false, T0).unwrap();
    assert_eq!(created["metadata"]["managedFields"][0]["fieldsV1"], json!({"f:spec": {"f:items": {}, "f:size": {}}}));
    let got = server_side_apply("example.com", "Widget", Some(&created), &cr(json!([3]), 2), "m", false, T1).unwrap();
    assert_eq!(got["spec"], json!({"items": [3], "size": 2}));
}

#[test]
fn apply_ignores_status_for_ownership_and_conflicts() {
    let mut created = config(Some(1), "nginx");
    created["status"] = json!({"replicas": 1});
    track_update("apps", "Deployment", None, &mut created, "controller", T0);
    let mut cfg = config(Some(1), "nginx");
    cfg["status"] = json!({"replicas": 7});
    let got = apply(Some(&created), &cfg, "kubectl", false).unwrap();
    assert!(entry(&got, "kubectl", "Apply").unwrap()["fieldsV1"].get("f:status").is_none());
}
