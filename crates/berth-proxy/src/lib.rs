//! berth-proxy: the service proxy of every node. Watches Services and EndpointSlices and programs
//! them into one nftables table owned by Berth, updated atomically (one `nft -f` transaction) on
//! each sync. Touches the host's nftables, routes and `route_localnet` sysctls; never the store.
//!
//! - [`service_port`]: Services and EndpointSlices → [`ServicePort`]s (pure).
//! - [`ruleset`]: [`ServicePort`]s → the table's `nft -f` text (pure).
//! - [`host`]: applies it (`nft`, `ip`, `sysctl`), in the host or a named netns.
//! - [`run`]: the watch → debounce → render → apply loop.
#![forbid(unsafe_code)]

pub mod config;
pub mod host;
mod proxier;
pub mod ruleset;
pub mod service_port;
pub mod testing;

pub use config::{BlackholeRoute, Ipv4Cidr, ProxyConfig, RouteLocalnet};
pub use host::Host;
pub use proxier::{render_state, run, run_on};
pub use ruleset::{RenderOptions, render};
pub use service_port::{Endpoint, Protocol, ServicePort, service_ports};

/// Why the proxy failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid IPv4 CIDR {0:?}")]
    InvalidCidr(String),
    #[error("failed to run {command}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed ({status}): {stderr}")]
    Command { command: String, status: String, stderr: String },
}
