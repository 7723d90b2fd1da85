//! The kubelet's HTTPS server (port 10250 by default) with the upstream kubelet's paths, which the
//! apiserver proxies `pods/log`, `pods/exec` and `pods/portforward` to:
//!
//! | path | what |
//! |---|---|
//! | `GET /containerLogs/{ns}/{pod}/{c}` | logs (`follow`, `tailLines`, `sinceSeconds`, ...) |
//! | `GET /exec/{ns}/{pod}/{c}?command=..` | WebSocket v5/v4 channel protocol (see [`stream`]) |
//! | `GET /portForward/{ns}/{pod}?ports=..` | WebSocket, one data and one error channel per port |
//! | `GET /metrics/resource` | CPU and memory in the Prometheus text format (see [`super::stats`]) |
//! | `GET /stats/summary` | the summary API subset metrics-server reads |
//! | `GET /healthz` | `ok` |
//!
//! TLS: a self-signed serving certificate for the node IP and name, made at start. When the
//! cluster CA is at hand (`KubeletConfig::client_ca_file`), every client must present a
//! certificate it signed (the apiserver does); without it, client certificates are not checked,
//! so the port must not be reachable by untrusted peers. There is no per-user authorization.

pub mod stream;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::container::container_id;
use super::logs::{self, LogOptions};
use super::sandbox;
use crate::runtime::Runtime;

