//! Server-side field validation (`fieldValidation=Ignore|Warn|Strict`) with the real kubectl and
//! raw requests through kube-rs: a typo'd field fails a strict create, apply, replace or patch
//! with upstream's message and stores nothing; without strictness the field is dropped (never
//! stored) and reported in a `Warning` header; valid objects lose nothing on the way.
//!
//! kubectl is /usr/bin/kubectl (or `BERTH_KUBECTL`); without it the kubectl tests skip, except
//! under `CI=true`, where they fail.

mod common;

use common::TestServer;
use common::kubectl::{Kube, Kubectl};
use serde_json::{Value, json};

/// A Pod whose container has `imagee` for `image`.
const TYPO_POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: typo
spec:
  containers:
  - name: c
    image: busybox
    imagee: busybox
";

/// A Deployment with `spec.replica` for `spec.replicas`.
const TYPO_DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replica: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: busybox}]
";

/// kubectl with `input` on stdin: (success, stdout, stderr).
fn kubectl_stdin(k: &Kubectl, args: &[&str], input: &str) -> (bool, String, String) {
    let out = k.run_with_stdin(args, input);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `kubectl get KIND NAME -o json`, or None when it does not exist.
fn get_json(k: &Kubectl, kind: &str, name: &str) -> Option<Value> {
    let out = k.run(&["get", kind, name, "-o", "json"]);
    out.status.success().then(|| serde_json::from_slice(&out.stdout).expect("kubectl prints JSON"))
}

/// The response of one raw request: status, `Warning` headers, JSON body.
struct Raw {
    code: u16,
    warnings: Vec<String>,
    body: Value,
}

impl Kube {
    /// Sends `body` with `method` to `path` (`content_type` given) through the admin client.
    fn raw(&self, method: &str, path: &str, content_type: &str, body: &Value) -> Raw {
        self.rt.block_on(async {
            let req = http::Request::builder()
                .method(method)
                .uri(path)
                .header(http::header::CONTENT_TYPE, content_type)
                .body(kube::client::Body::from(serde_json::to_vec(body).expect("json")))
                .expect("request");
            let resp = self.client.send(req).await.expect("send");
            let code = resp.status().as_u16();
            let warnings = resp
                .headers()
                .get_all(http::header::WARNING)
                .iter()
                .map(|v| v.to_str().expect("ascii warning").to_string())
                .collect();
            let bytes = resp.into_body().collect_bytes().await.expect("body");
            Raw { code, warnings, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
        })
    }
}

/// Whether every field of `sent` is in `stored` with the same value (the server adds defaults,
/// so `stored` may have more).
fn contains_all(stored: &Value, sent: &Value, path: &str, missing: &mut Vec<String>) {
    match (stored, sent) {
        (Value::Object(s), Value::Object(w)) => {
            for (k, v) in w {
                match s.get(k) {
                    Some(sv) => contains_all(sv, v, &format!("{path}.{k}"), missing),
                    None => missing.push(format!("{path}.{k}")),
                }
            }
        }
        (Value::Array(s), Value::Array(w)) if s.len() == w.len() => {
            for (i, (sv, v)) in s.iter().zip(w).enumerate() {
                contains_all(sv, v, &format!("{path}[{i}]"), missing);
            }
        }
        (s, w) if s == w => {}
        (s, w) => missing.push(format!("{path}: sent {w}, stored {s}")),
    }
}

#[test]
fn strict_kubectl_create_apply_and_replace_reject_typos_and_store_nothing() {
    let server = TestServer::start();
    let Some(k) = Kubectl::new(&server.kubeconfig) else { return };

    let (ok, _, err) = kubectl_stdin(&k, &["create", "-f", "-"], TYPO_POD);
    assert!(!ok);
    assert!(
        err.contains(
            r#"Error from server (BadRequest): error when creating "STDIN": Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.containers[0].imagee""#
        ),
        "{err}"
    );
    assert!(get_json(&k, "pod", "typo").is_none(), "a rejected create stores nothing");

    let (ok, _, err) = kubectl_stdin(&k, &["apply", "-f", "-"], TYPO_DEPLOYMENT);
    assert!(!ok);
    assert!(
        err.contains(
            r#"Error from server (BadRequest): error when creating "STDIN": Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.replica""#
        ),
        "{err}"
    );
    assert!(get_json(&k, "deployment", "web").is_none());

    // Every unknown field is listed, metadata included.
    let two = TYPO_DEPLOYMENT.replace("  name: web\n", "  name: web\n  labelz: {a: b}\n");
    let (ok, _, err) = kubectl_stdin(&k, &["create", "-f", "-"], &two);
    assert!(!ok);
    assert!(
        err.contains(r#"strict decoding error: unknown field "metadata.labelz", unknown field "spec.replica""#),
        "{err}"
    );

    // A valid object, then strict writes over it: replace (PUT), apply (strategic merge patch)
    // and server-side apply each fail and leave it as it was.
    let valid = TYPO_DEPLOYMENT.replace("replica: 2", "replicas: 2");
    let (ok, out, err) = kubectl_stdin(&k, &["apply", "-f", "-"], &valid);
    assert!(ok, "{out}{err}");
    let before = get_json(&k, "deployment", "web").expect("created");

    let (ok, _, err) = kubectl_stdin(&k, &["replace", "-f", "-"], TYPO_DEPLOYMENT);
    assert!(!ok);
    assert!(
        err.contains(
            r#"Error from server (BadRequest): error when replacing "STDIN": Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.replica""#
        ),
        "{err}"
    );

    let typo_image = valid.replace("image: busybox", "imagee: busybox");
    let (ok, _, err) = kubectl_stdin(&k, &["apply", "-f", "-"], &typo_image);
    assert!(!ok);
    assert!(err.contains("patch: Invalid value: "), "{err}");
    assert!(err.contains(r#"strict decoding error: unknown field "spec.template.spec.containers[0].imagee""#), "{err}");

    let (ok, _, err) = kubectl_stdin(&k, &["apply", "--server-side", "-f", "-"], TYPO_DEPLOYMENT);
    assert!(!ok);
    assert!(
        err.contains(
            "Error from server (BadRequest): failed to create typed patch object (default/web; apps/v1, Kind=Deployment): .spec.replica: field not declared in schema"
        ),
        "{err}"
    );

    // (The controllers write status meanwhile, so compare what the rejected writes would change.)
    let after = get_json(&k, "deployment", "web").expect("still there");
    assert_eq!(after["metadata"]["generation"], before["metadata"]["generation"], "the spec was never written");
    assert_eq!(after["spec"], before["spec"]);
    assert_eq!(after["metadata"]["annotations"], before["metadata"]["annotations"]);
}

#[test]
fn kubectl_validate_false_and_warn_store_objects_without_the_unknown_fields() {
    let server = TestServer::start();
    let Some(k) = Kubectl::new(&server.kubeconfig) else { return };

    let (ok, out, err) = kubectl_stdin(&k, &["apply", "--validate=false", "-f", "-"], TYPO_POD);
    assert!(ok, "{out}{err}");
    assert!(!err.contains("Warning"), "Ignore reports nothing: {err}");
    let pod = get_json(&k, "pod", "typo").expect("created");
    assert_eq!(pod["spec"]["containers"][0]["image"], "busybox");
    assert!(pod["spec"]["containers"][0].get("imagee").is_none(), "{pod}");

    let (ok, out, err) = kubectl_stdin(&k, &["apply", "--validate=warn", "-f", "-"], TYPO_DEPLOYMENT);
    assert!(ok, "{out}{err}");
    assert!(err.contains(r#"Warning: unknown field "spec.replica""#), "{err}");
    let deploy = get_json(&k, "deployment", "web").expect("created");
    assert!(deploy["spec"].get("replica").is_none(), "{deploy}");
    assert_eq!(deploy["spec"]["replicas"], 1, "the default, as the typo never reached the object");

    // kubectl patch sends no fieldValidation: Warn, the field dropped.
    let out =
        k.run(&["patch", "deployment", "web", "--type", "merge", "-p", r#"{"spec":{"replica":3,"paused":true}}"#]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(r#"Warning: unknown field "spec.replica""#));
    let deploy = get_json(&k, "deployment", "web").expect("there");
    assert_eq!(deploy["spec"]["paused"], true);
    assert!(deploy["spec"].get("replica").is_none(), "{deploy}");
}

#[test]
fn raw_requests_get_warnings_by_default_and_errors_when_strict() {
    let server = TestServer::start();
    let kube = Kube::new(&server.kubeconfig);
    let pods = "/api/v1/namespaces/default/pods";
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labelz": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "busybox", "imagee": "x"}], "foo": null}});

    // No fieldValidation (what kube-rs sends): Warn.
    let r = kube.raw("POST", pods, "application/json", &pod);
    assert_eq!(r.code, 201, "{}", r.body);
    assert_eq!(
        r.warnings,
        [
            r#"299 - "unknown field \"metadata.labelz\"""#,
            r#"299 - "unknown field \"spec.containers[0].imagee\"""#,
            r#"299 - "unknown field \"spec.foo\"""#,
        ]
    );
    assert!(r.body["metadata"].get("labelz").is_none() && r.body["spec"].get("foo").is_none(), "{}", r.body);
    let stored: k8s_openapi::api::core::v1::Pod =
        kube.rt.block_on(async { kube::Api::namespaced(kube.client.clone(), "default").get("p").await.expect("get") });
    let stored = serde_json::to_value(stored).expect("json");
    assert!(stored["spec"]["containers"][0].get("imagee").is_none());

    // Ignore: dropped silently.
    let mut other = pod.clone();
    other["metadata"]["name"] = json!("q");
    let r = kube.raw("POST", &format!("{pods}?fieldValidation=Ignore"), "application/json", &other);
    assert_eq!(r.code, 201, "{}", r.body);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);

    // Strict, with a duplicate key too: 400 and nothing stored.
    let body = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"s","name":"s"},"spec":{"containers":[{"name":"c","image":"i","imagee":"x"}]}}"#;
    let r = kube.rt.block_on(async {
        let req = http::Request::post(format!("{pods}?fieldValidation=Strict"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(kube::client::Body::from(body.to_vec()))
            .expect("request");
        let resp = kube.client.send(req).await.expect("send");
        let code = resp.status().as_u16();
        let bytes = resp.into_body().collect_bytes().await.expect("body");
        (code, serde_json::from_slice::<Value>(&bytes).expect("status"))
    });
    assert_eq!(r.0, 400);
    assert_eq!(r.1["reason"], "BadRequest");
    assert_eq!(
        r.1["message"],
        r#"Pod in version "v1" cannot be handled as a Pod: strict decoding error: duplicate field "metadata.name", unknown field "spec.containers[0].imagee""#
    );
    let r = kube.raw("GET", &format!("{pods}/s"), "application/json", &Value::Null);
    assert_eq!(r.code, 404);

    // A strict merge patch is 422 Invalid on the "patch" field; a warned one drops the field.
    let r = kube.raw(
        "PATCH",
        &format!("{pods}/p?fieldValidation=Strict"),
        "application/merge-patch+json",
        &json!({"spec": {"activeDeadlineSecond": 5}}),
    );
    assert_eq!(r.code, 422, "{}", r.body);
    assert_eq!(r.body["details"]["causes"][0]["field"], "patch");
    let msg = r.body["message"].as_str().unwrap_or_default();
    assert!(msg.ends_with(r#"strict decoding error: unknown field "spec.activeDeadlineSecond""#), "{msg}");
    let r = kube.raw(
        "PATCH",
        &format!("{pods}/p"),
        "application/strategic-merge-patch+json",
        &json!({"metadata": {"labels": {"x": "y"}}, "spec": {"activeDeadlineSecond": 5}}),
    );
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.warnings, [r#"299 - "unknown field \"spec.activeDeadlineSecond\"""#]);
    assert_eq!(r.body["metadata"]["labels"]["x"], "y");
    assert!(r.body["spec"].get("activeDeadlineSecond").is_none());

    // The status subresource drops unknown fields of the body as well.
    let mut status = r.body.clone();
    status["status"]["phaze"] = json!("Running");
    // Unconditional: the scheduler may write the pod's status in between.
    status["metadata"].as_object_mut().map(|m| m.remove("resourceVersion"));
    let r = kube.raw("PUT", &format!("{pods}/p/status"), "application/json", &status);
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.warnings, [r#"299 - "unknown field \"status.phaze\"""#]);
    assert!(r.body["status"].get("phaze").is_none());

    // An unsupported value is 422, as upstream's ValidateCreateOptions has it.
    let r = kube.raw("POST", &format!("{pods}?fieldValidation=Loose"), "application/json", &pod);
    assert_eq!(r.code, 422);
    assert_eq!(
        r.body["message"],
        r#"CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "Loose": supported values: "", "Ignore", "Strict", "Warn""#
    );
}

#[test]
fn scale_subresource_checks_its_scale_body() {
    let server = TestServer::start();
    let kube = Kube::new(&server.kubeconfig);
    let deploys = "/apis/apps/v1/namespaces/default/deployments";
    let deploy: Value = serde_saphyr::from_str(&TYPO_DEPLOYMENT.replace("replica: 2", "replicas: 2")).expect("yaml");
    let r = kube.raw("POST", &format!("{deploys}?fieldValidation=Strict"), "application/json", &deploy);
    assert_eq!(r.code, 201, "{}", r.body);

    let r = kube.raw(
        "PATCH",
        &format!("{deploys}/web/scale?fieldValidation=Strict"),
        "application/merge-patch+json",
        &json!({"spec": {"replica": 3}}),
    );
    assert_eq!(r.code, 422, "{}", r.body);
    let r = kube.raw(
        "PATCH",
        &format!("{deploys}/web/scale"),
        "application/merge-patch+json",
        &json!({"spec": {"replicas": 3, "replica": 4}}),
    );
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.warnings, [r#"299 - "unknown field \"spec.replica\"""#]);
    assert_eq!(r.body["spec"]["replicas"], 3);
}

#[test]
fn valid_rich_objects_round_trip_through_strict_validation_unchanged() {
    let server = TestServer::start();
    let kube = Kube::new(&server.kubeconfig);
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "rich", "namespace": "default",
            "labels": {"app": "rich", "example.com/tier": "web"},
            "annotations": {"note": "{\"json\": [1, 2]}", "kubernetes.io/change-cause": "initial"}},
        "spec": {
            "replicas": 3,
            "revisionHistoryLimit": 4,
            "selector": {"matchLabels": {"app": "rich"}, "matchExpressions": [{"key": "example.com/tier", "operator": "In", "values": ["web"]}]},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "50%", "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "rich", "example.com/tier": "web"}, "annotations": {"a": "b"}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 10, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app": "rich"}}}}]}},
                    "volumes": [{"name": "cfg", "configMap": {"name": "rich", "items": [{"key": "a.conf", "path": "a.conf"}]}},
                        {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}],
                    "containers": [{
                        "name": "web", "image": "busybox:stable",
                        "command": ["httpd", "-f"], "args": ["-p", "8080"],
                        "env": [{"name": "A", "value": "1"},
                            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}}],
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        "resources": {"limits": {"cpu": "500m", "memory": "128Mi", "ephemeral-storage": "1Gi"},
                            "requests": {"cpu": "100m", "memory": "64Mi"}},
                        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
                        "livenessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 3},
                        "volumeMounts": [{"name": "cfg", "mountPath": "/etc/rich", "readOnly": true}],
                        "securityContext": {"runAsUser": 1000, "capabilities": {"drop": ["ALL"]}}
                    }]
                }
            }
        }
    });
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "rich", "namespace": "default", "labels": {"app": "rich"}, "annotations": {"x/y": "z"}},
        "spec": {"type": "NodePort", "selector": {"app": "rich"}, "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                {"name": "alt", "port": 8443, "targetPort": 8443, "protocol": "TCP"}]}
    });
    let config_map = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "rich", "namespace": "default"},
        "data": {"a.conf": "key = value\n", "spec.replica": "not a field", "nested": "{\"imagee\": 1}"},
        "binaryData": {"blob": "AAECAw=="}
    });
    for (path, obj) in [
        ("/apis/apps/v1/namespaces/default/deployments", &deployment),
        ("/api/v1/namespaces/default/services", &service),
        ("/api/v1/namespaces/default/configmaps", &config_map),
    ] {
        let r = kube.raw("POST", &format!("{path}?fieldValidation=Strict"), "application/json", obj);
        assert_eq!(r.code, 201, "{path}: {}", r.body);
        assert!(r.warnings.is_empty(), "{path}: {:?}", r.warnings);
        let got = kube.raw("GET", &format!("{path}/rich"), "application/json", &Value::Null);
        let mut missing = Vec::new();
        contains_all(&got.body, obj, "", &mut missing);
        assert!(missing.is_empty(), "{path} lost or changed: {missing:?}\n{}", got.body);

        // The object as read back is itself valid: a strict replace of it succeeds (unconditional:
        // a controller may write its status in between).
        let mut back = got.body.clone();
        back["metadata"].as_object_mut().map(|m| m.remove("resourceVersion"));
        let r = kube.raw("PUT", &format!("{path}/rich?fieldValidation=Strict"), "application/json", &back);
        assert_eq!(r.code, 200, "{path}: {}", r.body);
    }
}

