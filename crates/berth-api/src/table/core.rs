//! Tables for core/v1 kinds (pods, nodes, services, events, ...) and events.k8s.io Events.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::core::v1 as core;
use serde_json::{Value, json};

use super::{
    Printer, age, age_column, arr, col, container_cells, containers_columns, doc, format_labels, human_duration, int,
    name, name_column, obj, parse_time, s, since, string, wide,
};

pub(crate) static PRINTERS: &[Printer] = &[
    Printer::new("", "Pod", pod_columns, pod_row),
    Printer::new("", "Node", node_columns, node_row),
    Printer::new("", "Service", service_columns, service_row),
    Printer::new("", "Event", event_columns, event_row),
    Printer::new("events.k8s.io", "Event", event_columns, events_v1_row),
    Printer::new("", "Namespace", namespace_columns, namespace_row),
    Printer::new("", "Endpoints", endpoints_columns, endpoints_row),
    Printer::new("", "ConfigMap", config_map_columns, config_map_row),
    Printer::new("", "Secret", secret_columns, secret_row),
    Printer::new("", "ServiceAccount", service_account_columns, service_account_row),
    Printer::new("", "PersistentVolume", pv_columns, pv_row),
    Printer::new("", "PersistentVolumeClaim", pvc_columns, pvc_row),
    Printer::new("", "ReplicationController", rc_columns, rc_row),
    Printer::new("", "PodTemplate", pod_template_columns, pod_template_row),
    Printer::new("", "ResourceQuota", resource_quota_columns, resource_quota_row),
];

// --- Pod -------------------------------------------------------------------------------------