/// Errors of the kubelet server's setup.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("failed to listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to make the kubelet serving certificate")]
    Certificate(#[source] rcgen::Error),
    #[error("failed to read the client CA {}", path.display())]
    ClientCa {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid client CA {}: {reason}", path.display())]
    InvalidClientCa { path: PathBuf, reason: String },
    #[error("invalid TLS configuration")]
    Tls(#[source] rustls::Error),
}

/// What the handlers need.
pub struct Context {
    pub client: kube::Client,
    /// The kubelet's data dir (`pods/<uid>/logs/...`).
    pub data_dir: PathBuf,
    pub runtime: Arc<dyn Runtime>,
    /// Where pod network namespaces are (`<netns_dir>/<pod uid>`, as `CniNetwork`).
    pub netns_dir: PathBuf,
    /// The node's name (stats).
    pub node_name: String,
    /// CPU samples for the summary's rates.
    pub rates: super::stats::Rates,
}

/// The roots of a PEM client CA file.
pub fn client_roots(path: &Path, pem: &str) -> Result<rustls::RootCertStore, ServerError> {
    let invalid = |reason: String| ServerError::InvalidClientCa { path: path.to_path_buf(), reason };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(cert.map_err(|e| invalid(e.to_string()))?).map_err(|e| invalid(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(invalid("no certificate in it".into()));
    }
    Ok(roots)
}

/// The TLS configuration: a fresh self-signed certificate for `node_ip` and `node_name`; with
/// `client_roots`, client certificates signed by one of them are required.
pub fn tls_config(
    node_ip: IpAddr,
    node_name: &str,
    client_roots: Option<rustls::RootCertStore>,
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let key = rcgen::KeyPair::generate().map_err(ServerError::Certificate)?;
    let mut names = vec![node_name.to_string(), "localhost".to_string()];
    names.retain(|n| !n.is_empty());
    let mut params = rcgen::CertificateParams::new(names).map_err(ServerError::Certificate)?;
    params.subject_alt_names.push(rcgen::SanType::IpAddress(node_ip));
    if !node_ip.is_loopback() {
        params.subject_alt_names.push(rcgen::SanType::IpAddress(IpAddr::from([127, 0, 0, 1])));
    }
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("{node_name}@kubelet"));
    let cert = params.self_signed(&key).map_err(ServerError::Certificate)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(ServerError::Tls)?;
    let builder = match client_roots {
        Some(roots) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| ServerError::Tls(rustls::Error::General(e.to_string())))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut config = builder.with_single_cert(vec![cert.der().clone()], key_der).map_err(ServerError::Tls)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Reads the client CA file when it exists (`Ok(None)` when it does not).
pub fn read_client_ca(path: &Path) -> Result<Option<String>, ServerError> {
    match std::fs::read_to_string(path) {
        Ok(pem) => Ok(Some(pem)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ServerError::ClientCa { path: path.to_path_buf(), source }),
    }
}

/// Binds the server's port (0: any free port; see `local_addr`).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })
}

/// Binds the kubelet port on the node IP (`config.kubelet_port`; 0 picks a free port and
/// `config.kubelet_port` becomes it). A failure is logged and the kubelet runs without server.
pub async fn listen(config: &mut super::KubeletConfig) -> Option<TcpListener> {
    let addr = SocketAddr::new(config.node_ip, config.kubelet_port);
    match bind(addr).await {
        Ok(listener) => {
            if let Ok(local) = listener.local_addr() {
                config.kubelet_port = local.port();
            }
            Some(listener)
        }
        Err(e) => {
            let error = super::error_chain(&e);
            tracing::error!(%error, "kubelet server disabled: logs, exec and stats are unavailable");
            None
        }
    }
}

/// Starts serving on `listener` (from [`listen`]) for the kubelet in `shared` until `cancel`.
pub fn spawn(shared: &Arc<super::Shared>, listener: Option<TcpListener>, cancel: CancellationToken) {
    let Some(listener) = listener else { return };
    let config = &shared.config;
    let roots = match config.client_ca_file.as_deref() {
        None => Ok(None),
        Some(path) => read_client_ca(path).and_then(|pem| pem.map(|pem| client_roots(path, &pem)).transpose()),
    };
    let tls = roots.and_then(|roots| {
        if roots.is_none() {
            tracing::warn!("kubelet server: no cluster CA at hand, client certificates are not checked");
        }
        tls_config(config.node_ip, &config.node_name, roots)
    });
    let tls = match tls {
        Ok(tls) => tls,
        Err(e) => {
            tracing::error!(error = %super::error_chain(&e), "kubelet server disabled");
            return;
        }
    };
    let ctx = Arc::new(Context {
        client: shared.client.clone(),
        data_dir: config.data_dir.clone(),
        runtime: shared.runtime.clone(),
        netns_dir: config.netns_dir.clone(),
        node_name: config.node_name.clone(),
        rates: Default::default(),
    });
    tracing::info!(addr = ?listener.local_addr().ok(), "kubelet server listening");
    tokio::spawn(serve(listener, tls, ctx, cancel));
}

/// The routes.
pub fn router(ctx: Arc<Context>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/containerLogs/{ns}/{pod}/{container}", get(container_logs))
        .route("/exec/{ns}/{pod}/{container}", get(stream::exec).post(stream::exec))
        .route("/portForward/{ns}/{pod}", get(stream::port_forward).post(stream::port_forward))
        .route("/metrics/resource", get(super::stats::metrics_resource))
        .route("/stats/summary", get(super::stats::summary))
        .with_state(ctx)
}

/// Serves HTTPS on `listener` until `cancel` fires.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    ctx: Arc<Context>,
    cancel: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let app = router(ctx);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "kubelet server: accept failed");
                    continue;
                }
            },
        };
        let (acceptor, app, cancel) = (acceptor.clone(), app.clone(), cancel.clone());
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "kubelet server: TLS handshake failed");
                    return;
                }
            };
            let service = TowerToHyperService::new(app);
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            tokio::select! {
                _ = cancel.cancelled() => {}
                result = conn => if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "kubelet server: connection ended");
                }
            }
        });
    }
}

/// A plain-text error response as the kubelet sends.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message.into()).into_response()
}

