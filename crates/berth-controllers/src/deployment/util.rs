//! Pure Deployment helpers (k8s `pkg/controller/deployment/util/deployment_util.go`): the
//! pod-template hash, maxSurge/maxUnavailable resolution, revision and replica annotations, and
//! proportional-scaling fractions.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Label (and selector key) carrying the template hash.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Revision of a ReplicaSet / of a Deployment's current ReplicaSet.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a ReplicaSet had.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// Deployment replicas when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// replicas + maxSurge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Copied from the Deployment onto its ReplicaSets.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// Annotations never copied from a Deployment to its ReplicaSets (upstream `skipCopyAnnotation`).
const SKIP_COPY: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// FNV-1a, 32 bit.
pub fn fnv32a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in data {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Upstream `rand.SafeEncodeString`: maps each byte to a consonant/digit alphabet without vowels.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes().map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char).collect()
}

/// The pod-template hash: fnv32a over the template (canonical JSON here; upstream hashes Go's
/// spew dump) followed by collisionCount as little-endian u32, rendered as the safe encoding of
/// its decimal value (upstream `controller.ComputeHash`).
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(template).unwrap_or_default();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(&(c as u32).to_le_bytes());
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

/// The template with the hash label removed, for comparisons (upstream `EqualIgnoreHash`).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(m) = t.metadata.as_mut()
            && let Some(l) = m.labels.as_mut()
        {
            l.remove(POD_TEMPLATE_HASH);
            if l.is_empty() {
                m.labels = None;
            }
        }
        serde_json::to_value(&t).unwrap_or_default()
    };
    strip(a) == strip(b)
}

/// Resolves an int-or-percent against `total`, rounding up or down (upstream
/// `GetScaledValueFromIntOrPercent`). Unparsable percents count as 0.
pub fn scaled_value(v: Option<&IntOrString>, total: i32, round_up: bool) -> i32 {
    match v {
        None => 0,
        Some(IntOrString::Int(i)) => *i,
        Some(IntOrString::String(s)) => {
            let Some(p) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
                return s.parse().unwrap_or(0);
            };
            let x = p * i64::from(total);
            (if round_up { (x + 99).div_euclid(100) } else { x.div_euclid(100) }) as i32
        }
    }
}

/// `spec.replicas` (default 1).
pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Whether the strategy is RollingUpdate (the default).
pub fn is_rolling(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate")
        == "RollingUpdate"
}

fn rolling_params(d: &Deployment) -> (IntOrString, IntOrString) {
    let ru = d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.rolling_update.as_ref());
    let pct = || IntOrString::String("25%".into());
    (
        ru.and_then(|r| r.max_surge.clone()).unwrap_or_else(pct),
        ru.and_then(|r| r.max_unavailable.clone()).unwrap_or_else(pct),
    )
}

/// (maxSurge, maxUnavailable) as numbers; both 0 means maxUnavailable 1 (upstream `ResolveFenceposts`).
pub fn resolve_fenceposts(surge: &IntOrString, unavailable: &IntOrString, desired: i32) -> (i32, i32) {
    let s = scaled_value(Some(surge), desired, true);
    let mut u = scaled_value(Some(unavailable), desired, false);
    if s == 0 && u == 0 {
        u = 1;
    }
    (s, u)
}

/// maxSurge as a number (0 for Recreate).
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling(d) {
        return 0;
    }
    let (s, u) = rolling_params(d);
    resolve_fenceposts(&s, &u, replicas(d)).0
}

/// maxUnavailable as a number, capped at replicas (0 for Recreate or 0 replicas).
pub fn max_unavailable(d: &Deployment) -> i32 {
    if !is_rolling(d) || replicas(d) == 0 {
        return 0;
    }
    let (s, u) = rolling_params(d);
    resolve_fenceposts(&s, &u, replicas(d)).1.min(replicas(d))
}

/// `spec.replicas` of a ReplicaSet (default 1... but 0 when unset in a status sense).
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `status.replicas`.
pub fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

/// `status.availableReplicas`.
pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0)
}

/// `status.readyReplicas`.
pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0)
}

/// A ReplicaSet's revision annotation (0 when absent or invalid).
pub fn revision(annotations: Option<&BTreeMap<String, String>>) -> i64 {
    annotations.and_then(|a| a.get(REVISION)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Pods a new ReplicaSet should have now (upstream `NewRSNewReplicas`).
pub fn new_rs_new_replicas(d: &Deployment, all: &[&ReplicaSet], new: &ReplicaSet) -> i32 {
    if !is_rolling(d) {
        return replicas(d);
    }
    let current: i32 = all.iter().map(|rs| rs_replicas(rs)).sum();
    let max_total = replicas(d) + max_surge(d);
    if current >= max_total {
        return rs_replicas(new);
    }
    let up = (max_total - current).min(replicas(d) - rs_replicas(new)).max(0);
    rs_replicas(new) + up
}

/// Copies the Deployment's annotations and sets revision annotations on a (new) ReplicaSet;
/// returns whether anything changed (upstream `SetNewReplicaSetAnnotations`).
pub fn set_new_rs_annotations(d: &Deployment, rs: &mut ReplicaSet, new_revision: i64, exists: bool) -> bool {
    let mut changed = false;
    let anns = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if SKIP_COPY.contains(&k.as_str()) || anns.get(k) == Some(v) {
            continue;
        }
        anns.insert(k.clone(), v.clone());
        changed = true;
    }
    let old = anns.get(REVISION).cloned();
    let old_rev: i64 = old.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
    if old_rev < new_revision {
        anns.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old.filter(|o| !o.is_empty() && exists) {
            let hist = match anns.get(REVISION_HISTORY) {
                Some(h) if !h.is_empty() => format!("{h},{old}"),
                _ => old,
            };
            anns.insert(REVISION_HISTORY.into(), hist);
        }
    }
    if !exists {
        changed |= set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d));
    }
    changed
}

