//! `pods/log`: proxied to the kubelet of the pod's node as kube-apiserver does, over HTTPS to
//! `status.daemonEndpoints.kubeletEndpoint.Port` (default 10250) at the node's InternalIP,
//! path `/containerLogs/{namespace}/{pod}/{container}`, with the query passed on. The apiserver
//! authenticates with a client certificate of the cluster CA; like kube-apiserver without
//! `--kubelet-certificate-authority`, it does not verify the kubelet's serving certificate.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde_json::Value;

use crate::error::ApiError;
use crate::object::meta_str;
use crate::resource::Ctx;

/// The kubelet's default port.
pub const DEFAULT_KUBELET_PORT: i64 = 10250;

/// The user the apiserver presents to kubelets.
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";

/// Accepts any kubelet serving certificate (signatures are still checked).
#[derive(Debug)]
struct AcceptAnyKubelet(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyKubelet {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS client configuration for kubelet connections, from a client certificate and key (PEM).
pub fn client_config(cert_pem: &str, key_pem: &str) -> Option<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<_, _>>().ok()?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).ok()?;
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyKubelet(provider)))
        .with_client_auth_cert(certs, key)
        .ok()?;
    Some(Arc::new(config))
}

/// The node's address and kubelet port.
pub(crate) fn kubelet_endpoint(node: &Value) -> Option<(String, i64)> {
    let addrs = node["status"]["addresses"].as_array()?;
    let pick = |t: &str| addrs.iter().find(|a| a["type"] == t).and_then(|a| a["address"].as_str());
    let addr = pick("InternalIP").or_else(|| pick("ExternalIP")).or_else(|| pick("Hostname"))?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_i64().filter(|p| *p > 0);
    Some((addr.to_string(), port.unwrap_or(DEFAULT_KUBELET_PORT)))
}

/// `GET pods/{name}/log`.
pub async fn pod_log(ctx: &Ctx<'_>, name: &str, raw_query: Option<&str>) -> Result<Response, ApiError> {
    let (pod, container, node) = locate(ctx, name, true).await?;
    let ns = meta_str(&pod, "namespace").unwrap_or_default().to_string();
    let node_name = node_name(&node);
    let (addr, port) = kubelet_endpoint(&node)
        .ok_or_else(|| ApiError::bad_request(format!("node {node_name} has no address to reach its kubelet")))?;
    let tls = ctx.state.kubelet_tls.clone().ok_or_else(|| ApiError::internal("no kubelet client certificate"))?;
    let path = match raw_query.filter(|q| !q.is_empty()) {
        Some(q) => format!("/containerLogs/{ns}/{name}/{container}?{q}"),
        None => format!("/containerLogs/{ns}/{name}/{container}"),
    };
    proxy_get(tls, &addr, port, &path).await
}

/// One HTTPS GET to a kubelet, its body streamed back.
pub(crate) async fn proxy_get(
    tls: Arc<rustls::ClientConfig>,
    addr: &str,
    port: i64,
    path: &str,
) -> Result<Response, ApiError> {
    let target = format!("{addr}:{port}");
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        ApiError::internal(format!("Get \"https://{target}{path}\": {what}: {e}"))
    };
    let tcp = tokio::net::TcpStream::connect(&target).await.map_err(|e| fail("dial tcp", &e))?;
    let server_name = ServerName::try_from(addr.to_string()).map_err(|e| fail("server name", &e))?;
    let stream = tokio_rustls::TlsConnector::from(tls).connect(server_name, tcp).await.map_err(|e| fail("tls", &e))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| fail("http", &e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::get(path)
        .header(header::HOST, target.as_str())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| fail("request", &e))?;
    let resp = sender.send_request(req).await.map_err(|e| fail("request", &e))?;
    let status = resp.status();
    if !status.is_success() {
        let body = http_body_util::BodyExt::collect(resp.into_body()).await.map(|b| b.to_bytes()).unwrap_or_default();
        let text = String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]).trim().to_string();
        let reason = match status {
            StatusCode::NOT_FOUND => "NotFound",
            StatusCode::FORBIDDEN => "Forbidden",
            StatusCode::UNAUTHORIZED => "Unauthorized",
            _ if status.is_client_error() => "BadRequest",
            _ => "InternalError",
        };
        return Err(ApiError::new(status.as_u16(), reason, text));
    }
    let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
    let mut out = Response::new(Body::new(resp.into_body()));
    out.headers_mut()
        .insert(header::CONTENT_TYPE, content_type.unwrap_or_else(|| HeaderValue::from_static("text/plain")));
    Ok(out)
}

/// Request headers an upgrade (WebSocket or SPDY) carries through to the kubelet.
const UPGRADE_REQUEST_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
];

/// Response headers of the kubelet's 101 passed back to the client.
const UPGRADE_RESPONSE_HEADERS: &[&str] =
    &["connection", "upgrade", "sec-websocket-accept", "sec-websocket-protocol", "x-stream-protocol-version"];

