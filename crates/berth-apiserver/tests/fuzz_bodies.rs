//! Property test: arbitrary bodies, selectors and paths yield only 4xx Status JSON (or success),
//! never a 5xx or a dropped connection. One server for all cases.

mod common;

use std::sync::OnceLock;

use common::TestServer;
use proptest::prelude::*;
use serde_json::{Value, json};

struct Shared {
    rt: tokio::runtime::Runtime,
    ts: TestServer,
}

fn shared() -> &'static Shared {
    static S: OnceLock<Shared> = OnceLock::new();
    S.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let ts = rt.block_on(TestServer::start());
        // Objects for the update and patch cases to work on.
        let seeds = [
            (PATHS[0], json!({"metadata": {"name": "fz"}, "data": {"a": "b"}})),
            (PATHS[1], json!({"metadata": {"name": "fz"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})),
            (PATHS[2], json!({"metadata": {"name": "fz"}, "spec": {"containers": [{"name": "c", "image": "i"}]}})),
            (PATHS[3], json!({"metadata": {"name": "fz"}, "spec": {"ports": [{"port": 80}]}})),
            (PATHS[4], json!({"metadata": {"name": "fz"}})),
            (PATHS[5], json!({"metadata": {"name": "fz"}})),
        ];
        for (path, obj) in seeds {
            let (code, body) = rt.block_on(ts.post(path, &obj));
            assert_eq!(code, 201, "seeding {path}: {body}");
        }
        Shared { rt, ts }
    })
}

fn check(code: u16, body: &Value) -> Result<(), TestCaseError> {
    prop_assert!(code < 500, "server error {code}: {body}");
    if code >= 400 {
        prop_assert_eq!(&body["kind"], "Status", "not a Status: {}", body);
        prop_assert_eq!(body["code"].as_u64(), Some(code as u64));
    }
    Ok(())
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-z0-9./-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("metadata".to_string()),
                    Just("name".to_string()),
                    Just("spec".to_string()),
                    Just("status".to_string()),
                    Just("replicas".to_string()),
                    Just("namespace".to_string()),
                    Just("labels".to_string()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const PATHS: &[&str] = &[
    "/api/v1/namespaces/default/configmaps",
    "/apis/apps/v1/namespaces/default/deployments",
    "/api/v1/namespaces/default/pods",
    "/api/v1/namespaces/default/services",
    "/api/v1/namespaces",
    "/api/v1/nodes",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_bodies_never_cause_server_errors(idx in 0..PATHS.len(), body in json_value()) {
        let s = shared();
        let (code, resp, _) = s.rt.block_on(s.ts.raw(
            "POST", PATHS[idx], &[("content-type", "application/json")], serde_json::to_vec(&body).unwrap()));
        check(code, &resp)?;
    }

    #[test]
    fn arbitrary_bytes_and_selectors_never_cause_server_errors(
        idx in 0..PATHS.len(),
        bytes in prop::collection::vec(any::<u8>(), 0..64),
        sel in "[a-z=!,()., %0-9-]{0,20}",
        method in prop_oneof![Just("POST"), Just("PUT"), Just("PATCH"), Just("DELETE")],
        ct in prop_oneof![Just("application/json"), Just("application/yaml"), Just("application/merge-patch+json"),
                          Just("application/json-patch+json"), Just("application/apply-patch+yaml"), Just("text/plain")],
    ) {
        let s = shared();
        let sel_q: String = sel.bytes().map(|b| format!("%{b:02X}")).collect();
        let (code, resp) = s.rt.block_on(s.ts.get(&format!("{}?labelSelector={sel_q}", PATHS[idx])));
        check(code, &resp)?;
        let (code, resp) = s.rt.block_on(s.ts.get(&format!("{}?fieldSelector={sel_q}&limit=2", PATHS[idx])));
        check(code, &resp)?;
        let path = if method == "POST" { PATHS[idx].to_string() } else { format!("{}/x{}", PATHS[idx], bytes.len()) };
        let (code, resp, _) = s.rt.block_on(s.ts.raw(method, &path, &[("content-type", ct)], bytes));
        check(code, &resp)?;
    }

    #[test]
    fn arbitrary_patches_and_updates_of_existing_objects_never_cause_server_errors(
        idx in 0..PATHS.len(),
        body in json_value(),
        sub in prop_oneof![Just(""), Just("/status"), Just("/scale")],
        ct in prop_oneof![Just("application/merge-patch+json"), Just("application/strategic-merge-patch+json"),
                          Just("application/json-patch+json"), Just("application/apply-patch+yaml")],
    ) {
        let s = shared();
        let path = format!("{}/fz{sub}", PATHS[idx]);
        let bytes = serde_json::to_vec(&body).unwrap();
        let (code, resp, _) = s.rt.block_on(s.ts.raw("PATCH", &format!("{path}?fieldManager=fuzz"), &[("content-type", ct)], bytes.clone()));
        check(code, &resp)?;
        let (code, resp, _) = s.rt.block_on(s.ts.raw("PUT", &path, &[("content-type", "application/json")], bytes));
        check(code, &resp)?;
    }
}
