//! Pod validation cases, one named case per rule.

use serde_json::{Value, json};

use super::*;
use crate::defaults::pod::default_pod;
use crate::validation::test_util::with;

/// A valid, defaulted pod.
fn pod() -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.25",
            "ports": [{"name": "http", "containerPort": 80}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}},
            "livenessProbe": {"httpGet": {"port": "http"}},
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data"}]}});
    default_pod(&mut p);
    p
}

fn errors(p: &Value) -> Vec<String> {
    validate_pod(p).iter().map(ToString::to_string).collect()
}

#[test]
fn valid_pod_has_no_errors() {
    assert_eq!(errors(&pod()), Vec::<String>::new());
}

#[test]
fn pod_rules() {
    let cases: Vec<(&str, Value, &str)> = vec![
        ("containers required", with(pod(), "/spec/containers", json!([])), "spec.containers: Required value"),
        (
            "container name required",
            with(pod(), "/spec/containers/0/name", json!("")),
            "spec.containers[0].name: Required value",
        ),
        (
            "container name is a DNS label",
            with(pod(), "/spec/containers/0/name", json!("App")),
            "spec.containers[0].name: Invalid value: \"App\": a lowercase RFC 1123 label",
        ),
        (
            "container names unique",
            with(
                pod(),
                "/spec/initContainers",
                json!([{"name": "app", "image": "busybox", "imagePullPolicy": "Always",
                    "terminationMessagePolicy": "File"}]),
            ),
            "spec.containers[0].name: Duplicate value: \"app\"",
        ),
        (
            "image required",
            with(pod(), "/spec/containers/0/image", json!("")),
            "spec.containers[0].image: Required value",
        ),
        (
            "container port in range",
            with(pod(), "/spec/containers/0/ports/0/containerPort", json!(70000)),
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        ),
        (
            "container port required",
            with(pod(), "/spec/containers/0/ports/0/containerPort", json!(0)),
            "spec.containers[0].ports[0].containerPort: Required value",
        ),
        (
            "host port in range",
            with(pod(), "/spec/containers/0/ports/0/hostPort", json!(-1)),
            "spec.containers[0].ports[0].hostPort: Invalid value: -1: must be between 1 and 65535, inclusive",
        ),
        (
            "named ports unique",
            with(
                pod(),
                "/spec/containers/0/ports",
                json!([{"name": "http", "containerPort": 80, "protocol": "TCP"},
                    {"name": "http", "containerPort": 81, "protocol": "TCP"}]),
            ),
            "spec.containers[0].ports[1].name: Duplicate value: \"http\"",
        ),
        (
            "port name syntax",
            with(pod(), "/spec/containers/0/ports/0/name", json!("HTTP")),
            "spec.containers[0].ports[0].name: Invalid value: \"HTTP\": must contain only alpha-numeric characters",
        ),
        (
            "port protocol values",
            with(pod(), "/spec/containers/0/ports/0/protocol", json!("ICMP")),
            "spec.containers[0].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
        ),
        (
            "restartPolicy values",
            with(pod(), "/spec/restartPolicy", json!("Sometimes")),
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        ),
        ("restartPolicy required", with(pod(), "/spec/restartPolicy", json!("")), "spec.restartPolicy: Required value"),
        (
            "dnsPolicy values",
            with(pod(), "/spec/dnsPolicy", json!("Google")),
            "spec.dnsPolicy: Unsupported value: \"Google\"",
        ),
        (
            "imagePullPolicy values",
            with(pod(), "/spec/containers/0/imagePullPolicy", json!("Sometimes")),
            "spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\"",
        ),
        (
            "quantity must parse",
            with(pod(), "/spec/containers/0/resources/limits/cpu", json!("lots")),
            "spec.containers[0].resources.limits[cpu]: Invalid value: \"lots\": quantities must match the regular expression",
        ),
        (
            "quantity non-negative",
            with(pod(), "/spec/containers/0/resources/requests/cpu", json!("-1")),
            "spec.containers[0].resources.requests[cpu]: Invalid value: \"-1\": must be greater than or equal to 0",
        ),
        (
            "requests <= limits",
            with(pod(), "/spec/containers/0/resources/requests/memory", json!("1Gi")),
            "spec.containers[0].resources.requests[memory]: Invalid value: \"1Gi\": must be less than or equal to memory limit of 128Mi",
        ),
        (
            "resource names standard",
            with(pod(), "/spec/containers/0/resources/limits/gpu", json!("1")),
            "spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must be a standard resource for containers",
        ),
        (
            "extended resources need equal limit",
            with(pod(), "/spec/containers/0/resources/requests/example.com~1gpu", json!("1")),
            "spec.containers[0].resources.limits[example.com/gpu]: Required value: Limit must be set for non overcommitable resources",
        ),
        (
            "probe needs a handler",
            with(
                pod(),
                "/spec/containers/0/livenessProbe",
                json!({"periodSeconds": 10, "timeoutSeconds": 1,
                "successThreshold": 1, "failureThreshold": 3}),
            ),
            "spec.containers[0].livenessProbe: Required value: must specify a handler type",
        ),
        (
            "probe one handler",
            with(pod(), "/spec/containers/0/livenessProbe/tcpSocket", json!({"port": 80})),
            "spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
        ),
        (
            "probe numbers non-negative",
            with(pod(), "/spec/containers/0/livenessProbe/periodSeconds", json!(-1)),
            "spec.containers[0].livenessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            "liveness successThreshold 1",
            with(pod(), "/spec/containers/0/livenessProbe/successThreshold", json!(2)),
            "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
        ),
        (
            "probe port in range",
            with(pod(), "/spec/containers/0/livenessProbe/httpGet/port", json!(0)),
            "spec.containers[0].livenessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive",
        ),
        (
            "probe scheme values",
            with(pod(), "/spec/containers/0/livenessProbe/httpGet/scheme", json!("FTP")),
            "spec.containers[0].livenessProbe.httpGet.scheme: Unsupported value: \"FTP\": supported values: \"HTTP\", \"HTTPS\"",
        ),
        (
            "exec probe needs command",
            with(pod(), "/spec/containers/0/livenessProbe", json!({"exec": {}, "periodSeconds": 1})),
            "spec.containers[0].livenessProbe.exec.command: Required value",
        ),
        (
            "volume names unique",
            with(pod(), "/spec/volumes", json!([{"name": "data", "emptyDir": {}}, {"name": "data", "emptyDir": {}}])),
            "spec.volumes[1].name: Duplicate value: \"data\"",
        ),
        (
            "volume mount must name a volume",
            with(pod(), "/spec/containers/0/volumeMounts/0/name", json!("other")),
            "spec.containers[0].volumeMounts[0].name: Invalid value: \"other\": not found",
        ),
        (
            "one volume source",
            with(pod(), "/spec/volumes/0/hostPath", json!({"path": "/x", "type": ""})),
            "spec.volumes[0].emptyDir: Forbidden: may not specify more than 1 volume type",
        ),
        (
            "configMap volume needs a name",
            with(pod(), "/spec/volumes", json!([{"name": "data", "configMap": {"defaultMode": 420}}])),
            "spec.volumes[0].configMap.name: Required value",
        ),
        (
            "mount paths unique",
            with(
                pod(),
                "/spec/containers/0/volumeMounts",
                json!([{"name": "data", "mountPath": "/d"}, {"name": "data", "mountPath": "/d"}]),
            ),
            "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/d\": must be unique",
        ),
        (
            "runAsUser range",
            with(pod(), "/spec/securityContext", json!({"runAsUser": -1})),
            "spec.securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
        ),
        (
            "env name required",
            with(pod(), "/spec/containers/0/env", json!([{"value": "x"}])),
            "spec.containers[0].env[0].name: Required value",
        ),
        (
            "env name printable",
            with(pod(), "/spec/containers/0/env", json!([{"name": "A=B"}])),
            "spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name",
        ),
        (
            "activeDeadlineSeconds positive",
            with(pod(), "/spec/activeDeadlineSeconds", json!(0)),
            "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 4294967295, inclusive",
        ),
        (
            "hostNetwork host port matches",
            with(with(pod(), "/spec/hostNetwork", json!(true)), "/spec/containers/0/ports/0/hostPort", json!(8080)),
            "spec.containers[0].ports[0].hostPort: Invalid value: 8080: must match `containerPort` when `hostNetwork` is true",
        ),
        (
            "toleration operator values",
            with(pod(), "/spec/tolerations", json!([{"key": "a", "operator": "Near"}])),
            "spec.tolerations[0].operator: Unsupported value: \"Near\": supported values: \"Equal\", \"Exists\"",
        ),
        (
            "toleration empty key needs Exists",
            with(pod(), "/spec/tolerations", json!([{"operator": "Equal", "value": "x"}])),
            "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty",
        ),
        (
            "toleration Exists has no value",
            with(pod(), "/spec/tolerations", json!([{"key": "a", "operator": "Exists", "value": "x"}])),
            "spec.tolerations[0].operator: Invalid value: \"x\": value must be empty when `operator` is 'Exists'",
        ),
        (
            "toleration effect values",
            with(pod(), "/spec/tolerations", json!([{"operator": "Exists", "effect": "Never"}])),
            "spec.tolerations[0].effect: Unsupported value: \"Never\"",
        ),
        (
            "tolerationSeconds needs NoExecute",
            with(
                pod(),
                "/spec/tolerations",
                json!([{"operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}]),
            ),
            "spec.tolerations[0].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set",
        ),
        (
            "nodeSelector labels",
            with(pod(), "/spec/nodeSelector", json!({"a b": "c"})),
            "spec.nodeSelector: Invalid value: \"a b\"",
        ),
    ];
    for (name, obj, want) in cases {
        let errs = errors(&obj);
        assert!(errs.iter().any(|e| e.starts_with(want)), "case {name:?}: want {want:?}, got {errs:#?}");
    }
}

#[test]
fn pod_update_may_change_the_image() {
    let old = pod();
    let new = with(old.clone(), "/spec/containers/0/image", json!("nginx:1.26"));
    assert!(validate_pod_update(&new, &old).is_empty());
}

#[test]
fn pod_update_may_not_change_other_spec_fields() {
    let old = pod();
    let new = with(old.clone(), "/spec/containers/0/ports/0/containerPort", json!(81));
    let errs: Vec<String> = validate_pod_update(&new, &old).iter().map(ToString::to_string).collect();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`")
    );
}

#[test]
fn pod_update_may_not_raise_active_deadline() {
    let old = with(pod(), "/spec/activeDeadlineSeconds", json!(10));
    let new = with(old.clone(), "/spec/activeDeadlineSeconds", json!(20));
    let errs: Vec<String> = validate_pod_update(&new, &old).iter().map(ToString::to_string).collect();
    assert_eq!(
        errs,
        vec!["spec.activeDeadlineSeconds: Invalid value: 20: must be less than or equal to previous value"]
    );
}
