//! Test support (feature `testing`): a real apiserver on 127.0.0.1:0 in a temporary data dir, and a
//! kube client built from the admin kubeconfig it writes, for the test suites of the crates that
//! are its clients (controllers, scheduler, agent). Dropping it stops the server and removes the dir.

use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio_util::sync::CancellationToken;

use crate::{Config, Server};

/// A running in-process apiserver with an admin client.
pub struct TestApiServer {
    pub client: kube::Client,
    /// The client's configuration, to build clients with other settings.
    pub config: kube::Config,
    /// Cancelled on drop; components under test should run under a child of it.
    pub cancel: CancellationToken,
    _server: Server,
    _dir: tempfile::TempDir,
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl TestApiServer {
    /// Starts an apiserver with the test defaults (loopback, port 0, SQLite in the temp dir).
    pub async fn start() -> TestApiServer {
        Self::start_with(|_| {}).await
    }

    /// Starts an apiserver after `adjust` has changed the test defaults.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestApiServer {
        crate::pki::install_crypto_provider();
        let dir = tempfile::tempdir().expect("create a temp data dir");
        let mut cfg = Config::new(dir.path().to_path_buf());
        cfg.https_port = 0;
        adjust(&mut cfg);
        let cancel = CancellationToken::new();
        let server = Server::start(cfg, cancel.child_token()).await.expect("the apiserver starts");
        let kc = Kubeconfig::read_from(server.kubeconfig_path()).expect("read the admin kubeconfig");
        let config =
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("kube config");
        let client = kube::Client::try_from(config.clone()).expect("kube client");
        TestApiServer { client, config, cancel, _server: server, _dir: dir }
    }
}
