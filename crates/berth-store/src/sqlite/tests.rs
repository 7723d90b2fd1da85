//! SQLite-specific behaviour the conformance suite cannot see: rows on disk, reopening, lag.

use std::time::Duration;

use futures::StreamExt;

use super::*;

fn row_count(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT COUNT(*) FROM kv", [], |r| r.get(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_deletes_superseded_rows_and_tombstones_but_keeps_current_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path).unwrap();
    let mut a = store.create("/a", b"0".to_vec()).await.unwrap();
    for i in 1..2500u32 {
        a = store.update("/a", i.to_string().into_bytes(), a.mod_revision).await.unwrap();
    }
    store.create("/gone", vec![]).await.unwrap();
    store.delete("/gone", None).await.unwrap();
    let b = store.create("/b", vec![]).await.unwrap();
    assert_eq!(row_count(&path), 2503);

    // Spans several compaction batches.
    store.compact(b.mod_revision).await.unwrap();
    assert_eq!(row_count(&path), 2, "only the newest /a row and /b remain");
    assert_eq!(store.get("/a").await.unwrap(), Some(a));
    assert_eq!(store.get("/gone").await.unwrap(), None);
    assert_eq!(store.current_revision().await.unwrap(), b.mod_revision);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_revisions_and_the_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/state.db");
    let (a, compacted) = {
        let store = SqliteStore::open(&path).unwrap();
        let a = store.create("/a", b"1".to_vec()).await.unwrap();
        let a = store.update("/a", b"2".to_vec(), a.mod_revision).await.unwrap();
        store.compact(a.mod_revision).await.unwrap();
        let rev = a.mod_revision;
        (a, rev)
    };
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.current_revision().await.unwrap(), a.mod_revision);
    assert_eq!(store.get("/a").await.unwrap(), Some(a.clone()));
    let err = store.watch("/", compacted - 2).await.err();
    assert!(matches!(err, Some(StoreError::Compacted { .. })), "{err:?}");
    let next = store.create("/b", vec![]).await.unwrap();
    assert_eq!(next.mod_revision, a.mod_revision + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_compaction_resumes_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let a = {
        let store = SqliteStore::open(&path).unwrap();
        let mut a = store.create("/a", vec![]).await.unwrap();
        for _ in 0..10 {
            a = store.update("/a", vec![], a.mod_revision).await.unwrap();
        }
        a
    };
    // As if the process died after recording the compaction but before deleting rows.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        schema::set_meta(&conn, schema::META_COMPACT_REV, a.mod_revision).unwrap();
    }
    assert_eq!(row_count(&path), 11);
    let store = SqliteStore::open(&path).unwrap();
    // The resumed compaction answers a no-op compaction once it has finished.
    store.compact(a.mod_revision).await.unwrap();
    assert_eq!(row_count(&path), 1);
    assert_eq!(store.get("/a").await.unwrap(), Some(a));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_lags_behind_the_broadcast_catches_up_from_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    let mut watch = store.watch("/l/", 0).await.unwrap();
    // More sequential commits than the broadcast and the watch buffer hold together, while the
    // watcher reads nothing.
    let writes = BROADCAST_CAPACITY + 2 * watch::OUT_BUFFER;
    let mut revs = Vec::with_capacity(writes);
    for i in 0..writes {
        revs.push(store.create(&format!("/l/{i:05}"), vec![]).await.unwrap().mod_revision);
        // Writes outside the prefix advance the revision without matching.
        if i % 100 == 0 {
            store.create(&format!("/other/{i}"), vec![]).await.unwrap();
        }
    }
    let mut seen = Vec::with_capacity(writes);
    while seen.len() < writes {
        let item = tokio::time::timeout(Duration::from_secs(10), watch.next()).await;
        match item {
            Ok(Some(Ok(event))) => seen.push(event.revision),
            other => panic!("after {} events: {other:?}", seen.len()),
        }
    }
    assert_eq!(seen, revs, "every event exactly once, in order");
    let live = store.create("/l/live", vec![]).await.unwrap();
    let item = tokio::time::timeout(Duration::from_secs(10), watch.next()).await;
    assert!(matches!(item, Ok(Some(Ok(ref e))) if e.kv == live), "{item:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_watch_ends_its_task() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    let watch = store.watch("/", 0).await.unwrap();
    assert_eq!(store.events.receiver_count(), 1);
    drop(watch);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.events.receiver_count() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the watch task did not end");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
