//! Validation cases for the smaller groups, one named case per rule.

use serde_json::{Value, json};

use super::*;
use crate::validation::test_util::check;

fn ingress(path: Value) -> Value {
    json!({"spec": {"rules": [{"host": "example.com", "http": {"paths": [path]}}]}})
}

#[test]
fn ingress_rules() {
    let backend = json!({"service": {"name": "web", "port": {"number": 80}}});
    check(vec![
        ("valid", validate_ingress, ingress(json!({"path": "/", "pathType": "Prefix", "backend": backend})), ""),
        (
            "rules or default backend",
            validate_ingress,
            json!({"spec": {}}),
            "spec: Invalid value: {}: either `defaultBackend` or `rules` must be specified",
        ),
        (
            "pathType required",
            validate_ingress,
            ingress(json!({"path": "/", "backend": backend})),
            "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified",
        ),
        (
            "pathType values",
            validate_ingress,
            ingress(json!({"path": "/", "pathType": "Regex", "backend": backend})),
            "spec.rules[0].http.paths[0].pathType: Unsupported value: \"Regex\"",
        ),
        (
            "absolute path",
            validate_ingress,
            ingress(json!({"path": "api", "pathType": "Prefix", "backend": backend})),
            "spec.rules[0].http.paths[0].path: Invalid value: \"api\": must be an absolute path",
        ),
        (
            "port name xor number",
            validate_ingress,
            ingress(
                json!({"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80, "name": "http"}}}}),
            ),
            "spec.rules[0].http.paths[0].backend.service.port: Invalid value: {\"number\":80,\"name\":\"http\"}: cannot set both port name & port number",
        ),
        (
            "host is a DNS name",
            validate_ingress,
            json!({"spec": {"rules": [{"host": "Bad_Host"}]}}),
            "spec.rules[0].host: Invalid value: \"Bad_Host\"",
        ),
        ("wildcard host", validate_ingress, json!({"spec": {"rules": [{"host": "*.example.com"}]}}), ""),
    ]);
}

#[test]
fn ingress_class_rules() {
    check(vec![
        ("valid", validate_ingress_class, json!({"spec": {"controller": "k8s.io/ingress-nginx"}}), ""),
        ("controller required", validate_ingress_class, json!({"spec": {}}), "spec.controller: Required value"),
        (
            "domain-prefixed path",
            validate_ingress_class,
            json!({"spec": {"controller": "nginx"}}),
            "spec.controller: Invalid value: \"nginx\": must be a domain-prefixed path (such as \"acme.io/foo\")",
        ),
    ]);
    let old = json!({"spec": {"controller": "a.io/x"}});
    let new = json!({"spec": {"controller": "b.io/x"}});
    assert_eq!(validate_ingress_class_update(&new, &old).len(), 1);
}

#[test]
fn network_policy_rules() {
    check(vec![
        (
            "valid",
            validate_network_policy,
            json!({"spec": {"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"a": "b"}}}],
            "ports": [{"port": 80, "protocol": "TCP"}]}], "policyTypes": ["Ingress"]}}),
            "",
        ),
        (
            "policyTypes values",
            validate_network_policy,
            json!({"spec": {"podSelector": {}, "policyTypes": ["Both"]}}),
            "spec.policyTypes[0]: Unsupported value: \"Both\": supported values: \"Ingress\", \"Egress\"",
        ),
        (
            "ipBlock CIDR",
            validate_network_policy,
            json!({"spec": {"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0"}}]}]}}),
            "spec.egress[0].to[0].ipBlock.cidr: Invalid value: \"10.0.0.0\": must be a valid CIDR value",
        ),
        (
            "peer required",
            validate_network_policy,
            json!({"spec": {"podSelector": {}, "ingress": [{"from": [{}]}]}}),
            "spec.ingress[0].from[0]: Required value: must specify a peer",
        ),
        (
            "port protocol values",
            validate_network_policy,
            json!({"spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 80, "protocol": "ICMP"}]}]}}),
            "spec.ingress[0].ports[0].protocol: Unsupported value: \"ICMP\"",
        ),
    ]);
}

#[test]
fn pod_disruption_budget_rules() {
    check(vec![
        (
            "valid",
            validate_pod_disruption_budget,
            json!({"spec": {"minAvailable": "50%", "selector": {"matchLabels": {"a": "b"}}}}),
            "",
        ),
        (
            "not both",
            validate_pod_disruption_budget,
            json!({"spec": {"minAvailable": 1, "maxUnavailable": 1}}),
            "spec: Invalid value:",
        ),
        (
            "non-negative",
            validate_pod_disruption_budget,
            json!({"spec": {"minAvailable": -1}}),
            "spec.minAvailable: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            "at most 100%",
            validate_pod_disruption_budget,
            json!({"spec": {"maxUnavailable": "101%"}}),
            "spec.maxUnavailable: Invalid value: \"101%\": must not be greater than 100%",
        ),
    ]);
}

