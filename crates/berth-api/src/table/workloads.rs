//! Tables for workload kinds: apps/v1 (Deployment, ReplicaSet, StatefulSet, DaemonSet,
//! ControllerRevision), batch/v1 (Job, CronJob), autoscaling (HPA v1 and v2), policy/v1 (PDB).

use jiff::Timestamp;
use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::autoscaling::v2 as autoscaling;
use k8s_openapi::api::batch::v1 as batch;
use serde_json::Value;

use super::{
    ColumnDefinition, Printer, age, age_column, arr, col, container_cells, containers_columns, doc,
    format_label_selector, format_labels, human_duration, int, int_or_string, name, name_column, parse_time, s, since,
    string, wide,
};
use crate::selector::LabelSelector;

pub(crate) static PRINTERS: &[Printer] = &[
    Printer::new("apps", "Deployment", deployment_columns, deployment_row),
    Printer::new("apps", "ReplicaSet", replica_set_columns, replica_set_row),
    Printer::new("apps", "StatefulSet", stateful_set_columns, stateful_set_row),
    Printer::new("apps", "DaemonSet", daemon_set_columns, daemon_set_row),
    Printer::new("apps", "ControllerRevision", revision_columns, revision_row),
    Printer::new("batch", "Job", job_columns, job_row),
    Printer::new("batch", "CronJob", cron_job_columns, cron_job_row),
    Printer::new("autoscaling", "HorizontalPodAutoscaler", hpa_columns, hpa_row),
    Printer::new("policy", "PodDisruptionBudget", pdb_columns, pdb_row),
];

fn with_containers(mut cols: Vec<ColumnDefinition>, selector: Option<ColumnDefinition>) -> Vec<ColumnDefinition> {
    cols.extend(containers_columns());
    cols.extend(selector);
    cols
}

/// Replicas default to 1 when unset (as defaulting leaves them).
fn replicas(spec: &Value) -> i64 {
    spec["replicas"].as_i64().unwrap_or(1)
}

// --- Deployment ------------------------------------------------------------------------------

fn deployment_columns() -> Vec<ColumnDefinition> {
    with_containers(
        vec![
            name_column(),
            col("Ready", "string", "Number of the pod with ready state"),
            col("Up-to-date", "string", doc::<apps::DeploymentStatus>("updatedReplicas")),
            col("Available", "string", doc::<apps::DeploymentStatus>("availableReplicas")),
            age_column(),
        ],
        Some(wide("Selector", "string", doc::<apps::DeploymentSpec>("selector"))),
    )
}

fn deployment_row(d: &Value, now: Timestamp) -> Vec<Value> {
    let [names, images] = container_cells(&d["spec"]["template"]["spec"]["containers"]);
    // LabelSelectorAsSelector(...).String(): empty stays empty here, unlike FormatLabelSelector.
    let selector = match LabelSelector::from_label_selector_json(&d["spec"]["selector"]) {
        Ok(sel) => sel.to_string(),
        Err(_) => "<invalid>".into(),
    };
    vec![
        name(d),
        Value::String(format!("{}/{}", int(&d["status"]["readyReplicas"]), replicas(&d["spec"]))),
        Value::from(int(&d["status"]["updatedReplicas"])),
        Value::from(int(&d["status"]["availableReplicas"])),
        age(d, now),
        names,
        images,
        Value::String(selector),
    ]
}

// --- ReplicaSet ------------------------------------------------------------------------------

fn replica_set_columns() -> Vec<ColumnDefinition> {
    with_containers(
        vec![
            name_column(),
            col("Desired", "integer", doc::<apps::ReplicaSetSpec>("replicas")),
            col("Current", "integer", doc::<apps::ReplicaSetStatus>("replicas")),
            col("Ready", "integer", doc::<apps::ReplicaSetStatus>("readyReplicas")),
            age_column(),
        ],
        Some(wide("Selector", "string", doc::<apps::ReplicaSetSpec>("selector"))),
    )
}

fn replica_set_row(rs: &Value, now: Timestamp) -> Vec<Value> {
    let [names, images] = container_cells(&rs["spec"]["template"]["spec"]["containers"]);
    vec![
        name(rs),
        Value::from(replicas(&rs["spec"])),
        Value::from(int(&rs["status"]["replicas"])),
        Value::from(int(&rs["status"]["readyReplicas"])),
        age(rs, now),
        names,
        images,
        Value::String(format_label_selector(&rs["spec"]["selector"])),
    ]
}

