//! Workload validation: Deployment, ReplicaSet, StatefulSet, DaemonSet, ControllerRevision
//! (`pkg/apis/apps/validation/validation.go`), ReplicationController (core), Job and CronJob
//! (`pkg/apis/batch/validation/validation.go`).

use serde_json::Value;

use super::names::max_len_error;
use super::pod::validate_pod_template;
use super::selector::{
    render_label_map, render_selector, selector_is_empty, selector_matches, validate_label_selector,
};
use super::{ErrorList, IS_NEGATIVE, child, q, render, str_at, str_or_empty, validate_immutable, validate_nonnegative};
use crate::FieldError;

const SELECTOR_MISMATCH: &str = "`selector` does not match template `labels`";

fn spec_of(obj: &Value) -> &Value {
    static NULL: Value = Value::Null;
    obj.get("spec").unwrap_or(&NULL)
}

/// Selector present, valid, non-empty (`empty selector is invalid for {what}`).
fn validate_selector_required(spec: &Value, path: &str, what: &str) -> ErrorList {
    let sp = child(path, "selector");
    match spec.get("selector").filter(|s| !s.is_null()) {
        None => vec![FieldError::required(sp, "")],
        Some(sel) => {
            let mut errs = validate_label_selector(sel, &sp);
            if selector_is_empty(sel) {
                errs.push(FieldError::invalid(
                    &sp,
                    render_selector(Some(sel)),
                    format!("empty selector is invalid for {what}"),
                ));
            }
            errs
        }
    }
}

/// The template exists, its labels match the selector, it is a valid pod template; and, for
/// controllers of long-running pods, restartPolicy Always and no activeDeadlineSeconds.
fn validate_template(spec: &Value, path: &str, owner: Option<&str>, restart_always: bool) -> ErrorList {
    let tp = child(path, "template");
    let Some(template) = spec.get("template").filter(|t| !t.is_null()) else {
        return vec![FieldError::required(tp, "")];
    };
    let mut errs = Vec::new();
    let labels = template.pointer("/metadata/labels");
    if let Some(sel) = spec.get("selector").filter(|s| !s.is_null() && !selector_is_empty(s))
        && !selector_matches(sel, labels.and_then(Value::as_object))
    {
        errs.push(FieldError::invalid(child(&tp, "metadata.labels"), render_label_map(labels), SELECTOR_MISMATCH));
    }
    errs.extend(validate_pod_template(template, &tp));
    if restart_always {
        let rp = str_or_empty(template.get("spec").unwrap_or(&Value::Null), "restartPolicy");
        if !rp.is_empty() && rp != "Always" {
            errs.push(FieldError::not_supported(child(&tp, "spec.restartPolicy"), q(rp), &["Always"]));
        }
    }
    if let Some(owner) = owner
        && template.pointer("/spec/activeDeadlineSeconds").is_some_and(|v| !v.is_null())
    {
        errs.push(FieldError::forbidden(
            child(&tp, "spec.activeDeadlineSeconds"),
            format!("activeDeadlineSeconds in {owner} is not Supported"),
        ));
    }
    errs
}

