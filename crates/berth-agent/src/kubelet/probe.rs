//! Container probes (liveness, readiness, startup) and the handler actions they share with
//! lifecycle hooks: httpGet, tcpSocket, grpc (`grpc.health.v1.Health/Check` over h2c) and exec
//! (through [`Runtime::exec`]). One prober task per running container reports result changes to
//! its pod worker over a channel; the worker decides what they mean (ready, restart). Talks only
//! to the pod's IP and to the runtime; never to the API except for Unhealthy events.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{Container, ExecAction, GRPCAction, HTTPGetAction, Pod, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::events::Recorder;
use crate::runtime::Runtime;

/// The User-Agent of HTTP probes (upstream sends `kube-probe/<major>.<minor>`).
pub const USER_AGENT: &str = "kube-probe/1.33";
/// An unchanged probe failure is recorded as an event again after this many repeats.
const EVENT_REPEAT: u32 = 30;
/// How much of an exec probe's output goes into a failure message.
const MAX_OUTPUT: usize = 10 * 1024;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    /// `Liveness`, `Readiness`, `Startup`, as in upstream's event messages.
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }

    /// The result a probe reports before it first runs (upstream: liveness success, readiness
    /// and startup failure).
    pub fn initial(self) -> bool {
        matches!(self, ProbeKind::Liveness)
    }
}

/// The timing fields of a probe with upstream's defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

fn secs(v: Option<i32>, default: u64, min: u64) -> Duration {
    Duration::from_secs(v.and_then(|v| u64::try_from(v).ok()).filter(|v| *v > 0).unwrap_or(default).max(min))
}

fn count(v: Option<i32>, default: u32) -> u32 {
    v.and_then(|v| u32::try_from(v).ok()).filter(|v| *v > 0).unwrap_or(default)
}

impl Timing {
    /// `SetDefaults_Probe`: period 10 s, timeout 1 s, success 1, failure 3, no initial delay.
    /// Liveness and startup probes need exactly one success (validation enforces it upstream).
    pub fn of(probe: &Probe, kind: ProbeKind) -> Timing {
        let success_threshold = match kind {
            ProbeKind::Readiness => count(probe.success_threshold, 1),
            _ => 1,
        };
        Timing {
            initial_delay: Duration::from_secs(
                probe.initial_delay_seconds.and_then(|v| u64::try_from(v).ok()).unwrap_or(0),
            ),
            period: secs(probe.period_seconds, 10, 1),
            timeout: secs(probe.timeout_seconds, 1, 1),
            success_threshold,
            failure_threshold: count(probe.failure_threshold, 3),
        }
    }
}

/// Turns single probe results into the reported result, with the success and failure
/// thresholds (upstream prober `worker.doProbe`).
#[derive(Debug, Clone)]
pub struct Tracker {
    result: bool,
    last: Option<bool>,
    run: u32,
    success_threshold: u32,
    failure_threshold: u32,
    /// Liveness and startup failures act (restart) each time they reach the threshold.
    report_every_failure: bool,
}

impl Tracker {
    pub fn new(kind: ProbeKind, timing: &Timing) -> Tracker {
        Tracker {
            result: kind.initial(),
            last: None,
            run: 0,
            success_threshold: timing.success_threshold.max(1),
            failure_threshold: timing.failure_threshold.max(1),
            report_every_failure: kind != ProbeKind::Readiness,
        }
    }

    /// The reported result.
    pub fn result(&self) -> bool {
        self.result
    }

    /// Records one probe outcome; returns the new reported result when it changes. For liveness
    /// and startup probes a failure that reaches the threshold is always reported (it restarts
    /// the container), and the run starts over.
    pub fn observe(&mut self, ok: bool) -> Option<bool> {
        if self.last == Some(ok) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let threshold = if ok { self.success_threshold } else { self.failure_threshold };
        if self.run < threshold {
            return None;
        }
        if !ok {
            self.run = 0;
            self.last = None;
            let changed = self.result || self.report_every_failure;
            self.result = false;
            return changed.then_some(false);
        }
        let changed = !self.result;
        self.result = true;
        changed.then_some(true)
    }
}

/// What a probe or hook does, resolved against its container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    HttpGet { scheme: String, host: Option<String>, port: u16, path: String, headers: Vec<(String, String)> },
    TcpSocket { host: Option<String>, port: u16 },
    Grpc { port: u16, service: String },
    Exec { command: Vec<String> },
}

/// A port number, or a named port of the container.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok().filter(|p| *p > 0).ok_or_else(|| format!("invalid port {n}")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("couldn't find port: {name} in container {}", container.name))
        }
    }
}

