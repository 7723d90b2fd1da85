//! Core validation cases, one named case per rule.

use serde_json::json;

use super::*;
use crate::validation::test_util::check;

#[test]
fn namespace_rules() {
    check(vec![
        ("standard finalizer", validate_namespace, json!({"spec": {"finalizers": ["kubernetes"]}}), ""),
        (
            "unqualified finalizer",
            validate_namespace,
            json!({"spec": {"finalizers": ["custom"]}}),
            "spec.finalizers: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified",
        ),
    ]);
}

#[test]
fn node_rules() {
    check(vec![
        (
            "valid node",
            validate_node,
            json!({"spec": {"podCIDRs": ["10.244.0.0/24"], "taints": [{"key": "a", "effect": "NoSchedule"}]},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi"}}}),
            "",
        ),
        (
            "pod CIDR",
            validate_node,
            json!({"spec": {"podCIDRs": ["10.244.0.0"]}}),
            "spec.podCIDRs[0]: Invalid value: \"10.244.0.0\": must be a valid CIDR value",
        ),
        (
            "taint effect values",
            validate_node,
            json!({"spec": {"taints": [{"key": "a", "effect": "Never"}]}}),
            "spec.taints[0].effect: Unsupported value: \"Never\"",
        ),
        (
            "taint effect required",
            validate_node,
            json!({"spec": {"taints": [{"key": "a"}]}}),
            "spec.taints[0].effect: Required value",
        ),
        (
            "taints unique",
            validate_node,
            json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}, {"key": "a", "value": "x", "effect": "NoSchedule"}]}}),
            "spec.taints[1]: Duplicate value:",
        ),
        (
            "capacity quantities",
            validate_node,
            json!({"status": {"capacity": {"cpu": "four"}}}),
            "status.capacity[cpu]: Invalid value: \"four\": quantities must match",
        ),
    ]);
}

#[test]
fn config_map_rules() {
    check(vec![
        ("valid", validate_config_map, json!({"data": {"app.properties": "x"}, "binaryData": {"b": "AA=="}}), ""),
        (
            "key syntax",
            validate_config_map,
            json!({"data": {"a/b": "x"}}),
            "data[a/b]: Invalid value: \"a/b\": a valid config key must consist of alphanumeric characters",
        ),
        (
            "no key in both maps",
            validate_config_map,
            json!({"data": {"k": "x"}, "binaryData": {"k": "AA=="}}),
            "binaryData[k]: Invalid value: \"k\": duplicate of key present in data",
        ),
        (
            "size limit",
            validate_config_map,
            json!({"data": {"k": "x".repeat(MAX_SECRET_SIZE + 1)}}),
            "data: Too long: may not be more than 1048576 bytes",
        ),
    ]);
    let old = json!({"immutable": true, "data": {"k": "1"}});
    let errs: Vec<String> = validate_config_map_update(&json!({"immutable": true, "data": {"k": "2"}}), &old)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errs, vec!["data: Forbidden: field is immutable when `immutable` is set"]);
}

#[test]
fn secret_rules() {
    check(vec![
        ("opaque", validate_secret, json!({"type": "Opaque", "data": {"k": "dg=="}}), ""),
        (
            "tls needs cert and key",
            validate_secret,
            json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "x"}}),
            "data[tls.key]: Required value",
        ),
        (
            "dockerconfigjson needs its key",
            validate_secret,
            json!({"type": "kubernetes.io/dockerconfigjson", "data": {}}),
            "data[.dockerconfigjson]: Required value",
        ),
        (
            "service account token needs annotation",
            validate_secret,
            json!({"type": "kubernetes.io/service-account-token", "metadata": {"name": "t"}}),
            "metadata.annotations[kubernetes.io/service-account.name]: Required value",
        ),
        (
            "key syntax",
            validate_secret,
            json!({"data": {"..x": "dg=="}}),
            "data[..x]: Invalid value: \"..x\": must not start with '..'",
        ),
    ]);
    let errs: Vec<String> = validate_secret_update(
        &json!({"type": "kubernetes.io/basic-auth", "data": {"username": "dQ=="}}),
        &json!({"type": "Opaque"}),
    )
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(errs, vec!["type: Invalid value: \"kubernetes.io/basic-auth\": field is immutable"]);
}

