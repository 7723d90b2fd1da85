//! Registry lookups and the shape of the built-in table.

use std::collections::HashSet;

use serde_json::json;

use super::*;

#[test]
fn builtin_serves_every_listed_kind_once() {
    let reg = Registry::builtin();
    assert_eq!(reg.all().len(), 34);
    let mut seen = HashSet::new();
    for t in reg.all() {
        assert!(seen.insert((t.group, t.plural)), "duplicate {t:?}");
        assert!(t.versions.contains(&t.storage_version), "{t:?} stores a version it does not serve");
        assert_eq!(t.singular, t.kind.to_ascii_lowercase(), "{t:?}");
    }
}

#[test]
fn by_resource_finds_kinds_by_group_version_plural() {
    let reg = Registry::builtin();
    let deploy = reg.by_resource("apps", "v1", "deployments").expect("deployments");
    assert_eq!(deploy.kind, "Deployment");
    assert_eq!(deploy.short_names, &["deploy"]);
    assert!(deploy.has_subresource(Subresource::Scale));
    assert!(reg.by_resource("apps", "v2", "deployments").is_none());
    assert!(reg.by_resource("", "v1", "deployments").is_none());
    let pods = reg.by_resource("", "v1", "pods").expect("pods");
    assert_eq!(pods.categories, &["all"]);
    for sub in ["status", "binding", "eviction", "log", "exec", "attach", "portforward", "proxy"] {
        assert!(pods.subresources.iter().any(|s| s.name() == sub), "pods/{sub}");
    }
}

#[test]
fn by_kind_distinguishes_the_two_event_groups() {
    let reg = Registry::builtin();
    let core = reg.by_kind("", "Event").expect("core event");
    let events = reg.by_kind("events.k8s.io", "Event").expect("events.k8s.io event");
    assert_ne!(core.key_prefix(None), events.key_prefix(None));
    assert_eq!(core.short_names, &["ev"]);
}

#[test]
fn hpa_is_served_in_v2_and_v1_and_stored_in_v2() {
    let reg = Registry::builtin();
    let v1 = reg.by_resource("autoscaling", "v1", "horizontalpodautoscalers").expect("v1");
    let v2 = reg.by_resource("autoscaling", "v2", "horizontalpodautoscalers").expect("v2");
    assert!(std::ptr::eq(v1, v2));
    assert_eq!(v1.versions, &["v2", "v1"]);
    assert_eq!(v1.storage_version, "v2");
}

#[test]
fn short_names_are_unique_within_a_group() {
    let reg = Registry::builtin();
    let mut seen = HashSet::new();
    for t in reg.all() {
        for s in t.short_names {
            assert!(seen.insert((t.group, *s)), "short name {s} reused in group {:?}", t.group);
        }
    }
}

#[test]
fn short_names_match_kubernetes() {
    let reg = Registry::builtin();
    let cases: &[(&str, &str, &[&str])] = &[
        ("", "namespaces", &["ns"]),
        ("", "pods", &["po"]),
        ("", "nodes", &["no"]),
        ("", "services", &["svc"]),
        ("", "endpoints", &["ep"]),
        ("", "configmaps", &["cm"]),
        ("", "secrets", &[]),
        ("", "serviceaccounts", &["sa"]),
        ("", "replicationcontrollers", &["rc"]),
        ("", "persistentvolumes", &["pv"]),
        ("", "persistentvolumeclaims", &["pvc"]),
        ("apps", "replicasets", &["rs"]),
        ("apps", "statefulsets", &["sts"]),
        ("apps", "daemonsets", &["ds"]),
        ("batch", "cronjobs", &["cj"]),
        ("networking.k8s.io", "ingresses", &["ing"]),
        ("networking.k8s.io", "networkpolicies", &["netpol"]),
        ("storage.k8s.io", "storageclasses", &["sc"]),
        ("scheduling.k8s.io", "priorityclasses", &["pc"]),
        ("apiextensions.k8s.io", "customresourcedefinitions", &["crd", "crds"]),
        ("policy", "poddisruptionbudgets", &["pdb"]),
        ("autoscaling", "horizontalpodautoscalers", &["hpa"]),
    ];
    for (group, plural, short) in cases {
        let t = reg.by_resource(group, reg_version(group), plural).unwrap_or_else(|| panic!("{group}/{plural}"));
        assert_eq!(t.short_names, *short, "{group}/{plural}");
    }
}