fn pod_columns() -> Vec<super::ColumnDefinition> {
    vec![
        name_column(),
        col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
        col("Status", "string", "The aggregate status of the containers in this pod."),
        col(
            "Restarts",
            "string",
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
        age_column(),
        wide("IP", "string", doc::<core::PodStatus>("podIP")),
        wide("Node", "string", doc::<core::PodSpec>("nodeName")),
        wide("Nominated Node", "string", doc::<core::PodStatus>("nominatedNodeName")),
        wide("Readiness Gates", "string", doc::<core::PodSpec>("readinessGates")),
    ]
}

fn condition_true(conditions: &Value, type_: &str) -> bool {
    arr(conditions).iter().any(|c| s(&c["type"]) == type_ && s(&c["status"]) == "True")
}

/// `printPod`: READY counts ready containers (and started sidecars), STATUS is the most telling
/// reason (init progress, waiting/terminated reasons, Terminating, ...), RESTARTS adds when the
/// last restart happened.
fn pod_row(pod: &Value, now: Timestamp) -> Vec<Value> {
    let spec = &pod["spec"];
    let status = &pod["status"];
    let mut restarts: i64 = 0;
    let mut sidecar_restarts: i64 = 0;
    let mut total = arr(&spec["containers"]).len();
    let mut ready = 0usize;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;
    let phase = s(&status["phase"]);
    let mut reason = if s(&status["reason"]).is_empty() { phase.to_string() } else { s(&status["reason"]).to_string() };
    for c in arr(&status["conditions"]) {
        if s(&c["type"]) == "PodScheduled" && s(&c["reason"]) == "SchedulingGated" {
            reason = "SchedulingGated".into();
        }
    }
    let init_containers = arr(&spec["initContainers"]);
    let is_sidecar =
        |name: &str| init_containers.iter().any(|c| s(&c["name"]) == name && s(&c["restartPolicy"]) == "Always");
    total += init_containers.iter().filter(|c| s(&c["restartPolicy"]) == "Always").count();
    let later = |cur: Option<Timestamp>, cand: Option<Timestamp>| match (cur, cand) {
        (Some(a), Some(b)) if b > a => Some(b),
        (None, b) => b,
        (a, _) => a,
    };

    let mut initializing = false;
    for (i, c) in arr(&status["initContainerStatuses"]).iter().enumerate() {
        restarts += int(&c["restartCount"]);
        let finished = parse_time(&c["lastState"]["terminated"]["finishedAt"]);
        last_restart = later(last_restart, finished);
        let sidecar = is_sidecar(s(&c["name"]));
        if sidecar {
            sidecar_restarts += int(&c["restartCount"]);
            last_sidecar_restart = later(last_sidecar_restart, finished);
        }
        let terminated = &c["state"]["terminated"];
        let waiting = &c["state"]["waiting"];
        if terminated.is_object() && int(&terminated["exitCode"]) == 0 {
            continue;
        } else if sidecar && c["started"].as_bool() == Some(true) {
            if c["ready"].as_bool() == Some(true) {
                ready += 1;
            }
            continue;
        } else if terminated.is_object() {
            reason = if s(&terminated["reason"]).is_empty() {
                if int(&terminated["signal"]) != 0 {
                    format!("Init:Signal:{}", int(&terminated["signal"]))
                } else {
                    format!("Init:ExitCode:{}", int(&terminated["exitCode"]))
                }
            } else {
                format!("Init:{}", s(&terminated["reason"]))
            };
        } else if waiting.is_object() && !s(&waiting["reason"]).is_empty() && s(&waiting["reason"]) != "PodInitializing"
        {
            reason = format!("Init:{}", s(&waiting["reason"]));
        } else {
            reason = format!("Init:{i}/{}", init_containers.len());
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true(&status["conditions"], "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in arr(&status["containerStatuses"]).iter().rev() {
            restarts += int(&c["restartCount"]);
            last_restart = later(last_restart, parse_time(&c["lastState"]["terminated"]["finishedAt"]));
            let waiting = &c["state"]["waiting"];
            let terminated = &c["state"]["terminated"];
            if waiting.is_object() && !s(&waiting["reason"]).is_empty() {
                reason = s(&waiting["reason"]).to_string();
            } else if terminated.is_object() && !s(&terminated["reason"]).is_empty() {
                reason = s(&terminated["reason"]).to_string();
            } else if terminated.is_object() {
                reason = if int(&terminated["signal"]) != 0 {
                    format!("Signal:{}", int(&terminated["signal"]))
                } else {
                    format!("ExitCode:{}", int(&terminated["exitCode"]))
                };
            } else if c["ready"].as_bool() == Some(true) && c["state"]["running"].is_object() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(&status["conditions"], "Ready") { "Running".into() } else { "NotReady".into() };
        }
    }

    let deleting = pod["metadata"]["deletionTimestamp"].is_string();
    if deleting && s(&status["reason"]) == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Failed" && phase != "Succeeded" {
        reason = "Terminating".into();
    }

    let restarts_str = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", human_duration(now.duration_since(t))),
        _ => restarts.to_string(),
    };
    let or_none = |v: &str| if v.is_empty() { "<none>".to_string() } else { v.to_string() };
    let pod_ip = or_none(s(&status["podIPs"][0]["ip"]));
    let gates = arr(&spec["readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_conditions = gates
            .iter()
            .filter(|g| {
                let t = s(&g["conditionType"]);
                arr(&status["conditions"])
                    .iter()
                    .find(|c| s(&c["type"]) == t)
                    .is_some_and(|c| s(&c["status"]) == "True")
            })
            .count();
        format!("{true_conditions}/{}", gates.len())
    };
    vec![
        name(pod),
        Value::String(format!("{ready}/{total}")),
        Value::String(reason),
        Value::String(restarts_str),
        age(pod, now),
        Value::String(pod_ip),
        Value::String(or_none(s(&spec["nodeName"]))),
        Value::String(or_none(s(&status["nominatedNodeName"]))),
        Value::String(readiness_gates),
    ]
}

// --- Node ------------------------------------------------------------------------------------

fn node_columns() -> Vec<super::ColumnDefinition> {
    vec![
        name_column(),
        col("Status", "string", "The status of the node"),
        col("Roles", "string", "The roles of the node"),
        age_column(),
        col("Version", "string", doc::<core::NodeSystemInfo>("kubeletVersion")),
        wide("Internal-IP", "string", doc::<core::NodeStatus>("addresses")),
        wide("External-IP", "string", doc::<core::NodeStatus>("addresses")),
        wide("OS-Image", "string", doc::<core::NodeSystemInfo>("osImage")),
        wide("Kernel-Version", "string", doc::<core::NodeSystemInfo>("kernelVersion")),
        wide("Container-Runtime", "string", doc::<core::NodeSystemInfo>("containerRuntimeVersion")),
    ]
}

fn node_row(node: &Value, now: Timestamp) -> Vec<Value> {
    let mut status: Vec<String> = Vec::new();
    // Only the Ready condition counts (upstream's NodeAllConditions); the last entry wins.
    if let Some(c) = arr(&node["status"]["conditions"]).iter().rev().find(|c| s(&c["type"]) == "Ready") {
        status.push(if s(&c["status"]) == "True" { "Ready".into() } else { "NotReady".into() });
    }
    if status.is_empty() {
        status.push("Unknown".into());
    }
    if node["spec"]["unschedulable"].as_bool() == Some(true) {
        status.push("SchedulingDisabled".into());
    }
    let mut roles = BTreeSet::new();
    if let Some(labels) = obj(&node["metadata"]["labels"]) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if k == "kubernetes.io/role" && !s(v).is_empty() {
                roles.insert(s(v).to_string());
            }
        }
    }
    let roles = if roles.is_empty() { "<none>".to_string() } else { roles.into_iter().collect::<Vec<_>>().join(",") };
    let address = |t: &str| {
        arr(&node["status"]["addresses"])
            .iter()
            .find(|a| s(&a["type"]) == t)
            .map(|a| s(&a["address"]).to_string())
            .unwrap_or_else(|| "<none>".into())
    };
    let info = &node["status"]["nodeInfo"];
    let unknown = |v: &Value| if s(v).is_empty() { "<unknown>".to_string() } else { s(v).to_string() };
    vec![
        name(node),
        Value::String(status.join(",")),
        Value::String(roles),
        age(node, now),
        string(&info["kubeletVersion"]),
        Value::String(address("InternalIP")),
        Value::String(address("ExternalIP")),
        Value::String(unknown(&info["osImage"])),
        Value::String(unknown(&info["kernelVersion"])),
        Value::String(unknown(&info["containerRuntimeVersion"])),
    ]
}

