//! Pod and pod template defaults (`pkg/apis/core/v1/defaults.go`: `SetDefaults_Pod`,
//! `SetDefaults_PodSpec`, `SetDefaults_Container`, `SetDefaults_ContainerPort`,
//! `SetDefaults_Probe`, `SetDefaults_HTTPGetAction`, `SetDefaults_Volume`, ...).

use serde_json::{Map, Value, json};

use super::{child_mut, each_mut, ensure, set_default, str_of};

/// `v1.DefaultTerminationGracePeriodSeconds`.
pub const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;
/// `v1.DefaultSchedulerName`.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
/// `v1.TerminationMessagePathDefault`.
pub const TERMINATION_MESSAGE_PATH_DEFAULT: &str = "/dev/termination-log";
/// Default file mode of secret, configMap, downwardAPI and projected volumes (0644).
pub const DEFAULT_VOLUME_MODE: i64 = 0o644;

/// Defaults a Pod: its spec as a pod template's, plus requests copied from limits and
/// `enableServiceLinks: true` (pods only, not templates).
pub fn default_pod(obj: &mut Value) {
    let Some(spec) = child_mut(obj, "spec") else {
        return;
    };
    default_pod_spec(spec);
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    for list in ["initContainers", "containers"] {
        for c in each_mut(spec, list) {
            default_requests_from_limits(c);
            if host_network {
                // defaultHostNetworkPorts: with hostNetwork the host port is the container port.
                // Pods only: for templates it sits behind a feature gate that is off by default.
                for p in each_mut(c, "ports") {
                    if let Some(cp) = p.get("containerPort").cloned() {
                        set_default(p, "hostPort", cp);
                    }
                }
            }
        }
    }
    set_default(spec, "enableServiceLinks", json!(true));
    default_toleration_seconds(spec);
}

/// `node.kubernetes.io/not-ready`: the taint on a node whose Ready condition is False.
pub const TAINT_NODE_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// `node.kubernetes.io/unreachable`: the taint on a node whose Ready condition is Unknown.
pub const TAINT_NODE_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The admission plugin's `--default-not-ready-toleration-seconds` and
/// `--default-unreachable-toleration-seconds` defaults.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// The `DefaultTolerationSeconds` admission plugin (`plugin/pkg/admission/defaulttolerationseconds`):
/// a pod that does not already tolerate the NoExecute taints `not-ready` and `unreachable` gets
/// `{key, operator: Exists, effect: NoExecute, tolerationSeconds: 300}` for each.
///
/// Upstream runs it on create only. The defaulting here runs on create and on update, which is
/// equivalent: a created pod already carries both tolerations (so an update finds them
/// tolerated and changes nothing), and pod updates may not remove tolerations anyway.
pub fn default_toleration_seconds(spec: &mut Map<String, Value>) {
    if spec.get("tolerations").is_some_and(|t| !t.is_null() && !t.is_array()) {
        return; // the wrong type: left for validation to report
    }
    let tolerates = |spec: &Map<String, Value>, taint: &str| {
        spec.get("tolerations").and_then(Value::as_array).into_iter().flatten().any(|t| {
            let key = t.get("key").and_then(Value::as_str).unwrap_or("");
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            (key == taint || key.is_empty()) && (effect == "NoExecute" || effect.is_empty())
        })
    };
    for taint in [TAINT_NODE_NOT_READY, TAINT_NODE_UNREACHABLE] {
        if tolerates(spec, taint) {
            continue;
        }
        let toleration = json!({
            "key": taint,
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
        });
        match spec.get_mut("tolerations").and_then(Value::as_array_mut) {
            Some(list) => list.push(toleration),
            None => {
                spec.insert("tolerations".into(), json!([toleration]));
            }
        }
    }
}

/// Defaults a pod template (`spec.template` of workloads): its spec only.
pub fn default_pod_template(template: &mut Map<String, Value>) {
    if let Some(spec) = template.get_mut("spec").and_then(Value::as_object_mut) {
        default_pod_spec(spec);
    }
}