fn reg_version(group: &str) -> &'static str {
    if group == "autoscaling" { "v2" } else { "v1" }
}

#[test]
fn scope_matches_kubernetes() {
    let reg = Registry::builtin();
    let cluster: HashSet<&str> = reg.all().iter().filter(|t| !t.namespaced).map(|t| t.plural).collect();
    let expected: HashSet<&str> = [
        "namespaces",
        "nodes",
        "persistentvolumes",
        "ingressclasses",
        "clusterroles",
        "clusterrolebindings",
        "storageclasses",
        "customresourcedefinitions",
        "priorityclasses",
    ]
    .into_iter()
    .collect();
    assert_eq!(cluster, expected);
}

#[test]
fn category_all_covers_the_workload_kinds() {
    let reg = Registry::builtin();
    let all: HashSet<&str> = reg.all().iter().filter(|t| t.categories.contains(&"all")).map(|t| t.plural).collect();
    let expected: HashSet<&str> = [
        "pods",
        "services",
        "replicationcontrollers",
        "daemonsets",
        "deployments",
        "replicasets",
        "statefulsets",
        "horizontalpodautoscalers",
        "cronjobs",
        "jobs",
    ]
    .into_iter()
    .collect();
    assert_eq!(all, expected);
}

#[test]
fn group_versions_list_core_first_then_kube_apiserver_order() {
    let reg = Registry::builtin();
    let gvs = reg.group_versions();
    assert_eq!(gvs[0], ("", "v1"));
    let groups: Vec<&str> = gvs.iter().map(|(g, _)| *g).collect();
    let pos = |g: &str| groups.iter().position(|x| *x == g).unwrap_or(usize::MAX);
    let order = [
        "",
        "apps",
        "events.k8s.io",
        "autoscaling",
        "batch",
        "networking.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "storage.k8s.io",
        "apiextensions.k8s.io",
        "scheduling.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
    ];
    for w in order.windows(2) {
        assert!(pos(w[0]) < pos(w[1]), "{} before {}", w[0], w[1]);
    }
    assert!(gvs.contains(&("autoscaling", "v2")) && gvs.contains(&("autoscaling", "v1")));
    let v2 = gvs.iter().position(|gv| *gv == ("autoscaling", "v2"));
    let v1 = gvs.iter().position(|gv| *gv == ("autoscaling", "v1"));
    assert!(v2 < v1, "preferred v2 listed first");
}

#[test]
fn resolve_accepts_plural_singular_and_short_names() {
    let reg = Registry::builtin();
    for name in ["deployments", "deployment", "deploy", "Deploy"] {
        assert_eq!(reg.resolve("apps", name).map(|t| t.kind), Some("Deployment"), "{name}");
    }
    assert!(reg.resolve("", "deploy").is_none());
}

#[test]
fn register_adds_and_replaces_custom_kinds() {
    static WIDGET: ResourceType = ResourceType {
        group: "example.com",
        versions: &["v1"],
        storage_version: "v1",
        kind: "Widget",
        plural: "widgets",
        singular: "widget",
        short_names: &["wd"],
        categories: &[],
        namespaced: true,
        subresources: &[],
        strategy: &crate::kinds::KindStrategy::BASIC,
    };
    let mut reg = Registry::builtin();
    reg.register(&WIDGET);
    reg.register(&WIDGET);
    assert_eq!(reg.all().len(), 35);
    assert_eq!(reg.by_kind("example.com", "Widget").map(|t| t.plural), Some("widgets"));
    assert!(reg.unregister("example.com", "widgets").is_some());
    assert!(reg.by_kind("example.com", "Widget").is_none());
}