/// An IntOrString that must be a non-negative integer or a percentage.
fn validate_positive_int_or_percent(v: Option<&Value>, path: &str) -> ErrorList {
    match v {
        Some(Value::String(s)) => match s.strip_suffix('%').and_then(|n| n.parse::<i64>().ok()) {
            Some(n) if n < 0 => vec![FieldError::invalid(path, q(s), IS_NEGATIVE)],
            Some(_) if !s[..s.len() - 1].chars().all(|c| c.is_ascii_digit()) => {
                vec![FieldError::invalid(path, q(s), "must be an integer or percentage (e.g '5%')")]
            }
            Some(_) => Vec::new(),
            None => vec![FieldError::invalid(path, q(s), "must be an integer or percentage (e.g '5%')")],
        },
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) if i < 0 => vec![FieldError::invalid(path, i, IS_NEGATIVE)],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The integer or percentage number of an IntOrString (0 when absent).
fn int_or_percent_value(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::String(s)) => s.trim_end_matches('%').parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn not_more_than_100_percent(v: Option<&Value>, path: &str) -> ErrorList {
    match v {
        Some(Value::String(s)) if s.ends_with('%') && int_or_percent_value(v) > 100 => {
            vec![FieldError::invalid(path, q(s), "must not be greater than 100%")]
        }
        _ => Vec::new(),
    }
}

fn common_counts(spec: &Value, path: &str) -> ErrorList {
    let mut errs = validate_nonnegative(spec, "replicas", &child(path, "replicas"));
    errs.extend(validate_nonnegative(spec, "minReadySeconds", &child(path, "minReadySeconds")));
    errs.extend(validate_nonnegative(spec, "revisionHistoryLimit", &child(path, "revisionHistoryLimit")));
    errs
}

/// `ValidateDeployment`.
pub fn validate_deployment(obj: &Value) -> ErrorList {
    let spec = spec_of(obj);
    let mut errs = common_counts(spec, "spec");
    errs.extend(validate_selector_required(spec, "spec", "deployment"));
    errs.extend(validate_template(spec, "spec", Some("ReplicaSet"), true));
    if let Some(strategy) = spec.get("strategy") {
        let sp = "spec.strategy";
        match str_or_empty(strategy, "type") {
            "Recreate" => {
                if strategy.get("rollingUpdate").is_some_and(|v| !v.is_null()) {
                    errs.push(FieldError::forbidden(
                        child(sp, "rollingUpdate"),
                        "may not be specified when strategy `type` is 'Recreate'",
                    ));
                }
            }
            "RollingUpdate" => match strategy.get("rollingUpdate").filter(|v| !v.is_null()) {
                None => errs.push(FieldError::required(
                    child(sp, "rollingUpdate"),
                    "this should be defaulted and never be nil",
                )),
                Some(ru) => {
                    let rp = child(sp, "rollingUpdate");
                    let mu = ru.get("maxUnavailable");
                    let ms = ru.get("maxSurge");
                    errs.extend(validate_positive_int_or_percent(mu, &child(&rp, "maxUnavailable")));
                    errs.extend(validate_positive_int_or_percent(ms, &child(&rp, "maxSurge")));
                    if int_or_percent_value(mu) == 0 && int_or_percent_value(ms) == 0 {
                        errs.push(FieldError::invalid(
                            child(&rp, "maxUnavailable"),
                            mu.map(render).unwrap_or_else(|| "0".into()),
                            "may not be 0 when `maxSurge` is 0",
                        ));
                    }
                    errs.extend(not_more_than_100_percent(mu, &child(&rp, "maxUnavailable")));
                }
            },
            other => errs.push(FieldError::not_supported(sp, q(other), &["Recreate", "RollingUpdate"])),
        }
    }
    if let Some(pds) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) {
        if pds <= 0 {
            errs.push(FieldError::invalid("spec.progressDeadlineSeconds", pds, "must be greater than 0"));
        }
        let mrs = spec.get("minReadySeconds").and_then(Value::as_i64).unwrap_or(0);
        if pds <= mrs {
            errs.push(FieldError::invalid("spec.progressDeadlineSeconds", pds, "must be greater than minReadySeconds"));
        }
    }
    errs
}

fn selector_immutable(obj: &Value, old: &Value) -> ErrorList {
    let new_sel = spec_of(obj).get("selector").filter(|s| !s.is_null());
    let old_sel = spec_of(old).get("selector").filter(|s| !s.is_null());
    if new_sel != old_sel {
        vec![FieldError::invalid("spec.selector", render_selector(new_sel), super::FIELD_IMMUTABLE)]
    } else {
        Vec::new()
    }
}

/// `ValidateDeploymentUpdate`: selector immutable (apps/v1).
pub fn validate_deployment_update(obj: &Value, old: &Value) -> ErrorList {
    let mut errs = validate_deployment(obj);
    errs.extend(selector_immutable(obj, old));
    errs
}

