//! The scheduling framework: the plugin trait with its extension points (PreFilter, Filter,
//! PreScore, Score, NormalizeScore), per-cycle state, and `schedule`, which filters nodes in
//! parallel, scores the feasible ones and picks a host. Failures come back as a [`FitError`]
//! whose message is upstream's `FitError.Error()` text. Pure: no API access.

use std::any::Any;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

/// Highest score a plugin gives a node (upstream `MaxNodeScore`).
pub const MAX_NODE_SCORE: i64 = 100;

/// The outcome class of a plugin call (upstream `framework.Code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Success,
    /// The node does not fit now, but preempting pods may help.
    Unschedulable,
    /// The node does not fit and preemption cannot change that.
    UnschedulableAndUnresolvable,
    /// From PreFilter/PreScore: this plugin has nothing to check for the pod.
    Skip,
    Error,
}

/// A plugin result: a code and the reasons shown to users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub reasons: Vec<String>,
}

impl Status {
    pub fn success() -> Status {
        Status { code: Code::Success, reasons: Vec::new() }
    }
    pub fn skip() -> Status {
        Status { code: Code::Skip, reasons: Vec::new() }
    }
    pub fn unschedulable(reason: impl Into<String>) -> Status {
        Status { code: Code::Unschedulable, reasons: vec![reason.into()] }
    }
    pub fn unresolvable(reason: impl Into<String>) -> Status {
        Status { code: Code::UnschedulableAndUnresolvable, reasons: vec![reason.into()] }
    }
    pub fn error(reason: impl Into<String>) -> Status {
        Status { code: Code::Error, reasons: vec![reason.into()] }
    }
    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }
    /// The reasons joined as upstream's `Status.Message()`.
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}

/// Data plugins compute in PreFilter/PreScore and read in Filter/Score, keyed by plugin name.
#[derive(Default)]
pub struct CycleState {
    data: HashMap<&'static str, Box<dyn Any + Send + Sync>>,
    /// Indices of the filter plugins PreFilter did not skip, so Filter needs no lookups.
    active_filters: Option<Vec<usize>>,
    skip_score: HashSet<&'static str>,
}

impl CycleState {
    /// Stores a plugin's data.
    pub fn write<T: Any + Send + Sync>(&mut self, key: &'static str, value: T) {
        self.data.insert(key, Box::new(value));
    }
    /// Reads a plugin's data.
    pub fn read<T: Any + Send + Sync>(&self, key: &'static str) -> Option<&T> {
        self.data.get(key).and_then(|b| b.downcast_ref::<T>())
    }
}

/// A scheduling plugin. Every method has a neutral default, so a plugin implements only the
/// extension points it uses and says which through `filters`/`scores`.
pub trait Plugin: Send + Sync {
    fn name(&self) -> &'static str;
    /// Whether the plugin has a Filter.
    fn filters(&self) -> bool {
        false
    }
    /// Whether the plugin has a Score.
    fn scores(&self) -> bool {
        false
    }
    /// Once per pod before filtering. `Skip` disables this plugin's Filter for the pod; a failure
    /// makes every node fail.
    fn pre_filter(&self, _state: &mut CycleState, _pod: &PodInfo, _snapshot: &Snapshot) -> Status {
        Status::success()
    }
    /// Whether the pod fits on the node.
    fn filter(&self, _state: &CycleState, _pod: &PodInfo, _node: &NodeInfo) -> Status {
        Status::success()
    }
    /// Once per pod before scoring the feasible nodes. `Skip` disables this plugin's Score.
    fn pre_score(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _snapshot: &Snapshot,
        _feasible: &[Arc<NodeInfo>],
    ) -> Status {
        Status::success()
    }
    /// The node's raw score.
    fn score(&self, _state: &CycleState, _pod: &PodInfo, _node: &NodeInfo) -> i64 {
        0
    }
    /// Maps raw scores into `0..=MAX_NODE_SCORE`.
    fn normalize(&self, _state: &CycleState, _pod: &PodInfo, _scores: &mut [i64]) {}
}

/// Upstream's `DefaultNormalizeScore`: scales to `0..=max`, optionally reversed.
pub fn default_normalize_score(max: i64, reverse: bool, scores: &mut [i64]) {
    let highest = scores.iter().copied().max().unwrap_or(0);
    if highest == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = max);
        }
        return;
    }
    for s in scores.iter_mut() {
        *s = max * *s / highest;
        if reverse {
            *s = max - *s;
        }
    }
}