#[test]
fn keys_follow_the_kubernetes_layout() {
    let reg = Registry::builtin();
    let pods = reg.by_kind("", "Pod").expect("pods");
    assert_eq!(pods.key(Some("default"), "web"), "/registry/core/pods/default/web");
    let nodes = reg.by_kind("", "Node").expect("nodes");
    assert_eq!(nodes.key(Some("ignored"), "n1"), "/registry/core/nodes/n1");
    assert_eq!(reg.by_kind("apps", "Deployment").map(|t| t.qualified_plural()).as_deref(), Some("deployments.apps"));
}

#[test]
fn validate_create_checks_metadata_with_the_kind_name_rule() {
    let reg = Registry::builtin();
    let ns = reg.by_kind("", "Namespace").expect("namespaces");
    let errs = ns.validate_create(&json!({"metadata": {"name": "a.b"}}));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].to_string().starts_with("metadata.name: Invalid value: \"a.b\": a lowercase RFC 1123 label"));
    let cm = reg.by_kind("", "ConfigMap").expect("configmaps");
    assert!(cm.validate_create(&json!({"metadata": {"name": "a.b", "namespace": "default"}})).is_empty());
    let svc = reg.by_kind("", "Service").expect("services");
    let errs = svc.validate_create(&json!({"metadata": {"name": "1web", "namespace": "default"},
        "spec": {"ports": [{"port": 80}]}}));
    assert!(errs.iter().any(|e| e.field == "metadata.name"), "{errs:?}");
    let role = reg.by_kind("rbac.authorization.k8s.io", "ClusterRole").expect("clusterroles");
    assert!(role.validate_create(&json!({"metadata": {"name": "system:node"}})).is_empty());
}