/// The decoded `key=value` pairs of a query string, in order (repeated keys kept).
pub fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    raw.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+` (form encoding) in a query component.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first value of `key`.
pub fn query_value<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A boolean query parameter: `true`/`1` (or present without a value).
pub fn query_flag(query: &[(String, String)], key: &str) -> bool {
    query_value(query, key).is_some_and(|v| matches!(v, "" | "true" | "1" | "True" | "TRUE"))
}

/// Looks a pod up; a 404 response when it does not exist.
pub(crate) async fn get_pod(ctx: &Context, ns: &str, name: &str) -> Result<Pod, Response> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    match api.get_opt(name).await {
        Ok(Some(pod)) => Ok(pod),
        Ok(None) => Err(error(StatusCode::NOT_FOUND, format!("pod \"{name}\" not found"))),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, format!("failed to get pod {ns}/{name}: {e}"))),
    }
}

/// Looks a pod up and checks it declares `container`; a 404 response when either is missing.
pub(crate) async fn get_pod_container(ctx: &Context, ns: &str, name: &str, container: &str) -> Result<Pod, Response> {
    let pod = get_pod(ctx, ns, name).await?;
    if !has_container(&pod, container) {
        return Err(error(StatusCode::NOT_FOUND, format!("container {container} is not valid for pod {name}")));
    }
    Ok(pod)
}

/// Whether `pod` declares a container (app, init or ephemeral) named `name`.
fn has_container(pod: &Pod, name: &str) -> bool {
    let Some(spec) = pod.spec.as_ref() else { return false };
    spec.containers.iter().any(|c| c.name == name)
        || spec.init_containers.iter().flatten().any(|c| c.name == name)
        || spec.ephemeral_containers.iter().flatten().any(|c| c.name == name)
}

/// Log options from the query of a `containerLogs` request.
pub fn log_options(query: &[(String, String)]) -> Result<(LogOptions, bool), String> {
    let number = |key: &str| -> Result<Option<i64>, String> {
        query_value(query, key)
            .filter(|v| !v.is_empty())
            .map(|v| v.parse::<i64>().map_err(|_| format!("invalid {key}: {v:?}")))
            .transpose()
    };
    let mut options = LogOptions {
        follow: query_flag(query, "follow"),
        tail_lines: number("tailLines")?,
        timestamps: query_flag(query, "timestamps"),
        limit_bytes: number("limitBytes")?.map(|n| u64::try_from(n).unwrap_or(0)),
        since: None,
    };
    if let Some(secs) = number("sinceSeconds")? {
        let span = jiff::SignedDuration::from_secs(secs.max(0));
        options.since = jiff::Timestamp::now().checked_sub(span).ok();
    }
    if let Some(t) = query_value(query, "sinceTime").filter(|v| !v.is_empty()) {
        options.since = Some(t.parse().map_err(|_| format!("invalid sinceTime: {t:?}"))?);
    }
    let previous = query_flag(query, "previous");
    if previous {
        options.follow = false;
    }
    Ok((options, previous))
}

/// The attempt whose log a request wants: the newest, or with `previous` the last terminated one
/// before the current (during a restart back-off the newest attempt is the terminated one).
pub fn pick_attempt(attempts: &[i32], previous: bool, waiting: bool) -> Option<i32> {
    match (previous, waiting) {
        (false, _) | (true, true) => attempts.last().copied(),
        (true, false) => attempts.iter().rev().nth(1).copied(),
    }
}

async fn container_logs(
    State(ctx): State<Arc<Context>>,
    UrlPath((ns, pod_name, container)): UrlPath<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = parse_query(raw.as_deref());
    let (options, previous) = match log_options(&query) {
        Ok(o) => o,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let pod = match get_pod_container(&ctx, &ns, &pod_name, &container).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let status = pod.status.as_ref().and_then(|s| {
        let all = s.container_statuses.iter().flatten().chain(s.init_container_statuses.iter().flatten());
        all.clone().find(|c| c.name == container).cloned()
    });
    let waiting = status.as_ref().and_then(|s| s.state.as_ref()).is_some_and(|s| s.waiting.is_some());
    let dir = sandbox::pod_dir(&ctx.data_dir, &uid).join("logs").join(&container);
    let attempts = logs::attempts(&dir);
    let Some(attempt) = pick_attempt(&attempts, previous, waiting) else {
        let message = if previous {
            format!("previous terminated container \"{container}\" in pod \"{pod_name}\" not found")
        } else {
            let reason = status
                .as_ref()
                .and_then(|s| s.state.as_ref())
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.clone())
                .unwrap_or_else(|| "ContainerCreating".into());
            format!("container \"{container}\" in pod \"{pod_name}\" is waiting to start: {reason}")
        };
        return error(StatusCode::BAD_REQUEST, message);
    };
    let log = sandbox::log_path(&sandbox::pod_dir(&ctx.data_dir, &uid), &container, attempt);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let finished = Arc::new(AtomicBool::new(!options.follow || attempts.last() != Some(&attempt)));
    if !finished.load(Ordering::SeqCst) {
        // The newest attempt is the runtime's current container: follow ends when it exits
        // (the runtime's wait returns once its output is in the log).
        let (runtime, flag, closed, id) =
            (ctx.runtime.clone(), finished.clone(), tx.clone(), container_id(&uid, &container));
        tokio::spawn(async move {
            tokio::select! {
                _ = runtime.wait(&id) => flag.store(true, Ordering::SeqCst),
                _ = closed.closed() => {}
            }
        });
    }
    tokio::task::spawn_blocking(move || {
        let tx2 = tx.clone();
        let done = move || finished.load(Ordering::SeqCst) || tx2.is_closed();
        let send = |bytes: Vec<u8>| {
            tx.blocking_send(Bytes::from(bytes)).map_err(|_| std::io::Error::other("client went away"))
        };
        if let Err(e) = logs::stream(&log, &options, done, send) {
            tracing::debug!(log = %log.display(), error = %e, "log stream ended");
        }
    });
    let body =
        futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|b| (Ok::<Bytes, std::io::Error>(b), rx)) },
        );
    let mut resp = Response::new(Body::from_stream(body));
    resp.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_repeated_keys_and_escapes() {
        let q = parse_query(Some("command=sh&command=-c&command=echo+hi%20there%21&stdin=true&tty"));
        let commands: Vec<&str> = q.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.as_str()).collect();
        assert_eq!(commands, ["sh", "-c", "echo hi there!"]);
        assert!(query_flag(&q, "stdin"));
        assert!(query_flag(&q, "tty"));
        assert!(!query_flag(&q, "stdout"));
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%2"), "%2");
    }

    #[test]
    fn log_options_follow_kubectl_parameters() {
        let q = parse_query(Some("container=c&follow=true&tailLines=5&timestamps=true&limitBytes=100"));
        let (o, previous) = log_options(&q).unwrap();
        assert!(o.follow && o.timestamps && !previous);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(5), Some(100)));
        let (o, previous) = log_options(&parse_query(Some("previous=true&follow=true&sinceSeconds=10"))).unwrap();
        assert!(previous && !o.follow, "previous logs are never followed");
        let since = o.since.unwrap();
        let age = jiff::Timestamp::now().duration_since(since).as_secs();
        assert!((9..=11).contains(&age), "{age}");
        assert!(log_options(&parse_query(Some("tailLines=x"))).is_err());
        let (o, _) = log_options(&parse_query(Some("sinceTime=2026-11-22T07%3A00%3A00Z"))).unwrap();
        assert_eq!(o.since.unwrap().to_string(), "2026-11-22T07:00:00Z");
    }

    #[test]
    fn previous_is_the_attempt_before_the_current_one() {
        assert_eq!(pick_attempt(&[0, 1, 2], false, false), Some(2));
        assert_eq!(pick_attempt(&[0, 1, 2], true, false), Some(1));
        // Waiting in back-off: the newest attempt is the last terminated one.
        assert_eq!(pick_attempt(&[0, 1, 2], true, true), Some(2));
        assert_eq!(pick_attempt(&[0], true, false), None);
        assert_eq!(pick_attempt(&[], false, false), None);
    }
}
