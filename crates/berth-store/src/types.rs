//! The `Store` trait and the values it trades in.

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::StoreError;

/// A global write counter. Every create, update and delete gets the next revision.
pub type Revision = i64;

/// One stored key with its value and revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision at which this key was (last) created.
    pub create_revision: Revision,
    /// Revision of the last write to this key (the object's `resourceVersion`).
    pub mod_revision: Revision,
}

/// A range read: every key starting with `prefix`, in key order.
#[derive(Clone, Debug, Default)]
pub struct RangeRequest {
    pub prefix: String,
    /// Only keys strictly greater than this one (a `continue` token's position).
    pub start_after: Option<String>,
    /// At most this many keys (`None` or 0: all).
    pub limit: Option<u64>,
    /// Read as of this revision (`None`: the current one). Older than the compaction: `Compacted`.
    pub revision: Option<Revision>,
}

/// The answer to a range read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeResponse {
    pub kvs: Vec<KeyValue>,
    /// True when `limit` cut the answer short.
    pub more: bool,
    /// The revision the read was made at.
    pub revision: Revision,
}

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Create,
    Update,
    Delete,
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    /// The revision of this change.
    pub revision: Revision,
    /// Create/Update: the new value (mod_revision == revision).
    /// Delete: the last value the key had before the delete.
    pub kv: KeyValue,
    /// Update: the value before the change. Create and Delete: `None`.
    pub prev: Option<KeyValue>,
}

/// A watch: events in revision order; ends with `Err(Compacted)` if it falls behind a compaction.
pub type WatchStream = BoxStream<'static, Result<Event, StoreError>>;

/// A revisioned key-value store with watch, as Kubernetes needs it.
///
/// # Guarantees
/// - Every write gets a revision greater than all before it; reads and watches see writes in
///   revision order.
/// - A write that returned `Ok` is durable: a crash right after loses nothing acknowledged.
/// - `watch(prefix, after)` delivers every change with revision > `after` exactly once, in order.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current value of `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;
    /// Keys under a prefix, optionally paged and at a past revision.
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError>;
    /// Creates `key`; `AlreadyExists` if it exists. Returns the stored key-value.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue, StoreError>;
    /// Replaces `key` if its `mod_revision` is `expected`; `Conflict` or `NotFound` otherwise.
    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<KeyValue, StoreError>;
    /// Deletes `key` (only if its `mod_revision` is `expected`, when given). Returns the revision
    /// of the delete and the value the key had.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue), StoreError>;
    /// Changes under `prefix` with revision > `after`. `after` older than the last compaction:
    /// `Compacted` (at once, or as the stream's first item).
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError>;
    /// Forgets history before `revision` (current values, and the state at `revision` itself, are
    /// kept): afterwards a `range` at a revision `< revision` and a `watch` with
    /// `after < revision - 1` answer `Compacted`, as in etcd. Compacting to a revision at or below
    /// an earlier compaction does nothing; above the current revision: `FutureRevision`.
    async fn compact(&self, revision: Revision) -> Result<(), StoreError>;
    /// The newest revision.
    async fn current_revision(&self) -> Result<Revision, StoreError>;
}
