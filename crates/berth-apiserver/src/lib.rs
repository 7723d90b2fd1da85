//! berth-apiserver: the Kubernetes REST API over HTTPS. Discovery, OpenAPI, CRUD, list/watch,
//! patch, subresources, authentication, Table output and `Status` errors, all driven by the
//! berth-api registry. The only component that touches the store.
#![forbid(unsafe_code)]

mod allocator;
pub mod authn;
pub mod authz;
mod body;
mod bootstrap;
mod config;
mod crd;
mod discovery;
pub mod error;
mod field_validation;
pub mod health;
mod kubelet;
pub mod metrics;
pub mod metrics_api;
mod negotiate;
pub mod node_token;
mod object;
mod output;
pub mod patch;
pub mod pki;
pub mod protobuf;
mod request;
mod resource;
mod router;
mod server;
mod state;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;
pub mod version;
mod watch;

pub use config::{Config, Datastore};
pub use server::{Server, ServerError};