/// The action of a handler (probe or hook) from its parts.
pub fn action(
    exec: Option<&ExecAction>,
    http_get: Option<&HTTPGetAction>,
    tcp_socket: Option<&TCPSocketAction>,
    grpc: Option<&GRPCAction>,
    container: &Container,
) -> Result<Action, String> {
    if let Some(e) = exec {
        let command = e.command.clone().unwrap_or_default();
        if command.is_empty() {
            return Err("exec handler has no command".into());
        }
        return Ok(Action::Exec { command });
    }
    if let Some(h) = http_get {
        let path = h.path.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "/".into());
        let path = if path.starts_with('/') { path } else { format!("/{path}") };
        return Ok(Action::HttpGet {
            scheme: h.scheme.clone().unwrap_or_else(|| "HTTP".into()).to_ascii_uppercase(),
            host: h.host.clone().filter(|h| !h.is_empty()),
            port: resolve_port(&h.port, container)?,
            path,
            headers: h.http_headers.iter().flatten().map(|x| (x.name.clone(), x.value.clone())).collect(),
        });
    }
    if let Some(t) = tcp_socket {
        return Ok(Action::TcpSocket {
            host: t.host.clone().filter(|h| !h.is_empty()),
            port: resolve_port(&t.port, container)?,
        });
    }
    if let Some(g) = grpc {
        let port = u16::try_from(g.port).ok().filter(|p| *p > 0).ok_or_else(|| format!("invalid port {}", g.port))?;
        return Ok(Action::Grpc { port, service: g.service.clone().unwrap_or_default() });
    }
    Err("handler has no action (exec, httpGet, tcpSocket or grpc)".into())
}

/// The action of a probe.
pub fn probe_action(probe: &Probe, container: &Container) -> Result<Action, String> {
    action(probe.exec.as_ref(), probe.http_get.as_ref(), probe.tcp_socket.as_ref(), probe.grpc.as_ref(), container)
}

/// Where actions run: the pod IP for network actions, the runtime container for exec.
#[derive(Clone)]
pub struct Target {
    pub pod_ip: String,
    pub runtime: Arc<dyn Runtime>,
    pub container_id: String,
}

/// Runs `action` once within `timeout`; `Err` carries upstream-like failure output.
pub async fn run(action: &Action, target: &Target, timeout: Duration) -> Result<(), String> {
    match action {
        Action::HttpGet { scheme, host, port, path, headers } => {
            let host = host.clone().unwrap_or_else(|| target.pod_ip.clone());
            http_get(scheme, &host, *port, path, headers, timeout).await
        }
        Action::TcpSocket { host, port } => {
            let host = host.clone().unwrap_or_else(|| target.pod_ip.clone());
            let addr = join_host_port(&host, *port);
            match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("dial tcp {addr}: connect: {}", io_message(&e))),
                Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
            }
        }
        Action::Grpc { port, service } => grpc_check(&target.pod_ip, *port, service, timeout).await,
        Action::Exec { command } => exec(target, command, timeout).await,
    }
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// An I/O error without Rust's " (os error N)" suffix, like Go's messages.
fn io_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_ascii_lowercase(),
        None => s,
    }
}

/// The TLS client of HTTPS probes and hooks. As upstream's prober, it does not verify the
/// server's certificate: probes check liveness, not identity.
fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    static CONNECTOR: std::sync::OnceLock<Result<tokio_rustls::TlsConnector, String>> = std::sync::OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS setup: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
                .with_no_client_auth();
            Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
        })
        .clone()
}

/// Accepts any server certificate (the signatures of the handshake are still checked).
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Sends `req` over `io` (HTTP/1.1) and returns the response status.
async fn status_of<T>(io: T, req: http::Request<Empty<Bytes>>) -> Result<u16, hyper::Error>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    let conn = tokio::spawn(conn);
    let resp = sender.send_request(req).await;
    conn.abort();
    Ok(resp?.status().as_u16())
}

async fn http_get(
    scheme: &str,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<(), String> {
    let authority = join_host_port(host, port);
    let url = format!("{}://{authority}{path}", scheme.to_ascii_lowercase());
    if scheme != "HTTP" && scheme != "HTTPS" {
        return Err(format!("Get {url:?}: unsupported protocol scheme {scheme:?}"));
    }
    let attempt = async {
        let mut req = http::Request::get(path);
        let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        if !has("host") {
            req = req.header(http::header::HOST, &authority);
        }
        if !has("user-agent") {
            req = req.header(http::header::USER_AGENT, USER_AGENT);
        }
        if !has("accept") {
            req = req.header(http::header::ACCEPT, "*/*");
        }
        for (name, value) in headers {
            req = req.header(name.as_str(), value.as_str());
        }
        let req = req.body(Empty::<Bytes>::new()).map_err(|e| format!("Get {url:?}: {e}"))?;
        let stream = TcpStream::connect(&authority)
            .await
            .map_err(|e| format!("Get {url:?}: dial tcp {authority}: connect: {}", io_message(&e)))?;
        let status = if scheme == "HTTPS" {
            let name = rustls_pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| format!("Get {url:?}: invalid server name: {e}"))?;
            let tls = tls_connector()?.connect(name, stream).await.map_err(|e| format!("Get {url:?}: {e}"))?;
            status_of(tls, req).await
        } else {
            status_of(stream, req).await
        };
        let status = status.map_err(|e| format!("Get {url:?}: {e}"))?;
        if (200..400).contains(&status) { Ok(()) } else { Err(format!("HTTP probe failed with statuscode: {status}")) }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => {
            Err(format!("Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"))
        }
    }
}