#[test]
fn rbac_rules() {
    let binding = |kind: &str| {
        json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}]})
    };
    check(vec![
        (
            "valid role",
            validate_role,
            json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
            "",
        ),
        (
            "verbs required",
            validate_role,
            json!({"rules": [{"apiGroups": [""], "resources": ["pods"]}]}),
            "rules[0].verbs: Required value: verbs must contain at least one value",
        ),
        (
            "api groups required",
            validate_role,
            json!({"rules": [{"resources": ["pods"], "verbs": ["get"]}]}),
            "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
        ),
        (
            "role cannot use non-resource URLs",
            validate_role,
            json!({"rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}),
            "rules[0].nonResourceURLs: Invalid value: [\"/healthz\"]: namespaced rules cannot apply to non-resource URLs",
        ),
        (
            "cluster role non-resource URLs",
            validate_cluster_role,
            json!({"rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}),
            "",
        ),
        ("valid role binding", validate_role_binding, binding("ClusterRole"), ""),
        (
            "cluster role binding needs ClusterRole",
            validate_cluster_role_binding,
            binding("Role"),
            "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
        ),
        (
            "roleRef apiGroup",
            validate_role_binding,
            json!({"roleRef": {"apiGroup": "x", "kind": "Role", "name": "r"}}),
            "roleRef.apiGroup: Unsupported value: \"x\": supported values: \"rbac.authorization.k8s.io\"",
        ),
        (
            "subject kind",
            validate_role_binding,
            json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}, "subjects": [{"kind": "Robot", "name": "x"}]}),
            "subjects[0].kind: Unsupported value: \"Robot\"",
        ),
        (
            "cluster binding SA namespace",
            validate_cluster_role_binding,
            json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "r"}, "subjects": [{"kind": "ServiceAccount", "name": "x"}]}),
            "subjects[0].namespace: Required value",
        ),
    ]);
    let old = binding("ClusterRole");
    let mut new = old.clone();
    new["roleRef"]["name"] = json!("edit");
    assert!(validate_role_binding_update(&new, &old).iter().any(|e| e.detail == "cannot change roleRef"));
}

#[test]
fn storage_class_rules() {
    check(vec![
        (
            "valid",
            validate_storage_class,
            json!({"provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete"}),
            "",
        ),
        ("provisioner required", validate_storage_class, json!({}), "provisioner: Required value"),
        (
            "reclaim policy",
            validate_storage_class,
            json!({"provisioner": "x", "reclaimPolicy": "Recycle"}),
            "reclaimPolicy: Unsupported value: \"Recycle\": supported values: \"Delete\", \"Retain\"",
        ),
    ]);
}

#[test]
fn crd_rules() {
    let crd = json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
        "versions": [{"name": "v1", "served": true, "storage": true}]}});
    let mut bad_name = crd.clone();
    bad_name["metadata"]["name"] = json!("widgets");
    let mut no_dot = crd.clone();
    no_dot["spec"]["group"] = json!("example");
    no_dot["metadata"]["name"] = json!("widgets.example");
    let mut two_stored = crd.clone();
    two_stored["spec"]["versions"] =
        json!([{"name": "v1", "served": true, "storage": true}, {"name": "v2", "served": true, "storage": true}]);
    let mut scope = crd.clone();
    scope["spec"]["scope"] = json!("Global");
    check(vec![
        ("valid", validate_crd, crd, ""),
        (
            "name is plural.group",
            validate_crd,
            bad_name,
            "metadata.name: Invalid value: \"widgets\": must be spec.names.plural+\".\"+spec.group",
        ),
        (
            "group has a dot",
            validate_crd,
            no_dot,
            "spec.group: Invalid value: \"example\": should be a domain with at least one dot",
        ),
        ("one storage version", validate_crd, two_stored, "spec.versions: Invalid value:"),
        ("scope values", validate_crd, scope, "spec.scope: Unsupported value: \"Global\""),
    ]);
}

#[test]
fn priority_class_rules() {
    check(vec![
        ("valid", validate_priority_class, json!({"metadata": {"name": "high"}, "value": 1000}), ""),
        (
            "system classes may exceed",
            validate_priority_class,
            json!({"metadata": {"name": "system-node-critical"}, "value": 2000001000}),
            "",
        ),
        (
            "user maximum",
            validate_priority_class,
            json!({"metadata": {"name": "high"}, "value": 2000000000}),
            "value: Forbidden: maximum allowed value of a user defined priority is 1000000000",
        ),
    ]);
    let errs = validate_priority_class_update(&json!({"value": 2}), &json!({"value": 1}));
    assert_eq!(
        errs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["value: Forbidden: may not be changed in an update."]
    );
}

#[test]
fn lease_rules() {
    check(vec![
        ("valid", validate_lease, json!({"spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}), ""),
        (
            "duration positive",
            validate_lease,
            json!({"spec": {"leaseDurationSeconds": 0}}),
            "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
        ),
        (
            "transitions non-negative",
            validate_lease,
            json!({"spec": {"leaseTransitions": -1}}),
            "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
        ),
    ]);
}

#[test]
fn endpoint_slice_rules() {
    check(vec![
        (
            "valid",
            validate_endpoint_slice,
            json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
            "",
        ),
        ("address type required", validate_endpoint_slice, json!({}), "addressType: Required value"),
        (
            "addresses required",
            validate_endpoint_slice,
            json!({"addressType": "IPv4", "endpoints": [{"addresses": []}]}),
            "endpoints[0].addresses: Required value: must contain at least 1 address",
        ),
        (
            "address family",
            validate_endpoint_slice,
            json!({"addressType": "IPv4", "endpoints": [{"addresses": ["::1"]}]}),
            "endpoints[0].addresses[0]: Invalid value: \"::1\": must be a valid IPv4 address",
        ),
        (
            "port names unique",
            validate_endpoint_slice,
            json!({"addressType": "IPv4", "ports": [{"name": "a", "port": 1, "protocol": "TCP"}, {"name": "a", "port": 2, "protocol": "TCP"}]}),
            "ports[1].name: Duplicate value: \"a\"",
        ),
    ]);
}