/// `ValidateReplicaSet`.
pub fn validate_replica_set(obj: &Value) -> ErrorList {
    let spec = spec_of(obj);
    let mut errs = common_counts(spec, "spec");
    errs.extend(validate_selector_required(spec, "spec", "deployment"));
    errs.extend(validate_template(spec, "spec", Some("ReplicaSet"), true));
    errs
}

/// `ValidateReplicaSetUpdate`: selector immutable (apps/v1).
pub fn validate_replica_set_update(obj: &Value, old: &Value) -> ErrorList {
    let mut errs = validate_replica_set(obj);
    errs.extend(selector_immutable(obj, old));
    errs
}

/// `ValidateStatefulSet`.
pub fn validate_stateful_set(obj: &Value) -> ErrorList {
    let spec = spec_of(obj);
    let mut errs = Vec::new();
    match str_at(spec, "podManagementPolicy") {
        None | Some("OrderedReady" | "Parallel") => {}
        Some(p) => {
            errs.push(FieldError::invalid("spec.podManagementPolicy", q(p), "must be 'OrderedReady' or 'Parallel'"))
        }
    }
    if let Some(us) = spec.get("updateStrategy") {
        match str_or_empty(us, "type") {
            "RollingUpdate" => {
                if let Some(ru) = us.get("rollingUpdate") {
                    errs.extend(validate_nonnegative(ru, "partition", "spec.updateStrategy.rollingUpdate.partition"));
                }
            }
            "OnDelete" => {
                if us.get("rollingUpdate").is_some_and(|v| !v.is_null()) {
                    errs.push(FieldError::invalid(
                        "spec.updateStrategy.rollingUpdate",
                        render(&us["rollingUpdate"]),
                        "only allowed for updateStrategy 'RollingUpdate'",
                    ));
                }
            }
            other => {
                errs.push(FieldError::invalid("spec.updateStrategy", q(other), "must be 'RollingUpdate' or 'OnDelete'"))
            }
        }
    }
    errs.extend(common_counts(spec, "spec"));
    if let Some(ord) = spec.get("ordinals") {
        errs.extend(validate_nonnegative(ord, "start", "spec.ordinals.start"));
    }
    errs.extend(validate_selector_required(spec, "spec", "statefulset"));
    errs.extend(validate_template(spec, "spec", Some("StatefulSet"), true));
    errs
}

/// The StatefulSet spec fields an update may change.
const STS_MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

