//! The writer: one OS thread owning the only write connection.
//!
//! Requests arrive on a bounded channel. The writer takes everything queued (up to
//! [`MAX_BATCH`]) and commits it in one transaction — group commit: one fsync acknowledges many
//! writes — then publishes the committed events and answers each request. Each write runs in its
//! own savepoint, so a failed one does not undo its neighbours. Compaction runs here too, in
//! small transactions between write batches, so it never holds the write lock for long (kine saw
//! "database is locked" and unbounded WAL growth when one big compaction stalled).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::schema::{self, META_COMPACT_DONE, META_COMPACT_REV, sql};
use crate::{Event, EventType, KeyValue, Revision, StoreError};

/// Most requests committed in one transaction.
const MAX_BATCH: usize = 512;
/// Revisions examined per compaction transaction.
const COMPACT_BATCH: Revision = 1000;

/// A batch of committed events, in revision order.
pub(crate) type Batch = Arc<Vec<Event>>;

/// State shared by the writer and the store handle.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// The newest committed revision.
    pub current: AtomicI64,
    /// Reads below this revision answer `Compacted`.
    pub compacted: AtomicI64,
}

/// One write.
#[derive(Debug)]
pub(crate) enum WriteOp {
    Create { key: String, value: Vec<u8> },
    Update { key: String, value: Vec<u8>, expected: Revision },
    Delete { key: String, expected: Option<Revision> },
}

/// What the writer thread is asked to do.
#[derive(Debug)]
pub(crate) enum Request {
    Write { op: WriteOp, reply: oneshot::Sender<Result<Event, StoreError>> },
    Compact { revision: Revision, reply: oneshot::Sender<Result<(), StoreError>> },
}

/// A compaction in progress: rows superseded at revisions in `(done, target]` remain to delete.
struct Compaction {
    done: Revision,
    target: Revision,
    replies: Vec<oneshot::Sender<Result<(), StoreError>>>,
}

pub(crate) struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    events: broadcast::Sender<Batch>,
    compaction: Option<Compaction>,
}

impl Writer {
    /// Loads the revisions from the database. An interrupted compaction resumes.
    pub(crate) fn new(
        conn: Connection,
        shared: Arc<Shared>,
        events: broadcast::Sender<Batch>,
    ) -> Result<Writer, StoreError> {
        let (current, compacted, done) = {
            let tx = conn.unchecked_transaction().map_err(sql("failed to begin a read"))?;
            let current = schema::current_revision(&tx)?;
            (current, schema::meta(&tx, META_COMPACT_REV)?, schema::meta(&tx, META_COMPACT_DONE)?)
        };
        shared.current.store(current.max(compacted), Ordering::SeqCst);
        shared.compacted.store(compacted, Ordering::SeqCst);
        let compaction = (done < compacted).then_some(Compaction { done, target: compacted, replies: Vec::new() });
        Ok(Writer { conn, shared, events, compaction })
    }

    /// Serves requests until every sender is gone.
    pub(crate) fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        loop {
            let first = if self.compaction.is_some() {
                match requests.try_recv() {
                    Ok(req) => Some(req),
                    Err(mpsc::error::TryRecvError::Empty) => None,
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            } else {
                match requests.blocking_recv() {
                    Some(req) => Some(req),
                    None => break,
                }
            };
            let mut writes = Vec::new();
            let mut next = first;
            while let Some(req) = next {
                match req {
                    Request::Write { op, reply } => writes.push((op, reply)),
                    Request::Compact { revision, reply } => self.start_compaction(revision, reply),
                }
                next = if writes.len() < MAX_BATCH { requests.try_recv().ok() } else { None };
            }
            if !writes.is_empty() {
                self.commit(writes);
            }
            self.compact_step();
        }
        tracing::debug!("sqlite writer stopped");
    }