/// `SetDefaults_PodSpec` and the defaults of everything inside it.
pub fn default_pod_spec(spec: &mut Map<String, Value>) {
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "terminationGracePeriodSeconds", json!(DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS));
    set_default(spec, "schedulerName", json!(DEFAULT_SCHEDULER_NAME));
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in each_mut(spec, list) {
            default_container(c);
        }
    }
    for v in each_mut(spec, "volumes") {
        default_volume(v);
    }
}

/// `SetDefaults_Container` plus its ports, probes, lifecycle handlers and env.
pub fn default_container(c: &mut Map<String, Value>) {
    let policy = if image_tag_is_latest(str_of(c, "image")) { "Always" } else { "IfNotPresent" };
    set_default(c, "imagePullPolicy", json!(policy));
    set_default(c, "terminationMessagePath", json!(TERMINATION_MESSAGE_PATH_DEFAULT));
    set_default(c, "terminationMessagePolicy", json!("File"));
    for p in each_mut(c, "ports") {
        set_default(p, "protocol", json!("TCP"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            default_probe(p);
        }
    }
    if let Some(lifecycle) = c.get_mut("lifecycle").and_then(Value::as_object_mut) {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = lifecycle.get_mut(hook).and_then(Value::as_object_mut) {
                default_handler(h);
            }
        }
    }
    for env in each_mut(c, "env") {
        if let Some(field_ref) =
            env.get_mut("valueFrom").and_then(Value::as_object_mut).and_then(|vf| vf.get_mut("fieldRef"))
            && let Some(field_ref) = field_ref.as_object_mut()
        {
            set_default(field_ref, "apiVersion", json!("v1"));
        }
    }
}

/// `SetDefaults_Probe` and its handler's defaults.
pub fn default_probe(p: &mut Map<String, Value>) {
    set_default(p, "timeoutSeconds", json!(1));
    set_default(p, "periodSeconds", json!(10));
    set_default(p, "successThreshold", json!(1));
    set_default(p, "failureThreshold", json!(3));
    default_handler(p);
}

/// `SetDefaults_HTTPGetAction` (path `/`, scheme HTTP) and `SetDefaults_GRPCAction`.
fn default_handler(h: &mut Map<String, Value>) {
    if let Some(get) = h.get_mut("httpGet").and_then(Value::as_object_mut) {
        set_default(get, "path", json!("/"));
        set_default(get, "scheme", json!("HTTP"));
    }
    if let Some(grpc) = h.get_mut("grpc").and_then(Value::as_object_mut) {
        set_default(grpc, "service", json!(""));
    }
}

/// The volume source fields of a `Volume`.
pub const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

/// `SetDefaults_Volume` (no source means emptyDir) and the volume sources' file modes.
pub fn default_volume(v: &mut Map<String, Value>) {
    if !VOLUME_SOURCES.iter().any(|s| v.get(*s).is_some_and(|x| !x.is_null())) {
        v.insert("emptyDir".to_string(), json!({}));
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = v.get_mut(source).and_then(Value::as_object_mut) {
            set_default(s, "defaultMode", json!(DEFAULT_VOLUME_MODE));
        }
    }
    if let Some(hp) = v.get_mut("hostPath").and_then(Value::as_object_mut) {
        set_default(hp, "type", json!(""));
    }
    if let Some(projected) = v.get_mut("projected").and_then(Value::as_object_mut) {
        for src in each_mut(projected, "sources") {
            if let Some(sat) = src.get_mut("serviceAccountToken").and_then(Value::as_object_mut) {
                set_default(sat, "expirationSeconds", json!(3600));
            }
        }
    }
    if let Some(image) = v.get_mut("image").and_then(Value::as_object_mut) {
        let policy = if image_tag_is_latest(str_of(image, "reference")) { "Always" } else { "IfNotPresent" };
        set_default(image, "pullPolicy", json!(policy));
    }
}