#[test]
fn event_rules() {
    check(vec![
        (
            "legacy event",
            validate_event,
            json!({"metadata": {"namespace": "default"}, "involvedObject": {"kind": "Pod", "namespace": "default"}}),
            "",
        ),
        (
            "legacy namespace mismatch",
            validate_event,
            json!({"metadata": {"namespace": "a"}, "involvedObject": {"namespace": "b"}}),
            "involvedObject.namespace: Invalid value: \"b\": does not match event.namespace",
        ),
        (
            "new-style core event needs reporting fields",
            validate_event,
            json!({"metadata": {"namespace": "a"}, "eventTime": "2024-01-01T00:00:00.000000Z", "involvedObject": {"namespace": "a"},
                "type": "Normal", "action": "x", "reason": "y", "reportingInstance": "z"}),
            "reportingComponent: Required value",
        ),
        (
            "events.k8s.io needs eventTime",
            validate_event_v1,
            json!({"metadata": {"namespace": "a"}, "regarding": {"namespace": "a"}, "type": "Normal",
                "reportingController": "x.io/c", "reportingInstance": "i", "action": "a", "reason": "r"}),
            "eventTime: Required value",
        ),
        (
            "events.k8s.io type values",
            validate_event_v1,
            json!({"metadata": {"namespace": "a"}, "eventTime": "2024-01-01T00:00:00.000000Z", "regarding": {"namespace": "a"},
                "type": "Bad", "reportingController": "x.io/c", "reportingInstance": "i", "action": "a", "reason": "r"}),
            "type: Invalid value: \"\": has invalid value: Bad",
        ),
        (
            "events.k8s.io note length",
            validate_event_v1,
            json!({"metadata": {"namespace": "a"}, "eventTime": "2024-01-01T00:00:00.000000Z", "regarding": {"namespace": "a"},
                "type": "Normal", "reportingController": "x.io/c", "reportingInstance": "i", "action": "a", "reason": "r",
                "note": "n".repeat(1025)}),
            "note: Invalid value:",
        ),
    ]);
}

#[test]
fn endpoints_rules() {
    check(vec![
        (
            "valid",
            validate_endpoints,
            json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80, "protocol": "TCP"}]}]}),
            "",
        ),
        (
            "address must be an IP",
            validate_endpoints,
            json!({"subsets": [{"addresses": [{"ip": "host"}]}]}),
            "subsets[0].addresses[0].ip: Invalid value: \"host\": must be a valid IP address",
        ),
        (
            "port names required when several",
            validate_endpoints,
            json!({"subsets": [{"ports": [{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP", "name": "b"}]}]}),
            "subsets[0].ports[0].name: Required value",
        ),
    ]);
}

#[test]
fn persistent_volume_rules() {
    check(vec![
        (
            "valid",
            validate_persistent_volume,
            json!({"spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/x"}}}),
            "",
        ),
        (
            "capacity required",
            validate_persistent_volume,
            json!({"spec": {"accessModes": ["ReadWriteOnce"], "hostPath": {}}}),
            "spec.capacity: Required value",
        ),
        (
            "source required",
            validate_persistent_volume,
            json!({"spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}}),
            "spec: Required value: must specify a volume type",
        ),
        (
            "access modes",
            validate_persistent_volume,
            json!({"spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["Sometimes"], "hostPath": {}}}),
            "spec.accessModes: Unsupported value: \"Sometimes\"",
        ),
        (
            "pvc access modes required",
            validate_persistent_volume_claim,
            json!({"spec": {"resources": {"requests": {"storage": "1Gi"}}}}),
            "spec.accessModes: Required value: at least 1 access mode is required",
        ),
        (
            "pvc storage required",
            validate_persistent_volume_claim,
            json!({"spec": {"accessModes": ["ReadWriteOnce"]}}),
            "spec.resources[storage]: Required value",
        ),
        (
            "pvc storage positive",
            validate_persistent_volume_claim,
            json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "0"}}}}),
            "spec.resources[storage]: Invalid value: \"0\": must be greater than zero",
        ),
    ]);
}