// --- Service ---------------------------------------------------------------------------------

fn service_columns() -> Vec<super::ColumnDefinition> {
    vec![
        name_column(),
        col("Type", "string", doc::<core::ServiceSpec>("type")),
        col("Cluster-IP", "string", doc::<core::ServiceSpec>("clusterIP")),
        col("External-IP", "string", doc::<core::ServiceSpec>("externalIPs")),
        col("Port(s)", "string", doc::<core::ServiceSpec>("ports")),
        age_column(),
        wide("Selector", "string", doc::<core::ServiceSpec>("selector")),
    ]
}

/// Load balancer ingress IPs (or hostnames), sorted and deduplicated (`sets.NewString`).
pub(crate) fn load_balancer_ingress(ingress: &Value) -> String {
    let set: BTreeSet<&str> = arr(ingress)
        .iter()
        .filter_map(|i| {
            if !s(&i["ip"]).is_empty() {
                Some(s(&i["ip"]))
            } else if !s(&i["hostname"]).is_empty() {
                Some(s(&i["hostname"]))
            } else {
                None
            }
        })
        .collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

fn service_external_ip(svc: &Value) -> String {
    let spec = &svc["spec"];
    let external: Vec<&str> = arr(&spec["externalIPs"]).iter().map(s).collect();
    // An unset type defaults to ClusterIP.
    match s(&spec["type"]) {
        "ClusterIP" | "" | "NodePort" => {
            if external.is_empty() {
                "<none>".into()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let lb = load_balancer_ingress(&svc["status"]["loadBalancer"]["ingress"]);
            if !external.is_empty() {
                let mut results: Vec<&str> = if lb.is_empty() { Vec::new() } else { lb.split(',').collect() };
                results.extend(external);
                results.join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".into()
            }
        }
        "ExternalName" => s(&spec["externalName"]).to_string(),
        _ => "<unknown>".into(),
    }
}

fn service_row(svc: &Value, now: Timestamp) -> Vec<Value> {
    let spec = &svc["spec"];
    let cluster_ip = match arr(&spec["clusterIPs"]).first() {
        Some(ip) => s(ip).to_string(),
        None if !s(&spec["clusterIP"]).is_empty() => s(&spec["clusterIP"]).to_string(),
        None => "<none>".into(),
    };
    let ports: Vec<String> = arr(&spec["ports"])
        .iter()
        .map(|p| {
            let protocol = if s(&p["protocol"]).is_empty() { "TCP" } else { s(&p["protocol"]) };
            if int(&p["nodePort"]) > 0 {
                format!("{}:{}/{protocol}", int(&p["port"]), int(&p["nodePort"]))
            } else {
                format!("{}/{protocol}", int(&p["port"]))
            }
        })
        .collect();
    let ports = if ports.is_empty() { "<none>".to_string() } else { ports.join(",") };
    let type_ = if s(&spec["type"]).is_empty() { "ClusterIP" } else { s(&spec["type"]) };
    vec![
        name(svc),
        Value::String(type_.to_string()),
        Value::String(cluster_ip),
        Value::String(service_external_ip(svc)),
        Value::String(ports),
        age(svc, now),
        Value::String(format_labels(&spec["selector"])),
    ]
}

// --- Event -----------------------------------------------------------------------------------

fn event_columns() -> Vec<super::ColumnDefinition> {
    vec![
        col("Last Seen", "string", doc::<core::Event>("lastTimestamp")),
        col("Type", "string", doc::<core::Event>("type")),
        col("Reason", "string", doc::<core::Event>("reason")),
        col("Object", "string", doc::<core::Event>("involvedObject")),
        wide("Subobject", "string", doc::<core::ObjectReference>("fieldPath")),
        wide("Source", "string", doc::<core::Event>("source")),
        col("Message", "string", doc::<core::Event>("message")),
        wide("First Seen", "string", doc::<core::Event>("firstTimestamp")),
        wide("Count", "string", doc::<core::Event>("count")),
        super::ColumnDefinition { priority: 1, ..name_column() },
    ]
}

/// `printEvent` on a core/v1 Event.
fn event_row(ev: &Value, now: Timestamp) -> Vec<Value> {
    let first =
        if ev["firstTimestamp"].is_string() { since(&ev["firstTimestamp"], now) } else { since(&ev["eventTime"], now) };
    let mut last = if ev["lastTimestamp"].is_string() { since(&ev["lastTimestamp"], now) } else { first.clone() };
    let mut count = int(&ev["count"]);
    if ev["series"].is_object() {
        last = since(&ev["series"]["lastObservedTime"], now);
        count = int(&ev["series"]["count"]);
    } else if count == 0 {
        // Singleton events don't have a count set in the new API.
        count = 1;
    }
    let involved = &ev["involvedObject"];
    let target = if s(&involved["name"]).is_empty() {
        s(&involved["kind"]).to_lowercase()
    } else {
        format!("{}/{}", s(&involved["kind"]).to_lowercase(), s(&involved["name"]))
    };
    let component = first_non_empty(s(&ev["source"]["component"]), s(&ev["reportingComponent"]));
    let instance = first_non_empty(s(&ev["source"]["host"]), s(&ev["reportingInstance"]));
    let source = if instance.is_empty() { component.to_string() } else { format!("{component}, {instance}") };
    vec![
        Value::String(last),
        string(&ev["type"]),
        string(&ev["reason"]),
        Value::String(target),
        string(&involved["fieldPath"]),
        Value::String(source),
        Value::String(s(&ev["message"]).trim().to_string()),
        Value::String(first),
        Value::from(count),
        name(ev),
    ]
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() { b } else { a }
}

/// events.k8s.io/v1 Events print as the core Event they convert to.
fn events_v1_row(ev: &Value, now: Timestamp) -> Vec<Value> {
    let mut core_ev = json!({
        "metadata": ev["metadata"].clone(),
        "involvedObject": ev["regarding"].clone(),
        "reason": ev["reason"].clone(),
        "message": ev["note"].clone(),
        "type": ev["type"].clone(),
        "eventTime": ev["eventTime"].clone(),
        "firstTimestamp": ev["deprecatedFirstTimestamp"].clone(),
        "lastTimestamp": ev["deprecatedLastTimestamp"].clone(),
        "count": ev["deprecatedCount"].clone(),
        "source": ev["deprecatedSource"].clone(),
        "reportingComponent": ev["reportingController"].clone(),
        "reportingInstance": ev["reportingInstance"].clone(),
    });
    if ev["series"].is_object() {
        core_ev["series"] = ev["series"].clone();
    }
    event_row(&core_ev, now)
}

// --- Simple core kinds -----------------------------------------------------------------------

fn namespace_columns() -> Vec<super::ColumnDefinition> {
    vec![name_column(), col("Status", "string", "The status of the namespace"), age_column()]
}

fn namespace_row(ns: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(ns), string(&ns["status"]["phase"]), age(ns, now)]
}

fn endpoints_columns() -> Vec<super::ColumnDefinition> {
    vec![name_column(), col("Endpoints", "string", doc::<core::Endpoints>("subsets")), age_column()]
}

/// `net.JoinHostPort`: brackets around IPv6 addresses.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// `formatEndpoints(endpoints, nil)`: up to three `ip:port`, then ` + N more...`.
fn endpoints_row(ep: &Value, now: Timestamp) -> Vec<Value> {
    const MAX: usize = 3;
    let subsets = arr(&ep["subsets"]);
    let text = if subsets.is_empty() {
        "<none>".to_string()
    } else {
        let mut list: Vec<String> = Vec::new();
        let mut more = false;
        let mut count = 0;
        for ss in subsets {
            let addresses = arr(&ss["addresses"]);
            let ports = arr(&ss["ports"]);
            if ports.is_empty() {
                count += addresses.len();
                for a in addresses {
                    if list.len() == MAX {
                        more = true;
                        break;
                    }
                    list.push(s(&a["ip"]).to_string());
                }
                continue;
            }
            for p in ports {
                count += addresses.len();
                for a in addresses {
                    if list.len() == MAX {
                        more = true;
                        break;
                    }
                    list.push(join_host_port(s(&a["ip"]), int(&p["port"])));
                }
            }
        }
        let ret = list.join(",");
        if more { format!("{ret} + {} more...", count - MAX) } else { ret }
    };
    vec![name(ep), Value::String(text), age(ep, now)]
}

fn config_map_columns() -> Vec<super::ColumnDefinition> {
    vec![name_column(), col("Data", "string", doc::<core::ConfigMap>("data")), age_column()]
}

fn len_of(v: &Value) -> usize {
    obj(v).map_or(0, |m| m.len())
}

fn config_map_row(cm: &Value, now: Timestamp) -> Vec<Value> {
    let n = len_of(&cm["data"]) + len_of(&cm["binaryData"]);
    vec![name(cm), Value::from(n as i64), age(cm, now)]
}

fn secret_columns() -> Vec<super::ColumnDefinition> {
    vec![
        name_column(),
        col("Type", "string", doc::<core::Secret>("type")),
        col("Data", "string", doc::<core::Secret>("data")),
        age_column(),
    ]
}

fn secret_row(secret: &Value, now: Timestamp) -> Vec<Value> {
    // stringData is merged into data on write; count both for objects stored as sent.
    let n = len_of(&secret["data"]) + len_of(&secret["stringData"]);
    let type_ = if s(&secret["type"]).is_empty() { "Opaque" } else { s(&secret["type"]) };
    vec![name(secret), Value::String(type_.to_string()), Value::from(n as i64), age(secret, now)]
}

fn service_account_columns() -> Vec<super::ColumnDefinition> {
    vec![name_column(), col("Secrets", "string", doc::<core::ServiceAccount>("secrets")), age_column()]
}

fn service_account_row(sa: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(sa), Value::from(arr(&sa["secrets"]).len() as i64), age(sa, now)]
}

