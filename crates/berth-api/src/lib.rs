//! berth-api: the object model. Every kind Berth serves is a registry entry (group, versions,
//! kind, plural, short names, scope, subresources) plus a strategy (defaulting, validation,
//! conversion between served versions). Pure data and functions: no tokio, no I/O.
//!
//! Objects travel as `serde_json::Value` (k8s-openapi drops unknown fields, so typed structs are
//! used only to read them); the typed structs are re-exported from `k8s-openapi`.
#![forbid(unsafe_code)]

pub mod field_error;
pub mod field_validation;
pub mod openapi;
pub mod qos;
pub mod quantity;
pub mod registry;
pub mod selector;
pub mod table;

pub use field_error::{FieldError, FieldErrorKind};
pub use k8s_openapi;
pub use registry::{Registry, ResourceType, Strategy, Subresource};
pub mod conversion;
pub mod defaults;
pub mod kinds;
pub mod validation;
pub use quantity::{Quantity, QuantityError};
