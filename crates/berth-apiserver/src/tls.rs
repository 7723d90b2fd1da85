//! The HTTPS accept loop: tokio-rustls for TLS, hyper-util's auto builder for HTTP/2 and
//! HTTP/1.1 (with upgrades, which exec and port-forward need), and the per-connection identity
//! from the verified client certificate, attached to every request as [`ConnInfo`]. `axum::serve`
//! has no TLS, hence this file. Touches only the listener and connections it is given.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::authn::UserInfo;

/// How long a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connections get to finish in-flight requests after cancellation. Watches and log
/// follows never finish on their own, so the rest are aborted after this.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Per-connection facts, inserted into every request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    pub remote_addr: SocketAddr,
    /// The user named by the verified client certificate: CN = name, each O = a group.
    pub client_cert_user: Option<UserInfo>,
}

/// Serves `app` over TLS on `listener` until `cancel` fires, then stops accepting, asks every
/// connection to finish gracefully, and aborts those still open after [`SHUTDOWN_GRACE`].
/// Failed handshakes are logged at debug level and never stop the loop. Besides [`ConnInfo`],
/// each request carries `axum::extract::ConnectInfo<SocketAddr>`.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: axum::Router,
    cancel: CancellationToken,
) {
    serve_tls_with_grace(listener, tls, app, cancel, SHUTDOWN_GRACE).await;
}

/// [`serve_tls`] with a chosen shutdown grace period.
pub async fn serve_tls_with_grace(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: axum::Router,
    cancel: CancellationToken,
    grace: Duration,
) {
    crate::pki::install_crypto_provider();
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, remote_addr)) => {
                    let _ = tcp.set_nodelay(true);
                    conns.spawn(serve_connection(
                        tcp,
                        remote_addr,
                        acceptor.clone(),
                        app.clone(),
                        graceful.watcher(),
                        cancel.clone(),
                    ));
                }
                Err(err) => {
                    // Typically EMFILE: back off briefly instead of spinning on the error.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            },
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::debug!(open = conns.len(), "connections still open after the grace period; aborting them");
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    remote_addr: SocketAddr,
    acceptor: TlsAcceptor,
    app: axum::Router,
    watcher: hyper_util::server::graceful::Watcher,
    cancel: CancellationToken,
) {
    let stream = tokio::select! {
        () = cancel.cancelled() => return,
        res = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => match res {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                tracing::debug!(%remote_addr, error = %err, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%remote_addr, "TLS handshake timed out");
                return;
            }
        },
    };
    let client_cert_user =
        stream.get_ref().1.peer_certificates().and_then(|certs| certs.first()).and_then(|der| user_from_cert(der));
    let info = ConnInfo { remote_addr, client_cert_user };
    let service = hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(info.clone());
        req.extensions_mut().insert(axum::extract::ConnectInfo(remote_addr));
        app.clone().oneshot(req)
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    if let Err(err) = watcher.watch(conn).await {
        tracing::debug!(%remote_addr, error = %err, "connection ended with an error");
    }
}

/// The user a (chain-verified) client certificate names: CN = name, O = groups. `None` without CN.
pub fn user_from_cert(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    if name.is_empty() {
        return None;
    }
    let groups = subject.iter_organization().filter_map(|o| o.as_str().ok()).map(String::from).collect();
    Some(UserInfo { name, uid: String::new(), groups })
}

#[cfg(test)]
mod tests;