// --- Storage ---------------------------------------------------------------------------------

fn pv_columns() -> Vec<super::ColumnDefinition> {
    vec![
        name_column(),
        col("Capacity", "string", doc::<core::PersistentVolumeSpec>("capacity")),
        col("Access Modes", "string", doc::<core::PersistentVolumeSpec>("accessModes")),
        col("Reclaim Policy", "string", doc::<core::PersistentVolumeSpec>("persistentVolumeReclaimPolicy")),
        col("Status", "string", doc::<core::PersistentVolumeStatus>("phase")),
        col("Claim", "string", doc::<core::PersistentVolumeSpec>("claimRef")),
        col("StorageClass", "string", "StorageClass of the pv"),
        col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
        col("Reason", "string", doc::<core::PersistentVolumeStatus>("reason")),
        age_column(),
        wide("VolumeMode", "string", doc::<core::PersistentVolumeSpec>("volumeMode")),
    ]
}

/// `GetAccessModesAsString`: RWO, ROX, RWX, RWOP in that order, each once.
fn access_modes(modes: &Value) -> String {
    let modes: Vec<&str> = arr(modes).iter().map(s).collect();
    [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")]
        .iter()
        .filter(|(m, _)| modes.contains(m))
        .map(|(_, short)| *short)
        .collect::<Vec<_>>()
        .join(",")
}

/// The storage class: the beta annotation wins over `spec.storageClassName`.
fn storage_class(o: &Value) -> String {
    let ann = &o["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"];
    if ann.is_string() { s(ann).to_string() } else { s(&o["spec"]["storageClassName"]).to_string() }
}

/// A quantity as stored; an absent one prints as Go's zero Quantity, `0`.
fn quantity(v: &Value) -> String {
    match v {
        Value::String(q) => q.clone(),
        Value::Number(n) => n.to_string(),
        _ => "0".into(),
    }
}

fn unset(v: &Value) -> Value {
    if v.is_string() { string(v) } else { Value::String("<unset>".into()) }
}

fn pv_row(pv: &Value, now: Timestamp) -> Vec<Value> {
    let spec = &pv["spec"];
    let claim = if spec["claimRef"].is_object() {
        format!("{}/{}", s(&spec["claimRef"]["namespace"]), s(&spec["claimRef"]["name"]))
    } else {
        String::new()
    };
    let phase = if pv["metadata"]["deletionTimestamp"].is_string() {
        "Terminating".to_string()
    } else {
        s(&pv["status"]["phase"]).to_string()
    };
    vec![
        name(pv),
        Value::String(quantity(&spec["capacity"]["storage"])),
        Value::String(access_modes(&spec["accessModes"])),
        string(&spec["persistentVolumeReclaimPolicy"]),
        Value::String(phase),
        Value::String(claim),
        Value::String(storage_class(pv)),
        unset(&spec["volumeAttributesClassName"]),
        string(&pv["status"]["reason"]),
        age(pv, now),
        unset(&spec["volumeMode"]),
    ]
}

fn pvc_columns() -> Vec<super::ColumnDefinition> {
    vec![
        name_column(),
        col("Status", "string", doc::<core::PersistentVolumeClaimStatus>("phase")),
        col("Volume", "string", doc::<core::PersistentVolumeClaimSpec>("volumeName")),
        col("Capacity", "string", doc::<core::PersistentVolumeClaimStatus>("capacity")),
        col("Access Modes", "string", doc::<core::PersistentVolumeClaimStatus>("accessModes")),
        col("StorageClass", "string", "StorageClass of the pvc"),
        col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
        age_column(),
        wide("VolumeMode", "string", doc::<core::PersistentVolumeClaimSpec>("volumeMode")),
    ]
}

fn pvc_row(pvc: &Value, now: Timestamp) -> Vec<Value> {
    let spec = &pvc["spec"];
    let phase = if pvc["metadata"]["deletionTimestamp"].is_string() {
        "Terminating".to_string()
    } else {
        s(&pvc["status"]["phase"]).to_string()
    };
    let bound = !s(&spec["volumeName"]).is_empty();
    let (capacity, modes) = if bound {
        (quantity(&pvc["status"]["capacity"]["storage"]), access_modes(&pvc["status"]["accessModes"]))
    } else {
        (String::new(), String::new())
    };
    vec![
        name(pvc),
        Value::String(phase),
        string(&spec["volumeName"]),
        Value::String(capacity),
        Value::String(modes),
        Value::String(storage_class(pvc)),
        unset(&spec["volumeAttributesClassName"]),
        age(pvc, now),
        unset(&spec["volumeMode"]),
    ]
}

// --- ReplicationController, PodTemplate, ResourceQuota ---------------------------------------

fn rc_columns() -> Vec<super::ColumnDefinition> {
    let [containers, images] = containers_columns();
    vec![
        name_column(),
        col("Desired", "integer", doc::<core::ReplicationControllerSpec>("replicas")),
        col("Current", "integer", doc::<core::ReplicationControllerStatus>("replicas")),
        col("Ready", "integer", doc::<core::ReplicationControllerStatus>("readyReplicas")),
        age_column(),
        containers,
        images,
        wide("Selector", "string", doc::<core::ReplicationControllerSpec>("selector")),
    ]
}

fn rc_row(rc: &Value, now: Timestamp) -> Vec<Value> {
    let [names, images] = container_cells(&rc["spec"]["template"]["spec"]["containers"]);
    vec![
        name(rc),
        Value::from(rc["spec"]["replicas"].as_i64().unwrap_or(1)),
        Value::from(int(&rc["status"]["replicas"])),
        Value::from(int(&rc["status"]["readyReplicas"])),
        age(rc, now),
        names,
        images,
        Value::String(format_labels(&rc["spec"]["selector"])),
    ]
}

fn pod_template_columns() -> Vec<super::ColumnDefinition> {
    vec![
        name_column(),
        col("Containers", "string", "Names of each container in the template."),
        col("Images", "string", "Images referenced by each container in the template."),
        col("Pod Labels", "string", "The labels for the pod template."),
    ]
}

fn pod_template_row(pt: &Value, _now: Timestamp) -> Vec<Value> {
    let [names, images] = container_cells(&pt["template"]["spec"]["containers"]);
    vec![name(pt), names, images, Value::String(format_labels(&pt["template"]["metadata"]["labels"]))]
}

fn resource_quota_columns() -> Vec<super::ColumnDefinition> {
    vec![
        name_column(),
        age_column(),
        col("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
        col(
            "Limit",
            "string",
            "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
        ),
    ]
}

/// `printResourceQuota`: `resource: used/hard` pairs, `limits.*` in the Limit column.
fn resource_quota_row(rq: &Value, now: Timestamp) -> Vec<Value> {
    let mut resources: Vec<&String> = obj(&rq["status"]["hard"]).map(|m| m.keys().collect()).unwrap_or_default();
    resources.sort();
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    for r in resources {
        let used = quantity(&rq["status"]["used"][r.as_str()]);
        let hard = quantity(&rq["status"]["hard"][r.as_str()]);
        let entry = format!("{r}: {used}/{hard}");
        let mut pieces = r.split('.');
        if pieces.next() == Some("limits") && pieces.next().is_some() {
            limits.push(entry);
        } else {
            requests.push(entry);
        }
    }
    vec![name(rq), age(rq, now), Value::String(requests.join(", ")), Value::String(limits.join(", "))]
}
