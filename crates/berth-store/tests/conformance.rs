//! The store conformance suite: every case runs against SQLite and against a real etcd.
//!
//! Cases are written once, as async fns taking `Arc<dyn Store>`; `conformance!` instantiates one
//! `#[tokio::test]` per case per backend (`sqlite::case`, `etcd::case`). The etcd cases start
//! their own etcd (see `support/etcd.rs`) and skip, saying so, when it is not installed — except
//! under `CI=true`, where that fails.

mod support {
    pub mod etcd;
}

use std::sync::Arc;
use std::time::Duration;

use berth_store::{Event, EventType, RangeRequest, Revision, SqliteStore, Store, StoreError, WatchStream};
use futures::StreamExt;

/// Longest wait for one watch event.
const EVENT_DEADLINE: Duration = Duration::from_secs(10);

/// The next watch event, failing the test if none arrives in time.
async fn next_event(stream: &mut WatchStream) -> Event {
    match tokio::time::timeout(EVENT_DEADLINE, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended early"),
        Err(_) => panic!("no watch event within {EVENT_DEADLINE:?}"),
    }
}

async fn next_events(stream: &mut WatchStream, n: usize) -> Vec<Event> {
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        events.push(next_event(stream).await);
    }
    events
}

/// Asserts nothing more arrives for a short while (used only after all expected events came).
async fn assert_quiet(stream: &mut WatchStream) {
    if let Ok(Some(item)) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
        panic!("unexpected watch item: {item:?}");
    }
}

fn keys(resp: &berth_store::RangeResponse) -> Vec<&str> {
    resp.kvs.iter().map(|kv| kv.key.as_str()).collect()
}

fn prefix(p: &str) -> RangeRequest {
    RangeRequest { prefix: p.to_owned(), ..Default::default() }
}

mod cases {
    use super::*;

    pub async fn create_then_get_and_create_again_is_already_exists(store: Arc<dyn Store>) {
        assert_eq!(store.get("/t/a").await.unwrap(), None);
        let kv = store.create("/t/a", b"one".to_vec()).await.unwrap();
        assert_eq!(kv.key, "/t/a");
        assert_eq!(kv.value, b"one");
        assert_eq!(kv.create_revision, kv.mod_revision);
        assert_eq!(store.get("/t/a").await.unwrap(), Some(kv.clone()));
        let err = store.create("/t/a", b"two".to_vec()).await.unwrap_err();
        assert!(matches!(&err, StoreError::AlreadyExists { key } if key == "/t/a"), "{err:?}");
        assert_eq!(store.get("/t/a").await.unwrap(), Some(kv), "a failed create must not write");
    }

