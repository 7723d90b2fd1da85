//! InterPodAffinity: required pod affinity and anti-affinity of the incoming pod, the required
//! anti-affinity of pods already placed, and preferred terms as a score, all evaluated per
//! topology domain (`topologyKey` label value), as upstream `interpodaffinity`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm};

use super::helpers::selector_matches;
use crate::framework::{CycleState, MAX_NODE_SCORE, Plugin, Status};
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

pub const NAME: &str = "InterPodAffinity";
pub const ERR_REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ERR_REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const ERR_REASON_EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";
/// Weight of an existing pod's required affinity term matching the incoming pod, in scoring
/// (upstream `hardPodAffinityWeight` default).
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

type TopologyPair = (String, String);

struct InterPodAffinity;

pub fn new() -> Box<dyn Plugin> {
    Box::new(InterPodAffinity)
}

/// Whether a term selects `target`, the term's owner living in `owner_ns`. Terms without
/// namespaces and selector mean the owner's namespace; an empty namespaceSelector means all.
/// A non-empty namespaceSelector is not evaluated (no namespace lister): listed names only.
pub fn term_matches(term: &PodAffinityTerm, owner_ns: &str, target: &PodInfo) -> bool {
    let names = term.namespaces.as_deref().unwrap_or(&[]);
    let ns_ok = match &term.namespace_selector {
        Some(sel)
            if sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
                && sel.match_expressions.as_ref().is_none_or(|m| m.is_empty()) =>
        {
            true
        }
        Some(_) => names.iter().any(|n| n == &target.namespace),
        None if names.is_empty() => owner_ns == target.namespace,
        None => names.iter().any(|n| n == &target.namespace),
    };
    ns_ok && selector_matches(term.label_selector.as_ref(), &target.labels)
}

struct Terms<'a> {
    affinity: &'a [PodAffinityTerm],
    anti_affinity: &'a [PodAffinityTerm],
}

fn required_terms(pod: &Pod) -> Terms<'_> {
    let a = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    Terms {
        affinity: a
            .and_then(|a| a.pod_affinity.as_ref())
            .and_then(|p| p.required_during_scheduling_ignored_during_execution.as_deref())
            .unwrap_or(&[]),
        anti_affinity: a
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|p| p.required_during_scheduling_ignored_during_execution.as_deref())
            .unwrap_or(&[]),
    }
}

#[derive(Default)]
struct PreFilterState {
    affinity_counts: HashMap<TopologyPair, i64>,
    anti_affinity_counts: HashMap<TopologyPair, i64>,
    existing_anti_affinity_counts: HashMap<TopologyPair, i64>,
}

fn pair(node: &NodeInfo, key: &str) -> Option<TopologyPair> {
    node.labels.get(key).map(|v| (key.to_string(), v.clone()))
}

impl InterPodAffinity {
    fn satisfies_affinity(state: &PreFilterState, pod: &PodInfo, node: &NodeInfo) -> bool {
        let terms = required_terms(&pod.pod).affinity;
        let mut pods_exist = true;
        for t in terms {
            match pair(node, &t.topology_key) {
                Some(p) => {
                    if state.affinity_counts.get(&p).copied().unwrap_or(0) <= 0 {
                        pods_exist = false;
                    }
                }
                None => return false,
            }
        }
        // The first pod of a group with affinity to itself may go anywhere with the labels.
        pods_exist || (state.affinity_counts.is_empty() && terms.iter().all(|t| term_matches(t, &pod.namespace, pod)))
    }
}