// --- StatefulSet -----------------------------------------------------------------------------

fn stateful_set_columns() -> Vec<ColumnDefinition> {
    with_containers(
        vec![name_column(), col("Ready", "string", "Number of the pod with ready state"), age_column()],
        None,
    )
}

fn stateful_set_row(sts: &Value, now: Timestamp) -> Vec<Value> {
    let [names, images] = container_cells(&sts["spec"]["template"]["spec"]["containers"]);
    vec![
        name(sts),
        Value::String(format!("{}/{}", int(&sts["status"]["readyReplicas"]), replicas(&sts["spec"]))),
        age(sts, now),
        names,
        images,
    ]
}

// --- DaemonSet -------------------------------------------------------------------------------

fn daemon_set_columns() -> Vec<ColumnDefinition> {
    with_containers(
        vec![
            name_column(),
            col("Desired", "integer", doc::<apps::DaemonSetStatus>("desiredNumberScheduled")),
            col("Current", "integer", doc::<apps::DaemonSetStatus>("currentNumberScheduled")),
            col("Ready", "integer", doc::<apps::DaemonSetStatus>("numberReady")),
            col("Up-to-date", "integer", doc::<apps::DaemonSetStatus>("updatedNumberScheduled")),
            col("Available", "integer", doc::<apps::DaemonSetStatus>("numberAvailable")),
            col("Node Selector", "string", doc::<k8s_openapi::api::core::v1::PodSpec>("nodeSelector")),
            age_column(),
        ],
        Some(wide("Selector", "string", doc::<apps::DaemonSetSpec>("selector"))),
    )
}

fn daemon_set_row(ds: &Value, now: Timestamp) -> Vec<Value> {
    let st = &ds["status"];
    let [names, images] = container_cells(&ds["spec"]["template"]["spec"]["containers"]);
    vec![
        name(ds),
        Value::from(int(&st["desiredNumberScheduled"])),
        Value::from(int(&st["currentNumberScheduled"])),
        Value::from(int(&st["numberReady"])),
        Value::from(int(&st["updatedNumberScheduled"])),
        Value::from(int(&st["numberAvailable"])),
        Value::String(format_labels(&ds["spec"]["template"]["spec"]["nodeSelector"])),
        age(ds, now),
        names,
        images,
        Value::String(format_label_selector(&ds["spec"]["selector"])),
    ]
}

// --- ControllerRevision ----------------------------------------------------------------------

fn revision_columns() -> Vec<ColumnDefinition> {
    vec![
        name_column(),
        col("Controller", "string", "Controller of the object"),
        col("Revision", "string", doc::<apps::ControllerRevision>("revision")),
        age_column(),
    ]
}

fn revision_row(cr: &Value, now: Timestamp) -> Vec<Value> {
    let controller = arr(&cr["metadata"]["ownerReferences"])
        .iter()
        .find(|r| r["controller"].as_bool() == Some(true))
        .map(|r| {
            // formatResourceName: lower-case "kind.group/name" ("statefulset.apps/web").
            let group = s(&r["apiVersion"]).rsplit_once('/').map(|(g, _)| g).unwrap_or_default();
            let kind = if group.is_empty() { s(&r["kind"]).to_string() } else { format!("{}.{group}", s(&r["kind"])) };
            if kind.is_empty() {
                s(&r["name"]).to_string()
            } else {
                format!("{}/{}", kind.to_lowercase(), s(&r["name"]))
            }
        })
        .unwrap_or_else(|| "<none>".into());
    vec![name(cr), Value::String(controller), Value::from(int(&cr["revision"])), age(cr, now)]
}

// --- Job, CronJob ----------------------------------------------------------------------------

fn job_columns() -> Vec<ColumnDefinition> {
    with_containers(
        vec![
            name_column(),
            col("Status", "string", "Status of the job."),
            col("Completions", "string", doc::<batch::JobStatus>("succeeded")),
            col("Duration", "string", "Time required to complete the job."),
            age_column(),
        ],
        Some(wide("Selector", "string", doc::<batch::JobSpec>("selector"))),
    )
}

/// `hasJobCondition`: the first condition of the type decides.
fn has_condition(conditions: &Value, type_: &str) -> bool {
    arr(conditions).iter().find(|c| s(&c["type"]) == type_).is_some_and(|c| s(&c["status"]) == "True")
}

