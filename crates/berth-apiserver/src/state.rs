//! The state every handler shares: the store, the registry and serving parameters.

use std::sync::Arc;
use std::time::Duration;

use berth_store::Store;
use tokio_util::sync::CancellationToken;

/// Shared by all handlers (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub registry: crate::crd::RegistryHandle,
    /// `host:port` clients reach us at (for `serverAddressByClientCIDRs`).
    pub server_address: String,
    /// How often an idle watch with `allowWatchBookmarks` gets a BOOKMARK.
    pub bookmark_interval: Duration,
    /// The Service ClusterIP range.
    pub service_cidr: String,
    /// The pod network range Nodes get their `spec.podCIDR` from.
    pub cluster_cidr: String,
    /// TLS client configuration for connections to kubelets (pods/log).
    pub kubelet_tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// The resource metrics `metrics.k8s.io` serves (filled by its collector).
    pub metrics_api: crate::metrics_api::MetricsApi,
    /// Fires on shutdown: long-running watches end.
    pub cancel: CancellationToken,
}
