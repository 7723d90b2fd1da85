//! Deployments and ReplicaSets (kubectl's DeploymentDescriber and ReplicaSetDescriber).

use serde_json::Value;

use super::Related;
use super::pod::describe_pod_template;
use super::writer::*;

pub(super) fn replica_sets_by_labels(rss: &[&Value]) -> String {
    if rss.is_empty() {
        return "<none>".to_string();
    }
    rss.iter()
        .map(|rs| {
            format!(
                "{} ({}/{} replicas created)",
                s(rs, "/metadata/name"),
                i(rs, "/status/replicas"),
                i(rs, "/spec/replicas")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn describe_deployment(d: &Value, rel: &Related) -> String {
    let mut w = Writer::default();
    w.w(0, &format!("Name:\t{}\n", s(d, "/metadata/name")));
    w.w(0, &format!("Namespace:\t{}\n", s(d, "/metadata/namespace")));
    w.w(0, &format!("CreationTimestamp:\t{}\n", rfc1123z(s(d, "/metadata/creationTimestamp"))));
    labels_multiline(&mut w, "Labels", d.pointer("/metadata/labels"));
    annotations_multiline(&mut w, "Annotations", d.pointer("/metadata/annotations"));
    w.w(0, &format!("Selector:\t{}\n", format_selector(d.pointer("/spec/selector"))));
    let desired = d.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    w.w(
        0,
        &format!(
            "Replicas:\t{desired} desired | {} updated | {} total | {} available | {} unavailable\n",
            i(d, "/status/updatedReplicas"),
            i(d, "/status/replicas"),
            i(d, "/status/availableReplicas"),
            i(d, "/status/unavailableReplicas")
        ),
    );
    let strategy = s(d, "/spec/strategy/type");
    w.w(0, &format!("StrategyType:\t{strategy}\n"));
    w.w(0, &format!("MinReadySeconds:\t{}\n", i(d, "/spec/minReadySeconds")));
    if let Some(ru) = d.pointer("/spec/strategy/rollingUpdate") {
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        w.w(
            0,
            &format!(
                "RollingUpdateStrategy:\t{} max unavailable, {} max surge\n",
                text(ru.get("maxUnavailable")),
                text(ru.get("maxSurge"))
            ),
        );
    }
    describe_pod_template(&mut w, d.pointer("/spec/template").unwrap_or(&Value::Null));
    describe_conditions(&mut w, arr(d, "/status/conditions"), true);
    let uid = s(d, "/metadata/uid");
    let owned: Vec<&Value> = rel
        .replica_sets
        .iter()
        .filter(|rs| {
            arr(rs, "/metadata/ownerReferences")
                .iter()
                .any(|r| s(r, "/uid") == uid && r.get("controller").and_then(Value::as_bool) == Some(true))
        })
        .collect();
    // deploymentutil.FindNewReplicaSet: the oldest ReplicaSet whose pod template equals the
    // deployment's, ignoring the pod-template-hash label.
    let without_hash = |t: Option<&Value>| {
        let mut t = t.cloned().unwrap_or(Value::Null);
        if let Some(labels) = t.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
            labels.remove("pod-template-hash");
        }
        t
    };
    let template = without_hash(d.pointer("/spec/template"));
    let mut owned = owned;
    owned.sort_by_key(|rs| s(rs, "/metadata/creationTimestamp").to_string());
    let new_index = owned.iter().position(|rs| without_hash(rs.pointer("/spec/template")) == template);
    let new: Vec<&Value> = new_index.map(|n| vec![owned[n]]).unwrap_or_default();
    let old: Vec<&Value> = owned.iter().enumerate().filter(|(n, _)| Some(*n) != new_index).map(|(_, rs)| *rs).collect();
    if !old.is_empty() || !new.is_empty() {
        w.w(0, &format!("OldReplicaSets:\t{}\n", replica_sets_by_labels(&old)));
        w.w(0, &format!("NewReplicaSet:\t{}\n", replica_sets_by_labels(&new)));
    }
    if let Some(events) = &rel.events {
        describe_events(&mut w, events);
    }
    w.finish()
}

pub fn describe_replica_set(rs: &Value, rel: &Related) -> String {
    let mut w = Writer::default();
    w.w(0, &format!("Name:\t{}\n", s(rs, "/metadata/name")));
    w.w(0, &format!("Namespace:\t{}\n", s(rs, "/metadata/namespace")));
    w.w(0, &format!("Selector:\t{}\n", format_selector(rs.pointer("/spec/selector"))));
    labels_multiline(&mut w, "Labels", rs.pointer("/metadata/labels"));
    annotations_multiline(&mut w, "Annotations", rs.pointer("/metadata/annotations"));
    if let Some(c) = controller_of(rs) {
        w.w(0, &format!("Controlled By:\t{c}\n"));
    }
    let desired = rs.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    w.w(0, &format!("Replicas:\t{} current / {desired} desired\n", i(rs, "/status/replicas")));
    let uid = s(rs, "/metadata/uid");
    let count = |phase: &str| {
        rel.pods
            .iter()
            .filter(|p| arr(p, "/metadata/ownerReferences").iter().any(|r| s(r, "/uid") == uid))
            .filter(|p| s(p, "/status/phase") == phase)
            .count()
    };
    w.w(
        0,
        &format!(
            "Pods Status:\t{} Running / {} Waiting / {} Succeeded / {} Failed\n",
            count("Running"),
            count("Pending"),
            count("Succeeded"),
            count("Failed")
        ),
    );
    describe_pod_template(&mut w, rs.pointer("/spec/template").unwrap_or(&Value::Null));
    describe_conditions(&mut w, arr(rs, "/status/conditions"), true);
    if let Some(events) = &rel.events {
        describe_events(&mut w, events);
    }
    w.finish()
}