/// `SetDefaults_Pod`: limits given without requests become the requests.
fn default_requests_from_limits(c: &mut Map<String, Value>) {
    let Some(resources) = c.get_mut("resources").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    let Some(requests) = ensure(resources, "requests") else {
        return;
    };
    for (k, v) in limits {
        requests.entry(k).or_insert(v);
    }
}

/// Whether an image reference has the tag `latest`, explicitly or by omission (no tag and no
/// digest), as `parsers.ParseImageName` decides it. `host:5000/repo` has no tag.
pub fn image_tag_is_latest(image: &str) -> bool {
    if image.contains('@') {
        return false;
    }
    let last_segment = image.rsplit('/').next().unwrap_or(image);
    match last_segment.rsplit_once(':') {
        Some((_, tag)) => tag == "latest",
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted(mut pod: Value) -> Value {
        default_pod(&mut pod);
        pod
    }

    #[test]
    fn pod_spec_defaults() {
        let pod = defaulted(json!({"spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}));
        let spec = &pod["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["securityContext"], json!({}));
        assert_eq!(spec["enableServiceLinks"], true);
    }

    #[test]
    fn user_values_are_kept() {
        let pod = defaulted(json!({"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
            "dnsPolicy": "Default", "containers": [{"name": "c", "image": "nginx", "imagePullPolicy": "Never"}]}}));
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
        assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 0);
        assert_eq!(pod["spec"]["dnsPolicy"], "Default");
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Never");
    }

    #[test]
    fn default_toleration_seconds_added_unless_tolerated() {
        let pod = defaulted(json!({"spec": {"containers": [{"name": "c", "image": "x"}]}}));
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ])
        );
        // An explicit toleration of one taint is kept and only the other is added.
        let pod = defaulted(json!({"spec": {"containers": [{"name": "c", "image": "x"}], "tolerations": [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5},
        ]}}));
        let t = pod["spec"]["tolerations"].as_array().cloned().unwrap_or_default();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0]["tolerationSeconds"], 5);
        assert_eq!(t[1]["key"], "node.kubernetes.io/not-ready");
        // A wildcard toleration (empty key, no effect) tolerates both.
        let pod = defaulted(json!({"spec": {"containers": [{"name": "c", "image": "x"}],
            "tolerations": [{"operator": "Exists"}]}}));
        assert_eq!(pod["spec"]["tolerations"], json!([{"operator": "Exists"}]));
        // A NoSchedule toleration of not-ready does not count.
        let pod = defaulted(json!({"spec": {"containers": [{"name": "c", "image": "x"}],
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}]}}));
        assert_eq!(pod["spec"]["tolerations"].as_array().map(Vec::len), Some(3));
        let mut again = pod.clone();
        default_pod(&mut again);
        assert_eq!(again, pod, "idempotent");
    }

    #[test]
    fn container_defaults() {
        let pod = defaulted(json!({"spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}));
        let c = &pod["spec"]["containers"][0];
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        let cases = [
            ("no tag", "nginx", "Always"),
            ("latest", "nginx:latest", "Always"),
            ("versioned", "nginx:1.25", "IfNotPresent"),
            ("registry port, no tag", "localhost:5000/nginx", "Always"),
            ("registry port and tag", "localhost:5000/nginx:v1", "IfNotPresent"),
            ("digest", "nginx@sha256:0123456789abcdef", "IfNotPresent"),
        ];
        for (name, image, want) in cases {
            let pod = defaulted(json!({"spec": {"containers": [{"name": "c", "image": image}]}}));
            assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], want, "{name}");
        }
    }

    #[test]
    fn container_port_protocol_defaults_to_tcp() {
        let pod = defaulted(json!({"spec": {"containers": [{"name": "c", "image": "x",
            "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}]}]}}));
        assert_eq!(pod["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(pod["spec"]["containers"][0]["ports"][1]["protocol"], "UDP");
        assert!(pod["spec"]["containers"][0]["ports"][0].get("hostPort").is_none());
    }

    #[test]
    fn host_network_ports_get_host_port() {
        let pod = defaulted(json!({"spec": {"hostNetwork": true,
            "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 8080}]}]}}));
        assert_eq!(pod["spec"]["containers"][0]["ports"][0]["hostPort"], 8080);
    }

    #[test]
    fn host_network_templates_get_no_host_port() {
        let mut template = json!({"spec": {"hostNetwork": true,
            "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 8080}]}]}})
        .as_object()
        .cloned()
        .unwrap_or_default();
        default_pod_template(&mut template);
        assert!(template["spec"]["containers"][0]["ports"][0].get("hostPort").is_none());
    }

    #[test]
    fn probe_defaults() {
        let pod = defaulted(json!({"spec": {"containers": [{"name": "c", "image": "x",
            "livenessProbe": {"httpGet": {"port": 80}}, "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 5}}]}}));
        let c = &pod["spec"]["containers"][0];
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(c["readinessProbe"]["periodSeconds"], 5);
        assert_eq!(c["readinessProbe"]["failureThreshold"], 3);
    }

    #[test]
    fn lifecycle_http_handlers_get_path_and_scheme() {
        let pod = defaulted(json!({"spec": {"containers": [{"name": "c", "image": "x",
            "lifecycle": {"preStop": {"httpGet": {"port": 80}}}}]}}));
        assert_eq!(pod["spec"]["containers"][0]["lifecycle"]["preStop"]["httpGet"]["scheme"], "HTTP");
    }

    #[test]
    fn env_field_ref_gets_api_version() {
        let pod = defaulted(json!({"spec": {"containers": [{"name": "c", "image": "x",
            "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}}));
        assert_eq!(pod["spec"]["containers"][0]["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
    }

    #[test]
    fn requests_default_to_limits_on_pods_only() {
        let spec = json!({"containers": [{"name": "c", "image": "x",
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}}]});
        let pod = defaulted(json!({"spec": spec.clone()}));
        assert_eq!(pod["spec"]["containers"][0]["resources"]["requests"], json!({"cpu": "500m", "memory": "1Gi"}));
        let mut template = json!({"spec": spec}).as_object().cloned().unwrap_or_default();
        default_pod_template(&mut template);
        assert_eq!(template["spec"]["containers"][0]["resources"]["requests"], json!({"cpu": "500m"}));
        assert!(template["spec"].get("enableServiceLinks").is_none());
    }

    #[test]
    fn volume_defaults() {
        let pod = defaulted(json!({"spec": {"containers": [], "volumes": [
            {"name": "scratch"},
            {"name": "s", "secret": {"secretName": "x"}},
            {"name": "c", "configMap": {"name": "x", "defaultMode": 256}},
            {"name": "h", "hostPath": {"path": "/tmp"}}
        ]}}));
        let v = &pod["spec"]["volumes"];
        assert_eq!(v[0]["emptyDir"], json!({}));
        assert_eq!(v[1]["secret"]["defaultMode"], 420);
        assert_eq!(v[2]["configMap"]["defaultMode"], 256);
        assert_eq!(v[3]["hostPath"]["type"], "");
    }

    #[test]
    fn pod_defaults_are_idempotent() {
        let once = defaulted(json!({"spec": {"containers": [{"name": "c", "image": "x",
            "ports": [{"containerPort": 1}], "livenessProbe": {"exec": {"command": ["true"]}},
            "resources": {"limits": {"cpu": "1"}}}], "volumes": [{"name": "v"}]}}));
        assert_eq!(defaulted(once.clone()), once);
    }

    #[test]
    fn malformed_specs_do_not_panic() {
        for bad in
            [json!({}), json!({"spec": 3}), json!({"spec": {"containers": "x"}}), json!({"spec": {"containers": [1]}})]
        {
            let _ = defaulted(bad);
        }
    }
}
