//! Expectations (k8s `controller_utils.go` `UIDTrackingControllerExpectations`): a controller
//! records how many creations and which deletions it has issued before acting, and does not act on
//! the same object again until its watch has observed them, or until they expire, so a slow watch
//! never makes it create or delete twice.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long expectations are trusted before they are considered satisfied anyway (upstream 5 min).
pub const EXPECTATIONS_TTL: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Expectation {
    adds: i64,
    deletes: HashSet<String>,
    at: Instant,
}

/// Pending creations and deletions per controller object key.
#[derive(Debug)]
pub struct Expectations<Key> {
    inner: Mutex<HashMap<Key, Expectation>>,
    ttl: Duration,
}

impl<Key: Hash + Eq + Clone> Default for Expectations<Key> {
    fn default() -> Self {
        Self::new(EXPECTATIONS_TTL)
    }
}

impl<Key: Hash + Eq + Clone> Expectations<Key> {
    /// Empty expectations with the given TTL.
    pub fn new(ttl: Duration) -> Self {
        Expectations { inner: Mutex::new(HashMap::new()), ttl }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Expectation>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `key` may act: nothing is pending, or the pending record expired. `still_present`
    /// says whether a pod UID expected to be deleted is still (un-deleting) in the cache.
    pub fn satisfied(&self, key: &Key, still_present: impl Fn(&str) -> bool) -> bool {
        let mut map = self.lock();
        let Some(e) = map.get_mut(key) else { return true };
        e.deletes.retain(|uid| still_present(uid));
        if (e.adds <= 0 && e.deletes.is_empty()) || e.at.elapsed() >= self.ttl {
            map.remove(key);
            return true;
        }
        false
    }

    /// Records `adds` creations about to be issued.
    pub fn expect_creations(&self, key: &Key, adds: usize) {
        self.lock().insert(key.clone(), Expectation { adds: adds as i64, deletes: HashSet::new(), at: Instant::now() });
    }

    /// Records deletions of these pod UIDs about to be issued.
    pub fn expect_deletions(&self, key: &Key, uids: impl IntoIterator<Item = String>) {
        self.lock()
            .insert(key.clone(), Expectation { adds: 0, deletes: uids.into_iter().collect(), at: Instant::now() });
    }

    /// A creation was observed (or will never happen because it failed).
    pub fn creation_observed(&self, key: &Key) {
        if let Some(e) = self.lock().get_mut(key) {
            e.adds -= 1;
        }
    }

    /// Lowers the pending creations by `n` (creations that were skipped or failed).
    pub fn lower_creations(&self, key: &Key, n: usize) {
        if let Some(e) = self.lock().get_mut(key) {
            e.adds -= n as i64;
        }
    }

    /// A deletion of `uid` was observed (or failed).
    pub fn deletion_observed(&self, key: &Key, uid: &str) {
        if let Some(e) = self.lock().get_mut(key) {
            e.deletes.remove(uid);
        }
    }

    /// Forgets `key` (its object is gone).
    pub fn delete(&self, key: &Key) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_block_until_observed() {
        let e: Expectations<&str> = Expectations::default();
        assert!(e.satisfied(&"a", |_| true));
        e.expect_creations(&"a", 2);
        assert!(!e.satisfied(&"a", |_| true));
        e.creation_observed(&"a");
        assert!(!e.satisfied(&"a", |_| true));
        e.creation_observed(&"a");
        assert!(e.satisfied(&"a", |_| true));
    }

    #[test]
    fn deletions_satisfied_when_gone_from_cache() {
        let e: Expectations<&str> = Expectations::default();
        e.expect_deletions(&"a", ["u1".to_string(), "u2".to_string()]);
        assert!(!e.satisfied(&"a", |_| true));
        e.deletion_observed(&"a", "u1");
        assert!(!e.satisfied(&"a", |uid| uid == "u2"));
        assert!(e.satisfied(&"a", |_| false));
    }

    #[test]
    fn expired_expectations_are_satisfied() {
        let e: Expectations<&str> = Expectations::new(Duration::ZERO);
        e.expect_creations(&"a", 5);
        assert!(e.satisfied(&"a", |_| true));
    }
}
