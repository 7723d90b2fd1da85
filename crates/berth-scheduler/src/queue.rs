//! The scheduling queue (upstream `PriorityQueue`): activeQ ordered by priority then the time the
//! pod entered the queue; backoffQ holding failed pods for `initial * 2^(attempts-1)` capped at
//! the maximum; unschedulableQ holding pods that fit nowhere until a cluster event (node added or
//! updated, pod deleted) moves them back, or the periodic flush after the flush interval.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Where a queued pod currently is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Active,
    Backoff(Instant),
    Unschedulable(Instant),
    /// Popped and being scheduled; `moved` records a cluster event during the attempt.
    InFlight {
        moved: bool,
    },
}

struct Entry {
    pod: Pod,
    attempts: u32,
    /// Ordering tie-breaker: when the pod (re-)entered activeQ.
    seq: u64,
    place: Place,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// (priority descending, arrival, key).
    active: BTreeSet<(Reverse<i32>, u64, String)>,
    next_seq: u64,
}

/// A popped pod and how many attempts came before.
pub struct QueuedPod {
    pub pod: Pod,
    pub attempts: u32,
}

/// The scheduling queue; all methods are cheap and lock one mutex briefly.
pub struct SchedulingQueue {
    inner: Mutex<Inner>,
    notify: Notify,
    initial_backoff: Duration,
    max_backoff: Duration,
    flush_interval: Duration,
}

fn key_of(pod: &Pod) -> String {
    format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or("default"), pod.metadata.name.as_deref().unwrap_or(""))
}

fn priority_of(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

impl Inner {
    fn activate(&mut self, key: &str) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(e) = self.entries.get_mut(key) {
            if e.place == Place::Active {
                return;
            }
            e.place = Place::Active;
            e.seq = seq;
            self.active.insert((Reverse(priority_of(&e.pod)), seq, key.to_string()));
        }
    }

    fn remove_active(&mut self, key: &str) {
        if let Some(e) = self.entries.get(key)
            && e.place == Place::Active
        {
            self.active.remove(&(Reverse(priority_of(&e.pod)), e.seq, key.to_string()));
        }
    }
}

