//! The work-queue plumbing every controller shares: kube-runtime's `applier` (one reconcile per key
//! at a time, requeues), per-key exponential backoff on errors (k8s `AddRateLimited`/`Forget`), and
//! running until cancelled.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::controller::Action;
use tokio_util::sync::CancellationToken;

/// First retry delay after an error.
const BASE_DELAY: Duration = Duration::from_millis(50);
/// Longest retry delay.
const MAX_DELAY: Duration = Duration::from_secs(60);

/// Per-key failure counts for exponential backoff.
#[derive(Debug)]
pub struct Backoff<Key> {
    failures: Mutex<HashMap<Key, u32>>,
}

impl<Key: Hash + Eq> Default for Backoff<Key> {
    fn default() -> Self {
        Backoff { failures: Mutex::new(HashMap::new()) }
    }
}

impl<Key: Hash + Eq> Backoff<Key> {
    /// The delay before retrying `key` after one more failure.
    pub fn failed(&self, key: Key) -> Duration {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        BASE_DELAY.saturating_mul(1u32 << (*n - 1).min(16)).min(MAX_DELAY)
    }

    /// Resets `key` after a success.
    pub fn forget(&self, key: &Key) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// How soon to retry a reconcile that found its caches not yet synced.
pub const CACHE_WAIT: Duration = Duration::from_millis(100);

/// Whether a reflector store has completed its initial list (without waiting).
pub fn store_ready<K>(store: &kube::runtime::reflector::Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    futures::FutureExt::now_or_never(store.wait_until_ready()).is_some_and(|r| r.is_ok())
}

/// Error policy helper: logs and returns the backoff delay for `key`.
pub fn on_error<Key: Hash + Eq + Debug, E: std::fmt::Display>(backoff: &Backoff<Key>, key: Key, err: &E) -> Action {
    tracing::debug!(key = ?key, error = %err, "reconcile failed; retrying");
    Action::requeue(backoff.failed(key))
}

/// Drains an applier stream until it ends or `cancel` fires.
pub async fn drive<S, T, E>(name: &str, stream: S, cancel: CancellationToken)
where
    S: Stream<Item = Result<T, E>>,
    E: std::fmt::Display,
{
    let stream = stream.take_until(cancel.cancelled_owned());
    futures::pin_mut!(stream);
    while let Some(r) = stream.next().await {
        if let Err(e) = r {
            tracing::debug!(controller = name, error = %e, "controller queue error");
        }
    }
}
