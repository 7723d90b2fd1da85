//! How `berth server` configures the apiserver (flag names follow k3s where they exist).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where objects are stored (berth-store's endpoint forms).
pub use berth_store::Datastore;

/// Apiserver configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Certificates, kubeconfig and the SQLite database live here.
    pub data_dir: PathBuf,
    pub bind_address: IpAddr,
    /// 0 picks a free port (tests); the chosen port is in `Server::url`.
    pub https_port: u16,
    pub datastore: Datastore,
    /// Static bearer tokens in kube-apiserver's CSV format: `token,user,uid,"group1,group2"`.
    pub token_auth_file: Option<PathBuf>,
    /// Extra subject alternative names for the serving certificate.
    pub tls_san: Vec<String>,
    /// Service ClusterIP range (the `kubernetes` Service gets its first address).
    pub service_cidr: String,
    /// Pod network range; a Node created without `spec.podCIDR` gets the next free /24 of it.
    pub cluster_cidr: String,
    /// How often an idle watch that allows bookmarks gets a BOOKMARK event (upstream: ~1 min).
    pub watch_bookmark_interval: Duration,
    /// How often the embedded metrics collector scrapes the kubelets (metrics-server's
    /// `--metric-resolution`, default 15 s).
    pub metrics_resolution: Duration,
}

impl Config {
    /// Defaults for a data dir: bind 127.0.0.1:6443, SQLite under DATA_DIR/db.
    pub fn new(data_dir: PathBuf) -> Self {
        let db = data_dir.join("db").join("state.db");
        Config {
            data_dir,
            bind_address: IpAddr::from([127, 0, 0, 1]),
            https_port: 6443,
            datastore: Datastore::Sqlite(db),
            token_auth_file: None,
            tls_san: Vec::new(),
            service_cidr: "10.43.0.0/16".to_string(),
            cluster_cidr: "10.42.0.0/16".to_string(),
            watch_bookmark_interval: Duration::from_secs(60),
            metrics_resolution: crate::metrics_api::collector::DEFAULT_RESOLUTION,
        }
    }
}
