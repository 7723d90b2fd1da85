//! The embedded SQLite backend: a kine-style revision log in one WAL database.
//!
//! One writer thread owns the only write connection and group-commits queued writes
//! ([`writer`]); reads run on a small pool of read connections on blocking threads
//! ([`reader`]); watches replay the table and then follow the writer's broadcast ([`watch`]).
//!
//! # Assumptions
//! One process owns the database file. Another process writing to it would get correct
//! revisions (each batch reads the newest one under SQLite's write lock), but this process's
//! watches would not see its writes until they lag and re-read the table.

mod reader;
mod schema;
mod watch;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use crate::{Event, KeyValue, RangeRequest, RangeResponse, Revision, Store, StoreError, WatchStream};
use reader::ReadPool;
use writer::{Request, Shared, WriteOp, Writer};

/// Requests queued for the writer before callers wait (backpressure).
const WRITE_QUEUE: usize = 1024;
/// Committed batches a watcher may fall behind before it re-reads from the table.
const BROADCAST_CAPACITY: usize = 1024;

/// A [`Store`] in a SQLite database file.
///
/// # Guarantees
/// Besides the [`Store`] ones: revisions are row ids, so the first write of a new database is
/// revision 1; after `compact(c)`, reads at revisions `>= c` and watches from `after >= c - 1`
/// still work (as in etcd).
pub struct SqliteStore {
    path: PathBuf,
    requests: mpsc::Sender<Request>,
    pool: Arc<ReadPool>,
    shared: Arc<Shared>,
    events: broadcast::Sender<writer::Batch>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates, with its parent directories) the database at `path` and starts the
    /// writer thread. The writer stops when the store is dropped.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::backend(format!("failed to create directory {}", parent.display()), e))?;
        }
        let conn = schema::open_writer(path)?;
        let shared = Arc::new(Shared::default());
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        let writer = Writer::new(conn, Arc::clone(&shared), events.clone())?;
        let (requests, rx) = mpsc::channel(WRITE_QUEUE);
        std::thread::Builder::new()
            .name("berth-sqlite-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::backend("failed to start the sqlite writer thread", e))?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            requests,
            pool: Arc::new(ReadPool::new(path.to_path_buf())),
            shared,
            events,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write(&self, op: WriteOp) -> Result<Event, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Write { op, reply })
            .await
            .map_err(|e| StoreError::backend("the sqlite writer has stopped", e.to_string()))?;
        answer.await.map_err(|e| StoreError::backend("the sqlite writer dropped a write", e))?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let key = key.to_owned();
        self.pool.run(move |conn| reader::get(conn, &key)).await
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError> {
        self.pool.run(move |conn| reader::range(conn, &req)).await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue, StoreError> {
        Ok(self.write(WriteOp::Create { key: key.to_owned(), value }).await?.kv)
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<KeyValue, StoreError> {
        Ok(self.write(WriteOp::Update { key: key.to_owned(), value, expected }).await?.kv)
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue), StoreError> {
        let event = self.write(WriteOp::Delete { key: key.to_owned(), expected }).await?;
        Ok((event.revision, event.kv))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let compacted = self.shared.compacted.load(Ordering::SeqCst);
        if after + 1 < compacted {
            return Err(StoreError::Compacted { requested: after + 1, compacted });
        }
        let rx = watch::spawn(Arc::clone(&self.pool), &self.events, prefix.to_owned(), after.max(0));
        Ok(ReceiverStream::new(rx).boxed())
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Compact { revision, reply })
            .await
            .map_err(|e| StoreError::backend("the sqlite writer has stopped", e.to_string()))?;
        answer.await.map_err(|e| StoreError::backend("the sqlite writer dropped a compaction", e))?
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.shared.current.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests;