/// Why a pod fits nowhere: the per-node statuses and the messages of the phases that failed.
#[derive(Clone, Debug, Default)]
pub struct FitError {
    pub num_all_nodes: usize,
    /// Set when a PreFilter rejected the pod for every node.
    pub pre_filter_msg: Option<String>,
    /// Failed nodes by name.
    pub node_status: BTreeMap<String, Status>,
    /// The preemption (PostFilter) result, e.g. `preemption: 0/3 nodes are available: ...`.
    pub post_filter_msg: Option<String>,
}

impl FitError {
    /// Upstream's `FitError.Error()`: `0/N nodes are available: <sorted histogram>.` plus the
    /// PostFilter message.
    pub fn message(&self) -> String {
        let mut msg = format!("0/{} nodes are available:", self.num_all_nodes);
        if let Some(pre) = &self.pre_filter_msg {
            msg.push_str(&format!(" {pre}."));
        } else {
            let mut histogram: BTreeMap<&str, usize> = BTreeMap::new();
            for status in self.node_status.values() {
                for r in &status.reasons {
                    *histogram.entry(r.as_str()).or_default() += 1;
                }
            }
            // Sorted as strings, count included, exactly like upstream's sort.Strings.
            let mut reasons: Vec<String> = histogram.iter().map(|(r, n)| format!("{n} {r}")).collect();
            reasons.sort();
            if !reasons.is_empty() {
                msg.push_str(&format!(" {}.", reasons.join(", ")));
            }
        }
        if let Some(post) = &self.post_filter_msg {
            msg.push_str(&format!(" {post}."));
        }
        msg
    }
}

/// Why scheduling a pod failed.
#[derive(Clone, Debug)]
pub enum ScheduleError {
    /// The cluster has no nodes (`no nodes available to schedule pods`).
    NoNodes,
    Fit(FitError),
}

impl ScheduleError {
    pub fn message(&self) -> String {
        match self {
            ScheduleError::NoNodes => "no nodes available to schedule pods".to_string(),
            ScheduleError::Fit(f) => f.message(),
        }
    }
}

/// A successful placement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleResult {
    pub node: String,
    pub evaluated_nodes: usize,
    pub feasible_nodes: usize,
}

/// A configured profile: filter plugins in order, score plugins with weights.
pub struct Framework {
    plugins: Vec<Arc<dyn Plugin>>,
    weights: HashMap<&'static str, i64>,
    /// 0 means upstream's adaptive percentage.
    percentage_of_nodes_to_score: u32,
    next_start_index: AtomicUsize,
    parallelism: usize,
}

/// Below this many nodes filtering runs on the calling thread; spawning is not worth it.
const PARALLEL_THRESHOLD: usize = 128;

impl Framework {
    /// A framework from `(plugin, score weight)` pairs, in filter order.
    pub fn new(plugins: Vec<(Arc<dyn Plugin>, i64)>, percentage_of_nodes_to_score: u32) -> Framework {
        let weights = plugins.iter().map(|(p, w)| (p.name(), *w)).collect();
        Framework {
            plugins: plugins.into_iter().map(|(p, _)| p).collect(),
            weights,
            percentage_of_nodes_to_score,
            next_start_index: AtomicUsize::new(0),
            parallelism: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(16),
        }
    }

    /// Upstream `numFeasibleNodesToFind`: all nodes below 100, else a percentage (adaptive
    /// `50 - n/125`, at least 5) but never fewer than 100.
    pub fn num_feasible_nodes_to_find(&self, num_all: usize) -> usize {
        if num_all < 100 || self.percentage_of_nodes_to_score >= 100 {
            return num_all;
        }
        let mut pct = self.percentage_of_nodes_to_score as i64;
        if pct == 0 {
            pct = (50 - num_all as i64 / 125).max(5);
        }
        ((num_all as i64 * pct / 100) as usize).max(100)
    }