impl Plugin for InterPodAffinity {
    plugin_identity!(NAME, filters, scores);
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> Status {
        let own = required_terms(&pod.pod);
        let mut s = PreFilterState::default();
        let own_empty = own.affinity.is_empty() && own.anti_affinity.is_empty();
        for node in &snapshot.nodes {
            // Without terms of its own, only existing pods' anti-affinity can reject the pod.
            let pods = if own_empty { &node.pods_with_affinity } else { &node.pods };
            for existing in pods {
                if !own.affinity.is_empty() && own.affinity.iter().all(|t| term_matches(t, &pod.namespace, existing)) {
                    for t in own.affinity {
                        if let Some(p) = pair(node, &t.topology_key) {
                            *s.affinity_counts.entry(p).or_default() += 1;
                        }
                    }
                }
                for t in own.anti_affinity.iter().filter(|t| term_matches(t, &pod.namespace, existing)) {
                    if let Some(p) = pair(node, &t.topology_key) {
                        *s.anti_affinity_counts.entry(p).or_default() += 1;
                    }
                }
                for t in required_terms(&existing.pod).anti_affinity {
                    if term_matches(t, &existing.namespace, pod)
                        && let Some(p) = pair(node, &t.topology_key)
                    {
                        *s.existing_anti_affinity_counts.entry(p).or_default() += 1;
                    }
                }
            }
        }
        if own.affinity.is_empty() && own.anti_affinity.is_empty() && s.existing_anti_affinity_counts.is_empty() {
            return Status::skip();
        }
        state.write(NAME, s);
        Status::success()
    }
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(NAME) else { return Status::success() };
        if !Self::satisfies_affinity(s, pod, node) {
            return Status::unresolvable(ERR_REASON_AFFINITY);
        }
        for t in required_terms(&pod.pod).anti_affinity {
            if let Some(p) = pair(node, &t.topology_key)
                && s.anti_affinity_counts.get(&p).copied().unwrap_or(0) > 0
            {
                return Status::unschedulable(ERR_REASON_ANTI_AFFINITY);
            }
        }
        for (k, v) in &node.labels {
            if s.existing_anti_affinity_counts.get(&(k.clone(), v.clone())).copied().unwrap_or(0) > 0 {
                return Status::unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY);
            }
        }
        Status::success()
    }
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        _feasible: &[Arc<NodeInfo>],
    ) -> Status {
        let a = pod.pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
        let preferred_affinity = a
            .and_then(|a| a.pod_affinity.as_ref())
            .and_then(|p| p.preferred_during_scheduling_ignored_during_execution.as_deref())
            .unwrap_or(&[]);
        let preferred_anti = a
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|p| p.preferred_during_scheduling_ignored_during_execution.as_deref())
            .unwrap_or(&[]);
        let own_preferred = !preferred_affinity.is_empty() || !preferred_anti.is_empty();
        let mut scores: BTreeMap<TopologyPair, i64> = BTreeMap::new();
        let mut add = |node: &NodeInfo, term: &PodAffinityTerm, w: i64| {
            if let Some(p) = pair(node, &term.topology_key) {
                *scores.entry(p).or_default() += w;
            }
        };
        for node in &snapshot.nodes {
            let pods = if own_preferred { &node.pods } else { &node.pods_with_affinity };
            for existing in pods {
                for w in preferred_affinity {
                    if term_matches(&w.pod_affinity_term, &pod.namespace, existing) {
                        add(node, &w.pod_affinity_term, i64::from(w.weight));
                    }
                }
                for w in preferred_anti {
                    if term_matches(&w.pod_affinity_term, &pod.namespace, existing) {
                        add(node, &w.pod_affinity_term, -i64::from(w.weight));
                    }
                }
                let Some(ea) = existing.pod.spec.as_ref().and_then(|s| s.affinity.as_ref()) else { continue };
                for t in required_terms(&existing.pod).affinity {
                    if term_matches(t, &existing.namespace, pod) {
                        add(node, t, HARD_POD_AFFINITY_WEIGHT);
                    }
                }
                let ex_pref = ea
                    .pod_affinity
                    .as_ref()
                    .and_then(|p| p.preferred_during_scheduling_ignored_during_execution.as_deref())
                    .unwrap_or(&[]);
                for w in ex_pref {
                    if term_matches(&w.pod_affinity_term, &existing.namespace, pod) {
                        add(node, &w.pod_affinity_term, i64::from(w.weight));
                    }
                }
                let ex_anti = ea
                    .pod_anti_affinity
                    .as_ref()
                    .and_then(|p| p.preferred_during_scheduling_ignored_during_execution.as_deref())
                    .unwrap_or(&[]);
                for w in ex_anti {
                    if term_matches(&w.pod_affinity_term, &existing.namespace, pod) {
                        add(node, &w.pod_affinity_term, -i64::from(w.weight));
                    }
                }
            }
        }
        if scores.is_empty() {
            return Status::skip();
        }
        state.write("InterPodAffinity/score", scores);
        Status::success()
    }
    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(scores) = state.read::<BTreeMap<TopologyPair, i64>>("InterPodAffinity/score") else { return 0 };
        scores.iter().filter(|((k, v), _)| node.labels.get(k) == Some(v)).map(|(_, s)| *s).sum()
    }
    fn normalize(&self, _state: &CycleState, _pod: &PodInfo, scores: &mut [i64]) {
        let (min, max) = (scores.iter().copied().min().unwrap_or(0), scores.iter().copied().max().unwrap_or(0));
        let diff = max - min;
        for s in scores.iter_mut() {
            *s = if diff > 0 { MAX_NODE_SCORE * (*s - min) / diff } else { 0 };
        }
    }
}