#[test]
fn custom_resources_are_pruned_by_their_structural_schema() {
    let server = TestServer::start();
    let kube = Kube::new(&server.kubeconfig);
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {"group": "stable.example.com", "scope": "Namespaced",
            "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {"type": "object", "properties": {
                    "cronSpec": {"type": "string"},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}}}]}
    });
    let r = kube.raw("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", "application/json", &crd);
    assert_eq!(r.code, 201, "{}", r.body);
    let crontabs = "/apis/stable.example.com/v1/namespaces/default/crontabs";
    let cr = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "c"},
        "spec": {"cronSpec": "* * * * */5", "cronSpek": "x", "extra": {"anything": [1, {"goes": true}]}}});

    let r = kube.raw("POST", &format!("{crontabs}?fieldValidation=Strict"), "application/json", &cr);
    assert_eq!(r.code, 400, "{}", r.body);
    assert_eq!(
        r.body["message"],
        r#"CronTab in version "v1" cannot be handled as a CronTab: strict decoding error: unknown field "spec.cronSpek""#
    );

    let r = kube.raw("POST", crontabs, "application/json", &cr);
    assert_eq!(r.code, 201, "{}", r.body);
    assert_eq!(r.warnings, [r#"299 - "unknown field \"spec.cronSpek\"""#]);
    let got = kube.raw("GET", &format!("{crontabs}/c"), "application/json", &Value::Null);
    assert_eq!(
        got.body["spec"],
        json!({"cronSpec": "* * * * */5", "extra": {"anything": [1, {"goes": true}]}}),
        "the unknown field is gone, the preserved subtree kept"
    );
}
