//! berth-autoscaler: the cluster autoscaler. Node groups declared in a config file (min/max size
//! and a node template) grow when pods are unschedulable for lack of resources and a template node
//! would fit them (the scheduler's own filters decide), and shrink when a node stays under the
//! utilization threshold and its pods fit elsewhere. Nodes come and go through a [`NodeProvider`]:
//! `sim` (sim nodes in this process) or `local` (`berth agent` processes on this machine).
//! An API client; never touches the store.
//!
//! | module | what it does |
//! |---|---|
//! | [`config`] | the config file: node groups, templates, thresholds and delays |
//! | [`plan`] | pure decisions: which group grows by how much, which nodes are unneeded |
//! | [`provider`] | the [`NodeProvider`] trait and its `sim` and `local` implementations |
//! | [`controller`] | the loop: observe, decide, act, and report (status ConfigMap, events) |
#![deny(unsafe_code)]

pub mod config;
pub mod controller;
pub mod plan;
pub mod provider;

pub use config::{AutoscalerConfig, ConfigError, NodeGroupConfig};
pub use controller::run;
pub use provider::{NodeProvider, ProviderError};
