//! berth-agent: the node agent. The kubelet runs pods as real containers (`runc`), with images
//! from a content-addressed store and networking through CNI plugins. May touch the host (mounts,
//! processes, namespaces) and the API through a client; never the store.
//!
//! The host-side building blocks live here as a library:
//!
//! | module | what it does |
//! |---|---|
//! | [`image`] | content-addressed image store: import of OCI layouts and `docker save` tars, registry pulls |
//! | [`layers`] | unpacks each layer once, converting OCI whiteouts to overlayfs form |
//! | [`snapshot`] | mounts a container's overlayfs rootfs over the unpacked layers |
//! | [`bundle`] | builds an OCI runtime bundle (`config.json`) from a container description |
//! | [`runtime`] | the [`Runtime`] trait and its `runc` implementation |
//! | [`kubelet`] | the node loop: Node registration, Lease, one worker per pod |
//! | [`sim`] | fake nodes for scale tests (kwok-like): Nodes, Leases, pods Running at once |
#![deny(unsafe_code)]

pub mod bundle;
pub mod image;
mod io_error;
pub mod kubelet;
pub mod layers;
mod mountinfo;
pub mod network;
pub mod runtime;
pub mod sim;
pub mod snapshot;
#[cfg(feature = "testing")]
pub mod testing;

pub use bundle::{BindMount, Bundle, BundleError, ContainerSpec, NetworkNamespace, Resources, User};
pub use image::{Image, ImageConfig, ImageError, ImageRef, ImageStore, Layer};
pub use io_error::IoError;
pub use layers::LayerError;
pub use runtime::{ContainerIo, ContainerState, Runc, Runtime, RuntimeError};
pub use snapshot::{Rootfs, SnapshotError, cleanup, prepare_rootfs};
