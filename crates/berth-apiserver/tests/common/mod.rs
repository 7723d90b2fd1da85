//! Test harness: a real apiserver on 127.0.0.1:0 with a temporary data dir, and kube clients
//! built from the kubeconfig it writes. Dropping the harness stops the server and removes the dir.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use berth_apiserver::{Config, Server};
use http::Request;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A running server; stopped (and its data dir removed) on drop.
pub struct TestServer {
    pub server: Option<Server>,
    pub cancel: CancellationToken,
    pub dir: tempfile::TempDir,
    pub client: Client,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The apiserver config for tests: loopback, port 0, fast bookmarks.
pub fn test_config(dir: &Path) -> Config {
    let mut config = Config::new(dir.to_path_buf());
    config.https_port = 0;
    config.watch_bookmark_interval = Duration::from_millis(500);
    config
}

/// A kube client from a kubeconfig file.
pub async fn client_from(path: &Path) -> Client {
    let kc = Kubeconfig::read_from(path).expect("read kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("kube config");
    Client::try_from(cfg).expect("client")
}

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir).await
    }

    pub async fn start_in(dir: tempfile::TempDir) -> TestServer {
        let cancel = CancellationToken::new();
        let server = Server::start(test_config(dir.path()), cancel.clone()).await.expect("server starts");
        let client = client_from(server.kubeconfig_path()).await;
        TestServer { server: Some(server), cancel, dir, client }
    }

    /// Stops the server and waits for it, keeping the data dir.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.cancel.cancel();
        if let Some(s) = self.server.take() {
            s.wait().await;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, dir)
    }

    pub fn url(&self) -> String {
        self.server.as_ref().map(|s| s.url()).unwrap_or_default()
    }

    /// A raw request through the authenticated client: (status, body as JSON or string, content type).
    pub async fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, Value, String) {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(kube::client::Body::from(body)).expect("request");
        let resp = self.client.send(req).await.expect("send");
        let status = resp.status().as_u16();
        let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.expect("body").to_bytes();
        let v =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, v, ct)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (s, v, _) = self.raw("GET", path, &[], Vec::new()).await;
        (s, v)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let (s, v, _) =
            self.raw("POST", path, &[("content-type", "application/json")], serde_json::to_vec(body).unwrap()).await;
        (s, v)
    }
}

/// Polls `f` until it returns `Some`, or panics after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "condition not met within {secs}s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