#[test]
fn validate_update_defaults_the_stored_object_first() {
    let reg = Registry::builtin();
    let pods = reg.by_kind("", "Pod").expect("pods");
    // Stored before `enableServiceLinks` was defaulted: the update carries the default now.
    let old = json!({"metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}});
    let mut new = old.clone();
    pods.default(&mut new);
    assert!(pods.validate_update(&new, &old).is_empty());
}

#[test]
fn validate_update_rejects_a_renamed_object() {
    let reg = Registry::builtin();
    let cm = reg.by_kind("", "ConfigMap").expect("configmaps");
    let old = json!({"metadata": {"name": "a", "namespace": "default"}});
    let new = json!({"metadata": {"name": "b", "namespace": "default"}});
    let errs = cm.validate_update(&new, &old);
    assert_eq!(
        errs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["metadata.name: Invalid value: \"b\": field is immutable"]
    );
}

/// A minimal valid object of each built-in kind, as a user would send it.
fn minimal(t: &ResourceType) -> Value {
    let tmpl = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    let mut job_tmpl = tmpl.clone();
    job_tmpl["spec"]["restartPolicy"] = json!("Never");
    let sel = json!({"matchLabels": {"app": "x"}});
    let body = match (t.group, t.kind) {
        ("", "ConfigMap") => json!({"data": {"k": "v"}}),
        ("", "Endpoints") => json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}),
        ("", "Event") => json!({"involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"}, "reason": "R"}),
        ("", "Namespace") => json!({}),
        ("", "Node") => json!({"spec": {}}),
        ("", "PersistentVolumeClaim") => {
            json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
        }
        ("", "PersistentVolume") => {
            json!({"spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/d"}}})
        }
        ("", "Pod") => json!({"spec": tmpl["spec"].clone()}),
        ("", "ReplicationController") => json!({"spec": {"template": tmpl.clone()}}),
        ("", "Secret") => json!({"stringData": {"k": "v"}}),
        ("", "ServiceAccount") => json!({}),
        ("", "Service") => json!({"spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}),
        ("apps", "ControllerRevision") => json!({"revision": 1, "data": {}}),
        ("apps", "DaemonSet" | "Deployment" | "ReplicaSet" | "StatefulSet") => {
            json!({"spec": {"selector": sel.clone(), "template": tmpl.clone()}})
        }
        ("events.k8s.io", "Event") => json!({"eventTime": "2024-01-01T00:00:00.000000Z", "type": "Normal",
            "regarding": {"kind": "Pod", "name": "p", "namespace": "default"}, "reportingController": "example.com/c",
            "reportingInstance": "i", "action": "A", "reason": "R"}),
        ("autoscaling", _) => {
            json!({"spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
            "maxReplicas": 3}})
        }
        ("batch", "CronJob") => {
            json!({"spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": job_tmpl.clone()}}}})
        }
        ("batch", "Job") => json!({"spec": {"template": job_tmpl.clone()}}),
        ("networking.k8s.io", "IngressClass") => json!({"spec": {"controller": "example.com/ingress"}}),
        ("networking.k8s.io", "Ingress") => json!({"spec": {"rules": [{"host": "a.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
        ("networking.k8s.io", "NetworkPolicy") => json!({"spec": {"podSelector": {}}}),
        ("policy", _) => json!({"spec": {"minAvailable": 1, "selector": sel.clone()}}),
        ("rbac.authorization.k8s.io", "ClusterRole" | "Role") => {
            json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})
        }
        ("rbac.authorization.k8s.io", "ClusterRoleBinding" | "RoleBinding") => {
            json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}]})
        }
        ("storage.k8s.io", _) => json!({"provisioner": "rancher.io/local-path"}),
        ("apiextensions.k8s.io", _) => json!({"spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"}, "versions": [{"name": "v1", "served": true, "storage": true}]}}),
        ("scheduling.k8s.io", _) => json!({"value": 1000}),
        ("coordination.k8s.io", _) => json!({"spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}}),
        ("discovery.k8s.io", _) => {
            json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80}]})
        }
        other => panic!("no fixture for {other:?}"),
    };
    let mut obj = body;
    let name = if t.kind == "CustomResourceDefinition" { "widgets.example.com" } else { "x" };
    obj["apiVersion"] = json!(t.api_version(t.storage_version));
    obj["kind"] = json!(t.kind);
    obj["metadata"] = if t.namespaced {
        json!({"name": name, "namespace": "default", "uid": "0000-1111"})
    } else {
        json!({"name": name, "uid": "0000-1111"})
    };
    obj
}

#[test]
fn every_kind_accepts_a_minimal_defaulted_object() {
    let reg = Registry::builtin();
    for t in reg.all() {
        let mut obj = minimal(t);
        t.default(&mut obj);
        let errs = t.validate_create(&obj);
        assert!(
            errs.is_empty(),
            "{}/{}: {:#?}",
            t.group,
            t.kind,
            errs.iter().map(ToString::to_string).collect::<Vec<_>>()
        );
        let again = {
            let mut o = obj.clone();
            t.default(&mut o);
            o
        };
        assert_eq!(again, obj, "{}/{} defaults are not idempotent", t.group, t.kind);
        assert!(t.validate_update(&obj, &obj).is_empty(), "{}/{} rejects a no-op update", t.group, t.kind);
    }
}

#[test]
fn every_kind_converts_to_each_served_version_and_back() {
    let reg = Registry::builtin();
    for t in reg.all() {
        let mut obj = minimal(t);
        t.default(&mut obj);
        for v in t.versions {
            let to = t.api_version(v);
            let converted = t.convert(obj.clone(), &to).unwrap_or_else(|e| panic!("{}: {e}", t.kind));
            assert_eq!(converted["apiVersion"], json!(to));
            let back =
                t.convert(converted, &t.api_version(t.storage_version)).unwrap_or_else(|e| panic!("{}: {e}", t.kind));
            assert_eq!(back["spec"], obj["spec"], "{}/{} via {v}", t.group, t.kind);
        }
    }
}