fn job_row(job: &Value, now: Timestamp) -> Vec<Value> {
    let spec = &job["spec"];
    let st = &job["status"];
    let succeeded = int(&st["succeeded"]);
    let completions = match spec["completions"].as_i64() {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let parallelism = int(&spec["parallelism"]);
            if parallelism > 1 { format!("{succeeded}/1 of {parallelism}") } else { format!("{succeeded}/1") }
        }
    };
    let duration = match (parse_time(&st["startTime"]), parse_time(&st["completionTime"])) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now.duration_since(start)),
        (Some(start), Some(done)) => human_duration(done.duration_since(start)),
    };
    let conditions = &st["conditions"];
    let status = if has_condition(conditions, "Complete") {
        "Complete"
    } else if has_condition(conditions, "Failed") {
        "Failed"
    } else if job["metadata"]["deletionTimestamp"].is_string() {
        "Terminating"
    } else if has_condition(conditions, "Suspended") {
        "Suspended"
    } else if has_condition(conditions, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let [names, images] = container_cells(&spec["template"]["spec"]["containers"]);
    vec![
        name(job),
        Value::String(status.into()),
        Value::String(completions),
        Value::String(duration),
        age(job, now),
        names,
        images,
        Value::String(format_label_selector(&spec["selector"])),
    ]
}

fn cron_job_columns() -> Vec<ColumnDefinition> {
    with_containers(
        vec![
            name_column(),
            col("Schedule", "string", doc::<batch::CronJobSpec>("schedule")),
            col("Timezone", "string", doc::<batch::CronJobSpec>("timeZone")),
            col("Suspend", "boolean", doc::<batch::CronJobSpec>("suspend")),
            col("Active", "integer", doc::<batch::CronJobStatus>("active")),
            col("Last Schedule", "string", doc::<batch::CronJobStatus>("lastScheduleTime")),
            age_column(),
        ],
        Some(wide("Selector", "string", doc::<batch::JobSpec>("selector"))),
    )
}

fn cron_job_row(cj: &Value, now: Timestamp) -> Vec<Value> {
    let spec = &cj["spec"];
    let last = if cj["status"]["lastScheduleTime"].is_string() {
        since(&cj["status"]["lastScheduleTime"], now)
    } else {
        "<none>".into()
    };
    let tz = if spec["timeZone"].is_string() { s(&spec["timeZone"]).to_string() } else { "<none>".into() };
    let job_spec = &spec["jobTemplate"]["spec"];
    let [names, images] = container_cells(&job_spec["template"]["spec"]["containers"]);
    vec![
        name(cj),
        string(&spec["schedule"]),
        Value::String(tz),
        Value::Bool(spec["suspend"].as_bool().unwrap_or(false)),
        Value::from(arr(&cj["status"]["active"]).len() as i64),
        Value::String(last),
        age(cj, now),
        names,
        images,
        Value::String(format_label_selector(&job_spec["selector"])),
    ]
}

// --- HorizontalPodAutoscaler -----------------------------------------------------------------

fn hpa_columns() -> Vec<ColumnDefinition> {
    vec![
        name_column(),
        col("Reference", "string", doc::<autoscaling::HorizontalPodAutoscalerSpec>("scaleTargetRef")),
        col("Targets", "string", doc::<autoscaling::HorizontalPodAutoscalerSpec>("metrics")),
        col("MinPods", "string", doc::<autoscaling::HorizontalPodAutoscalerSpec>("minReplicas")),
        col("MaxPods", "string", doc::<autoscaling::HorizontalPodAutoscalerSpec>("maxReplicas")),
        col("Replicas", "string", doc::<autoscaling::HorizontalPodAutoscalerStatus>("currentReplicas")),
        age_column(),
    ]
}

fn q(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => "0".into(),
    }
}