/// `ValidateStatefulSetUpdate`: only the fields in upstream's list may change.
pub fn validate_stateful_set_update(obj: &Value, old: &Value) -> ErrorList {
    let mut errs = validate_stateful_set(obj);
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            for f in STS_MUTABLE {
                m.remove(*f);
            }
        }
        v
    };
    if strip(spec_of(obj)) != strip(spec_of(old)) {
        errs.push(FieldError::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
    errs
}

/// `ValidateDaemonSet`.
pub fn validate_daemon_set(obj: &Value) -> ErrorList {
    let spec = spec_of(obj);
    let mut errs = validate_selector_required(spec, "spec", "daemonset");
    errs.extend(validate_template(spec, "spec", Some("DaemonSet"), true));
    errs.extend(validate_nonnegative(spec, "minReadySeconds", "spec.minReadySeconds"));
    errs.extend(validate_nonnegative(spec, "templateGeneration", "spec.templateGeneration"));
    errs.extend(validate_nonnegative(spec, "revisionHistoryLimit", "spec.revisionHistoryLimit"));
    if let Some(us) = spec.get("updateStrategy") {
        match str_or_empty(us, "type") {
            "OnDelete" => {}
            "RollingUpdate" => {
                let rp = "spec.updateStrategy.rollingUpdate";
                match us.get("rollingUpdate").filter(|v| !v.is_null()) {
                    None => errs.push(FieldError::required(rp, "")),
                    Some(ru) => {
                        let mu = ru.get("maxUnavailable");
                        let ms = ru.get("maxSurge");
                        errs.extend(validate_positive_int_or_percent(mu, &child(rp, "maxUnavailable")));
                        errs.extend(validate_positive_int_or_percent(ms, &child(rp, "maxSurge")));
                        errs.extend(not_more_than_100_percent(mu, &child(rp, "maxUnavailable")));
                        errs.extend(not_more_than_100_percent(ms, &child(rp, "maxSurge")));
                        let has_unavailable = int_or_percent_value(mu) != 0;
                        let has_surge = int_or_percent_value(ms) != 0;
                        if has_unavailable && has_surge {
                            errs.push(FieldError::invalid(
                                child(rp, "maxSurge"),
                                ms.map(render).unwrap_or_default(),
                                "may not be set when maxUnavailable is non-zero",
                            ));
                        } else if !has_unavailable && !has_surge {
                            errs.push(FieldError::required(
                                child(rp, "maxUnavailable"),
                                "cannot be 0 when maxSurge is 0",
                            ));
                        }
                    }
                }
            }
            other => {
                errs.push(FieldError::not_supported("spec.updateStrategy", q(other), &["OnDelete", "RollingUpdate"]))
            }
        }
    }
    errs
}

/// `ValidateDaemonSetUpdate`: selector immutable (apps/v1).
pub fn validate_daemon_set_update(obj: &Value, old: &Value) -> ErrorList {
    let mut errs = validate_daemon_set(obj);
    errs.extend(selector_immutable(obj, old));
    errs
}

/// `ValidateControllerRevision`: revision non-negative.
pub fn validate_controller_revision(obj: &Value) -> ErrorList {
    validate_nonnegative(obj, "revision", "revision")
}

/// `ValidateReplicationController`: a non-empty selector map matching the template labels.
pub fn validate_replication_controller(obj: &Value) -> ErrorList {
    let spec = spec_of(obj);
    let mut errs = validate_nonnegative(spec, "replicas", "spec.replicas");
    errs.extend(validate_nonnegative(spec, "minReadySeconds", "spec.minReadySeconds"));
    let selector = spec.get("selector").and_then(Value::as_object).filter(|s| !s.is_empty());
    match selector {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => {
            errs.extend(super::meta::validate_labels(spec.get("selector"), "spec.selector"));
            let Some(template) = spec.get("template").filter(|t| !t.is_null()) else {
                errs.push(FieldError::required("spec.template", ""));
                return errs;
            };
            let labels = template.pointer("/metadata/labels");
            let matches = sel.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
            if !matches {
                errs.push(FieldError::invalid(
                    "spec.template.metadata.labels",
                    render_label_map(labels),
                    SELECTOR_MISMATCH,
                ));
            }
        }
    }
    if let Some(template) = spec.get("template").filter(|t| !t.is_null()) {
        errs.extend(validate_pod_template(template, "spec.template"));
        let rp = template.pointer("/spec/restartPolicy").and_then(Value::as_str).unwrap_or("");
        if !rp.is_empty() && rp != "Always" {
            errs.push(FieldError::not_supported("spec.template.spec.restartPolicy", q(rp), &["Always"]));
        }
        if template.pointer("/spec/activeDeadlineSeconds").is_some_and(|v| !v.is_null()) {
            errs.push(FieldError::forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                "activeDeadlineSeconds in ReplicationController is not Supported",
            ));
        }
    }
    errs
}

/// ReplicationController updates: as on create (the selector may change).
pub fn validate_replication_controller_update(obj: &Value, _old: &Value) -> ErrorList {
    validate_replication_controller(obj)
}