impl SchedulingQueue {
    pub fn new(initial_backoff: Duration, max_backoff: Duration, flush_interval: Duration) -> SchedulingQueue {
        SchedulingQueue { inner: Mutex::default(), notify: Notify::new(), initial_backoff, max_backoff, flush_interval }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The backoff after `attempts` failures.
    pub fn backoff_duration(&self, attempts: u32) -> Duration {
        let shift = attempts.saturating_sub(1).min(31);
        self.initial_backoff.saturating_mul(1u32 << shift).min(self.max_backoff)
    }

    /// A new pending pod goes to activeQ; an updated one replaces the stored object and, when
    /// its spec or labels changed while unschedulable, is retried.
    pub fn add_or_update(&self, pod: Pod) {
        let key = key_of(&pod);
        let mut inner = self.lock();
        match inner.entries.get_mut(&key) {
            Some(e) => {
                let changed = e.pod.spec != pod.spec || e.pod.metadata.labels != pod.metadata.labels;
                let was_active = e.place == Place::Active;
                let place = e.place;
                if was_active {
                    inner.remove_active(&key);
                }
                let Some(e) = inner.entries.get_mut(&key) else { return };
                e.pod = pod;
                if was_active {
                    e.place = Place::Backoff(Instant::now());
                    inner.activate(&key);
                } else if changed && matches!(place, Place::Unschedulable(_)) {
                    inner.activate(&key);
                }
            }
            None => {
                inner.entries.insert(
                    key.clone(),
                    Entry { pod, attempts: 0, seq: 0, place: Place::Unschedulable(Instant::now()) },
                );
                inner.activate(&key);
            }
        }
        drop(inner);
        self.notify.notify_one();
    }

    /// Forgets a pod (deleted, or bound by someone else).
    pub fn delete(&self, key: &str) {
        let mut inner = self.lock();
        inner.remove_active(key);
        inner.entries.remove(key);
    }

    /// Queued pods that preemption nominated onto a node (`status.nominatedNodeName`), other
    /// than `except`, with priority at least `min_priority`.
    pub fn nominated_pods(&self, except: &str, min_priority: i32) -> Vec<(String, Pod)> {
        let inner = self.lock();
        inner
            .entries
            .iter()
            .filter(|(k, e)| k.as_str() != except && priority_of(&e.pod) >= min_priority)
            .filter_map(|(_, e)| {
                let node = e.pod.status.as_ref()?.nominated_node_name.as_ref().filter(|n| !n.is_empty())?;
                Some((node.clone(), e.pod.clone()))
            })
            .collect()
    }

    /// Keys of all queued pods.
    pub fn keys(&self) -> Vec<String> {
        self.lock().entries.keys().cloned().collect()
    }

    /// A cluster event that may make unschedulable pods fit: they go to backoffQ (or activeQ
    /// when their backoff is over); pods in flight remember it.
    pub fn move_all_to_active_or_backoff(&self) {
        let now = Instant::now();
        let mut inner = self.lock();
        let keys: Vec<String> = inner.entries.keys().cloned().collect();
        for key in keys {
            let Some(e) = inner.entries.get_mut(&key) else { continue };
            match e.place {
                Place::Unschedulable(since) => {
                    let until = since + self.backoff_duration(e.attempts);
                    if until <= now {
                        inner.activate(&key);
                    } else {
                        e.place = Place::Backoff(until);
                    }
                }
                Place::InFlight { .. } => e.place = Place::InFlight { moved: true },
                _ => {}
            }
        }
        drop(inner);
        self.notify.notify_one();
    }

    /// After a failed attempt: unschedulableQ, or backoffQ if a cluster event happened meanwhile
    /// or the failure was an error rather than a misfit.
    pub fn requeue(&self, pod: Pod, unschedulable: bool) {
        let key = key_of(&pod);
        let now = Instant::now();
        let mut inner = self.lock();
        let Some(e) = inner.entries.get_mut(&key) else { return };
        e.attempts += 1;
        e.pod = pod;
        let moved = matches!(e.place, Place::InFlight { moved: true });
        e.place = if unschedulable && !moved {
            Place::Unschedulable(now)
        } else {
            Place::Backoff(now + self.backoff_duration(e.attempts))
        };
        drop(inner);
        self.notify.notify_one();
    }

    /// A pod whose binding failed comes back through backoffQ.
    pub fn add_backoff(&self, pod: Pod) {
        let key = key_of(&pod);
        let now = Instant::now();
        let mut inner = self.lock();
        inner.remove_active(&key);
        let attempts = inner.entries.get(&key).map_or(0, |e| e.attempts) + 1;
        let until = now + self.backoff_duration(attempts);
        inner.entries.insert(key, Entry { pod, attempts, seq: 0, place: Place::Backoff(until) });
        drop(inner);
        self.notify.notify_one();
    }

    /// After a successful attempt (assumed and binding): the pod leaves the queue.
    pub fn done(&self, key: &str) {
        self.lock().entries.remove(key);
    }

    /// Moves expired backoff entries and long-unschedulable pods to activeQ; returns the next
    /// time something expires.
    fn flush(&self, inner: &mut Inner, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let keys: Vec<String> = inner.entries.keys().cloned().collect();
        for key in keys {
            let Some(e) = inner.entries.get(&key) else { continue };
            let due = match e.place {
                Place::Backoff(until) => until,
                Place::Unschedulable(since) => since + self.flush_interval,
                _ => continue,
            };
            if due <= now {
                inner.activate(&key);
            } else {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        next
    }

    /// Waits for the highest-priority active pod.
    pub async fn pop(&self) -> QueuedPod {
        loop {
            let notified = self.notify.notified();
            let next = {
                let mut inner = self.lock();
                let next = self.flush(&mut inner, Instant::now());
                if let Some(first) = inner.active.pop_first() {
                    let key = first.2;
                    if let Some(e) = inner.entries.get_mut(&key) {
                        e.place = Place::InFlight { moved: false };
                        return QueuedPod { pod: e.pod.clone(), attempts: e.attempts };
                    }
                    continue;
                }
                next
            };
            let deadline = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, priority: i32) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"},
            "spec": {"priority": priority, "containers": [{"name": "c"}]}}))
        .expect("pod")
    }

    fn queue() -> SchedulingQueue {
        SchedulingQueue::new(Duration::from_secs(1), Duration::from_secs(10), Duration::from_secs(60))
    }

    #[tokio::test]
    async fn pops_by_priority_then_arrival() {
        let q = queue();
        q.add_or_update(pod("low", 1));
        q.add_or_update(pod("high", 100));
        q.add_or_update(pod("low2", 1));
        let order: Vec<String> = [q.pop().await, q.pop().await, q.pop().await]
            .into_iter()
            .map(|p| p.pod.metadata.name.unwrap_or_default())
            .collect();
        assert_eq!(order, ["high", "low", "low2"]);
    }

    #[test]
    fn backoff_doubles_from_one_second_to_ten() {
        let q = queue();
        let got: Vec<u64> = (1..=6).map(|a| q.backoff_duration(a).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 10, 10]);
    }

    #[tokio::test(start_paused = true)]
    async fn unschedulable_pod_returns_after_cluster_event_and_backoff() {
        let q = queue();
        q.add_or_update(pod("p", 0));
        let p = q.pop().await;
        q.requeue(p.pod, true);
        // Without an event, nothing is active until the 60 s flush.
        let waited = tokio::time::timeout(Duration::from_secs(30), q.pop()).await;
        assert!(waited.is_err(), "unschedulable pod must wait for an event");
        q.move_all_to_active_or_backoff();
        let again = tokio::time::timeout(Duration::from_secs(2), q.pop()).await.expect("moved back");
        assert_eq!(again.attempts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn unschedulable_pods_are_flushed_after_interval() {
        let q = queue();
        q.add_or_update(pod("p", 0));
        let p = q.pop().await;
        q.requeue(p.pod, true);
        let start = Instant::now();
        let again = tokio::time::timeout(Duration::from_secs(120), q.pop()).await.expect("flushed");
        assert_eq!(again.pod.metadata.name.as_deref(), Some("p"));
        assert!(start.elapsed() >= Duration::from_secs(60));
    }
}