    /// Runs PreFilter of every filter plugin.
    pub fn run_pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> Status {
        let mut active = Vec::with_capacity(self.plugins.len());
        for (i, p) in self.plugins.iter().enumerate().filter(|(_, p)| p.filters()) {
            let s = p.pre_filter(state, pod, snapshot);
            match s.code {
                Code::Success => active.push(i),
                Code::Skip => {}
                _ => return s,
            }
        }
        state.active_filters = Some(active);
        Status::success()
    }

    /// Runs the Filters on one node, stopping at the first failure.
    /// Without a prior PreFilter every filter plugin runs.
    pub fn run_filters(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let run = |p: &Arc<dyn Plugin>| p.filter(state, pod, node);
        match &state.active_filters {
            Some(active) => {
                for &i in active {
                    let s = run(&self.plugins[i]);
                    if !s.is_success() {
                        return s;
                    }
                }
            }
            None => {
                for p in self.plugins.iter().filter(|p| p.filters()) {
                    let s = run(p);
                    if !s.is_success() {
                        return s;
                    }
                }
            }
        }
        Status::success()
    }

    /// Schedules one pod on the snapshot.
    ///
    /// # Errors
    /// [`ScheduleError`] when no node fits; its message is what `FailedScheduling` reports.
    pub fn schedule(&self, pod: &PodInfo, snapshot: &Snapshot) -> Result<ScheduleResult, ScheduleError> {
        let mut state = CycleState::default();
        self.schedule_with_state(&mut state, pod, snapshot)
    }

    /// As [`Framework::schedule`], keeping the cycle state for PostFilter.
    pub fn schedule_with_state(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> Result<ScheduleResult, ScheduleError> {
        let n = snapshot.nodes.len();
        if n == 0 {
            return Err(ScheduleError::NoNodes);
        }
        let pre = self.run_pre_filter(state, pod, snapshot);
        if !pre.is_success() {
            let node_status = snapshot.nodes.iter().map(|node| (node.name.clone(), pre.clone())).collect();
            return Err(ScheduleError::Fit(FitError {
                num_all_nodes: n,
                pre_filter_msg: Some(pre.message()),
                node_status,
                post_filter_msg: None,
            }));
        }
        // The nominated node (set by preemption) is tried first, as upstream does.
        if let Some(nominated) = pod.pod.status.as_ref().and_then(|s| s.nominated_node_name.as_deref())
            && let Some(node) = snapshot.get(nominated)
            && self.run_filters(state, pod, node).is_success()
        {
            return Ok(ScheduleResult { node: node.name.clone(), evaluated_nodes: 1, feasible_nodes: 1 });
        }
        let (feasible, failed, evaluated) = self.find_nodes_that_pass_filters(state, pod, snapshot);
        if feasible.is_empty() {
            return Err(ScheduleError::Fit(FitError {
                num_all_nodes: n,
                pre_filter_msg: None,
                node_status: failed,
                post_filter_msg: None,
            }));
        }
        if feasible.len() == 1 {
            return Ok(ScheduleResult {
                node: feasible[0].name.clone(),
                evaluated_nodes: evaluated,
                feasible_nodes: 1,
            });
        }
        let scores = self.prioritize(state, pod, snapshot, &feasible);
        let best = select_host(&scores);
        Ok(ScheduleResult {
            node: feasible[best].name.clone(),
            evaluated_nodes: evaluated,
            feasible_nodes: feasible.len(),
        })
    }

    fn find_nodes_that_pass_filters(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (Vec<Arc<NodeInfo>>, BTreeMap<String, Status>, usize) {
        let n = snapshot.nodes.len();
        let target = self.num_feasible_nodes_to_find(n);
        let start = self.next_start_index.load(Ordering::Relaxed) % n;
        let found = AtomicUsize::new(0);
        let check = |range: std::ops::Range<usize>| {
            let mut out: Vec<(usize, Status)> = Vec::new();
            for i in range {
                if found.load(Ordering::Relaxed) >= target {
                    break;
                }
                let node = &snapshot.nodes[(start + i) % n];
                let s = self.run_filters(state, pod, node);
                if s.is_success() {
                    found.fetch_add(1, Ordering::Relaxed);
                }
                out.push((i, s));
            }
            out
        };
        let mut results: Vec<(usize, Status)> = if n < PARALLEL_THRESHOLD || self.parallelism <= 1 {
            check(0..n)
        } else {
            let chunk = n.div_ceil(self.parallelism);
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..n)
                    .step_by(chunk)
                    .map(|lo| {
                        let check = &check;
                        scope.spawn(move || check(lo..(lo + chunk).min(n)))
                    })
                    .collect();
                handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
            })
        };
        results.sort_by_key(|(i, _)| *i);
        let mut feasible = Vec::new();
        let mut failed = BTreeMap::new();
        let mut processed = 0;
        for (i, s) in results {
            if feasible.len() >= target {
                break;
            }
            processed = i + 1;
            let node = &snapshot.nodes[(start + i) % n];
            if s.is_success() {
                feasible.push(node.clone());
            } else {
                failed.insert(node.name.clone(), s);
            }
        }
        self.next_start_index.store((start + processed) % n, Ordering::Relaxed);
        (feasible, failed, processed)
    }

    /// Weighted sum of normalised plugin scores for each feasible node.
    pub fn prioritize(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        feasible: &[Arc<NodeInfo>],
    ) -> Vec<i64> {
        let mut total = vec![0i64; feasible.len()];
        for p in self.plugins.iter().filter(|p| p.scores()) {
            if p.pre_score(state, pod, snapshot, feasible).code == Code::Skip {
                state.skip_score.insert(p.name());
            }
        }
        let state = &*state;
        for p in self.plugins.iter().filter(|p| p.scores() && !state.skip_score.contains(p.name())) {
            let weight = self.weights.get(p.name()).copied().unwrap_or(1);
            let mut scores: Vec<i64> = feasible.iter().map(|node| p.score(state, pod, node)).collect();
            p.normalize(state, pod, &mut scores);
            for (t, s) in total.iter_mut().zip(scores) {
                *t += s * weight;
            }
        }
        total
    }
}