    pub async fn update_compares_the_expected_revision(store: Arc<dyn Store>) {
        let first = store.create("/t/a", b"1".to_vec()).await.unwrap();
        let second = store.update("/t/a", b"2".to_vec(), first.mod_revision).await.unwrap();
        assert!(second.mod_revision > first.mod_revision);
        assert_eq!(second.create_revision, first.create_revision);
        assert_eq!(second.value, b"2");
        assert_eq!(store.get("/t/a").await.unwrap(), Some(second.clone()));

        let err = store.update("/t/a", b"3".to_vec(), first.mod_revision).await.unwrap_err();
        match err {
            StoreError::Conflict { key, expected, actual } => {
                assert_eq!((key.as_str(), expected, actual), ("/t/a", first.mod_revision, second.mod_revision));
            }
            other => panic!("expected Conflict, got {other:?}"),
        }
        let err = store.update("/t/missing", b"x".to_vec(), second.mod_revision).await.unwrap_err();
        assert!(matches!(&err, StoreError::NotFound { key } if key == "/t/missing"), "{err:?}");
        let err = store.update("/t/missing", b"x".to_vec(), 0).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "update with revision 0 must not create: {err:?}");
        assert_eq!(store.get("/t/missing").await.unwrap(), None);
        assert_eq!(store.get("/t/a").await.unwrap(), Some(second));
    }

    pub async fn delete_with_and_without_expected_revision(store: Arc<dyn Store>) {
        let a = store.create("/t/a", b"a".to_vec()).await.unwrap();
        let b = store.create("/t/b", b"b".to_vec()).await.unwrap();

        let err = store.delete("/t/a", Some(a.mod_revision + 100)).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { actual, .. } if actual == a.mod_revision), "{err:?}");
        assert_eq!(store.get("/t/a").await.unwrap(), Some(a.clone()));

        let (rev, last) = store.delete("/t/a", Some(a.mod_revision)).await.unwrap();
        assert!(rev > b.mod_revision);
        assert_eq!(last, a);
        assert_eq!(store.get("/t/a").await.unwrap(), None);

        let (rev_b, last_b) = store.delete("/t/b", None).await.unwrap();
        assert!(rev_b > rev);
        assert_eq!(last_b, b);

        let err = store.delete("/t/a", None).await.unwrap_err();
        assert!(matches!(&err, StoreError::NotFound { key } if key == "/t/a"), "{err:?}");
        let err = store.delete("/t/a", Some(a.mod_revision)).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");

        let again = store.create("/t/a", b"again".to_vec()).await.unwrap();
        assert!(again.create_revision > rev_b, "a re-created key gets a new create_revision");
        assert_eq!(store.get("/t/a").await.unwrap(), Some(again));
    }

    pub async fn range_keeps_prefixes_apart(store: Arc<dyn Store>) {
        for key in ["/a", "/a/1", "/a/2", "/ab/1", "/a0", "/b/1"] {
            store.create(key, key.as_bytes().to_vec()).await.unwrap();
        }
        let resp = store.range(prefix("/a/")).await.unwrap();
        assert_eq!(keys(&resp), ["/a/1", "/a/2"]);
        assert!(!resp.more);
        assert_eq!(resp.kvs[0].value, b"/a/1");
        assert_eq!(keys(&store.range(prefix("/ab/")).await.unwrap()), ["/ab/1"]);
        assert_eq!(keys(&store.range(prefix("/c/")).await.unwrap()), Vec::<&str>::new());
        let all = store.range(prefix("/")).await.unwrap();
        assert_eq!(keys(&all), ["/a", "/a/1", "/a/2", "/a0", "/ab/1", "/b/1"]);
        assert_eq!(all.revision, store.current_revision().await.unwrap());
    }

    pub async fn range_pages_with_limit_and_start_after(store: Arc<dyn Store>) {
        for i in 0..7 {
            store.create(&format!("/p/{i}"), vec![i]).await.unwrap();
        }
        store.create("/q/0", vec![]).await.unwrap();
        // A deleted key inside the range must not take a page slot.
        store.delete("/p/3", None).await.unwrap();
        let mut seen = Vec::new();
        let mut start_after = None;
        let mut pages = 0;
        loop {
            let req =
                RangeRequest { prefix: "/p/".into(), start_after: start_after.clone(), limit: Some(2), revision: None };
            let resp = store.range(req).await.unwrap();
            pages += 1;
            assert!(resp.kvs.len() <= 2);
            seen.extend(resp.kvs.iter().map(|kv| kv.key.clone()));
            if !resp.more {
                break;
            }
            start_after = resp.kvs.last().map(|kv| kv.key.clone());
            assert!(pages < 10, "paging does not end");
        }
        assert_eq!(seen, ["/p/0", "/p/1", "/p/2", "/p/4", "/p/5", "/p/6"]);
        assert_eq!(pages, 3);
        let exact =
            store.range(RangeRequest { prefix: "/p/".into(), limit: Some(6), ..Default::default() }).await.unwrap();
        assert_eq!(exact.kvs.len(), 6);
        assert!(!exact.more, "a limit equal to the number of keys is not cut short");
    }

    pub async fn range_at_an_old_revision_sees_the_old_state(store: Arc<dyn Store>) {
        let a1 = store.create("/o/a", b"a1".to_vec()).await.unwrap();
        let b1 = store.create("/o/b", b"b1".to_vec()).await.unwrap();
        let at = b1.mod_revision;
        store.update("/o/a", b"a2".to_vec(), a1.mod_revision).await.unwrap();
        store.delete("/o/b", None).await.unwrap();
        store.create("/o/c", b"c1".to_vec()).await.unwrap();

        let old =
            store.range(RangeRequest { prefix: "/o/".into(), revision: Some(at), ..Default::default() }).await.unwrap();
        assert_eq!(old.revision, at);
        assert_eq!(old.kvs, vec![a1.clone(), b1]);
        let before =
            store.range(RangeRequest { prefix: "/o/".into(), revision: Some(a1.mod_revision), ..Default::default() });
        assert_eq!(before.await.unwrap().kvs, vec![a1]);
        let now = store.range(prefix("/o/")).await.unwrap();
        assert_eq!(keys(&now), ["/o/a", "/o/c"]);
        assert_eq!(now.kvs[0].value, b"a2");

        let future = now.revision + 10;
        let err = store.range(RangeRequest { prefix: "/o/".into(), revision: Some(future), ..Default::default() });
        let err = err.await.unwrap_err();
        assert!(matches!(err, StoreError::FutureRevision { requested, .. } if requested == future), "{err:?}");
    }

    pub async fn watch_from_zero_replays_all_history(store: Arc<dyn Store>) {
        let a = store.create("/w/a", b"1".to_vec()).await.unwrap();
        let a2 = store.update("/w/a", b"2".to_vec(), a.mod_revision).await.unwrap();
        let (del, _) = store.delete("/w/a", None).await.unwrap();
        let mut watch = store.watch("/w/", 0).await.unwrap();
        let events = next_events(&mut watch, 3).await;
        let kinds: Vec<_> = events.iter().map(|e| (e.kind, e.revision)).collect();
        assert_eq!(
            kinds,
            [(EventType::Create, a.mod_revision), (EventType::Update, a2.mod_revision), (EventType::Delete, del)]
        );
        assert_quiet(&mut watch).await;
    }

    pub async fn watch_from_a_past_revision_starts_after_it(store: Arc<dyn Store>) {
        let a = store.create("/w/a", b"1".to_vec()).await.unwrap();
        let b = store.create("/w/b", b"1".to_vec()).await.unwrap();
        let c = store.create("/w/c", b"1".to_vec()).await.unwrap();
        let mut watch = store.watch("/w/", a.mod_revision).await.unwrap();
        let events = next_events(&mut watch, 2).await;
        assert_eq!(events.iter().map(|e| e.kv.clone()).collect::<Vec<_>>(), vec![b, c.clone()]);
        // History then live, with no gap or duplicate at the seam.
        let d = store.create("/w/d", b"1".to_vec()).await.unwrap();
        let live = next_event(&mut watch).await;
        assert_eq!(live.kv, d);
        let mut from_last = store.watch("/w/", c.mod_revision).await.unwrap();
        assert_eq!(next_event(&mut from_last).await.kv, d);
        assert_quiet(&mut watch).await;
    }

    pub async fn watch_sees_live_changes_under_its_prefix_only(store: Arc<dyn Store>) {
        let rev = store.current_revision().await.unwrap();
        let mut watch = store.watch("/w/", rev).await.unwrap();
        let mut other = store.watch("/wx/", rev).await.unwrap();
        let a = store.create("/w/a", b"1".to_vec()).await.unwrap();
        let x = store.create("/wx/a", b"1".to_vec()).await.unwrap();
        let b = store.create("/w/b", b"1".to_vec()).await.unwrap();
        let events = next_events(&mut watch, 2).await;
        assert_eq!(events.iter().map(|e| e.kv.clone()).collect::<Vec<_>>(), vec![a, b]);
        assert!(events.iter().all(|e| e.kind == EventType::Create && e.prev.is_none()));
        assert_eq!(next_event(&mut other).await.kv, x);
        assert_quiet(&mut watch).await;
        assert_quiet(&mut other).await;
    }

    pub async fn watch_carries_previous_values_on_update_and_delete(store: Arc<dyn Store>) {
        let rev = store.current_revision().await.unwrap();
        let mut watch = store.watch("/w/", rev).await.unwrap();
        let v1 = store.create("/w/a", b"v1".to_vec()).await.unwrap();
        let v2 = store.update("/w/a", b"v2".to_vec(), v1.mod_revision).await.unwrap();
        let (del, last) = store.delete("/w/a", Some(v2.mod_revision)).await.unwrap();
        let events = next_events(&mut watch, 3).await;

        assert_eq!(events[0].kind, EventType::Create);
        assert_eq!(events[0].kv, v1);
        assert_eq!(events[1].kind, EventType::Update);
        assert_eq!(events[1].revision, v2.mod_revision);
        assert_eq!(events[1].kv, v2);
        assert_eq!(events[1].prev.as_ref(), Some(&v1));
        assert_eq!(events[2].kind, EventType::Delete);
        assert_eq!(events[2].revision, del);
        assert_eq!(events[2].kv, v2, "a delete event carries the last value");
        assert_eq!(last, v2);

        // The same events replayed from history.
        let mut replay = store.watch("/w/", rev).await.unwrap();
        assert_eq!(next_events(&mut replay, 3).await, events);
    }

    pub async fn revisions_increase_with_every_write(store: Arc<dyn Store>) {
        let mut last: Revision = store.current_revision().await.unwrap();
        let mut check = |rev: Revision| {
            assert!(rev > last, "revision {rev} is not after {last}");
            last = rev;
        };
        let a = store.create("/r/a", vec![]).await.unwrap();
        check(a.mod_revision);
        let a = store.update("/r/a", vec![1], a.mod_revision).await.unwrap();
        check(a.mod_revision);
        check(store.create("/r/b", vec![]).await.unwrap().mod_revision);
        check(store.delete("/r/a", None).await.unwrap().0);
        // Failed writes do not consume revisions.
        assert!(store.create("/r/b", vec![]).await.is_err());
        assert_eq!(store.current_revision().await.unwrap(), last);
    }

    pub async fn compaction_forgets_old_revisions_only(store: Arc<dyn Store>) {
        let a = store.create("/c/a", b"1".to_vec()).await.unwrap();
        let a2 = store.update("/c/a", b"2".to_vec(), a.mod_revision).await.unwrap();
        let b = store.create("/c/b", b"1".to_vec()).await.unwrap();
        store.delete("/c/b", None).await.unwrap();
        let a3 = store.update("/c/a", b"3".to_vec(), a2.mod_revision).await.unwrap();
        let keep = store.create("/c/keep", b"k".to_vec()).await.unwrap();
        let compact_at = a3.mod_revision;
        store.compact(compact_at).await.unwrap();
        // Compacting again, or lower, changes nothing.
        store.compact(compact_at).await.unwrap();
        store.compact(b.mod_revision).await.unwrap();

        let old = RangeRequest { prefix: "/c/".into(), revision: Some(b.mod_revision), ..Default::default() };
        let err = store.range(old).await.unwrap_err();
        assert!(matches!(err, StoreError::Compacted { .. }), "{err:?}");
        let err = match store.watch("/c/", a.mod_revision).await {
            Err(e) => e,
            Ok(mut stream) => match tokio::time::timeout(EVENT_DEADLINE, stream.next()).await {
                Ok(Some(Err(e))) => e,
                other => panic!("a watch from a compacted revision must fail, got {other:?}"),
            },
        };
        assert!(matches!(err, StoreError::Compacted { .. }), "{err:?}");

        // Current values, reads at the compaction revision and watches after it still work.
        let now = store.range(prefix("/c/")).await.unwrap();
        assert_eq!(now.kvs, vec![a3.clone(), keep.clone()]);
        let at = RangeRequest { prefix: "/c/".into(), revision: Some(compact_at), ..Default::default() };
        assert_eq!(store.range(at).await.unwrap().kvs, vec![a3.clone()]);
        let mut from_compaction = store.watch("/c/", compact_at - 1).await.unwrap();
        assert_eq!(next_event(&mut from_compaction).await.kv, a3);
        let mut watch = store.watch("/c/", compact_at).await.unwrap();
        assert_eq!(next_event(&mut watch).await.kv, keep);
        let a4 = store.update("/c/a", b"4".to_vec(), a3.mod_revision).await.unwrap();
        let live = next_event(&mut watch).await;
        assert_eq!((live.kv, live.prev), (a4, Some(a3)));

        let err = store.compact(store.current_revision().await.unwrap() + 100).await.unwrap_err();
        assert!(matches!(err, StoreError::FutureRevision { .. }), "{err:?}");
    }

    pub async fn concurrent_writers_get_distinct_revisions(store: Arc<dyn Store>) {
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let mut revs = Vec::new();
                    for i in 0..50 {
                        revs.push(store.create(&format!("/cw/{t}/{i:02}"), vec![t, i]).await.unwrap().mod_revision);
                    }
                    revs
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            let revs = task.await.unwrap();
            assert!(revs.windows(2).all(|w| w[0] < w[1]), "one writer's revisions must increase");
            all.extend(revs);
        }
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 400, "every write got its own revision");
        assert_eq!(store.range(prefix("/cw/")).await.unwrap().kvs.len(), 400);
    }

    pub async fn many_watchers_each_see_every_event_in_order(store: Arc<dyn Store>) {
        let rev = store.current_revision().await.unwrap();
        let mut watches = Vec::new();
        for _ in 0..20 {
            watches.push(store.watch("/m/", rev).await.unwrap());
        }
        let mut revs = Vec::new();
        for i in 0..30 {
            revs.push(store.create(&format!("/m/{i:02}"), vec![i]).await.unwrap().mod_revision);
        }
        // A late watcher from the same revision sees the same sequence.
        watches.push(store.watch("/m/", rev).await.unwrap());
        for watch in &mut watches {
            let seen: Vec<_> = next_events(watch, 30).await.iter().map(|e| e.revision).collect();
            assert_eq!(seen, revs);
        }
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let dir = tempfile::tempdir().expect("create a temp dir");
                    let store = super::SqliteStore::open(&dir.path().join("state.db")).expect("open sqlite store");
                    super::cases::$case(std::sync::Arc::new(store)).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(server) = super::support::etcd::EtcdServer::start_or_skip(stringify!($case)).await else {
                        return;
                    };
                    super::cases::$case(std::sync::Arc::new(server.store().await)).await;
                }
            )*
        }
    };
}

conformance!(
    create_then_get_and_create_again_is_already_exists,
    update_compares_the_expected_revision,
    delete_with_and_without_expected_revision,
    range_keeps_prefixes_apart,
    range_pages_with_limit_and_start_after,
    range_at_an_old_revision_sees_the_old_state,
    watch_from_zero_replays_all_history,
    watch_from_a_past_revision_starts_after_it,
    watch_sees_live_changes_under_its_prefix_only,
    watch_carries_previous_values_on_update_and_delete,
    revisions_increase_with_every_write,
    compaction_forgets_old_revisions_only,
    concurrent_writers_get_distinct_revisions,
    many_watchers_each_see_every_event_in_order,
);
