//! Tests of table columns and cells against what kube-apiserver's printers produce.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::*;

fn now() -> Timestamp {
    "2024-05-01T12:00:00Z".parse().expect("timestamp")
}

/// `now` minus `secs` seconds, as an RFC 3339 string.
fn ago(secs: i64) -> String {
    (now() - SignedDuration::from_secs(secs)).to_string()
}

fn names(cols: &[ColumnDefinition]) -> Vec<&str> {
    cols.iter().map(|c| c.name).collect()
}

fn cells(group: &str, kind: &str, obj: &Value) -> Vec<Value> {
    let r = row(group, kind, obj, now());
    assert_eq!(r.len(), columns(group, kind).len(), "{group}/{kind}: one cell per column");
    r
}

#[test]
fn human_duration_matches_apimachinery() {
    let cases: &[(i64, &str)] = &[
        (-3, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (5, "5s"),
        (90, "90s"),
        (119, "119s"),
        (120, "2m"),
        (125, "2m5s"),
        (599, "9m59s"),
        (600, "10m"),
        (179 * 60 + 59, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 20 * 60, "3h20m"),
        (8 * 3600, "8h"),
        (47 * 3600 + 59 * 60, "47h"),
        (48 * 3600, "2d"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (8 * 86400, "8d"),
        (45 * 86400, "45d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (3 * 365 * 86400 + 120 * 86400, "3y120d"),
        (9 * 365 * 86400, "9y"),
    ];
    for (secs, want) in cases {
        assert_eq!(human_duration(SignedDuration::from_secs(*secs)), *want, "{secs}s");
    }
    // Sub-second negatives truncate toward zero as Go's int(d.Seconds()) does.
    assert_eq!(human_duration(SignedDuration::from_millis(-1500)), "0s");
}

#[test]
fn every_printer_starts_with_a_name_column_except_events() {
    for p in printers() {
        let cols = columns(p.group, p.kind);
        let name_cols: Vec<&ColumnDefinition> = cols.iter().filter(|c| c.format == "name").collect();
        assert_eq!(name_cols.len(), 1, "{}/{}", p.group, p.kind);
        if p.kind != "Event" {
            assert_eq!(cols[0].name, "Name", "{}/{}", p.group, p.kind);
        }
        assert!(cols.iter().all(|c| !c.description.is_empty()), "{}/{} descriptions", p.group, p.kind);
        // A row of an empty object has one cell per column and does not panic.
        assert_eq!(row(p.group, p.kind, &json!({}), now()).len(), cols.len(), "{}/{}", p.group, p.kind);
        assert_eq!(row(p.group, p.kind, &json!([1, "x"]), now()).len(), cols.len());
    }
}

#[test]
fn pod_columns_and_running_row() {
    let cols = columns("", "Pod");
    assert_eq!(
        names(&cols),
        ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"]
    );
    assert_eq!(cols[0].format, "name");
    assert!(cols[0].description.starts_with("Name must be unique within a namespace."));
    assert_eq!(cols.iter().filter(|c| c.priority == 1).count(), 4);
    let pod = json!({
        "metadata": { "name": "web-1", "creationTimestamp": ago(600) },
        "spec": { "nodeName": "n1", "containers": [{ "name": "a" }, { "name": "b" }] },
        "status": {
            "phase": "Running",
            "podIPs": [{ "ip": "10.0.0.5" }],
            "conditions": [{ "type": "Ready", "status": "True" }],
            "containerStatuses": [
                { "name": "a", "ready": true, "restartCount": 3, "state": { "running": {} },
                  "lastState": { "terminated": { "exitCode": 1, "finishedAt": ago(300) } } },
                { "name": "b", "ready": true, "restartCount": 0, "state": { "running": {} } },
            ],
        },
    });
    assert_eq!(
        cells("", "Pod", &pod),
        vec![
            json!("web-1"),
            json!("2/2"),
            json!("Running"),
            json!("3 (5m ago)"),
            json!("10m"),
            json!("10.0.0.5"),
            json!("n1"),
            json!("<none>"),
            json!("<none>")
        ]
    );
}

#[test]
fn pod_status_reasons_follow_upstream() {
    let base = |status: Value, spec: Value, meta: Value| json!({ "metadata": meta, "spec": spec, "status": status });
    let two = json!({ "containers": [{ "name": "a" }], "initContainers": [{ "name": "i1" }, { "name": "i2" }] });
    let status_of = |p: &Value| cells("", "Pod", p)[2].clone();
    // Init progress.
    let p = base(
        json!({ "phase": "Pending", "initContainerStatuses": [
            { "name": "i1", "state": { "terminated": { "exitCode": 0 } } },
            { "name": "i2", "state": { "running": {} } } ] }),
        two.clone(),
        json!({ "name": "p" }),
    );
    assert_eq!(status_of(&p), "Init:1/2");
    // Init failure with a reason, and a waiting init container.
    let p = base(
        json!({ "phase": "Pending", "initContainerStatuses": [{ "name": "i1", "state": { "terminated": { "exitCode": 2, "reason": "Error" } } }] }),
        two.clone(),
        json!({ "name": "p" }),
    );
    assert_eq!(status_of(&p), "Init:Error");
    let p = base(
        json!({ "phase": "Pending", "initContainerStatuses": [{ "name": "i1", "state": { "waiting": { "reason": "CrashLoopBackOff" } } }] }),
        two.clone(),
        json!({ "name": "p" }),
    );
    assert_eq!(status_of(&p), "Init:CrashLoopBackOff");
    // Waiting container reason wins; exit code without reason.
    let one = json!({ "containers": [{ "name": "a" }] });
    let p = base(
        json!({ "phase": "Running", "containerStatuses": [{ "name": "a", "state": { "waiting": { "reason": "ImagePullBackOff" } } }] }),
        one.clone(),
        json!({ "name": "p" }),
    );
    assert_eq!(status_of(&p), "ImagePullBackOff");
    let p = base(
        json!({ "phase": "Failed", "containerStatuses": [{ "name": "a", "state": { "terminated": { "exitCode": 137 } } }] }),
        one.clone(),
        json!({ "name": "p" }),
    );
    assert_eq!(status_of(&p), "ExitCode:137");
    let p = base(
        json!({ "phase": "Succeeded", "containerStatuses": [{ "name": "a", "state": { "terminated": { "exitCode": 0, "reason": "Completed" } } }] }),
        one.clone(),
        json!({ "name": "p" }),
    );
    assert_eq!(status_of(&p), "Completed");
    // Deletion: Terminating, or Unknown when the node is lost; terminal phases stay.
    let p = base(json!({ "phase": "Running" }), one.clone(), json!({ "name": "p", "deletionTimestamp": ago(1) }));
    assert_eq!(status_of(&p), "Terminating");
    let p = base(
        json!({ "phase": "Running", "reason": "NodeLost" }),
        one.clone(),
        json!({ "name": "p", "deletionTimestamp": ago(1) }),
    );
    assert_eq!(status_of(&p), "Unknown");
    let p = base(json!({ "phase": "Succeeded" }), one.clone(), json!({ "name": "p", "deletionTimestamp": ago(1) }));
    assert_eq!(status_of(&p), "Succeeded");
    // Scheduling gates.
    let p = base(
        json!({ "phase": "Pending", "conditions": [{ "type": "PodScheduled", "status": "False", "reason": "SchedulingGated" }] }),
        one.clone(),
        json!({ "name": "p" }),
    );
    assert_eq!(status_of(&p), "SchedulingGated");
    // A started sidecar counts towards READY and total.
    let p = base(
        json!({ "phase": "Running", "conditions": [{ "type": "Initialized", "status": "True" }, { "type": "Ready", "status": "True" }],
            "initContainerStatuses": [{ "name": "side", "started": true, "ready": true, "restartCount": 1, "state": { "running": {} } }],
            "containerStatuses": [{ "name": "a", "ready": true, "state": { "running": {} } }] }),
        json!({ "containers": [{ "name": "a" }], "initContainers": [{ "name": "side", "restartPolicy": "Always" }] }),
        json!({ "name": "p" }),
    );
    let c = cells("", "Pod", &p);
    assert_eq!((c[1].clone(), c[2].clone(), c[3].clone()), (json!("2/2"), json!("Running"), json!("1")));
}

#[test]
fn deployment_and_replica_set_rows() {
    assert_eq!(
        names(&columns("apps", "Deployment")),
        ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"]
    );
    let d = json!({
        "metadata": { "name": "web", "creationTimestamp": ago(125) },
        "spec": { "replicas": 3, "selector": { "matchLabels": { "app": "web" } },
            "template": { "spec": { "containers": [{ "name": "nginx", "image": "nginx:1" }, { "name": "side", "image": "busybox" }] } } },
        "status": { "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2 },
    });
    assert_eq!(
        cells("apps", "Deployment", &d),
        vec![
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("2m5s"),
            json!("nginx,side"),
            json!("nginx:1,busybox"),
            json!("app=web")
        ]
    );
    let rs = json!({ "metadata": { "name": "web-abc" }, "spec": { "replicas": 2, "selector": { "matchExpressions": [{ "key": "app", "operator": "In", "values": ["web"] }] } } });
    let c = cells("apps", "ReplicaSet", &rs);
    assert_eq!(c[1], json!(2));
    assert_eq!(c[4], json!("<unknown>"));
    assert_eq!(c[7], json!("app in (web)"));
}

#[test]
fn service_ports_and_external_ips() {
    assert_eq!(
        names(&columns("", "Service")),
        ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"]
    );
    let svc = json!({ "metadata": { "name": "web" }, "spec": { "type": "NodePort", "clusterIPs": ["10.96.0.10"],
        "ports": [{ "port": 80, "nodePort": 32002, "protocol": "TCP" }, { "port": 53, "protocol": "UDP" }], "selector": { "b": "2", "a": "1" } } });
    let c = cells("", "Service", &svc);
    assert_eq!(
        c[1..5].to_vec(),
        vec![json!("NodePort"), json!("10.96.0.10"), json!("<none>"), json!("80:32002/TCP,53/UDP")]
    );
    assert_eq!(c[6], json!("a=1,b=2"));
    let lb = |status: Value, ext: Value| {
        cells("", "Service", &json!({ "metadata": { "name": "x" }, "spec": { "type": "LoadBalancer", "externalIPs": ext }, "status": status }))[3].clone()
    };
    assert_eq!(lb(json!({}), json!(null)), "<pending>");
    assert_eq!(
        lb(json!({ "loadBalancer": { "ingress": [{ "ip": "5.6.7.8" }, { "ip": "1.2.3.4" }] } }), json!(null)),
        "1.2.3.4,5.6.7.8"
    );
    assert_eq!(
        lb(json!({ "loadBalancer": { "ingress": [{ "hostname": "lb.example" }] } }), json!(["9.9.9.9"])),
        "lb.example,9.9.9.9"
    );
    let headless = json!({ "metadata": { "name": "h" }, "spec": { "clusterIPs": ["None"] } });
    assert_eq!(
        cells("", "Service", &headless)[1..5].to_vec(),
        vec![json!("ClusterIP"), json!("None"), json!("<none>"), json!("<none>")]
    );
    let ext = json!({ "metadata": { "name": "e" }, "spec": { "type": "ExternalName", "externalName": "example.com" } });
    assert_eq!(cells("", "Service", &ext)[3], json!("example.com"));
}

#[test]
fn node_status_roles_and_wide_cells() {
    let node = json!({
        "metadata": { "name": "n1", "creationTimestamp": ago(3 * 86400 + 4 * 3600),
            "labels": { "node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker" } },
        "spec": { "unschedulable": true },
        "status": { "conditions": [{ "type": "MemoryPressure", "status": "False" }, { "type": "Ready", "status": "True" }],
            "addresses": [{ "type": "InternalIP", "address": "192.168.1.2" }],
            "nodeInfo": { "kubeletVersion": "v1.33.0-berth", "osImage": "Debian", "kernelVersion": "6.1", "containerRuntimeVersion": "runc://1.1" } },
    });
    assert_eq!(
        cells("", "Node", &node),
        vec![
            json!("n1"),
            json!("Ready,SchedulingDisabled"),
            json!("control-plane,worker"),
            json!("3d4h"),
            json!("v1.33.0-berth"),
            json!("192.168.1.2"),
            json!("<none>"),
            json!("Debian"),
            json!("6.1"),
            json!("runc://1.1")
        ]
    );
    let bare = json!({ "metadata": { "name": "n2" } });
    let c = cells("", "Node", &bare);
    assert_eq!((c[1].clone(), c[2].clone(), c[7].clone()), (json!("Unknown"), json!("<none>"), json!("<unknown>")));
}

#[test]
fn events_core_and_events_k8s_io() {
    let cols = columns("", "Event");
    assert_eq!(
        names(&cols),
        ["Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message", "First Seen", "Count", "Name"]
    );
    assert_eq!(
        cols.iter().filter(|c| c.priority == 0).map(|c| c.name).collect::<Vec<_>>(),
        ["Last Seen", "Type", "Reason", "Object", "Message"]
    );
    assert_eq!(columns("events.k8s.io", "Event"), cols);
    let ev = json!({ "metadata": { "name": "web.1" }, "involvedObject": { "kind": "Pod", "name": "web", "fieldPath": "spec.containers{a}" },
        "reason": "Pulled", "message": " done \n", "type": "Normal", "source": { "component": "kubelet", "host": "n1" },
        "firstTimestamp": ago(600), "lastTimestamp": ago(30), "count": 4 });
    assert_eq!(
        cells("", "Event", &ev),
        vec![
            json!("30s"),
            json!("Normal"),
            json!("Pulled"),
            json!("pod/web"),
            json!("spec.containers{a}"),
            json!("kubelet, n1"),
            json!("done"),
            json!("10m"),
            json!(4),
            json!("web.1")
        ]
    );
    let new = json!({ "metadata": { "name": "e2" }, "regarding": { "kind": "Node", "name": "n1" }, "reason": "Starting",
        "note": "kubelet started", "type": "Normal", "eventTime": ago(90), "reportingController": "berth/kubelet", "reportingInstance": "n1" });
    assert_eq!(
        cells("events.k8s.io", "Event", &new),
        vec![
            json!("90s"),
            json!("Normal"),
            json!("Starting"),
            json!("node/n1"),
            json!(""),
            json!("berth/kubelet, n1"),
            json!("kubelet started"),
            json!("90s"),
            json!(1),
            json!("e2")
        ]
    );
}

#[test]
fn jobs_cronjobs_and_hpa() {
    assert_eq!(names(&columns("batch", "Job"))[..5], ["Name", "Status", "Completions", "Duration", "Age"]);
    let job = json!({ "metadata": { "name": "j" }, "spec": { "completions": 3 },
        "status": { "succeeded": 3, "startTime": ago(200), "completionTime": ago(70), "conditions": [{ "type": "Complete", "status": "True" }] } });
    assert_eq!(cells("batch", "Job", &job)[1..4].to_vec(), vec![json!("Complete"), json!("3/3"), json!("2m10s")]);
    let running =
        json!({ "metadata": { "name": "j" }, "spec": { "parallelism": 2 }, "status": { "startTime": ago(10) } });
    assert_eq!(cells("batch", "Job", &running)[1..4].to_vec(), vec![json!("Running"), json!("0/1 of 2"), json!("10s")]);
    let cj = json!({ "metadata": { "name": "c" }, "spec": { "schedule": "*/5 * * * *", "suspend": false } });
    assert_eq!(
        cells("batch", "CronJob", &cj)[1..6].to_vec(),
        vec![json!("*/5 * * * *"), json!("<none>"), json!(false), json!(0), json!("<none>")]
    );
    assert_eq!(
        names(&columns("autoscaling", "HorizontalPodAutoscaler")),
        ["Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"]
    );
    let hpa = json!({ "apiVersion": "autoscaling/v2", "metadata": { "name": "h" },
        "spec": { "scaleTargetRef": { "kind": "Deployment", "name": "web" }, "minReplicas": 1, "maxReplicas": 5,
            "metrics": [{ "type": "Resource", "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 50 } } }] },
        "status": { "currentReplicas": 2, "currentMetrics": [{ "type": "Resource", "resource": { "name": "cpu", "current": { "averageUtilization": 12 } } }] } });
    assert_eq!(
        cells("autoscaling", "HorizontalPodAutoscaler", &hpa)[1..6].to_vec(),
        vec![json!("Deployment/web"), json!("cpu: 12%/50%"), json!("1"), json!(5), json!(2)]
    );
    let v1 = json!({ "apiVersion": "autoscaling/v1", "metadata": { "name": "h" },
        "spec": { "scaleTargetRef": { "kind": "Deployment", "name": "web" }, "maxReplicas": 3, "targetCPUUtilizationPercentage": 80 } });
    assert_eq!(
        cells("autoscaling", "HorizontalPodAutoscaler", &v1)[2..4].to_vec(),
        vec![json!("cpu: <unknown>/80%"), json!("<unset>")]
    );
}

#[test]
fn small_kinds_print_like_kubectl() {
    let cm = json!({ "metadata": { "name": "c" }, "data": { "a": "1", "b": "2" }, "binaryData": { "c": "AA==" } });
    assert_eq!(cells("", "ConfigMap", &cm)[1], json!(3));
    let secret =
        json!({ "metadata": { "name": "s" }, "type": "kubernetes.io/tls", "data": { "tls.crt": "", "tls.key": "" } });
    assert_eq!(cells("", "Secret", &secret)[1..3].to_vec(), vec![json!("kubernetes.io/tls"), json!(2)]);
    let ns = json!({ "metadata": { "name": "default" }, "status": { "phase": "Active" } });
    assert_eq!(cells("", "Namespace", &ns)[1], json!("Active"));
    let ep = json!({ "metadata": { "name": "e" }, "subsets": [{ "addresses": [{ "ip": "10.0.0.1" }, { "ip": "10.0.0.2" }, { "ip": "fd00::3" }, { "ip": "10.0.0.4" }], "ports": [{ "port": 80 }] }] });
    assert_eq!(cells("", "Endpoints", &ep)[1], json!("10.0.0.1:80,10.0.0.2:80,[fd00::3]:80 + 1 more..."));
    assert_eq!(cells("", "Endpoints", &json!({ "metadata": { "name": "e" } }))[1], json!("<none>"));
    let es = json!({ "metadata": { "name": "web-x" }, "addressType": "IPv4", "ports": [{ "port": 80 }, { "name": "dns" }],
        "endpoints": [{ "addresses": ["10.0.0.1"] }, { "addresses": ["10.0.0.2"] }] });
    assert_eq!(
        cells("discovery.k8s.io", "EndpointSlice", &es)[1..4].to_vec(),
        vec![json!("IPv4"), json!("80,dns"), json!("10.0.0.1,10.0.0.2")]
    );
    assert_eq!(cells("discovery.k8s.io", "EndpointSlice", &json!({}))[2], json!("<unset>"));
    let ing = json!({ "metadata": { "name": "i" }, "spec": { "rules": [{ "host": "a.example" }, {}], "tls": [{}] },
        "status": { "loadBalancer": { "ingress": [{ "ip": "192.168.1.2" }] } } });
    assert_eq!(
        cells("networking.k8s.io", "Ingress", &ing)[1..5].to_vec(),
        vec![json!("<none>"), json!("a.example"), json!("192.168.1.2"), json!("80, 443")]
    );
    let rb = json!({ "metadata": { "name": "rb" }, "roleRef": { "kind": "ClusterRole", "name": "view" },
        "subjects": [{ "kind": "User", "name": "alice" }, { "kind": "ServiceAccount", "namespace": "ns", "name": "sa" }, { "kind": "Group", "name": "devs" }] });
    assert_eq!(
        cells("rbac.authorization.k8s.io", "RoleBinding", &rb)[1..]
            .to_vec()
            .into_iter()
            .filter(|c| c != &json!("<unknown>"))
            .collect::<Vec<_>>(),
        vec![json!("ClusterRole/view"), json!("alice"), json!("devs"), json!("ns/sa")]
    );
    let sc = json!({ "metadata": { "name": "local", "annotations": { "storageclass.kubernetes.io/is-default-class": "true" } }, "provisioner": "berth.io/local-path" });
    assert_eq!(
        cells("storage.k8s.io", "StorageClass", &sc)[..5].to_vec(),
        vec![json!("local (default)"), json!("berth.io/local-path"), json!("Delete"), json!("Immediate"), json!(false)]
    );
    let pv = json!({ "metadata": { "name": "pv1" }, "spec": { "capacity": { "storage": "1Gi" }, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Retain", "claimRef": { "namespace": "ns", "name": "data" }, "storageClassName": "local" }, "status": { "phase": "Bound" } });
    assert_eq!(
        cells("", "PersistentVolume", &pv)[1..8].to_vec(),
        vec![
            json!("1Gi"),
            json!("RWO,RWX"),
            json!("Retain"),
            json!("Bound"),
            json!("ns/data"),
            json!("local"),
            json!("<unset>")
        ]
    );
    let pvc = json!({ "metadata": { "name": "data" }, "spec": { "volumeName": "pv1", "storageClassName": "local" },
        "status": { "phase": "Bound", "capacity": { "storage": "1Gi" }, "accessModes": ["ReadWriteOnce"] } });
    assert_eq!(
        cells("", "PersistentVolumeClaim", &pvc)[1..6].to_vec(),
        vec![json!("Bound"), json!("pv1"), json!("1Gi"), json!("RWO"), json!("local")]
    );
    let pdb = json!({ "metadata": { "name": "p" }, "spec": { "minAvailable": "50%" }, "status": { "disruptionsAllowed": 1 } });
    assert_eq!(cells("policy", "PodDisruptionBudget", &pdb)[1..4].to_vec(), vec![json!("50%"), json!("N/A"), json!(1)]);
    let cr = json!({ "metadata": { "name": "web-1", "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": true }] }, "revision": 2 });
    assert_eq!(cells("apps", "ControllerRevision", &cr)[1..3].to_vec(), vec![json!("statefulset.apps/web"), json!(2)]);
    let sts = json!({ "metadata": { "name": "db" }, "spec": { "replicas": 3 }, "status": { "readyReplicas": 1 } });
    assert_eq!(cells("apps", "StatefulSet", &sts)[1], json!("1/3"));
}

#[test]
fn kinds_without_a_printer_get_the_default_tables() {
    assert_eq!(names(&columns("rbac.authorization.k8s.io", "Role")), ["Name", "Created At"]);
    assert_eq!(columns("apiextensions.k8s.io", "CustomResourceDefinition")[1].type_, "date");
    let role = json!({ "metadata": { "name": "r", "creationTimestamp": "2024-05-01T11:00:00Z" } });
    assert_eq!(cells("rbac.authorization.k8s.io", "Role", &role), vec![json!("r"), json!("2024-05-01T11:00:00Z")]);
    assert_eq!(names(&columns("example.com", "Widget")), ["Name", "Age"]);
    let w = json!({ "metadata": { "name": "w", "creationTimestamp": ago(3600) } });
    assert_eq!(cells("example.com", "Widget", &w), vec![json!("w"), json!("60m")]);
}
