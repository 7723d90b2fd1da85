//! Round trips through `serve_tls` with a rustls client trusting the generated CA.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::pki::{Pki, ensure_pki};

const TEST_GRACE: Duration = Duration::from_millis(300);

async fn whoami(Extension(info): Extension<ConnInfo>) -> String {
    match info.client_cert_user {
        Some(u) => format!("{}|{}", u.name, u.groups.join(",")),
        None => "anonymous".to_string(),
    }
}

/// A running `serve_tls` on 127.0.0.1:0; cancelled (and its task awaited) on drop of the guard.
struct TestServer {
    addr: SocketAddr,
    /// Notified when a request reaches `/hang`.
    hanging: Arc<tokio::sync::Notify>,
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
    pki: Pki,
}

impl TestServer {
    async fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = ensure_pki(dir.path(), &[]).expect("pki");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cancel = CancellationToken::new();
        let hanging = Arc::new(tokio::sync::Notify::new());
        let entered = hanging.clone();
        let app = axum::Router::new().route("/whoami", get(whoami)).route(
            "/hang",
            get(move || async move {
                entered.notify_one();
                std::future::pending::<String>().await
            }),
        );
        let task = tokio::spawn(serve_tls_with_grace(listener, pki.server_config(), app, cancel.clone(), TEST_GRACE));
        TestServer { addr, hanging, cancel, task: Some(task), _dir: dir, pki }
    }

    fn client_config(&self, with_admin_cert: bool, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(self.pki.ca_pem().as_bytes()).expect("ca der")).expect("add ca");
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let mut config = if with_admin_cert {
            let cert = CertificateDer::from_pem_slice(self.pki.admin().cert_pem.as_bytes()).expect("cert");
            let key = PrivateKeyDer::from_pem_slice(self.pki.admin().key_pem.as_bytes()).expect("key");
            builder.with_client_auth_cert(vec![cert], key).expect("client auth")
        } else {
            builder.with_no_client_auth()
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    async fn connect(
        &self,
        with_admin_cert: bool,
        alpn: &[&[u8]],
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.expect("connect");
        let connector = tokio_rustls::TlsConnector::from(self.client_config(with_admin_cert, alpn));
        connector.connect(ServerName::try_from("localhost").expect("name"), tcp).await.expect("tls handshake")
    }

    async fn get_http1(&self, with_admin_cert: bool, path: &str) -> (http::StatusCode, String) {
        let stream = self.connect(with_admin_cert, &[b"http/1.1"]).await;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("http1 handshake");
        tokio::spawn(conn);
        let req = http::Request::get(path).header("host", "localhost").body(Empty::<bytes::Bytes>::new()).expect("req");
        let resp = sender.send_request(req).await.expect("response");
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn stop(mut self) -> Result<(), tokio::time::error::Elapsed> {
        self.cancel.cancel();
        let task = self.task.take().expect("task");
        tokio::time::timeout(TEST_GRACE + Duration::from_secs(5), task).await.map(|r| r.expect("no panic"))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[tokio::test]
async fn admin_client_cert_is_verified_and_attached_as_conn_info_user() {
    let server = TestServer::start().await;
    let (status, body) = server.get_http1(true, "/whoami").await;
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(body, "system:admin|system:masters");
    server.stop().await.expect("stops in time");
}

#[tokio::test]
async fn client_without_certificate_is_served_anonymously() {
    let server = TestServer::start().await;
    let (status, body) = server.get_http1(false, "/whoami").await;
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(body, "anonymous");
}

#[tokio::test]
async fn alpn_h2_negotiates_http2() {
    let server = TestServer::start().await;
    let stream = server.connect(true, &[b"h2", b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.expect("h2");
    tokio::spawn(conn);
    let req = http::Request::get("https://localhost/whoami").body(Empty::<bytes::Bytes>::new()).expect("req");
    let resp = sender.send_request(req).await.expect("response");
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], b"system:admin|system:masters");
}

#[tokio::test]
async fn client_cert_from_another_ca_is_rejected() {
    let server = TestServer::start().await;
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = ensure_pki(other_dir.path(), &[]).expect("other pki");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(server.pki.ca_pem().as_bytes()).expect("ca")).expect("add");
    let cert = CertificateDer::from_pem_slice(other.admin().cert_pem.as_bytes()).expect("cert");
    let key = PrivateKeyDer::from_pem_slice(other.admin().key_pem.as_bytes()).expect("key");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![cert], key)
        .expect("client auth");
    let tcp = tokio::net::TcpStream::connect(server.addr).await.expect("connect");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    // In TLS 1.3 the client learns of the rejection on its first read.
    let result = async {
        let mut stream = connector.connect(ServerName::try_from("localhost").expect("name"), tcp).await?;
        stream.write_all(b"GET /whoami HTTP/1.1\r\nhost: localhost\r\n\r\n").await?;
        let mut buf = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    }
    .await;
    assert!(result.is_err(), "a foreign client certificate must fail the handshake: {result:?}");
    // And the server keeps serving.
    assert_eq!(server.get_http1(true, "/whoami").await.1, "system:admin|system:masters");
}

#[tokio::test]
async fn failed_handshake_does_not_stop_the_accept_loop() {
    let server = TestServer::start().await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.expect("connect");
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("write plaintext");
    let mut buf = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut buf).await;
    let (status, body) = server.get_http1(true, "/whoami").await;
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(body, "system:admin|system:masters");
}