    /// Commits a batch of writes in one transaction and answers each.
    fn commit(&mut self, writes: Vec<(WriteOp, oneshot::Sender<Result<Event, StoreError>>)>) {
        let outcome = commit_batch(&mut self.conn, writes.iter().map(|(op, _)| op));
        match outcome {
            Ok(results) => {
                let events: Vec<Event> = results.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
                if let Some(last) = events.last() {
                    self.shared.current.store(last.revision, Ordering::SeqCst);
                    // No receivers is fine: nobody is watching.
                    let _ = self.events.send(Arc::new(events));
                }
                for ((_, reply), result) in writes.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "sqlite write batch failed");
                let cause = e.to_string();
                for (_, reply) in writes {
                    let _ = reply.send(Err(StoreError::backend("failed to commit a write batch", cause.clone())));
                }
            }
        }
    }

    fn start_compaction(&mut self, revision: Revision, reply: oneshot::Sender<Result<(), StoreError>>) {
        let current = self.shared.current.load(Ordering::SeqCst);
        let compacted = self.shared.compacted.load(Ordering::SeqCst);
        if revision > current {
            let _ = reply.send(Err(StoreError::FutureRevision { requested: revision, current }));
            return;
        }
        if revision <= compacted {
            match &mut self.compaction {
                Some(c) => c.replies.push(reply),
                None => {
                    let _ = reply.send(Ok(()));
                }
            }
            return;
        }
        // Record the promise first and durably: from here on reads below `revision` fail, even
        // after a crash, while the rows are deleted in the background.
        if let Err(e) = schema::set_meta(&self.conn, META_COMPACT_REV, revision) {
            let _ = reply.send(Err(e));
            return;
        }
        self.shared.compacted.store(revision, Ordering::SeqCst);
        match &mut self.compaction {
            Some(c) => {
                c.target = revision;
                c.replies.push(reply);
            }
            None => self.compaction = Some(Compaction { done: compacted, target: revision, replies: vec![reply] }),
        }
    }

    /// Deletes one batch of superseded rows; answers the compaction's callers when done.
    fn compact_step(&mut self) {
        let Some(c) = &mut self.compaction else { return };
        let hi = (c.done + COMPACT_BATCH).min(c.target);
        match compact_window(&mut self.conn, c.done, hi, c.target) {
            Ok(()) => c.done = hi,
            Err(e) => {
                tracing::error!(error = %e, "sqlite compaction failed");
                let cause = e.to_string();
                for reply in c.replies.drain(..) {
                    let _ = reply.send(Err(StoreError::backend("failed to compact", cause.clone())));
                }
                // Leave it: the next compaction resumes from `done`.
                self.compaction = None;
                return;
            }
        }
        if c.done >= c.target {
            for reply in c.replies.drain(..) {
                let _ = reply.send(Ok(()));
            }
            self.compaction = None;
        }
    }
}

/// Runs the writes in one transaction. `Err` only if the transaction itself failed (then
/// nothing was written); a write's own failure (e.g. `Conflict`) is its entry in the result.
///
/// The next revision is read under the write lock rather than kept in memory, so a writer
/// that is still finishing after its store was dropped cannot make a reopened store reuse ids.
fn commit_batch<'a>(
    conn: &mut Connection,
    ops: impl Iterator<Item = &'a WriteOp>,
) -> Result<Vec<Result<Event, StoreError>>, StoreError> {
    let mut tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql("failed to begin a write transaction"))?;
    let mut revision = schema::current_revision(&tx)?;
    let mut results = Vec::new();
    for op in ops {
        let sp = tx.savepoint().map_err(sql("failed to open a savepoint"))?;
        let result = apply(&sp, op, revision + 1);
        match &result {
            Ok(_) => {
                sp.commit().map_err(sql("failed to release a savepoint"))?;
                revision += 1;
            }
            // Dropping the savepoint rolls it back (rusqlite's default drop behaviour).
            Err(_) => drop(sp),
        }
        results.push(result);
    }
    tx.commit().map_err(sql("failed to commit a write transaction"))?;
    Ok(results)
}

/// The newest row of a key.
struct Latest {
    id: Revision,
    deleted: bool,
    create_revision: Revision,
    value: Vec<u8>,
}

impl Latest {
    /// The key's live state as (mod_revision, create_revision, value); `None` for a tombstone.
    fn live(self) -> Option<(Revision, Revision, Vec<u8>)> {
        (!self.deleted).then_some((self.id, self.create_revision, self.value))
    }
}

