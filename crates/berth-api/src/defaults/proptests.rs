//! Property tests: defaulting is idempotent on generated pods and deployments, and a defaulted
//! generated pod or deployment with valid names passes validation.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::apps::default_deployment;
use super::pod::default_pod;

fn image() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("nginx".to_string()),
        Just("nginx:latest".to_string()),
        Just("registry.local:5000/app:v1".to_string()),
        Just("busybox@sha256:abc".to_string()),
    ]
}

fn probe() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(json!({"httpGet": {"port": 8080}}))),
        Just(Some(json!({"tcpSocket": {"port": 80}, "periodSeconds": 5}))),
        Just(Some(json!({"exec": {"command": ["true"]}, "failureThreshold": 1}))),
    ]
}

fn container(i: usize) -> impl Strategy<Value = Value> {
    (
        image(),
        proptest::collection::vec(1u16..=65535, 0..3),
        probe(),
        any::<bool>(),
        proptest::option::of("(Always|Never|IfNotPresent)"),
    )
        .prop_map(move |(image, ports, probe, limits, pull)| {
            let mut c = json!({"name": format!("c{i}"), "image": image});
            let ports: Vec<Value> =
                ports.iter().enumerate().map(|(j, p)| json!({"containerPort": p, "name": format!("p{j}")})).collect();
            if !ports.is_empty() {
                c["ports"] = Value::Array(ports);
            }
            if let Some(p) = probe {
                c["livenessProbe"] = p;
            }
            if limits {
                c["resources"] = json!({"limits": {"cpu": "500m", "memory": "128Mi"}});
            }
            if let Some(pull) = pull {
                c["imagePullPolicy"] = json!(pull);
            }
            c
        })
}

fn pod_spec() -> impl Strategy<Value = Value> {
    (
        (1usize..4).prop_flat_map(|n| (0..n).map(container).collect::<Vec<_>>()),
        proptest::option::of("(Always|OnFailure|Never)"),
        any::<bool>(),
        proptest::option::of(0i64..120),
    )
        .prop_map(|(containers, restart, host_network, grace)| {
            let mut spec = json!({"containers": containers});
            if let Some(r) = restart {
                spec["restartPolicy"] = json!(r);
            }
            if host_network {
                spec["hostNetwork"] = json!(true);
            }
            if let Some(g) = grace {
                spec["terminationGracePeriodSeconds"] = json!(g);
            }
            spec
        })
}

proptest! {
    #[test]
    fn pod_defaulting_is_idempotent_and_valid(spec in pod_spec()) {
        let mut pod = json!({"metadata": {"name": "p", "namespace": "default"}, "spec": spec});
        default_pod(&mut pod);
        let once = pod.clone();
        default_pod(&mut pod);
        prop_assert_eq!(&pod, &once);
        let errs = crate::validation::pod::validate_pod(&pod);
        prop_assert!(errs.is_empty(), "{:?}", errs);
    }

    #[test]
    fn deployment_defaulting_is_idempotent_and_valid(
        spec in pod_spec(),
        replicas in proptest::option::of(0i64..10),
        recreate in any::<bool>(),
    ) {
        let mut spec = spec;
        spec["restartPolicy"] = json!("Always");
        let mut d = json!({"metadata": {"name": "d", "namespace": "default"}, "spec": {
            "selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}}, "spec": spec}}});
        if let Some(r) = replicas {
            d["spec"]["replicas"] = json!(r);
        }
        if recreate {
            d["spec"]["strategy"] = json!({"type": "Recreate"});
        }
        default_deployment(&mut d);
        let once = d.clone();
        default_deployment(&mut d);
        prop_assert_eq!(&d, &once);
        let errs = crate::validation::apps::validate_deployment(&d);
        prop_assert!(errs.is_empty(), "{:?}", errs);
    }
}
