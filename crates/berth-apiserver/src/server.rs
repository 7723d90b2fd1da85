//! Starting and stopping the apiserver: store, PKI, kubeconfig, listener, bootstrap, readiness.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_api::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::authn::{Authenticator, TokenFileError};
use crate::bootstrap::{self, BootstrapError};
use crate::health::{Health, Readiness};
use crate::metrics::Metrics;
use crate::pki::{self, PkiError};
use crate::state::AppState;

/// Why the apiserver could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("failed to bind {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to open the datastore {datastore:?}")]
    OpenStore {
        datastore: crate::Datastore,
        #[source]
        source: berth_store::StoreError,
    },
    #[error("failed to prepare certificates in {dir}")]
    Pki {
        dir: PathBuf,
        #[source]
        source: PkiError,
    },
    #[error("failed to write the kubeconfig {path}")]
    WriteKubeconfig {
        path: PathBuf,
        #[source]
        source: PkiError,
    },
    #[error("failed to load the token auth file")]
    TokenFile(#[source] TokenFileError),
    #[error("bootstrap failed")]
    Bootstrap(#[source] BootstrapError),
    #[error("failed to prepare the join token")]
    NodeToken(#[source] crate::node_token::NodeTokenError),
    #[error("the certificate task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// A running apiserver.
pub struct Server {
    addr: SocketAddr,
    kubeconfig: PathBuf,
    cancel: CancellationToken,
    task: JoinHandle<()>,
    store: Arc<dyn berth_store::Store>,
    node_token: crate::node_token::NodeToken,
    node_token_path: PathBuf,
}

/// How often old revisions are compacted (kube-apiserver's `--etcd-compaction-interval`).
pub const COMPACTION_INTERVAL: Duration = Duration::from_secs(300);

/// Compacts, every `interval`, up to the revision seen one interval earlier, so watches and
/// continue tokens stay valid for at least one interval (as kube-apiserver does).
async fn compact_periodically(store: Arc<dyn berth_store::Store>, interval: Duration, cancel: CancellationToken) {
    let mut previous: Option<berth_store::Revision> = None;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        match store.current_revision().await {
            Ok(current) => {
                if let Some(rev) = previous.filter(|r| *r > 0) {
                    match store.compact(rev).await {
                        Ok(()) => tracing::debug!(revision = rev, "compacted"),
                        Err(e) => {
                            tracing::warn!(revision = rev, error = %crate::error::error_chain(&e), "compaction failed")
                        }
                    }
                }
                previous = Some(current);
            }
            Err(e) => tracing::warn!(error = %crate::error::error_chain(&e), "reading the current revision failed"),
        }
    }
}

/// The address clients should use for a bind address (`0.0.0.0` -> loopback).
fn client_ip(bind: IpAddr) -> IpAddr {
    if bind.is_unspecified() {
        if bind.is_ipv4() { IpAddr::from([127, 0, 0, 1]) } else { IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]) }
    } else {
        bind
    }
}