fn latest(tx: &Connection, key: &str) -> Result<Option<Latest>, StoreError> {
    tx.prepare_cached("SELECT id, deleted, create_revision, value FROM kv WHERE key = ?1 ORDER BY id DESC LIMIT 1")
        .and_then(|mut stmt| {
            stmt.query_row([key.as_bytes()], |r| {
                Ok(Latest { id: r.get(0)?, deleted: r.get(1)?, create_revision: r.get(2)?, value: r.get(3)? })
            })
            .optional()
        })
        .map_err(sql("failed to read a key for a write"))
}

#[allow(clippy::too_many_arguments)]
fn insert(
    tx: &Connection,
    id: Revision,
    key: &str,
    created: bool,
    deleted: bool,
    create_revision: Revision,
    prev_revision: Revision,
    value: &[u8],
    old_value: Option<&[u8]>,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO kv (id, key, created, deleted, create_revision, prev_revision, value, old_value)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![id, key.as_bytes(), created, deleted, create_revision, prev_revision, value, old_value])
    })
    .map(drop)
    .map_err(sql("failed to insert a row"))
}

/// Checks one write against the current state and appends its row at `rev`.
fn apply(tx: &Connection, op: &WriteOp, rev: Revision) -> Result<Event, StoreError> {
    match op {
        WriteOp::Create { key, value } => {
            let prev_revision = match latest(tx, key)? {
                Some(row) if !row.deleted => return Err(StoreError::AlreadyExists { key: key.clone() }),
                Some(tombstone) => tombstone.id,
                None => 0,
            };
            insert(tx, rev, key, true, false, rev, prev_revision, value, None)?;
            let kv = KeyValue { key: key.clone(), value: value.clone(), create_revision: rev, mod_revision: rev };
            Ok(Event { kind: EventType::Create, revision: rev, kv, prev: None })
        }
        WriteOp::Update { key, value, expected } => {
            let Some((id, create_revision, old)) = latest(tx, key)?.and_then(Latest::live) else {
                return Err(StoreError::NotFound { key: key.clone() });
            };
            if id != *expected {
                return Err(StoreError::Conflict { key: key.clone(), expected: *expected, actual: id });
            }
            insert(tx, rev, key, false, false, create_revision, id, value, Some(&old))?;
            let prev = KeyValue { key: key.clone(), value: old, create_revision, mod_revision: id };
            let kv = KeyValue { key: key.clone(), value: value.clone(), create_revision, mod_revision: rev };
            Ok(Event { kind: EventType::Update, revision: rev, kv, prev: Some(prev) })
        }
        WriteOp::Delete { key, expected } => {
            let Some((id, create_revision, old)) = latest(tx, key)?.and_then(Latest::live) else {
                return Err(StoreError::NotFound { key: key.clone() });
            };
            if let Some(expected) = expected
                && id != *expected
            {
                return Err(StoreError::Conflict { key: key.clone(), expected: *expected, actual: id });
            }
            insert(tx, rev, key, false, true, create_revision, id, &old, None)?;
            let kv = KeyValue { key: key.clone(), value: old, create_revision, mod_revision: id };
            Ok(Event { kind: EventType::Delete, revision: rev, kv, prev: None })
        }
    }
}

/// Deletes, in one transaction, the rows superseded by rows with ids in `(lo, hi]`, and the
/// tombstones in that window; rows at or above `target` are kept, so that a watch from
/// `target - 1` and reads at `target` still work (etcd's compaction keeps revision `target`).
fn compact_window(conn: &mut Connection, lo: Revision, hi: Revision, target: Revision) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql("failed to begin a compaction transaction"))?;
    tx.execute(
        "DELETE FROM kv WHERE id IN (
             SELECT prev_revision FROM kv WHERE id > ?1 AND id <= ?2 AND prev_revision > 0
         ) AND id < ?3",
        params![lo, hi, target],
    )
    .map_err(sql("failed to delete superseded rows"))?;
    tx.execute("DELETE FROM kv WHERE deleted = 1 AND id > ?1 AND id <= ?2 AND id < ?3", params![lo, hi, target])
        .map_err(sql("failed to delete tombstones"))?;
    schema::set_meta(&tx, META_COMPACT_DONE, hi)?;
    tx.commit().map_err(sql("failed to commit a compaction batch"))
}
