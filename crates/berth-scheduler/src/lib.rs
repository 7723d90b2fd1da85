//! berth-scheduler: assigns pods to nodes. A priority queue with backoff, a snapshot cache of nodes
//! and pods, and a framework of filter and score plugins; binds through `pods/binding`. An API
//! client (kube-rs); never touches the store.
//!
//! The entry point is [`run`]; [`Framework`] with [`plugins::default_plugins`] schedules pods on a
//! [`Snapshot`] without any API, which the benches and unit tests use.
#![forbid(unsafe_code)]

mod cache;
mod config;
mod error;
pub mod framework;
pub mod plugins;
pub mod preemption;
mod queue;
pub mod resources;
mod scheduler;
pub mod snapshot;

pub use config::{ResourceWeight, SchedulerConfig, Scoring};
pub use error::Error;
pub use framework::{FitError, Framework, ScheduleError, ScheduleResult};
pub use scheduler::run;
pub use snapshot::{NodeInfo, PodInfo, Snapshot};