#[tokio::test]
async fn cancel_stops_accepting_and_ends_hanging_connections_within_the_grace_period() {
    let server = TestServer::start().await;
    let stream = server.connect(true, &[b"http/1.1"]).await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    let conn_task = tokio::spawn(conn);
    let req = http::Request::get("/hang").header("host", "localhost").body(Empty::<bytes::Bytes>::new()).expect("req");
    let pending = tokio::spawn(async move { sender.send_request(req).await });
    tokio::time::timeout(Duration::from_secs(5), server.hanging.notified()).await.expect("request reached the handler");
    let addr = server.addr;
    let started = tokio::time::Instant::now();
    server.stop().await.expect("serve_tls returns after the grace period");
    let took = started.elapsed();
    assert!(took >= TEST_GRACE, "in-flight requests get the grace period: {took:?}");
    assert!(took < TEST_GRACE + Duration::from_secs(3), "{took:?}");
    let outcome = tokio::time::timeout(Duration::from_secs(5), pending).await.expect("request ends").expect("join");
    assert!(outcome.is_err(), "the hanging request is cut off");
    conn_task.abort();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "listener closed");
}

#[test]
fn user_from_cert_reads_cn_and_organizations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = ensure_pki(dir.path(), &[]).expect("pki");
    let issued = pki.issue_client_cert("bob", &["devs".to_string()]).expect("issue");
    let der = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).expect("der");
    assert_eq!(user_from_cert(&der), Some(UserInfo::new("bob", ["devs"])));
    assert_eq!(user_from_cert(b"not a certificate"), None);
}

#[tokio::test]
async fn kube_client_from_written_kubeconfig_reaches_version_over_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = ensure_pki(dir.path(), &[]).expect("pki");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let app = axum::Router::new().route("/version", get(crate::version::handler));
    tokio::spawn(serve_tls_with_grace(listener, pki.server_config(), app, cancel.clone(), TEST_GRACE));

    let path = dir.path().join("kubeconfig.yaml");
    crate::pki::write_kubeconfig(&path, &format!("https://{addr}"), &pki, crate::pki::ADMIN_USER).expect("kubeconfig");
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(config).expect("client");
    let info = tokio::time::timeout(Duration::from_secs(10), client.apiserver_version())
        .await
        .expect("in time")
        .expect("version over TLS with the admin cert");
    assert_eq!((info.major.as_str(), info.minor.as_str()), ("1", "33"));
    assert_eq!(info.git_version, crate::version::GIT_VERSION);
}