/// `validateJobSpec` for a Job (`path` = `spec`) or a CronJob's job template
/// (`spec.jobTemplate.spec`, where the selector is generated later and so not required).
fn validate_job_spec(spec: &Value, path: &str, selector_required: bool) -> ErrorList {
    let mut errs = Vec::new();
    for f in ["parallelism", "completions", "backoffLimit", "ttlSecondsAfterFinished", "backoffLimitPerIndex"] {
        errs.extend(validate_nonnegative(spec, f, &child(path, f)));
    }
    if let Some(ads) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64)
        && ads <= 0
    {
        errs.push(FieldError::invalid(child(path, "activeDeadlineSeconds"), ads, "must be greater than 0"));
    }
    match str_at(spec, "completionMode") {
        None | Some("NonIndexed" | "Indexed") => {}
        Some(m) => {
            errs.push(FieldError::not_supported(child(path, "completionMode"), q(m), &["NonIndexed", "Indexed"]))
        }
    }
    if str_at(spec, "completionMode") == Some("Indexed") && spec.get("completions").is_none_or(Value::is_null) {
        errs.push(FieldError::required(child(path, "completions"), "when completion mode is Indexed"));
    }
    match spec.get("selector").filter(|s| !s.is_null()) {
        Some(sel) => errs.extend(validate_label_selector(sel, &child(path, "selector"))),
        None if selector_required && spec.get("manualSelector").and_then(Value::as_bool) == Some(true) => {
            errs.push(FieldError::required(child(path, "selector"), ""))
        }
        None => {}
    }
    let tp = child(path, "template");
    match spec.get("template").filter(|t| !t.is_null()) {
        None => errs.push(FieldError::required(&tp, "")),
        Some(template) => {
            let labels = template.pointer("/metadata/labels");
            if let Some(sel) = spec.get("selector").filter(|s| !s.is_null() && !selector_is_empty(s))
                && !selector_matches(sel, labels.and_then(Value::as_object))
            {
                errs.push(FieldError::invalid(
                    child(&tp, "metadata.labels"),
                    render_label_map(labels),
                    SELECTOR_MISMATCH,
                ));
            }
            errs.extend(validate_pod_template(template, &tp));
            let rp = template.pointer("/spec/restartPolicy").and_then(Value::as_str).unwrap_or("");
            if rp != "OnFailure" && rp != "Never" {
                errs.push(FieldError::not_supported(child(&tp, "spec.restartPolicy"), q(rp), &["OnFailure", "Never"]));
            }
        }
    }
    errs
}

/// `ValidateJob`. The selector is required only with `manualSelector: true`; otherwise the
/// defaulting generates it from the uid (see `defaults::apps::default_job`).
pub fn validate_job(obj: &Value) -> ErrorList {
    validate_job_spec(spec_of(obj), "spec", true)
}

/// `ValidateJobUpdate`: selector and completionMode immutable; the template only while the
/// Job is suspended; completions only for Indexed jobs that keep completions == parallelism.
pub fn validate_job_update(obj: &Value, old: &Value) -> ErrorList {
    let mut errs = validate_job(obj);
    let (new_spec, old_spec) = (spec_of(obj), spec_of(old));
    errs.extend(validate_immutable(new_spec.get("selector"), old_spec.get("selector"), "spec.selector"));
    errs.extend(validate_immutable(
        new_spec.get("completionMode"),
        old_spec.get("completionMode"),
        "spec.completionMode",
    ));
    let suspended = old_spec.get("suspend").and_then(Value::as_bool) == Some(true);
    if !suspended && new_spec.get("template") != old_spec.get("template") {
        errs.push(FieldError::invalid("spec.template", "core.PodTemplateSpec{...}", super::FIELD_IMMUTABLE));
    }
    let elastic = str_at(new_spec, "completionMode") == Some("Indexed")
        && new_spec.get("completions") == new_spec.get("parallelism");
    if !elastic {
        errs.extend(validate_immutable(new_spec.get("completions"), old_spec.get("completions"), "spec.completions"));
    }
    errs
}

/// CronJob names: DNS subdomains of at most 52 characters (so Job names with an 11-character
/// suffix still fit a 63-character label).
pub fn cron_job_name(name: &str, prefix: bool) -> Vec<String> {
    let mut errs = super::names::name_is_dns_subdomain(name, prefix);
    if !prefix && name.len() > 52 {
        errs.push(max_len_error(52));
    }
    errs
}

