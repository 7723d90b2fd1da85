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
//! [`Datastore::parse`] reads a `--datastore-endpoint` and [`open`] opens the store it names.
//! Both backends pass the same conformance suite (`tests/conformance.rs`).
#![forbid(unsafe_code)]

mod datastore;
mod error;
#[cfg(feature = "etcd")]
mod etcd;
mod keys;
#[cfg(feature = "sqlite")]
mod sqlite;
mod types;

pub use datastore::{Datastore, open};
pub use error::StoreError;
#[cfg(feature = "etcd")]
pub use etcd::EtcdStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use types::{Event, EventType, KeyValue, RangeRequest, RangeResponse, Revision, Store, WatchStream};