/// `grpc.health.v1.HealthCheckRequest { service }` in protobuf, framed for gRPC.
pub fn grpc_health_request(service: &str) -> Vec<u8> {
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a); // field 1, length-delimited
        let mut len = service.len();
        while len >= 0x80 {
            msg.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        msg.push(len as u8);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(msg.len()).unwrap_or(u32::MAX).to_be_bytes());
    frame.extend_from_slice(&msg);
    frame
}

/// The serving status of a framed `grpc.health.v1.HealthCheckResponse` (0 if absent).
pub fn grpc_health_status(frame: &[u8]) -> Result<u64, String> {
    let msg = frame.get(5..).ok_or("short gRPC response")?;
    let mut i = 0;
    let varint = |i: &mut usize| -> Result<u64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *msg.get(*i).ok_or("truncated gRPC response")?;
            *i += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("bad varint in gRPC response".into())
    };
    let mut status = 0;
    while i < msg.len() {
        let key = varint(&mut i)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = varint(&mut i)?,
            (_, 0) => {
                varint(&mut i)?;
            }
            (_, 2) => {
                let len = usize::try_from(varint(&mut i)?).map_err(|_| "bad length")?;
                i = i.saturating_add(len);
            }
            (_, 1) => i += 8,
            (_, 5) => i += 4,
            _ => return Err("bad wire type in gRPC response".into()),
        }
    }
    Ok(status)
}

fn serving_status_name(status: u64) -> &'static str {
    match status {
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "UNKNOWN",
    }
}

async fn grpc_check(host: &str, port: u16, service: &str, timeout: Duration) -> Result<(), String> {
    let authority = join_host_port(host, port);
    let attempt = async {
        let stream = TcpStream::connect(&authority)
            .await
            .map_err(|e| format!("failed to connect service {authority:?}: {}", io_message(&e)))?;
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| format!("failed to connect service {authority:?}: {e}"))?;
        let conn = tokio::spawn(conn);
        let result = async {
            let req = http::Request::post(format!("http://{authority}/grpc.health.v1.Health/Check"))
                .header(http::header::CONTENT_TYPE, "application/grpc")
                .header("te", "trailers")
                .header(http::header::USER_AGENT, USER_AGENT)
                .body(Full::new(Bytes::from(grpc_health_request(service))))
                .map_err(|e| e.to_string())?;
            let resp = sender.send_request(req).await.map_err(|e| format!("health rpc failed: {e}"))?;
            let (parts, body) = resp.into_parts();
            let collected = body.collect().await.map_err(|e| format!("health rpc failed: {e}"))?;
            let trailers = collected.trailers().cloned().unwrap_or_default();
            let grpc_status = trailers
                .get("grpc-status")
                .or_else(|| parts.headers.get("grpc-status"))
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            if grpc_status != "0" {
                let message = trailers
                    .get("grpc-message")
                    .or_else(|| parts.headers.get("grpc-message"))
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                return Err(format!("health rpc failed: rpc error: code = {grpc_status} desc = {message}"));
            }
            let status = grpc_health_status(&collected.to_bytes())?;
            if status == 1 {
                Ok(())
            } else {
                Err(format!("service unhealthy (responded with {:?})", serving_status_name(status)))
            }
        }
        .await;
        conn.abort();
        result
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("timeout: health rpc did not complete within {}s", timeout.as_secs())),
    }
}

async fn exec(target: &Target, command: &[String], timeout: Duration) -> Result<(), String> {
    let mut child = target
        .runtime
        .exec(&target.container_id, command, false)
        .await
        .map_err(|e| format!("failed to exec in container: {}", super::error_chain(&e)))?;
    drop(child.stdin.take());
    let read = |r: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>| {
        tokio::spawn(async move {
            let mut buf = Vec::new();
            if let Some(r) = r {
                let _ = r.take(MAX_OUTPUT as u64).read_to_end(&mut buf).await;
            }
            buf
        })
    };
    let out = read(child.stdout.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>));
    let err = read(child.stderr.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>));
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Err(format!("failed to wait for exec: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            out.abort();
            err.abort();
            return Err(format!("command {:?} timed out", command.join(" ")));
        }
    };
    let mut output = out.await.unwrap_or_default();
    output.extend(err.await.unwrap_or_default());
    if status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&output).trim_end().to_string();
    if text.is_empty() {
        Err(format!("command {:?} exited with {}", command.join(" "), status.code().unwrap_or(-1)))
    } else {
        Err(text)
    }
}

