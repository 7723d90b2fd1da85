//! Helpers shared by the controllers: pod readiness and availability, owner references, label
//! selectors and timestamps.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::core::{Selector, SelectorExt};
use kube::{Resource, ResourceExt};

use crate::Error;

/// `kind ns/name` of an object, for messages.
pub fn describe<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    match obj.meta().namespace.as_deref() {
        Some(ns) => format!("{} {}/{}", K::kind(&()), ns, obj.name_any()),
        None => format!("{} {}", K::kind(&()), obj.name_any()),
    }
}

/// The ownerReference with `controller: true`, if any.
pub fn controller_ref(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.as_ref()?.iter().find(|r| r.controller == Some(true))
}

/// An ownerReference to `owner` with controller=true and blockOwnerDeletion=true.
pub fn new_controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Parses a label selector; an empty selector matches nothing (as upstream controllers treat it).
pub fn selector(object: String, sel: Option<&LabelSelector>) -> Result<Option<Selector>, Error> {
    let Some(sel) = sel else { return Ok(None) };
    let empty = sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && sel.match_expressions.as_ref().is_none_or(Vec::is_empty);
    if empty {
        return Ok(None);
    }
    Selector::try_from(sel.clone()).map(Some).map_err(|e| Error::InvalidSelector { object, message: e.to_string() })
}

/// Whether `labels` match `sel` (`None` matches nothing).
pub fn matches(sel: &Option<Selector>, labels: &BTreeMap<String, String>) -> bool {
    sel.as_ref().is_some_and(|s| s.matches(labels))
}

/// A pod that is neither terminal nor being deleted (k8s `controller.IsPodActive`).
pub fn is_pod_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// The `Ready` condition's last transition time if the pod is Ready.
pub fn pod_ready_since(pod: &Pod) -> Option<Option<jiff::Timestamp>> {
    let cond = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
    (cond.status == "True").then(|| cond.last_transition_time.as_ref().map(|t| t.0))
}

/// Whether the pod's `Ready` condition is True.
pub fn is_pod_ready(pod: &Pod) -> bool {
    pod_ready_since(pod).is_some()
}

/// Whether the pod has been Ready for at least `min_ready_seconds` at `now` (k8s `IsPodAvailable`).
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    match pod_ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => since.as_second().saturating_add(i64::from(min_ready_seconds)) <= now.as_second(),
    }
}

/// The object's creation time in seconds (0 when unknown).
pub fn created_at(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> i64 {
    meta.creation_timestamp.as_ref().map(|t| t.0.as_second()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ready_pod(since: i64) -> Pod {
        Pod {
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(jiff::Timestamp::from_second(since).unwrap_or_default())),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let now = jiff::Timestamp::from_second(1_000).unwrap_or_default();
        assert!(is_pod_available(&ready_pod(995), 0, now));
        assert!(!is_pod_available(&ready_pod(995), 10, now));
        assert!(is_pod_available(&ready_pod(990), 10, now));
        assert!(!is_pod_available(&Pod::default(), 0, now));
    }

    #[test]
    fn empty_selector_matches_nothing() {
        let sel = selector("x".into(), Some(&LabelSelector::default())).expect("parse");
        assert!(!matches(&sel, &BTreeMap::from([("a".to_string(), "b".to_string())])));
        let sel = selector(
            "x".into(),
            Some(&LabelSelector {
                match_labels: Some(BTreeMap::from([("a".to_string(), "b".to_string())])),
                ..Default::default()
            }),
        )
        .expect("parse");
        assert!(matches(&sel, &BTreeMap::from([("a".to_string(), "b".to_string())])));
    }

    #[test]
    fn terminal_and_deleting_pods_are_inactive() {
        let mut p = Pod::default();
        assert!(is_pod_active(&p));
        p.status = Some(PodStatus { phase: Some("Succeeded".into()), ..Default::default() });
        assert!(!is_pod_active(&p));
    }
}
