//! Reads: a small pool of read-only connections used from `spawn_blocking`, and the queries they
//! run (get, range at a revision, watch history). Each query runs in one read transaction, so it
//! sees one consistent snapshot of the WAL database while the writer keeps committing.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::Semaphore;

use super::schema::{self, ROW_COLUMNS, Row, sql};
use crate::keys::prefix_end;
use crate::{Event, KeyValue, RangeRequest, RangeResponse, Revision, StoreError};

/// At most this many reads run at once (each holds one connection and one blocking thread).
const MAX_READERS: usize = 4;

/// Read connections, opened on first use and reused.
pub(crate) struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl ReadPool {
    pub(crate) fn new(path: PathBuf) -> ReadPool {
        ReadPool { path, idle: Mutex::new(Vec::new()), permits: Arc::new(Semaphore::new(MAX_READERS)) }
    }

    /// Runs `f` on a pooled connection on a blocking thread.
    pub(crate) async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| StoreError::backend("the sqlite read pool is closed", e))?;
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut conn = match idle {
                Some(conn) => conn,
                None => schema::open_reader(&pool.path)?,
            };
            let result = f(&mut conn);
            pool.idle.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::backend("a sqlite read task failed", e))?
    }
}

/// The current value of `key`.
pub(crate) fn get(conn: &mut Connection, key: &str) -> Result<Option<KeyValue>, StoreError> {
    let tx = conn.transaction().map_err(sql("failed to begin a read"))?;
    let row = tx
        .query_row(
            &format!("SELECT {ROW_COLUMNS} FROM kv WHERE key = ?1 ORDER BY id DESC LIMIT 1"),
            [key.as_bytes()],
            Row::from_sql,
        )
        .optional()
        .map_err(sql("failed to read a key"))?;
    match row {
        Some(row) if !row.deleted => row.into_key_value().map(Some),
        _ => Ok(None),
    }
}

/// The revision and compaction revision of the snapshot `tx` reads.
fn snapshot(tx: &Transaction<'_>) -> Result<(Revision, Revision), StoreError> {
    let current = schema::current_revision(tx)?;
    let compacted = schema::meta(tx, schema::META_COMPACT_REV)?;
    Ok((current, compacted))
}

/// Keys under a prefix at a revision: per key, the newest row at or below the revision, unless
/// it is a tombstone.
pub(crate) fn range(conn: &mut Connection, req: &RangeRequest) -> Result<RangeResponse, StoreError> {
    let tx = conn.transaction().map_err(sql("failed to begin a read"))?;
    let (current, compacted) = snapshot(&tx)?;
    let revision = match req.revision {
        None | Some(0) => current,
        Some(rev) if rev > current => return Err(StoreError::FutureRevision { requested: rev, current }),
        Some(rev) if rev < compacted => return Err(StoreError::Compacted { requested: rev, compacted }),
        Some(rev) => rev,
    };
    let start: Vec<u8> = match &req.start_after {
        // The smallest key after `s` is `s\0`; `>=` on it equals `>` on `s`.
        Some(s) if s.as_str() >= req.prefix.as_str() => {
            let mut k = s.as_bytes().to_vec();
            k.push(0);
            k
        }
        _ => req.prefix.as_bytes().to_vec(),
    };
    let end = prefix_end(req.prefix.as_bytes());
    let limit = match req.limit {
        None | Some(0) => -1,
        Some(n) => i64::try_from(n).unwrap_or(i64::MAX - 1).saturating_add(1),
    };
    // Walk the (key, id) index in key order and keep, per key, only its newest row at or below
    // the revision; tombstones are dropped only afterwards, or an older live row would show
    // through. With a limit, the walk stops after `limit + 1` live keys.
    let query = format!(
        "SELECT {ROW_COLUMNS} FROM kv AS k
         WHERE k.key >= ?1 {upper}
           AND k.id = (SELECT MAX(m.id) FROM kv AS m WHERE m.key = k.key AND m.id <= ?2)
           AND k.deleted = 0
         ORDER BY k.key
         LIMIT ?3",
        upper = if end.is_some() { "AND k.key < ?4" } else { "" },
    );
    let mut stmt = tx.prepare_cached(&query).map_err(sql("failed to prepare a range read"))?;
    let rows = match &end {
        Some(end) => stmt.query_map(params![start, revision, limit, end], Row::from_sql),
        None => stmt.query_map(params![start, revision, limit], Row::from_sql),
    }
    .map_err(sql("failed to run a range read"))?;
    let mut kvs = Vec::new();
    for row in rows {
        kvs.push(row.map_err(sql("failed to read a range row"))?.into_key_value()?);
    }
    let more = match req.limit {
        Some(n) if n > 0 && kvs.len() as u64 > n => {
            kvs.truncate(n as usize);
            true
        }
        _ => false,
    };
    Ok(RangeResponse { kvs, more, revision })
}

/// Up to `limit` changes under `prefix` with revision > `after`, oldest first. `Compacted` if
/// the rows after `after` may already be gone (`after + 1 < compaction revision`).
pub(crate) fn history(
    conn: &mut Connection,
    prefix: &str,
    after: Revision,
    limit: usize,
) -> Result<Vec<Event>, StoreError> {
    let tx = conn.transaction().map_err(sql("failed to begin a read"))?;
    let (_, compacted) = snapshot(&tx)?;
    if after + 1 < compacted {
        return Err(StoreError::Compacted { requested: after + 1, compacted });
    }
    let end = prefix_end(prefix.as_bytes());
    let query = format!(
        "SELECT {ROW_COLUMNS} FROM kv
         WHERE id > ?1 AND key >= ?2 {upper}
         ORDER BY id
         LIMIT ?3",
        upper = if end.is_some() { "AND key < ?4" } else { "" },
    );
    let mut stmt = tx.prepare_cached(&query).map_err(sql("failed to prepare a history read"))?;
    let limit = limit as i64;
    let rows = match &end {
        Some(end) => stmt.query_map(params![after, prefix.as_bytes(), limit, end], Row::from_sql),
        None => stmt.query_map(params![after, prefix.as_bytes(), limit], Row::from_sql),
    }
    .map_err(sql("failed to run a history read"))?;
    let mut events = Vec::new();
    for row in rows {
        events.push(row.map_err(sql("failed to read a history row"))?.into_event()?);
    }
    Ok(events)
}
