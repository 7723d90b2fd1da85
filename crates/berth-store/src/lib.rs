//! berth-store: the revisioned key-value store every Berth object lives in.
//!
//! Only the apiserver touches it. Keys follow Kubernetes
//! (`/registry/{group}/{resource}/{namespace}/{name}`); a global revision counts every write and an
//! object's `resourceVersion` is the revision of its last write.
//!
//! | feature  | backend |
//! |----------|---------|
//! | `sqlite` | embedded SQLite (default): WAL, one writer thread with group commit, durable acks |
//! | `etcd`   | etcd v3 API (3.4+): native revisions and watches |
//!
//! Both backends pass the same conformance suite (`tests/conformance.rs`).
#![forbid(unsafe_code)]

mod error;
mod types;

pub use error::StoreError;
pub use types::{Event, EventType, KeyValue, RangeRequest, RangeResponse, Revision, Store, WatchStream};
