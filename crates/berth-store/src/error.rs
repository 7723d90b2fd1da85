//! Store errors. The apiserver maps each variant to a Kubernetes `Status`.

use crate::Revision;

/// What went wrong in a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `update`/`delete` of a key that does not exist (or no longer exists).
    #[error("key {key} not found")]
    NotFound { key: String },
    /// `create` of a key that already exists.
    #[error("key {key} already exists")]
    AlreadyExists { key: String },
    /// Compare-and-swap failed: the key's current `mod_revision` is not the one expected.
    #[error("key {key} was modified: expected revision {expected}, found {actual}")]
    Conflict { key: String, expected: Revision, actual: Revision },
    /// A read or watch at a revision older than the last compaction. The apiserver answers 410 Gone.
    #[error("revision {requested} has been compacted (oldest available is {compacted})")]
    Compacted { requested: Revision, compacted: Revision },
    /// A read at a revision newer than the store's current one.
    #[error("revision {requested} is in the future (current is {current})")]
    FutureRevision { requested: Revision, current: Revision },
    /// The backend failed (I/O, SQL, gRPC, a closed writer).
    #[error("{context}")]
    Backend {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// Wraps a backend error with a short description of the step that failed.
    pub fn backend(context: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError::Backend { context: context.into(), source: source.into() }
    }
}
