//! berth-apiserver: the Kubernetes REST API over HTTPS. Discovery, OpenAPI, CRUD, list/watch,
//! patch, subresources, authentication, Table output and `Status` errors, all driven by the
//! berth-api registry. The only component that touches the store.
#![forbid(unsafe_code)]

mod config;
pub mod patch;
mod server;

pub use config::{Config, Datastore};
pub use server::{Server, ServerError};