/// `formatHPAMetrics` over autoscaling/v2 metric specs and statuses.
fn format_hpa_metrics(specs: &[Value], statuses: &[Value]) -> String {
    const MAX: usize = 2;
    if specs.is_empty() {
        return "<none>".into();
    }
    let mut list: Vec<String> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let status = statuses.get(i).unwrap_or(&Value::Null);
        let unknown = || "<unknown>".to_string();
        let entry = match s(&spec["type"]) {
            "External" | "Object" => {
                let key = if s(&spec["type"]) == "External" { "external" } else { "object" };
                let target = &spec[key]["target"];
                let current = &status[key]["current"];
                if !target["averageValue"].is_null() {
                    let cur = if current["averageValue"].is_null() { unknown() } else { q(&current["averageValue"]) };
                    format!("{cur}/{} (avg)", q(&target["averageValue"]))
                } else {
                    let cur = if status[key].is_object() { q(&current["value"]) } else { unknown() };
                    format!("{cur}/{}", q(&target["value"]))
                }
            }
            "Pods" => {
                let cur =
                    if status["pods"].is_object() { q(&status["pods"]["current"]["averageValue"]) } else { unknown() };
                format!("{cur}/{}", q(&spec["pods"]["target"]["averageValue"]))
            }
            "Resource" | "ContainerResource" => {
                let key = if s(&spec["type"]) == "Resource" { "resource" } else { "containerResource" };
                let target = &spec[key]["target"];
                let current = &status[key]["current"];
                // Since Kubernetes 1.30 the resource name leads: `cpu: 45%/50%`.
                let resource = s(&spec[key]["name"]);
                if !target["averageValue"].is_null() {
                    let cur = if status[key].is_object() { q(&current["averageValue"]) } else { unknown() };
                    format!("{resource}: {cur}/{}", q(&target["averageValue"]))
                } else {
                    let cur = match current["averageUtilization"].as_i64() {
                        Some(u) if status[key].is_object() => format!("{u}%"),
                        _ => unknown(),
                    };
                    let tgt = match target["averageUtilization"].as_i64() {
                        Some(u) => format!("{u}%"),
                        None => "<auto>".into(),
                    };
                    format!("{resource}: {cur}/{tgt}")
                }
            }
            _ => "<unknown type>".into(),
        };
        list.push(entry);
    }
    let count = list.len();
    if count > MAX {
        list.truncate(MAX);
        return format!("{} + {} more...", list.join(", "), count - MAX);
    }
    list.join(", ")
}

/// Prints autoscaling/v2 HPAs and v1 ones (whose CPU target converts to one Resource metric).
fn hpa_row(hpa: &Value, now: Timestamp) -> Vec<Value> {
    let spec = &hpa["spec"];
    let st = &hpa["status"];
    let reference = format!("{}/{}", s(&spec["scaleTargetRef"]["kind"]), s(&spec["scaleTargetRef"]["name"]));
    let metrics = if s(&hpa["apiVersion"]) == "autoscaling/v1" {
        let specs: Vec<Value> = match spec["targetCPUUtilizationPercentage"].as_i64() {
            Some(t) => vec![
                serde_json::json!({ "type": "Resource", "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": t } } }),
            ],
            None => Vec::new(),
        };
        let statuses: Vec<Value> = match st["currentCPUUtilizationPercentage"].as_i64() {
            Some(c) => vec![
                serde_json::json!({ "type": "Resource", "resource": { "name": "cpu", "current": { "averageUtilization": c } } }),
            ],
            None => Vec::new(),
        };
        format_hpa_metrics(&specs, &statuses)
    } else {
        format_hpa_metrics(arr(&spec["metrics"]), arr(&st["currentMetrics"]))
    };
    let min_pods = match spec["minReplicas"].as_i64() {
        Some(m) => m.to_string(),
        None => "<unset>".into(),
    };
    vec![
        name(hpa),
        Value::String(reference),
        Value::String(metrics),
        Value::String(min_pods),
        Value::from(int(&spec["maxReplicas"])),
        Value::from(int(&st["currentReplicas"])),
        age(hpa, now),
    ]
}

// --- PodDisruptionBudget ---------------------------------------------------------------------

fn pdb_columns() -> Vec<ColumnDefinition> {
    vec![
        name_column(),
        col("Min Available", "string", "The minimum number of pods that must be available."),
        col("Max Unavailable", "string", "The maximum number of pods that may be unavailable."),
        col("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time."),
        age_column(),
    ]
}

fn pdb_row(pdb: &Value, now: Timestamp) -> Vec<Value> {
    let spec = &pdb["spec"];
    let or_na = |v: &Value| if v.is_null() { "N/A".to_string() } else { int_or_string(v) };
    vec![
        name(pdb),
        Value::String(or_na(&spec["minAvailable"])),
        Value::String(or_na(&spec["maxUnavailable"])),
        Value::from(int(&pdb["status"]["disruptionsAllowed"])),
        age(pdb, now),
    ]
}