/// `ValidateCronJob`: schedule, concurrencyPolicy, counts, time zone, job template.
pub fn validate_cron_job(obj: &Value) -> ErrorList {
    let spec = spec_of(obj);
    let mut errs = Vec::new();
    let schedule = str_or_empty(spec, "schedule");
    if schedule.is_empty() {
        errs.push(FieldError::required("spec.schedule", ""));
    } else if schedule.contains("TZ") {
        errs.push(FieldError::invalid(
            "spec.schedule",
            q(schedule),
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        ));
    } else if let Err(e) = check_cron_schedule(schedule) {
        errs.push(FieldError::invalid("spec.schedule", q(schedule), e));
    }
    match str_at(spec, "concurrencyPolicy") {
        Some("Allow" | "Forbid" | "Replace") => {}
        Some(p) if !p.is_empty() => {
            errs.push(FieldError::not_supported("spec.concurrencyPolicy", q(p), &["Allow", "Forbid", "Replace"]))
        }
        _ => errs.push(FieldError::required("spec.concurrencyPolicy", "")),
    }
    for f in ["startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"] {
        errs.extend(validate_nonnegative(spec, f, &child("spec", f)));
    }
    if let Some(tz) = str_at(spec, "timeZone")
        && (tz.is_empty() || tz.contains(' ') || tz.starts_with('/') || tz.contains(".."))
    {
        errs.push(FieldError::invalid("spec.timeZone", q(tz), "unknown time zone"));
    }
    match spec.pointer("/jobTemplate/spec") {
        Some(js) => errs.extend(validate_job_spec(js, "spec.jobTemplate.spec", false)),
        None => errs.push(FieldError::required("spec.jobTemplate.spec", "")),
    }
    if let Some(labels) = spec.pointer("/jobTemplate/metadata/labels") {
        errs.extend(super::meta::validate_labels(Some(labels), "spec.jobTemplate.metadata.labels"));
    }
    errs
}

/// A standard 5-field cron expression (minute hour day-of-month month day-of-week) or one of
/// the `@hourly`-style descriptors, as robfig/cron's standard parser accepts them.
pub fn check_cron_schedule(s: &str) -> Result<(), String> {
    if let Some(desc) = s.strip_prefix('@') {
        return match desc {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => Ok(()),
            _ if desc.starts_with("every ") => Ok(()),
            _ => Err(format!("unrecognized descriptor: {s}")),
        };
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("expected exactly 5 fields, found {}: {s}", fields.len()));
    }
    const MONTHS: &[&str] = &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let bounds: [(u32, u32, &[&str]); 5] = [(0, 59, &[]), (0, 23, &[]), (1, 31, &[]), (1, 12, MONTHS), (0, 6, DAYS)];
    for (field, (lo, hi, names)) in fields.iter().zip(bounds) {
        for part in field.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, st)) => (r, Some(st)),
                None => (part, None),
            };
            if let Some(st) = step
                && st.parse::<u32>().map_or(true, |n| n == 0)
            {
                return Err(format!("failed to parse int from {st}"));
            }
            if range == "*" || range == "?" {
                continue;
            }
            let value = |t: &str| -> Result<u32, String> {
                let lower = t.to_ascii_lowercase();
                if let Some(i) = names.iter().position(|n| *n == lower) {
                    return Ok(lo + i as u32);
                }
                t.parse::<u32>().map_err(|_| format!("failed to parse int from {t}"))
            };
            let (a, b) = match range.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None => {
                    let v = value(range)?;
                    (v, v)
                }
            };
            // robfig/cron accepts 7 for Sunday.
            let hi = if names == DAYS { 7 } else { hi };
            if a < lo {
                return Err(format!("beginning of range ({a}) below minimum ({lo}): {range}"));
            }
            if b > hi {
                return Err(format!("end of range ({b}) above maximum ({hi}): {range}"));
            }
            if a > b {
                return Err(format!("beginning of range ({a}) beyond end of range ({b}): {range}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
