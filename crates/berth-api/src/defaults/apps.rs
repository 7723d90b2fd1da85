//! Workload defaults: Deployment, ReplicaSet, StatefulSet, DaemonSet (`pkg/apis/apps/v1/
//! defaults.go`), ReplicationController (`core/v1`), Job and CronJob (`batch/v1`). Pod templates
//! get the pod spec defaults of [`super::pod`].

use serde_json::{Map, Value, json};

use super::pod::default_pod_template;
use super::{child_mut, ensure, set_default};

fn spec_template(spec: &mut Map<String, Value>) {
    if let Some(template) = spec.get_mut("template").and_then(Value::as_object_mut) {
        default_pod_template(template);
    }
}

/// `SetDefaults_Deployment`: replicas 1, RollingUpdate 25%/25%, revisionHistoryLimit 10,
/// progressDeadlineSeconds 600.
pub fn default_deployment(obj: &mut Value) {
    let Some(spec) = child_mut(obj, "spec") else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    if let Some(strategy) = ensure(spec, "strategy") {
        set_default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(ru) = ensure(strategy, "rollingUpdate")
        {
            set_default(ru, "maxUnavailable", json!("25%"));
            set_default(ru, "maxSurge", json!("25%"));
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    spec_template(spec);
}

/// `SetDefaults_ReplicaSet`: replicas 1.
pub fn default_replica_set(obj: &mut Value) {
    let Some(spec) = child_mut(obj, "spec") else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    spec_template(spec);
}

/// `SetDefaults_StatefulSet`: OrderedReady, RollingUpdate with partition 0, replicas 1,
/// revisionHistoryLimit 10, PVC retention Retain/Retain, volume claim template defaults.
pub fn default_stateful_set(obj: &mut Value) {
    let Some(spec) = child_mut(obj, "spec") else {
        return;
    };
    set_default(spec, "podManagementPolicy", json!("OrderedReady"));
    if let Some(strategy) = ensure(spec, "updateStrategy") {
        set_default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(ru) = ensure(strategy, "rollingUpdate")
        {
            set_default(ru, "partition", json!(0));
        }
    }
    if let Some(policy) = ensure(spec, "persistentVolumeClaimRetentionPolicy") {
        set_default(policy, "whenDeleted", json!("Retain"));
        set_default(policy, "whenScaled", json!("Retain"));
    }
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    for pvc in super::each_mut(spec, "volumeClaimTemplates") {
        super::core::default_pvc_map(pvc);
    }
    spec_template(spec);
}

/// `SetDefaults_DaemonSet`: RollingUpdate with maxUnavailable 1 and maxSurge 0,
/// revisionHistoryLimit 10.
pub fn default_daemon_set(obj: &mut Value) {
    let Some(spec) = child_mut(obj, "spec") else {
        return;
    };
    if let Some(strategy) = ensure(spec, "updateStrategy") {
        set_default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(ru) = ensure(strategy, "rollingUpdate")
        {
            set_default(ru, "maxUnavailable", json!(1));
            set_default(ru, "maxSurge", json!(0));
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    spec_template(spec);
}

/// `SetDefaults_ReplicationController`: selector and labels from the template labels when
/// empty, replicas 1.
pub fn default_replication_controller(obj: &mut Value) {
    let template_labels =
        obj.pointer("/spec/template/metadata/labels").and_then(Value::as_object).filter(|l| !l.is_empty()).cloned();
    if let Some(labels) = &template_labels
        && let Some(meta) = obj.as_object_mut().and_then(|o| ensure(o, "metadata"))
        && meta.get("labels").and_then(Value::as_object).is_none_or(Map::is_empty)
    {
        meta.insert("labels".to_string(), Value::Object(labels.clone()));
    }
    let Some(spec) = child_mut(obj, "spec") else {
        return;
    };
    if let Some(labels) = template_labels {
        let empty = spec.get("selector").and_then(Value::as_object).is_none_or(Map::is_empty);
        if empty {
            spec.insert("selector".to_string(), Value::Object(labels));
        }
    }
    set_default(spec, "replicas", json!(1));
    spec_template(spec);
}

/// Label and selector key the Job strategy generates from the Job's uid.
pub const JOB_CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// Label naming the Job on its pods.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// `SetDefaults_Job` plus the Job strategy's `generateSelector`: completions and parallelism 1
/// when both unset, backoffLimit 6, completionMode NonIndexed, suspend false, manualSelector
/// false, podReplacementPolicy, labels from the template. The selector and template labels
/// (`batch.kubernetes.io/controller-uid`, `job-name` and their legacy forms) are generated only
/// once `metadata.uid` is set, so the apiserver should default after assigning the uid.
pub fn default_job(obj: &mut Value) {
    let template_labels = obj.pointer("/spec/template/metadata/labels").and_then(Value::as_object).cloned();
    if let Some(labels) = template_labels.filter(|l| !l.is_empty())
        && let Some(meta) = obj.as_object_mut().and_then(|o| ensure(o, "metadata"))
        && meta.get("labels").and_then(Value::as_object).is_none_or(Map::is_empty)
    {
        meta.insert("labels".to_string(), Value::Object(labels));
    }
    let uid = obj.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("").to_string();
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    let Some(spec) = child_mut(obj, "spec") else {
        return;
    };
    if spec.get("completions").is_none_or(Value::is_null) && spec.get("parallelism").is_none_or(Value::is_null) {
        spec.insert("completions".to_string(), json!(1));
        spec.insert("parallelism".to_string(), json!(1));
    }
    set_default(spec, "parallelism", json!(1));
    let backoff = if spec.get("backoffLimitPerIndex").is_some_and(|v| !v.is_null()) { i32::MAX as i64 } else { 6 };
    set_default(spec, "backoffLimit", json!(backoff));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    let replacement =
        if spec.get("podFailurePolicy").is_some_and(|v| !v.is_null()) { "Failed" } else { "TerminatingOrFailed" };
    set_default(spec, "podReplacementPolicy", json!(replacement));
    if let Some(pfp) = spec.get_mut("podFailurePolicy").and_then(Value::as_object_mut) {
        for rule in super::each_mut(pfp, "rules") {
            for cond in super::each_mut(rule, "onPodConditions") {
                set_default(cond, "status", json!("True"));
            }
        }
    }
    set_default(spec, "manualSelector", json!(false));
    let manual = spec.get("manualSelector").and_then(Value::as_bool) == Some(true);
    if !manual && !uid.is_empty() && spec.get("selector").is_none_or(Value::is_null) {
        spec.insert("selector".to_string(), json!({"matchLabels": {JOB_CONTROLLER_UID_LABEL: uid}}));
        if let Some(template) = ensure(spec, "template")
            && let Some(meta) = ensure(template, "metadata")
            && let Some(labels) = ensure(meta, "labels")
        {
            for (k, v) in [
                (JOB_CONTROLLER_UID_LABEL, &uid),
                (JOB_NAME_LABEL, &name),
                ("controller-uid", &uid),
                ("job-name", &name),
            ] {
                labels.entry(k.to_string()).or_insert_with(|| json!(v));
            }
        }
    }
    spec_template(spec);
}

/// `SetDefaults_CronJob`: concurrencyPolicy Allow, suspend false, history limits 3 and 1; the
/// job template's pod spec gets pod defaults.
pub fn default_cron_job(obj: &mut Value) {
    let Some(spec) = child_mut(obj, "spec") else {
        return;
    };
    set_default(spec, "concurrencyPolicy", json!("Allow"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "successfulJobsHistoryLimit", json!(3));
    set_default(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(job_spec) = spec
        .get_mut("jobTemplate")
        .and_then(Value::as_object_mut)
        .and_then(|jt| jt.get_mut("spec"))
        .and_then(Value::as_object_mut)
    {
        spec_template(job_spec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    }

    #[test]
    fn deployment_defaults() {
        let mut d = json!({"spec": {"selector": {"matchLabels": {"app": "web"}}, "template": pod_template()}});
        default_deployment(&mut d);
        let s = &d["spec"];
        assert_eq!(s["replicas"], 1);
        assert_eq!(
            s["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(s["revisionHistoryLimit"], 10);
        assert_eq!(s["progressDeadlineSeconds"], 600);
        assert_eq!(s["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(s["template"]["spec"]["containers"][0]["imagePullPolicy"], "Always");
    }

    #[test]
    fn deployment_recreate_gets_no_rolling_update() {
        let mut d = json!({"spec": {"strategy": {"type": "Recreate"}, "template": pod_template()}});
        default_deployment(&mut d);
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn replica_set_defaults() {
        let mut rs = json!({"spec": {"template": pod_template()}});
        default_replica_set(&mut rs);
        assert_eq!(rs["spec"]["replicas"], 1);
        assert_eq!(rs["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    }

    #[test]
    fn stateful_set_defaults() {
        let mut s = json!({"spec": {"template": pod_template(),
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}});
        default_stateful_set(&mut s);
        let spec = &s["spec"];
        assert_eq!(spec["podManagementPolicy"], "OrderedReady");
        assert_eq!(spec["updateStrategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(spec["volumeClaimTemplates"][0]["spec"]["volumeMode"], "Filesystem");
    }

    #[test]
    fn daemon_set_defaults() {
        let mut ds = json!({"spec": {"template": pod_template()}});
        default_daemon_set(&mut ds);
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
    }

    #[test]
    fn replication_controller_defaults_selector_and_labels_from_template() {
        let mut rc = json!({"metadata": {"name": "rc"}, "spec": {"template": pod_template()}});
        default_replication_controller(&mut rc);
        assert_eq!(rc["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(rc["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(rc["spec"]["replicas"], 1);
    }

    #[test]
    fn job_defaults() {
        let mut job = json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": {"template": pod_template()}});
        default_job(&mut job);
        let s = &job["spec"];
        assert_eq!(s["completions"], 1);
        assert_eq!(s["parallelism"], 1);
        assert_eq!(s["backoffLimit"], 6);
        assert_eq!(s["completionMode"], "NonIndexed");
        assert_eq!(s["suspend"], false);
        assert_eq!(s["manualSelector"], false);
        assert_eq!(s["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(s["selector"], json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}));
        assert_eq!(s["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"], "pi");
        assert_eq!(s["template"]["metadata"]["labels"]["app"], "web");
        assert_eq!(job["metadata"]["labels"], json!({"app": "web"}));
    }

    #[test]
    fn job_with_parallelism_only_keeps_completions_unset() {
        let mut job = json!({"spec": {"parallelism": 3, "template": pod_template()}});
        default_job(&mut job);
        assert!(job["spec"].get("completions").is_none());
        assert!(job["spec"].get("selector").is_none(), "no uid yet, no generated selector");
    }

    #[test]
    fn cron_job_defaults() {
        let mut cj = json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": pod_template()}}}});
        default_cron_job(&mut cj);
        let s = &cj["spec"];
        assert_eq!(s["concurrencyPolicy"], "Allow");
        assert_eq!(s["suspend"], false);
        assert_eq!(s["successfulJobsHistoryLimit"], 3);
        assert_eq!(s["failedJobsHistoryLimit"], 1);
        assert_eq!(s["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert!(s["jobTemplate"]["spec"].get("backoffLimit").is_none());
    }

    #[test]
    fn workload_defaults_are_idempotent() {
        type F = fn(&mut Value);
        let fs: [(&str, F); 7] = [
            ("deployment", default_deployment),
            ("replicaset", default_replica_set),
            ("statefulset", default_stateful_set),
            ("daemonset", default_daemon_set),
            ("rc", default_replication_controller),
            ("job", default_job),
            ("cronjob", default_cron_job),
        ];
        for (name, f) in fs {
            let mut once = json!({"metadata": {"name": "x", "uid": "u"}, "spec": {"template": pod_template(),
                "jobTemplate": {"spec": {"template": pod_template()}}}});
            f(&mut once);
            let mut twice = once.clone();
            f(&mut twice);
            assert_eq!(once, twice, "{name}");
        }
    }
}