/// The index of the highest score, ties broken uniformly at random (upstream reservoir sampling).
fn select_host(scores: &[i64]) -> usize {
    let mut best = 0;
    let mut ties = 1u32;
    for (i, s) in scores.iter().enumerate().skip(1) {
        if *s > scores[best] {
            best = i;
            ties = 1;
        } else if *s == scores[best] {
            ties += 1;
            if rand::random_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_error_message_sorts_reasons_as_strings() {
        let mut e = FitError { num_all_nodes: 5, ..Default::default() };
        for (i, r) in ["Insufficient memory", "Insufficient memory", "Insufficient memory"].iter().enumerate() {
            e.node_status.insert(format!("m{i}"), Status::unschedulable(*r));
        }
        for i in 0..2 {
            e.node_status
                .insert(format!("a{i}"), Status::unresolvable("node(s) didn't match Pod's node affinity/selector"));
        }
        e.post_filter_msg =
            Some("preemption: 0/5 nodes are available: 5 Preemption is not helpful for scheduling.".to_string());
        assert_eq!(
            e.message(),
            "0/5 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, 3 Insufficient memory. \
             preemption: 0/5 nodes are available: 5 Preemption is not helpful for scheduling.."
        );
    }

    #[test]
    fn default_normalize_score_scales_and_reverses() {
        struct Case {
            name: &'static str,
            reverse: bool,
            input: Vec<i64>,
            want: Vec<i64>,
        }
        let cases = [
            Case { name: "scales to max", reverse: false, input: vec![1, 2, 4], want: vec![25, 50, 100] },
            Case { name: "reverses", reverse: true, input: vec![0, 1, 2], want: vec![100, 50, 0] },
            Case { name: "all zero reversed is max", reverse: true, input: vec![0, 0], want: vec![100, 100] },
            Case { name: "all zero stays zero", reverse: false, input: vec![0, 0], want: vec![0, 0] },
        ];
        for mut c in cases {
            default_normalize_score(MAX_NODE_SCORE, c.reverse, &mut c.input);
            assert_eq!(c.input, c.want, "case {}", c.name);
        }
    }

    #[test]
    fn num_feasible_nodes_follows_upstream_adaptive_percentage() {
        let f = Framework::new(Vec::new(), 0);
        assert_eq!(f.num_feasible_nodes_to_find(50), 50);
        assert_eq!(f.num_feasible_nodes_to_find(1000), 420);
        assert_eq!(f.num_feasible_nodes_to_find(150), 100);
        assert_eq!(f.num_feasible_nodes_to_find(10000), 500);
    }
}
