//! The SQLite schema (a kine-style revision log), connection setup, and the row → event mapping.
//!
//! Table `kv` holds one row per write; its `id` is the write's revision:
//!
//! | column            | create            | update              | delete                      |
//! |-------------------|-------------------|---------------------|-----------------------------|
//! | `created`         | 1                 | 0                   | 0                           |
//! | `deleted`         | 0                 | 0                   | 1                           |
//! | `create_revision` | `id`              | the key's           | the key's                   |
//! | `prev_revision`   | tombstone id or 0 | previous row's `id` | previous row's `id`         |
//! | `value`           | new value         | new value           | the value before the delete |
//! | `old_value`       | NULL              | value before        | NULL                        |
//!
//! The state at revision `r` is, per key, the row with the greatest `id <= r`, unless it is a
//! tombstone. Keys are BLOBs so that SQLite compares them bytewise, as etcd does.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction};

use crate::{Event, EventType, KeyValue, Revision, StoreError};

/// How long a connection waits for SQLite's lock before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key BLOB NOT NULL,
    created INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    value BLOB NOT NULL,
    old_value BLOB
);
CREATE INDEX IF NOT EXISTS kv_key_id ON kv (key, id);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

/// `meta` row: the revision history is forgotten below (reads below it answer `Compacted`).
pub(crate) const META_COMPACT_REV: &str = "compact_rev";
/// `meta` row: how far the row deletion of a compaction has progressed (may lag a crash behind).
pub(crate) const META_COMPACT_DONE: &str = "compact_done";

/// Columns selected by every query that builds [`Row`]s, in [`Row::from_sql`] order.
pub(crate) const ROW_COLUMNS: &str = "id, key, created, deleted, create_revision, prev_revision, value, old_value";

/// Opens the write connection: WAL, `synchronous=FULL` (a commit is fsynced before it returns, so
/// an acknowledged write survives `kill -9` and power loss), and creates the schema.
pub(crate) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| open_error(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| open_error(path, e))?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(|e| open_error(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::backend(
            format!("failed to switch sqlite database {} to WAL mode", path.display()),
            format!("journal_mode is {mode}"),
        ));
    }
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;").map_err(|e| open_error(path, e))?;
    conn.execute_batch(SCHEMA)
        .map_err(|e| StoreError::backend(format!("failed to create the schema in {}", path.display()), e))?;
    Ok(conn)
}

/// Opens a read connection (`query_only`, so a bug cannot write behind the writer's back).
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| open_error(path, e))?;
    conn.execute_batch("PRAGMA query_only=ON;").map_err(|e| open_error(path, e))?;
    Ok(conn)
}

fn open_error(path: &Path, e: rusqlite::Error) -> StoreError {
    StoreError::backend(format!("failed to open sqlite database {}", path.display()), e)
}

/// Wraps a SQL error with the step that failed.
pub(crate) fn sql(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::backend(context, e)
}

/// The newest revision (the greatest row id; compaction never deletes it).
pub(crate) fn current_revision(tx: &Transaction<'_>) -> Result<Revision, StoreError> {
    tx.query_row("SELECT COALESCE(MAX(id), 0) FROM kv", [], |r| r.get(0))
        .map_err(sql("failed to read the current revision"))
}

/// A `meta` value, 0 when unset.
pub(crate) fn meta(conn: &Connection, name: &str) -> Result<Revision, StoreError> {
    conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| r.get(0))
        .optional()
        .map(Option::unwrap_or_default)
        .map_err(sql("failed to read the compaction revision"))
}

/// Sets a `meta` value.
pub(crate) fn set_meta(conn: &Connection, name: &str, value: Revision) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO meta (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        rusqlite::params![name, value],
    )
    .map(drop)
    .map_err(sql("failed to record the compaction revision"))
}

/// One row of `kv`.
#[derive(Debug)]
pub(crate) struct Row {
    pub id: Revision,
    pub key: Vec<u8>,
    pub created: bool,
    pub deleted: bool,
    pub create_revision: Revision,
    pub prev_revision: Revision,
    pub value: Vec<u8>,
    pub old_value: Option<Vec<u8>>,
}

impl Row {
    /// Reads a row selected with [`ROW_COLUMNS`].
    pub(crate) fn from_sql(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
        Ok(Row {
            id: r.get(0)?,
            key: r.get(1)?,
            created: r.get(2)?,
            deleted: r.get(3)?,
            create_revision: r.get(4)?,
            prev_revision: r.get(5)?,
            value: r.get(6)?,
            old_value: r.get(7)?,
        })
    }

    fn key_string(&self) -> Result<String, StoreError> {
        String::from_utf8(self.key.clone())
            .map_err(|e| StoreError::backend(format!("row {} has a key that is not UTF-8", self.id), e))
    }

    /// The key-value this row stores (for a tombstone: the value the key had before the delete).
    pub(crate) fn into_key_value(self) -> Result<KeyValue, StoreError> {
        let key = self.key_string()?;
        let mod_revision = if self.deleted { self.prev_revision } else { self.id };
        Ok(KeyValue { key, value: self.value, create_revision: self.create_revision, mod_revision })
    }

    /// The watch event this row records.
    pub(crate) fn into_event(self) -> Result<Event, StoreError> {
        let key = self.key_string()?;
        let (kind, kv, prev) = if self.deleted {
            let kv = KeyValue {
                key,
                value: self.value,
                create_revision: self.create_revision,
                mod_revision: self.prev_revision,
            };
            (EventType::Delete, kv, None)
        } else if self.created {
            let kv = KeyValue { key, value: self.value, create_revision: self.id, mod_revision: self.id };
            (EventType::Create, kv, None)
        } else {
            let prev = KeyValue {
                key: key.clone(),
                value: self.old_value.unwrap_or_default(),
                create_revision: self.create_revision,
                mod_revision: self.prev_revision,
            };
            let kv = KeyValue { key, value: self.value, create_revision: self.create_revision, mod_revision: self.id };
            (EventType::Update, kv, Some(prev))
        };
        Ok(Event { kind, revision: self.id, kv, prev })
    }
}