/// Sets desired-replicas/max-replicas; returns whether they changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let anns = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let (d, m) = (desired.to_string(), max.to_string());
    let changed = anns.get(DESIRED_REPLICAS) != Some(&d) || anns.get(MAX_REPLICAS) != Some(&m);
    anns.insert(DESIRED_REPLICAS.into(), d);
    anns.insert(MAX_REPLICAS.into(), m);
    changed
}

/// The proportion of `to_add` this ReplicaSet gets (upstream `GetProportion`/`getReplicaSetFraction`).
pub fn proportion(rs: &ReplicaSet, d: &Deployment, status_replicas: i32, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = if replicas(d) == 0 {
        -rs_replicas(rs)
    } else {
        let deployment_replicas = replicas(d) + max_surge(d);
        let annotated = rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(MAX_REPLICAS))
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or(status_replicas);
        if annotated == 0 {
            0
        } else {
            let size = f64::from(rs_replicas(rs)) * f64::from(deployment_replicas) / f64::from(annotated);
            size.round() as i32 - rs_replicas(rs)
        }
    };
    let allowed = to_add - added;
    if to_add > 0 { fraction.min(allowed) } else { fraction.max(allowed) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};

    fn rs_with(n: i32) -> ReplicaSet {
        ReplicaSet {
            spec: Some(k8s_openapi::api::apps::v1::ReplicaSetSpec { replicas: Some(n), ..Default::default() }),
            ..Default::default()
        }
    }

    fn deployment(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
        Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(surge),
                        max_unavailable: Some(unavailable),
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn fnv32a_matches_reference_vectors() {
        assert_eq!(fnv32a(b""), 0x811c9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9cf968);
    }

    #[test]
    fn safe_encoding_maps_digits_like_upstream() {
        // Digits map to the alphabet upstream hashes are made of (e.g. `web-7d8b5c6f94`).
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
        let h = compute_hash(&PodTemplateSpec::default(), None);
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)), "{h}");
    }

    #[test]
    fn collision_count_changes_the_hash() {
        let t = PodTemplateSpec::default();
        assert_ne!(compute_hash(&t, None), compute_hash(&t, Some(1)));
        assert_eq!(compute_hash(&t, Some(1)), compute_hash(&t, Some(1)));
    }

    #[test]
    fn percent_rounding_table() {
        let pct = |s: &str| IntOrString::String(s.into());
        let cases = [
            ("25% of 10 up", pct("25%"), 10, true, 3),
            ("25% of 10 down", pct("25%"), 10, false, 2),
            ("25% of 4", pct("25%"), 4, true, 1),
            ("int", IntOrString::Int(2), 10, false, 2),
            ("0%", pct("0%"), 10, true, 0),
            ("100% of 3", pct("100%"), 3, false, 3),
        ];
        for (name, v, total, up, want) in cases {
            assert_eq!(scaled_value(Some(&v), total, up), want, "{name}");
        }
    }

    #[test]
    fn fenceposts_never_both_zero_and_unavailable_capped() {
        let d = deployment(3, IntOrString::Int(0), IntOrString::String("0%".into()));
        assert_eq!((max_surge(&d), max_unavailable(&d)), (0, 1));
        let d = deployment(2, IntOrString::Int(1), IntOrString::Int(5));
        assert_eq!(max_unavailable(&d), 2);
        let d = deployment(10, IntOrString::String("25%".into()), IntOrString::String("25%".into()));
        assert_eq!((max_surge(&d), max_unavailable(&d)), (3, 2));
    }

    #[test]
    fn new_rs_scale_up_respects_surge() {
        let d = deployment(4, IntOrString::Int(1), IntOrString::Int(0));
        let mut old = rs_with(4);
        let mut new = rs_with(0);
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), 1);
        old = rs_with(1);
        new = rs_with(3);
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), 4);
    }

    #[test]
    fn revision_history_is_appended() {
        let d = Deployment::default();
        let mut rs = ReplicaSet::default();
        rs.metadata.annotations = Some([(REVISION.to_string(), "1".to_string())].into());
        assert!(set_new_rs_annotations(&d, &mut rs, 3, true));
        let a = rs.metadata.annotations.unwrap_or_default();
        assert_eq!(a.get(REVISION).map(String::as_str), Some("3"));
        assert_eq!(a.get(REVISION_HISTORY).map(String::as_str), Some("1"));
    }

    #[test]
    fn proportional_scaling_uses_max_replicas_annotation() {
        // Deployment scaled 10 -> 15 (surge 3 -> 4) while an RS annotated max-replicas=13 has 8.
        let d = deployment(15, IntOrString::String("25%".into()), IntOrString::String("25%".into()));
        let mut rs = rs_with(8);
        rs.metadata.annotations = Some([(MAX_REPLICAS.to_string(), "13".to_string())].into());
        // 8 * 19 / 13 = 11.69 -> 12, i.e. +4, capped by what is left to add.
        assert_eq!(proportion(&rs, &d, 13, 6, 0), 4);
        assert_eq!(proportion(&rs, &d, 13, 6, 4), 2);
    }
}
