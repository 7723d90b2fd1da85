//! Bodies encoded with prost the way kubectl's (gogo) encoder writes them: every non-pointer
//! field present, zero times as empty messages.

use std::collections::BTreeMap;

use k8s_pb::api::{apps, autoscaling, core};
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::*;

fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta { api_version: Some(api_version.into()), kind: Some(kind.into()) }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// ObjectMeta as gogo writes it for a new object: value fields present but empty.
fn meta(name: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        generate_name: Some(String::new()),
        namespace: Some(String::new()),
        self_link: Some(String::new()),
        uid: Some(String::new()),
        resource_version: Some(String::new()),
        generation: Some(0),
        creation_timestamp: Some(Time::default()),
        labels,
        ..Default::default()
    }
}

/// What `kubectl create deployment hello --image=busybox` sends.
fn kubectl_deployment() -> apps::v1::Deployment {
    let app = labels(&[("app", "hello")]);
    apps::v1::Deployment {
        metadata: Some(meta("hello", app.clone())),
        spec: Some(apps::v1::DeploymentSpec {
            replicas: Some(1),
            selector: Some(LabelSelector { match_labels: app.clone(), ..Default::default() }),
            template: Some(core::v1::PodTemplateSpec {
                metadata: Some(meta("", app)),
                spec: Some(core::v1::PodSpec {
                    containers: vec![core::v1::Container {
                        name: Some("busybox".into()),
                        image: Some("busybox".into()),
                        working_dir: Some(String::new()),
                        resources: Some(core::v1::ResourceRequirements::default()),
                        termination_message_path: Some(String::new()),
                        image_pull_policy: Some(String::new()),
                        stdin: Some(false),
                        tty: Some(false),
                        ..Default::default()
                    }],
                    restart_policy: Some(String::new()),
                    dns_policy: Some(String::new()),
                    host_network: Some(false),
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::v1::DeploymentStrategy { r#type: Some(String::new()), rolling_update: None }),
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: Some(apps::v1::DeploymentStatus::default()),
    }
}

#[test]
fn kubectl_create_deployment_body_decodes_to_the_json_kubectl_would_send() {
    let body = envelope("apps/v1", "Deployment", kubectl_deployment().encode_to_vec());
    let got = decode_protobuf(&body).expect("decodes");
    let want = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "hello", "labels": {"app": "hello"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "hello"}},
            "template": {
                "metadata": {"labels": {"app": "hello"}},
                "spec": {"containers": [{"name": "busybox", "image": "busybox", "resources": {}}]},
            },
            "strategy": {},
        },
        "status": {},
    });
    assert_eq!(got, want);
    // apiVersion and kind come first, as in JSON bodies.
    let keys: Vec<&String> = got.as_object().expect("object").keys().collect();
    assert_eq!(&keys[..2], ["apiVersion", "kind"]);
}

#[test]
fn zero_replicas_is_kept() {
    let mut deployment = kubectl_deployment();
    if let Some(spec) = deployment.spec.as_mut() {
        spec.replicas = Some(0);
    }
    let got = decode_protobuf(&envelope("apps/v1", "Deployment", deployment.encode_to_vec())).expect("decodes");
    assert_eq!(got["spec"]["replicas"], 0);
}

#[test]
fn kubectl_autoscale_v1_and_v2_bodies_decode() {
    let target = |kind: &str| (Some(kind.to_string()), Some("hello".to_string()), Some("apps/v1".to_string()));
    let (kind, name, api_version) = target("Deployment");
    let v1 = autoscaling::v1::HorizontalPodAutoscaler {
        metadata: Some(meta("hello", BTreeMap::new())),
        spec: Some(autoscaling::v1::HorizontalPodAutoscalerSpec {
            scale_target_ref: Some(autoscaling::v1::CrossVersionObjectReference {
                kind: kind.clone(),
                name: name.clone(),
                api_version: api_version.clone(),
            }),
            min_replicas: Some(1),
            max_replicas: Some(5),
            target_cpu_utilization_percentage: Some(80),
        }),
        status: Some(autoscaling::v1::HorizontalPodAutoscalerStatus {
            current_replicas: Some(0),
            desired_replicas: Some(0),
            ..Default::default()
        }),
    };
    let got = decode_protobuf(&envelope("autoscaling/v1", "HorizontalPodAutoscaler", v1.encode_to_vec()))
        .expect("v1 decodes");
    assert_eq!(
        got,
        json!({
            "apiVersion": "autoscaling/v1",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "hello"},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "hello", "apiVersion": "apps/v1"},
                "minReplicas": 1,
                "maxReplicas": 5,
                "targetCPUUtilizationPercentage": 80,
            },
            "status": {"currentReplicas": 0, "desiredReplicas": 0},
        })
    );

    let v2 = autoscaling::v2::HorizontalPodAutoscaler {
        metadata: Some(meta("hello", BTreeMap::new())),
        spec: Some(autoscaling::v2::HorizontalPodAutoscalerSpec {
            scale_target_ref: Some(autoscaling::v2::CrossVersionObjectReference { kind, name, api_version }),
            min_replicas: Some(1),
            max_replicas: Some(5),
            metrics: vec![autoscaling::v2::MetricSpec {
                r#type: Some("Resource".into()),
                resource: Some(autoscaling::v2::ResourceMetricSource {
                    name: Some("cpu".into()),
                    target: Some(autoscaling::v2::MetricTarget {
                        r#type: Some("Utilization".into()),
                        average_utilization: Some(80),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }],
            behavior: None,
        }),
        status: None,
    };
    let got = decode_protobuf(&envelope("autoscaling/v2", "HorizontalPodAutoscaler", v2.encode_to_vec()))
        .expect("v2 decodes");
    assert_eq!(
        got["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
    );
    assert_eq!(got["spec"]["scaleTargetRef"]["apiVersion"], "apps/v1");
}

#[test]
fn namespace_configmap_and_service_decode_with_kubernetes_field_names() {
    let ns = core::v1::Namespace { metadata: Some(meta("team-a", BTreeMap::new())), ..Default::default() };
    let got = decode_protobuf(&envelope("v1", "Namespace", ns.encode_to_vec())).expect("namespace");
    assert_eq!(got, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}));

    let cm = core::v1::ConfigMap {
        metadata: Some(meta("cfg", BTreeMap::new())),
        data: labels(&[("a", "1")]),
        binary_data: [("bin".to_string(), vec![0u8, 1, 2])].into_iter().collect(),
        immutable: Some(true),
    };
    let got = decode_protobuf(&envelope("v1", "ConfigMap", cm.encode_to_vec())).expect("configmap");
    assert_eq!(got["data"], json!({"a": "1"}));
    assert_eq!(got["binaryData"], json!({"bin": "AAEC"}));
    assert_eq!(got["immutable"], true);

    let svc = core::v1::Service {
        metadata: Some(meta("web", BTreeMap::new())),
        spec: Some(core::v1::ServiceSpec {
            ports: vec![
                core::v1::ServicePort {
                    name: Some("http".into()),
                    port: Some(80),
                    target_port: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(8080),
                        str_val: Some(String::new()),
                    }),
                    ..Default::default()
                },
                core::v1::ServicePort {
                    name: Some("metrics".into()),
                    port: Some(9090),
                    target_port: Some(IntOrString { r#type: Some(1), int_val: Some(0), str_val: Some("prom".into()) }),
                    ..Default::default()
                },
            ],
            selector: labels(&[("app", "web")]),
            cluster_ip: Some("10.43.0.10".into()),
            external_ips: vec!["1.2.3.4".into()],
            r#type: Some("ClusterIP".into()),
            ..Default::default()
        }),
        status: None,
    };
    let got = decode_protobuf(&envelope("v1", "Service", svc.encode_to_vec())).expect("service");
    assert_eq!(
        got["spec"],
        json!({
            "ports": [
                {"name": "http", "port": 80, "targetPort": 8080},
                {"name": "metrics", "port": 9090, "targetPort": "prom"},
            ],
            "selector": {"app": "web"},
            "clusterIP": "10.43.0.10",
            "type": "ClusterIP",
            "externalIPs": ["1.2.3.4"],
        })
    );
}

#[test]
fn pod_inlines_embedded_structs_and_formats_times_and_quantities() {
    let pod = core::v1::Pod {
        metadata: Some(ObjectMeta {
            name: Some("p".into()),
            namespace: Some("default".into()),
            creation_timestamp: Some(Time { seconds: Some(1_700_000_000), nanos: Some(0) }),
            ..Default::default()
        }),
        spec: Some(core::v1::PodSpec {
            containers: vec![core::v1::Container {
                name: Some("c".into()),
                image: Some("nginx".into()),
                resources: Some(core::v1::ResourceRequirements {
                    limits: [("memory".to_string(), Quantity { string: Some("128Mi".into()) })].into_iter().collect(),
                    ..Default::default()
                }),
                readiness_probe: Some(core::v1::Probe {
                    handler: Some(core::v1::ProbeHandler {
                        http_get: Some(core::v1::HttpGetAction {
                            path: Some("/healthz".into()),
                            port: Some(IntOrString { r#type: Some(0), int_val: Some(8080), str_val: None }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    period_seconds: Some(5),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            volumes: vec![core::v1::Volume {
                name: Some("cfg".into()),
                volume_source: Some(core::v1::VolumeSource {
                    config_map: Some(core::v1::ConfigMapVolumeSource {
                        local_object_reference: Some(core::v1::LocalObjectReference { name: Some("cfg".into()) }),
                        default_mode: Some(420),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }],
            automount_service_account_token: Some(false),
            ..Default::default()
        }),
        status: None,
    };
    let got = decode_protobuf(&envelope("v1", "Pod", pod.encode_to_vec())).expect("pod");
    assert_eq!(got["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
    let c = &got["spec"]["containers"][0];
    assert_eq!(c["resources"], json!({"limits": {"memory": "128Mi"}}));
    assert_eq!(c["readinessProbe"], json!({"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5}));
    assert_eq!(got["spec"]["volumes"], json!([{"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420}}]));
    assert_eq!(got["spec"]["automountServiceAccountToken"], false);
}

#[test]
fn unsupported_kind_is_415_and_broken_bodies_are_400() {
    let err = decode_protobuf(&envelope("rbac.authorization.k8s.io/v1", "Role", Vec::new())).expect_err("unsupported");
    assert!(matches!(err, ProtobufError::Unsupported { .. }), "{err:?}");
    assert_eq!(err.status_code(), http::StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let err = decode_protobuf(b"{\"kind\":\"Pod\"}").expect_err("no magic");
    assert!(matches!(err, ProtobufError::MissingMagic));
    assert_eq!(err.status_code(), http::StatusCode::BAD_REQUEST);

    let err = decode_protobuf(b"k8s\0\x0a\xff").expect_err("truncated");
    assert!(matches!(err, ProtobufError::DecodeEnvelope(_)), "{err:?}");

    let err = decode_protobuf(&envelope("apps/v1", "Deployment", vec![0x0a, 0x05, 0x01])).expect_err("bad object");
    assert!(matches!(err, ProtobufError::DecodeObject { .. }), "{err:?}");

    let err = decode_protobuf(&envelope("", "", Vec::new())).expect_err("no type meta");
    assert!(matches!(err, ProtobufError::MissingTypeMeta));
}

#[test]
fn json_payload_inside_the_envelope_is_passed_through() {
    let unknown = Unknown {
        type_meta: Some(TypeMeta { api_version: Some("v1".into()), kind: Some("Role".into()) }),
        raw: Some(br#"{"metadata":{"name":"x"}}"#.to_vec()),
        content_encoding: None,
        content_type: Some("application/json".into()),
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    assert_eq!(
        decode_protobuf(&body).expect("json"),
        json!({"apiVersion": "v1", "kind": "Role", "metadata": {"name": "x"}})
    );
}

#[test]
fn content_type_detection_ignores_parameters() {
    assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
    assert!(is_protobuf("application/vnd.kubernetes.protobuf; charset=utf-8"));
    assert!(!is_protobuf("application/json"));
}

#[test]
fn durations_print_like_go() {
    let cases = [
        (0, "0s"),
        (1_500, "1.5µs"),
        (250_000_000, "250ms"),
        (1_500_000_000, "1.5s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (-2_000_000_000, "-2s"),
    ];
    for (ns, want) in cases {
        assert_eq!(go_duration(ns), want, "{ns}");
    }
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/src/protobuf/testdata/{name}.bin", env!("CARGO_MANIFEST_DIR"));
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    decode_protobuf(&body).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Bodies captured from the real kubectl binaries on this machine kind (POSTs to a recording server).
#[test]
fn real_kubectl_bodies_decode_to_the_json_kubectl_would_send() {
    assert_eq!(
        fixture("kubectl-1.33-create-deployment-hello"),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "hello", "namespace": "default", "labels": {"app": "hello"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "hello"}},
                "template": {
                    "metadata": {"labels": {"app": "hello"}},
                    "spec": {"containers": [{"name": "busybox", "image": "busybox", "resources": {}}]},
                },
                "strategy": {},
            },
            "status": {},
        })
    );
    // `--replicas=0 --port=80 -- sleep 100`
    let web = fixture("kubectl-1.32-create-deployment-web");
    assert_eq!(web["spec"]["replicas"], 0);
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"],
        json!([{
            "name": "nginx",
            "image": "nginx",
            "command": ["sleep", "100"],
            "ports": [{"containerPort": 80}],
            "resources": {},
        }])
    );
    assert_eq!(
        fixture("kubectl-1.33-autoscale-v2"),
        json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "hello"},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "hello", "apiVersion": "apps/v1"},
                "minReplicas": 1,
                "maxReplicas": 5,
                "metrics": [{
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
                }],
            },
            "status": {"currentReplicas": 0, "desiredReplicas": 0},
        })
    );
    assert_eq!(
        fixture("kubectl-1.32-autoscale-v1"),
        json!({
            "apiVersion": "autoscaling/v1",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "hello"},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "hello", "apiVersion": "apps/v1"},
                "minReplicas": 2,
                "maxReplicas": 5,
                "targetCPUUtilizationPercentage": 80,
            },
            "status": {"currentReplicas": 0, "desiredReplicas": 0},
        })
    );
}