/// A probe ready to run: kind, action, timing.
#[derive(Debug, Clone)]
pub struct Configured {
    pub kind: ProbeKind,
    pub action: Action,
    pub timing: Timing,
}

/// The probes of a container; an invalid probe (e.g. an unknown named port) is reported as an
/// error naming it.
pub fn configured(container: &Container) -> Result<Vec<Configured>, String> {
    let mut out = Vec::new();
    for (kind, probe) in [
        (ProbeKind::Startup, &container.startup_probe),
        (ProbeKind::Liveness, &container.liveness_probe),
        (ProbeKind::Readiness, &container.readiness_probe),
    ] {
        if let Some(p) = probe {
            let action = probe_action(p, container).map_err(|e| format!("{} probe: {e}", kind.name()))?;
            out.push(Configured { kind, action, timing: Timing::of(p, kind) });
        }
    }
    Ok(out)
}

/// A reported change of a probe result of one container run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeEvent {
    pub container: String,
    /// Which run of the container (the worker's counter), so late results are ignored.
    pub instance: u64,
    pub kind: ProbeKind,
    pub ok: bool,
    /// The output of the failing probe.
    pub message: String,
}

/// What a prober task needs besides its probes.
pub struct Prober {
    pub container: String,
    pub instance: u64,
    pub target: Target,
    /// The container's start: initial delays count from here.
    pub started_at: Instant,
    /// Where Unhealthy events go (`None` in tests).
    pub events: Option<Recorder>,
    pub pod: Pod,
    pub field_path: String,
    pub tx: mpsc::UnboundedSender<ProbeEvent>,
}

impl Prober {
    /// Runs the container's probes until the task is aborted: the startup probe first; once it
    /// succeeds, liveness and readiness side by side. A failing startup or liveness probe is
    /// reported once and then no longer run (the container is about to be restarted).
    pub async fn run(self, probes: Vec<Configured>) {
        let find = |k: ProbeKind| probes.iter().find(|p| p.kind == k).cloned();
        if let Some(startup) = find(ProbeKind::Startup)
            && !self.probe_loop(&startup).await
        {
            return;
        }
        let liveness = async {
            if let Some(p) = find(ProbeKind::Liveness) {
                self.probe_loop(&p).await;
            }
        };
        let readiness = async {
            if let Some(p) = find(ProbeKind::Readiness) {
                self.probe_loop(&p).await;
            }
        };
        tokio::join!(liveness, readiness);
    }

    /// Probes periodically, reporting changes. A startup probe returns `true` at its first
    /// success; startup and liveness probes return `false` when they fail for good.
    async fn probe_loop(&self, probe: &Configured) -> bool {
        let mut tracker = Tracker::new(probe.kind, &probe.timing);
        let mut next = self.started_at + probe.timing.initial_delay;
        // The recorder does not aggregate events as upstream's does: one Unhealthy event per
        // streak of identical failures (and again every EVENT_REPEAT of them) keeps a probe that
        // fails every second from writing an Event every second.
        let mut last_event: Option<(String, u32)> = None;
        loop {
            tokio::time::sleep_until(next).await;
            next = Instant::now() + probe.timing.period;
            let outcome = run(&probe.action, &self.target, probe.timing.timeout).await;
            match &outcome {
                Ok(()) => last_event = None,
                Err(message) => {
                    tracing::debug!(container = %self.container, kind = probe.kind.name(), %message, "probe failed");
                    let repeat = match &mut last_event {
                        Some((m, n)) if m == message => {
                            *n += 1;
                            *n % EVENT_REPEAT == 0
                        }
                        _ => {
                            last_event = Some((message.clone(), 0));
                            true
                        }
                    };
                    if let Some(events) = self.events.as_ref().filter(|_| repeat) {
                        let message = format!("{} probe failed: {message}", probe.kind.name());
                        events.pod_event(&self.pod, Some(self.field_path.clone()), true, "Unhealthy", message).await;
                    }
                }
            }
            let ok = outcome.is_ok();
            if let Some(result) = tracker.observe(ok) {
                let _ = self.tx.send(ProbeEvent {
                    container: self.container.clone(),
                    instance: self.instance,
                    kind: probe.kind,
                    ok: result,
                    message: outcome.err().unwrap_or_default(),
                });
                if result && probe.kind == ProbeKind::Startup {
                    return true;
                }
                if !result && probe.kind != ProbeKind::Readiness {
                    return false;
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