impl Server {
    /// Opens the store, creates certificates and the admin kubeconfig on first start, bootstraps
    /// the default namespaces and the `kubernetes` Service, and starts serving. Returns once the
    /// listener is bound and /readyz would answer ok.
    pub async fn start(config: Config, cancel: CancellationToken) -> Result<Server, ServerError> {
        pki::install_crypto_provider();
        let store = berth_store::open(&config.datastore)
            .await
            .map_err(|source| ServerError::OpenStore { datastore: config.datastore.clone(), source })?;
        let addr = SocketAddr::new(config.bind_address, config.https_port);
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })?;
        let local = listener.local_addr().map_err(|source| ServerError::Bind { addr, source })?;
        let ip = client_ip(local.ip());
        let url = format!("https://{}", SocketAddr::new(ip, local.port()));

        let mut sans = config.tls_san.clone();
        sans.push(ip.to_string());
        if !config.bind_address.is_unspecified() {
            sans.push(config.bind_address.to_string());
        }
        let data_dir = config.data_dir.clone();
        let pki = tokio::task::spawn_blocking(move || pki::ensure_pki(&data_dir, &sans))
            .await
            .map_err(ServerError::Task)?
            .map_err(|source| ServerError::Pki { dir: config.data_dir.clone(), source })?;
        let kubeconfig = config.data_dir.join("kubeconfig.yaml");
        pki::write_kubeconfig(&kubeconfig, &url, &pki, pki::ADMIN_USER)
            .map_err(|source| ServerError::WriteKubeconfig { path: kubeconfig.clone(), source })?;
        let mut authn =
            Authenticator::from_token_file(config.token_auth_file.as_deref()).map_err(ServerError::TokenFile)?;
        let node_token_path = crate::node_token::token_path(&config.data_dir);
        let node_token = crate::node_token::ensure(&node_token_path, pki.ca_pem()).map_err(ServerError::NodeToken)?;
        authn.add_token(node_token.secret.clone(), crate::node_token::NodeToken::user());

        let registry = crate::crd::RegistryHandle::new(Registry::builtin());
        bootstrap::run(store.as_ref(), &registry.get(), &config.service_cidr, ip, local.port())
            .await
            .map_err(ServerError::Bootstrap)?;
        crate::crd::sync(store.as_ref(), &registry)
            .await
            .map_err(|source| ServerError::OpenStore { datastore: config.datastore.clone(), source })?;

        let readiness = Readiness::new();
        let health = Health::new(readiness.clone());
        let metrics = Metrics::new();
        let state = AppState {
            store: store.clone(),
            registry,
            server_address: SocketAddr::new(ip, local.port()).to_string(),
            bookmark_interval: config.watch_bookmark_interval,
            service_cidr: config.service_cidr.clone(),
            cluster_cidr: config.cluster_cidr.clone(),
            kubelet_tls: pki
                .issue_client_cert(crate::kubelet::KUBELET_CLIENT_USER, &[pki::ADMIN_GROUP.to_string()])
                .ok()
                .and_then(|c| crate::kubelet::client_config(&c.cert_pem, &c.key_pem)),
            metrics_api: crate::metrics_api::MetricsApi::default(),
            cancel: cancel.clone(),
        };
        crate::metrics_api::collector::spawn(state.clone(), state.metrics_api.clone(), config.metrics_resolution);
        let app = crate::router::build(state, health, metrics, Arc::new(authn))
            .merge(crate::node_token::routes(pki.ca_pem().to_string()));
        let task = tokio::spawn(crate::tls::serve_tls(listener, pki.server_config(), app, cancel.clone()));
        tokio::spawn(compact_periodically(store.clone(), COMPACTION_INTERVAL, cancel.clone()));
        readiness.set_ready(true);
        {
            // /readyz fails from the moment shutdown starts, so load balancers drain first.
            let (readiness, cancel) = (readiness.clone(), cancel.clone());
            tokio::spawn(async move {
                cancel.cancelled().await;
                readiness.set_shutting_down();
            });
        }
        tracing::info!(%url, "apiserver ready");
        Ok(Server {
            addr: SocketAddr::new(ip, local.port()),
            kubeconfig,
            cancel,
            task,
            store,
            node_token,
            node_token_path,
        })
    }

    /// The store this server writes to (for maintenance such as compaction, and tests).
    pub fn store(&self) -> Arc<dyn berth_store::Store> {
        self.store.clone()
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The join token agents use (`berth agent --token`).
    pub fn node_token(&self) -> &crate::node_token::NodeToken {
        &self.node_token
    }

    /// Where the join token is written (DATA_DIR/server/token).
    pub fn node_token_path(&self) -> &std::path::Path {
        &self.node_token_path
    }

    /// The admin kubeconfig (DATA_DIR/kubeconfig.yaml).
    pub fn kubeconfig_path(&self) -> &std::path::Path {
        &self.kubeconfig
    }

    /// Waits until the server stops (its cancellation token fired and connections drained).
    pub async fn wait(self) {
        self.cancel.cancelled().await;
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_store::{RangeRequest, StoreError};

    #[tokio::test]
    async fn periodic_compaction_forgets_revisions_older_than_one_interval() {
        let dir = tempfile::tempdir().unwrap();
        let store = berth_store::open(&crate::Datastore::Sqlite(dir.path().join("state.db"))).await.unwrap();
        store.create("/registry/core/configmaps/default/a", b"{}".to_vec()).await.unwrap();
        let old = store.current_revision().await.unwrap();
        store.create("/registry/core/configmaps/default/b", b"{}".to_vec()).await.unwrap();
        let cancel = CancellationToken::new();
        let _stop = cancel.clone().drop_guard();
        tokio::spawn(compact_periodically(store.clone(), Duration::from_millis(20), cancel.clone()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            // Keep writing so each interval sees a newer revision to compact up to later.
            store
                .create(&format!("/registry/core/configmaps/default/x{}", rand::random::<u32>()), b"{}".to_vec())
                .await
                .unwrap();
            let read = store
                .range(RangeRequest { prefix: "/registry/".into(), revision: Some(old), ..Default::default() })
                .await;
            if matches!(read, Err(StoreError::Compacted { .. })) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "never compacted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
