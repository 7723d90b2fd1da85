//! Workload validation cases, one named case per rule.

use serde_json::{Value, json};

use super::*;
use crate::defaults::apps as d;
use crate::validation::test_util::{check, strings, with as set};

fn template(labels: Value) -> Value {
    json!({"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}})
}

fn deployment() -> Value {
    let mut o = json!({"metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(json!({"app": "web"}))}});
    d::default_deployment(&mut o);
    o
}

fn replica_set() -> Value {
    let mut o = json!({"metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(json!({"app": "web"}))}});
    d::default_replica_set(&mut o);
    o
}

fn stateful_set() -> Value {
    let mut o = json!({"metadata": {"name": "db", "namespace": "default"},
        "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}}, "template": template(json!({"app": "db"}))}});
    d::default_stateful_set(&mut o);
    o
}

fn daemon_set() -> Value {
    let mut o = json!({"metadata": {"name": "agent", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template(json!({"app": "agent"}))}});
    d::default_daemon_set(&mut o);
    o
}

fn replication_controller() -> Value {
    let mut o = json!({"metadata": {"name": "rc", "namespace": "default"},
        "spec": {"selector": {"app": "rc"}, "template": template(json!({"app": "rc"}))}});
    d::default_replication_controller(&mut o);
    o
}

fn job() -> Value {
    let mut t = template(json!({"app": "pi"}));
    t["spec"]["restartPolicy"] = json!("Never");
    let mut o = json!({"metadata": {"name": "pi", "namespace": "default", "uid": "u-1"}, "spec": {"template": t}});
    d::default_job(&mut o);
    o
}

fn cron_job() -> Value {
    let mut t = template(json!({"app": "pi"}));
    t["spec"]["restartPolicy"] = json!("OnFailure");
    let mut o = json!({"metadata": {"name": "pi", "namespace": "default"},
        "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": t}}}});
    d::default_cron_job(&mut o);
    o
}

#[test]
fn valid_workloads_have_no_errors() {
    check(vec![
        ("deployment", validate_deployment, deployment(), ""),
        ("replicaset", validate_replica_set, replica_set(), ""),
        ("statefulset", validate_stateful_set, stateful_set(), ""),
        ("daemonset", validate_daemon_set, daemon_set(), ""),
        ("replicationcontroller", validate_replication_controller, replication_controller(), ""),
        ("job", validate_job, job(), ""),
        ("cronjob", validate_cron_job, cron_job(), ""),
    ]);
}

#[test]
fn deployment_rules() {
    check(vec![
        (
            "replicas >= 0",
            validate_deployment,
            set(deployment(), "/spec/replicas", json!(-1)),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            "selector required",
            validate_deployment,
            set(deployment(), "/spec/selector", Value::Null),
            "spec.selector: Required value",
        ),
        (
            "selector non-empty",
            validate_deployment,
            set(deployment(), "/spec/selector", json!({})),
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment",
        ),
        (
            "selector matches template labels",
            validate_deployment,
            set(deployment(), "/spec/template/metadata/labels", json!({"app": "other"})),
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`",
        ),
        (
            "template restartPolicy Always",
            validate_deployment,
            set(deployment(), "/spec/template/spec/restartPolicy", json!("Never")),
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
        ),
        (
            "template activeDeadlineSeconds forbidden",
            validate_deployment,
            set(deployment(), "/spec/template/spec/activeDeadlineSeconds", json!(5)),
            "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported",
        ),
        (
            "template pod spec validated",
            validate_deployment,
            set(deployment(), "/spec/template/spec/containers/0/image", json!("")),
            "spec.template.spec.containers[0].image: Required value",
        ),
        (
            "strategy type values",
            validate_deployment,
            set(deployment(), "/spec/strategy/type", json!("BlueGreen")),
            "spec.strategy: Unsupported value: \"BlueGreen\": supported values: \"Recreate\", \"RollingUpdate\"",
        ),
        (
            "recreate forbids rollingUpdate",
            validate_deployment,
            set(deployment(), "/spec/strategy/type", json!("Recreate")),
            "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'",
        ),
        (
            "maxUnavailable and maxSurge not both 0",
            validate_deployment,
            set(deployment(), "/spec/strategy/rollingUpdate", json!({"maxUnavailable": 0, "maxSurge": "0%"})),
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0",
        ),
        (
            "maxSurge int or percent",
            validate_deployment,
            set(deployment(), "/spec/strategy/rollingUpdate/maxSurge", json!("lots")),
            "spec.strategy.rollingUpdate.maxSurge: Invalid value: \"lots\": must be an integer or percentage (e.g '5%')",
        ),
        (
            "maxUnavailable at most 100%",
            validate_deployment,
            set(deployment(), "/spec/strategy/rollingUpdate/maxUnavailable", json!("150%")),
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%",
        ),
        (
            "progressDeadlineSeconds > minReadySeconds",
            validate_deployment,
            set(set(deployment(), "/spec/minReadySeconds", json!(700)), "/spec/progressDeadlineSeconds", json!(600)),
            "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds",
        ),
        (
            "revisionHistoryLimit >= 0",
            validate_deployment,
            set(deployment(), "/spec/revisionHistoryLimit", json!(-2)),
            "spec.revisionHistoryLimit: Invalid value: -2: must be greater than or equal to 0",
        ),
        (
            "selector expressions validated",
            validate_deployment,
            set(deployment(), "/spec/selector/matchExpressions", json!([{"key": "x", "operator": "In"}])),
            "spec.selector.matchExpressions[0].values: Required value",
        ),
    ]);
}

#[test]
fn deployment_selector_is_immutable() {
    let old = deployment();
    let new = set(
        set(old.clone(), "/spec/selector/matchLabels", json!({"app": "web2"})),
        "/spec/template/metadata/labels",
        json!({"app": "web2"}),
    );
    assert_eq!(
        strings(validate_deployment_update(&new, &old)),
        vec![
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
        ]
    );
    let scaled = set(old.clone(), "/spec/replicas", json!(5));
    assert!(validate_deployment_update(&scaled, &old).is_empty());
}

#[test]
fn replica_set_rules() {
    check(vec![
        (
            "replicas >= 0",
            validate_replica_set,
            set(replica_set(), "/spec/replicas", json!(-1)),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            "selector required",
            validate_replica_set,
            set(replica_set(), "/spec/selector", Value::Null),
            "spec.selector: Required value",
        ),
        (
            "selector matches template",
            validate_replica_set,
            set(replica_set(), "/spec/template/metadata/labels", json!({})),
            "spec.template.metadata.labels: Invalid value: map[string]string{}: `selector` does not match template `labels`",
        ),
    ]);
    let old = replica_set();
    let new = set(old.clone(), "/spec/selector/matchLabels/tier", json!("x"));
    assert!(
        strings(validate_replica_set_update(&new, &old)).iter().any(|e| e.starts_with("spec.selector: Invalid value"))
    );
}

#[test]
fn stateful_set_rules() {
    check(vec![
        (
            "replicas >= 0",
            validate_stateful_set,
            set(stateful_set(), "/spec/replicas", json!(-1)),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            "podManagementPolicy values",
            validate_stateful_set,
            set(stateful_set(), "/spec/podManagementPolicy", json!("Random")),
            "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'",
        ),
        (
            "updateStrategy values",
            validate_stateful_set,
            set(stateful_set(), "/spec/updateStrategy/type", json!("Never")),
            "spec.updateStrategy: Invalid value: \"Never\": must be 'RollingUpdate' or 'OnDelete'",
        ),
        (
            "partition >= 0",
            validate_stateful_set,
            set(stateful_set(), "/spec/updateStrategy/rollingUpdate/partition", json!(-1)),
            "spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            "selector non-empty",
            validate_stateful_set,
            set(stateful_set(), "/spec/selector", json!({})),
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for statefulset",
        ),
        (
            "selector matches template",
            validate_stateful_set,
            set(stateful_set(), "/spec/template/metadata/labels/app", json!("x")),
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`",
        ),
    ]);
}

#[test]
fn stateful_set_update_limits_changed_fields() {
    let old = stateful_set();
    assert!(validate_stateful_set_update(&set(old.clone(), "/spec/replicas", json!(3)), &old).is_empty());
    let errs = strings(validate_stateful_set_update(&set(old.clone(), "/spec/serviceName", json!("other")), &old));
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("spec: Forbidden: updates to statefulset spec for fields other than 'replicas'"));
}

#[test]
fn daemon_set_rules() {
    check(vec![
        (
            "selector required",
            validate_daemon_set,
            set(daemon_set(), "/spec/selector", Value::Null),
            "spec.selector: Required value",
        ),
        (
            "selector matches template",
            validate_daemon_set,
            set(daemon_set(), "/spec/template/metadata/labels/app", json!("x")),
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`",
        ),
        (
            "updateStrategy values",
            validate_daemon_set,
            set(daemon_set(), "/spec/updateStrategy/type", json!("Blue")),
            "spec.updateStrategy: Unsupported value: \"Blue\": supported values: \"OnDelete\", \"RollingUpdate\"",
        ),
        (
            "maxUnavailable and maxSurge not both set",
            validate_daemon_set,
            set(daemon_set(), "/spec/updateStrategy/rollingUpdate/maxSurge", json!(1)),
            "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: may not be set when maxUnavailable is non-zero",
        ),
        (
            "maxUnavailable and maxSurge not both zero",
            validate_daemon_set,
            set(daemon_set(), "/spec/updateStrategy/rollingUpdate/maxUnavailable", json!(0)),
            "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0",
        ),
        (
            "template restartPolicy Always",
            validate_daemon_set,
            set(daemon_set(), "/spec/template/spec/restartPolicy", json!("OnFailure")),
            "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
        ),
    ]);
    let old = daemon_set();
    let new = set(old.clone(), "/spec/selector/matchLabels/x", json!("y"));
    assert!(strings(validate_daemon_set_update(&new, &old)).iter().any(|e| e.contains("field is immutable")));
}

#[test]
fn replication_controller_rules() {
    check(vec![
        (
            "replicas >= 0",
            validate_replication_controller,
            set(replication_controller(), "/spec/replicas", json!(-1)),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            "selector required",
            validate_replication_controller,
            set(replication_controller(), "/spec/selector", json!({})),
            "spec.selector: Required value",
        ),
        (
            "selector matches template",
            validate_replication_controller,
            set(replication_controller(), "/spec/selector", json!({"app": "other"})),
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"rc\"}: `selector` does not match template `labels`",
        ),
    ]);
}

#[test]
fn job_rules() {
    check(vec![
        (
            "parallelism >= 0",
            validate_job,
            set(job(), "/spec/parallelism", json!(-1)),
            "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            "backoffLimit >= 0",
            validate_job,
            set(job(), "/spec/backoffLimit", json!(-1)),
            "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            "restartPolicy OnFailure or Never",
            validate_job,
            set(job(), "/spec/template/spec/restartPolicy", json!("Always")),
            "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
        ),
        (
            "manual selector required",
            validate_job,
            set(set(job(), "/spec/manualSelector", json!(true)), "/spec/selector", Value::Null),
            "spec.selector: Required value",
        ),
        (
            "selector matches template",
            validate_job,
            set(job(), "/spec/selector", json!({"matchLabels": {"x": "y"}})),
            "spec.template.metadata.labels: Invalid value: map[string]string{",
        ),
        (
            "completionMode values",
            validate_job,
            set(job(), "/spec/completionMode", json!("Sometimes")),
            "spec.completionMode: Unsupported value: \"Sometimes\"",
        ),
        (
            "activeDeadlineSeconds > 0",
            validate_job,
            set(job(), "/spec/activeDeadlineSeconds", json!(0)),
            "spec.activeDeadlineSeconds: Invalid value: 0: must be greater than 0",
        ),
    ]);
}

#[test]
fn job_update_keeps_selector_and_template() {
    let old = job();
    let new = set(old.clone(), "/spec/template/spec/containers/0/image", json!("perl"));
    assert!(strings(validate_job_update(&new, &old)).iter().any(|e| e.starts_with("spec.template: Invalid value")));
    let suspended = set(old.clone(), "/spec/suspend", json!(true));
    let new = set(suspended.clone(), "/spec/template/spec/containers/0/image", json!("perl"));
    assert!(validate_job_update(&new, &suspended).is_empty());
    let new = set(old.clone(), "/spec/selector/matchLabels/extra", json!("x"));
    assert!(strings(validate_job_update(&new, &old)).iter().any(|e| e.starts_with("spec.selector: Invalid value")));
}

#[test]
fn cron_job_rules() {
    check(vec![
        (
            "schedule required",
            validate_cron_job,
            set(cron_job(), "/spec/schedule", json!("")),
            "spec.schedule: Required value",
        ),
        (
            "schedule parses",
            validate_cron_job,
            set(cron_job(), "/spec/schedule", json!("61 * * * *")),
            "spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59)",
        ),
        (
            "schedule has five fields",
            validate_cron_job,
            set(cron_job(), "/spec/schedule", json!("* * *")),
            "spec.schedule: Invalid value: \"* * *\": expected exactly 5 fields",
        ),
        (
            "schedule without TZ",
            validate_cron_job,
            set(cron_job(), "/spec/schedule", json!("TZ=UTC * * * * *")),
            "spec.schedule: Invalid value: \"TZ=UTC * * * * *\": cannot use TZ or CRON_TZ in schedule",
        ),
        (
            "concurrencyPolicy values",
            validate_cron_job,
            set(cron_job(), "/spec/concurrencyPolicy", json!("Sometimes")),
            "spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"",
        ),
        (
            "history limits >= 0",
            validate_cron_job,
            set(cron_job(), "/spec/failedJobsHistoryLimit", json!(-1)),
            "spec.failedJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            "job template restartPolicy",
            validate_cron_job,
            set(cron_job(), "/spec/jobTemplate/spec/template/spec/restartPolicy", json!("Always")),
            "spec.jobTemplate.spec.template.spec.restartPolicy: Unsupported value: \"Always\"",
        ),
    ]);
    for ok in ["@hourly", "0 0 * * SUN", "*/15 9-17 * * 1-5", "0 0 1 jan,jul *", "0 0 * * 7"] {
        assert_eq!(check_cron_schedule(ok), Ok(()), "{ok}");
    }
    assert_eq!(cron_job_name(&"a".repeat(53), false), vec!["must be no more than 52 characters"]);
}

#[test]
fn controller_revision_revision_non_negative() {
    assert_eq!(
        strings(validate_controller_revision(&json!({"revision": -1}))),
        vec!["revision: Invalid value: -1: must be greater than or equal to 0"]
    );
}