/// `pods/{name}/exec`, `attach` and `portforward`: the client's upgrade request is forwarded to
/// the kubelet and, once both sides switched protocols, bytes are copied both ways.
pub async fn pod_stream(
    ctx: &Ctx<'_>,
    name: &str,
    sub: &str,
    method: &http::Method,
    raw_query: Option<&str>,
) -> Result<Response, ApiError> {
    let wants_upgrade = ctx.headers.get(header::UPGRADE).is_some();
    let on_upgrade = ctx.upgrade.lock().unwrap_or_else(|e| e.into_inner()).take();
    let (Some(on_upgrade), true) = (on_upgrade, wants_upgrade) else {
        return Err(ApiError::bad_request("Upgrade request required"));
    };
    let (pod, container, node) = locate(ctx, name, sub != "portforward").await?;
    let ns = meta_str(&pod, "namespace").unwrap_or_default().to_string();
    let (addr, port) = kubelet_endpoint(&node).ok_or_else(|| {
        ApiError::bad_request(format!("node {} has no address to reach its kubelet", node_name(&node)))
    })?;
    let base = match sub {
        "exec" => format!("/exec/{ns}/{name}/{container}"),
        "attach" => format!("/attach/{ns}/{name}/{container}"),
        _ => format!("/portForward/{ns}/{name}"),
    };
    let path = match raw_query.filter(|q| !q.is_empty()) {
        Some(q) => format!("{base}?{q}"),
        None => base,
    };
    let tls = ctx.state.kubelet_tls.clone().ok_or_else(|| ApiError::internal("no kubelet client certificate"))?;
    let target = format!("{addr}:{port}");
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        ApiError::internal(format!("{method} \"https://{target}{path}\": {what}: {e}"))
    };
    let tcp = tokio::net::TcpStream::connect(&target).await.map_err(|e| fail("dial tcp", &e))?;
    let server_name = ServerName::try_from(addr.clone()).map_err(|e| fail("server name", &e))?;
    let stream = tokio_rustls::TlsConnector::from(tls).connect(server_name, tcp).await.map_err(|e| fail("tls", &e))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| fail("http", &e))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut req = Request::builder().method(method.clone()).uri(&path).header(header::HOST, target.as_str());
    for h in UPGRADE_REQUEST_HEADERS {
        for v in ctx.headers.get_all(*h) {
            req = req.header(*h, v);
        }
    }
    let req = req.body(http_body_util::Empty::<bytes::Bytes>::new()).map_err(|e| fail("request", &e))?;
    let mut resp = sender.send_request(req).await.map_err(|e| fail("request", &e))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = resp.status();
        let body = http_body_util::BodyExt::collect(resp.into_body()).await.map(|b| b.to_bytes()).unwrap_or_default();
        let text = String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]).trim().to_string();
        let code = if status.is_success() { 500 } else { status.as_u16() };
        return Err(ApiError::new(code, if code < 500 { "BadRequest" } else { "InternalError" }, text));
    }
    let mut out = Response::new(Body::empty());
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for h in UPGRADE_RESPONSE_HEADERS {
        for v in resp.headers().get_all(*h) {
            out.headers_mut().append(*h, v.clone());
        }
    }
    let kubelet_side = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        let (Ok(client), Ok(kubelet)) = (on_upgrade.await, kubelet_side.await) else { return };
        let (mut client, mut kubelet) = (TokioIo::new(client), TokioIo::new(kubelet));
        let _ = tokio::io::copy_bidirectional(&mut client, &mut kubelet).await;
    });
    Ok(out)
}

fn node_name(node: &Value) -> &str {
    meta_str(node, "name").unwrap_or_default()
}

/// The pod, the container a request names (or its only container) and the pod's node.
async fn locate(ctx: &Ctx<'_>, name: &str, need_container: bool) -> Result<(Value, String, Value), ApiError> {
    let (pod, _) = ctx.current(name).await?.ok_or_else(|| ApiError::not_found(ctx.rt(), name))?;
    let containers: Vec<String> = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| pod["spec"][*k].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["name"].as_str().map(String::from))
        .collect();
    let container = match ctx.query.get("container").filter(|c| !c.is_empty()) {
        Some(c) if containers.iter().any(|x| x == c) => c.to_string(),
        Some(c) => return Err(ApiError::bad_request(format!("container {c} is not valid for pod {name}"))),
        None if !need_container => String::new(),
        None => {
            let main: Vec<&str> =
                pod["spec"]["containers"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
            match main.as_slice() {
                [one] => one.to_string(),
                many => {
                    return Err(ApiError::bad_request(format!(
                        "a container name must be specified for pod {name}, choose one of: [{}]",
                        many.join(" ")
                    )));
                }
            }
        }
    };
    let node_name = pod["spec"]["nodeName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("pod {name} does not have a host assigned")))?
        .to_string();
    let node_rt = ctx.state.registry.get().by_resource("", "v1", "nodes").ok_or_else(ApiError::path_not_found)?;
    let node = ctx
        .state
        .store
        .get(&node_rt.key(None, &node_name))
        .await
        .map_err(|e| ApiError::from_store(node_rt, &node_name, e))?
        .and_then(|kv| crate::object::from_kv(&kv))
        .ok_or_else(|| ApiError::not_found(node_rt, &node_name))?;
    Ok((pod, container, node))
}
