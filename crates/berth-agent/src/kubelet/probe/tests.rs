//! Tests of the probe logic: defaults, thresholds, handler parsing, gRPC framing, and real
//! httpGet/tcpSocket/exec runs against loopback listeners and host processes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ContainerPort, HTTPHeader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::bundle::Bundle;
use crate::runtime::{ContainerIo, ContainerState, RuntimeError, Signal};

/// A runtime whose `exec` runs the command on the host (the tests' own short-lived processes).
pub(crate) struct HostExec;

#[async_trait]
impl Runtime for HostExec {
    async fn create(&self, id: &str, _: &Bundle, _: &ContainerIo) -> Result<(), RuntimeError> {
        Err(RuntimeError::NotFound { id: id.into() })
    }
    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        Err(RuntimeError::NotFound { id: id.into() })
    }
    async fn state(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        Err(RuntimeError::NotFound { id: id.into() })
    }
    async fn kill(&self, id: &str, _: Signal) -> Result<(), RuntimeError> {
        Err(RuntimeError::NotFound { id: id.into() })
    }
    async fn delete(&self, _: &str, _: bool) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn wait(&self, id: &str) -> Result<Option<i32>, RuntimeError> {
        Err(RuntimeError::NotFound { id: id.into() })
    }
    async fn list(&self) -> Result<Vec<String>, RuntimeError> {
        Ok(Vec::new())
    }
    async fn exec(&self, _: &str, args: &[String], _: bool) -> Result<tokio::process::Child, RuntimeError> {
        tokio::process::Command::new(&args[0])
            .args(&args[1..])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| RuntimeError::Spawn { binary: args[0].clone().into(), source })
    }
}

pub(crate) fn target() -> Target {
    Target { pod_ip: "127.0.0.1".into(), runtime: Arc::new(HostExec), container_id: "c".into() }
}

fn timing(success: u32, failure: u32) -> Timing {
    Timing {
        initial_delay: Duration::ZERO,
        period: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        success_threshold: success,
        failure_threshold: failure,
    }
}

#[test]
fn timing_defaults_follow_upstream() {
    let t = Timing::of(&Probe::default(), ProbeKind::Readiness);
    assert_eq!(t, Timing { period: Duration::from_secs(10), ..timing(1, 3) });
    let p = Probe {
        initial_delay_seconds: Some(5),
        period_seconds: Some(2),
        timeout_seconds: Some(3),
        success_threshold: Some(2),
        failure_threshold: Some(4),
        ..Default::default()
    };
    let t = Timing::of(&p, ProbeKind::Readiness);
    assert_eq!(
        (t.initial_delay, t.period, t.timeout, t.success_threshold, t.failure_threshold),
        (Duration::from_secs(5), Duration::from_secs(2), Duration::from_secs(3), 2, 4)
    );
    // Liveness and startup need exactly one success.
    assert_eq!(Timing::of(&p, ProbeKind::Liveness).success_threshold, 1);
}

#[test]
fn readiness_turns_true_after_success_threshold_and_false_after_failure_threshold() {
    let mut t = Tracker::new(ProbeKind::Readiness, &timing(2, 3));
    assert!(!t.result(), "readiness starts as not ready");
    assert_eq!(t.observe(true), None, "one success is below the threshold of 2");
    assert_eq!(t.observe(true), Some(true));
    assert_eq!(t.observe(true), None, "no change, no report");
    assert_eq!(t.observe(false), None);
    assert_eq!(t.observe(false), None);
    assert_eq!(t.observe(true), None, "a success resets the failure run");
    assert_eq!(t.observe(false), None);
    assert_eq!(t.observe(false), None);
    assert_eq!(t.observe(false), Some(false));
    assert_eq!(t.observe(false), None, "readiness failures are reported only on change");
    assert_eq!(t.observe(false), None);
    assert_eq!(t.observe(false), None);
    assert!(!t.result());
}

#[test]
fn liveness_starts_healthy_and_reports_each_failure_threshold() {
    let mut t = Tracker::new(ProbeKind::Liveness, &timing(1, 2));
    assert!(t.result());
    assert_eq!(t.observe(false), None);
    assert_eq!(t.observe(true), None);
    assert_eq!(t.observe(false), None);
    assert_eq!(t.observe(false), Some(false));
    assert_eq!(t.observe(false), None, "the run starts over");
    assert_eq!(t.observe(false), Some(false));
}

#[test]
fn startup_reports_first_success_and_failure_threshold() {
    let mut t = Tracker::new(ProbeKind::Startup, &timing(1, 3));
    assert!(!t.result());
    assert_eq!(t.observe(false), None);
    assert_eq!(t.observe(true), Some(true));
    let mut t = Tracker::new(ProbeKind::Startup, &timing(1, 2));
    assert_eq!(t.observe(false), None);
    assert_eq!(t.observe(false), Some(false), "startup failure restarts even though it never succeeded");
}

#[test]
fn named_ports_resolve_through_the_container_ports() {
    let c = Container {
        name: "web".into(),
        ports: Some(vec![ContainerPort { name: Some("http".into()), container_port: 8080, ..Default::default() }]),
        ..Default::default()
    };
    assert_eq!(resolve_port(&IntOrString::String("http".into()), &c), Ok(8080));
    assert_eq!(resolve_port(&IntOrString::Int(81), &c), Ok(81));
    assert_eq!(resolve_port(&IntOrString::String("82".into()), &c), Ok(82));
    let err = resolve_port(&IntOrString::String("metrics".into()), &c).expect_err("unknown name");
    assert!(err.contains("metrics"), "{err}");
    assert!(resolve_port(&IntOrString::Int(0), &c).is_err());
    assert!(resolve_port(&IntOrString::Int(70000), &c).is_err());
}

#[test]
fn handlers_parse_into_actions_with_defaults() {
    let c = Container::default();
    let h = HTTPGetAction {
        port: IntOrString::Int(80),
        path: Some("healthz".into()),
        http_headers: Some(vec![HTTPHeader { name: "X-A".into(), value: "b".into() }]),
        ..Default::default()
    };
    assert_eq!(
        action(None, Some(&h), None, None, &c),
        Ok(Action::HttpGet {
            scheme: "HTTP".into(),
            host: None,
            port: 80,
            path: "/healthz".into(),
            headers: vec![("X-A".into(), "b".into())]
        })
    );
    let g = GRPCAction { port: 9000, service: None };
    assert_eq!(action(None, None, None, Some(&g), &c), Ok(Action::Grpc { port: 9000, service: String::new() }));
    assert!(action(None, None, None, None, &c).is_err());
    let e = ExecAction { command: Some(vec![]) };
    assert!(action(Some(&e), None, None, None, &c).is_err(), "an empty exec command is an error");
}

#[test]
fn grpc_health_messages_encode_and_decode() {
    assert_eq!(grpc_health_request(""), vec![0, 0, 0, 0, 0]);
    assert_eq!(grpc_health_request("ab"), vec![0, 0, 0, 0, 4, 0x0a, 2, b'a', b'b']);
    assert_eq!(grpc_health_status(&[0, 0, 0, 0, 2, 0x08, 1]), Ok(1));
    assert_eq!(grpc_health_status(&[0, 0, 0, 0, 2, 0x08, 2]), Ok(2));
    assert_eq!(grpc_health_status(&[0, 0, 0, 0, 0]), Ok(0), "an empty message is UNKNOWN");
    assert!(grpc_health_status(&[0, 0]).is_err());
}

/// Serves one canned HTTP response per connection; returns the port and the requests seen.
async fn http_server(status: u16) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
            let resp = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    (port, rx)
}

fn http(port: u16) -> Action {
    Action::HttpGet {
        scheme: "HTTP".into(),
        host: None,
        port,
        path: "/healthz".into(),
        headers: vec![("X-Custom".into(), "yes".into())],
    }
}

#[tokio::test]
async fn http_get_succeeds_on_2xx_3xx_and_sends_path_and_headers() {
    for status in [200, 302, 399] {
        let (port, mut seen) = http_server(status).await;
        assert_eq!(run(&http(port), &target(), Duration::from_secs(2)).await, Ok(()), "status {status}");
        let req = seen.recv().await.expect("request");
        assert!(req.starts_with("GET /healthz HTTP/1.1\r\n"), "{req}");
        let lower = req.to_ascii_lowercase();
        assert!(lower.contains("x-custom: yes"), "{req}");
        assert!(lower.contains("user-agent: kube-probe/"), "{req}");
    }
}

#[tokio::test]
async fn http_get_fails_on_4xx_5xx_refused_and_timeout() {
    for status in [404, 500] {
        let (port, _seen) = http_server(status).await;
        let err = run(&http(port), &target(), Duration::from_secs(2)).await.expect_err("fails");
        assert_eq!(err, format!("HTTP probe failed with statuscode: {status}"));
    }
    // A port nobody listens on: bind, note the port, close.
    let port = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr").port();
    let err = run(&http(port), &target(), Duration::from_secs(2)).await.expect_err("refused");
    assert!(err.contains("connection refused"), "{err}");
    // Accepts but never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let started = Instant::now();
    let err = run(&http(port), &target(), Duration::from_secs(1)).await.expect_err("timeout");
    assert!(err.contains("deadline exceeded"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3), "the timeout bounds the probe");
}

#[tokio::test]
async fn tcp_socket_succeeds_when_something_listens() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let tcp = Action::TcpSocket { host: None, port };
    assert_eq!(run(&tcp, &target(), Duration::from_secs(1)).await, Ok(()));
    drop(listener);
    let err = run(&tcp, &target(), Duration::from_secs(1)).await.expect_err("closed");
    assert!(err.starts_with(&format!("dial tcp 127.0.0.1:{port}: connect:")), "{err}");
}

#[tokio::test]
async fn exec_succeeds_on_exit_zero_fails_with_output_and_times_out() {
    let sh = |script: &str| Action::Exec { command: vec!["sh".into(), "-c".into(), script.into()] };
    assert_eq!(run(&sh("exit 0"), &target(), Duration::from_secs(5)).await, Ok(()));
    assert_eq!(
        run(&sh("echo not healthy; exit 3"), &target(), Duration::from_secs(5)).await,
        Err("not healthy".into())
    );
    let started = Instant::now();
    let err = run(&sh("sleep 10"), &target(), Duration::from_secs(1)).await.expect_err("timeout");
    assert!(err.contains("timed out"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

async fn next(rx: &mut mpsc::UnboundedReceiver<ProbeEvent>) -> Option<ProbeEvent> {
    tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.ok().flatten()
}

#[tokio::test]
async fn prober_reports_readiness_changes_of_a_file_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flag = dir.path().join("ready");
    let probe = Configured {
        kind: ProbeKind::Readiness,
        action: Action::Exec { command: vec!["test".into(), "-e".into(), flag.display().to_string()] },
        timing: Timing { period: Duration::from_millis(100), ..timing(1, 1) },
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let prober = Prober {
        container: "app".into(),
        instance: 7,
        target: target(),
        started_at: Instant::now(),
        events: None,
        pod: Pod::default(),
        field_path: "spec.containers{app}".into(),
        tx,
    };
    let task = tokio::spawn(prober.run(vec![probe]));
    std::fs::write(&flag, "").expect("touch");
    let ev = next(&mut rx).await.expect("ready event");
    assert_eq!((ev.container.as_str(), ev.instance, ev.kind, ev.ok), ("app", 7, ProbeKind::Readiness, true));
    std::fs::remove_file(&flag).expect("rm");
    let ev = next(&mut rx).await.expect("unready event");
    assert!(!ev.ok);
    task.abort();
}

#[tokio::test]
async fn a_failing_startup_probe_is_reported_once_and_gates_liveness() {
    let fail = Action::Exec { command: vec!["false".into()] };
    let probes = vec![
        Configured {
            kind: ProbeKind::Startup,
            action: fail.clone(),
            timing: Timing { period: Duration::from_millis(50), ..timing(1, 2) },
        },
        Configured {
            kind: ProbeKind::Liveness,
            action: fail,
            timing: Timing { period: Duration::from_millis(50), ..timing(1, 1) },
        },
    ];
    let (tx, mut rx) = mpsc::unbounded_channel();
    let prober = Prober {
        container: "app".into(),
        instance: 1,
        target: target(),
        started_at: Instant::now(),
        events: None,
        pod: Pod::default(),
        field_path: String::new(),
        tx,
    };
    tokio::time::timeout(Duration::from_secs(5), prober.run(probes)).await.expect("prober stops");
    let ev = rx.recv().await.expect("startup failure");
    assert_eq!((ev.kind, ev.ok), (ProbeKind::Startup, false));
    assert!(rx.recv().await.is_none(), "liveness never ran: {:?}", rx.try_recv());
}

/// An h2c gRPC health server answering every Check with `status` (1 = SERVING) or, with
/// `grpc_status` other than "0", with that error; returns its port.
async fn grpc_server(status: u8, grpc_status: &'static str) -> u16 {
    use std::convert::Infallible;

    use http_body_util::StreamBody;
    use hyper::body::Frame;

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| async move {
                    let path_ok = req.uri().path() == "/grpc.health.v1.Health/Check";
                    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let mut trailers = http::HeaderMap::new();
                    let code = if path_ok && body.len() >= 5 { grpc_status } else { "12" };
                    trailers.insert("grpc-status", http::HeaderValue::from_static(code));
                    let frames = vec![
                        Ok::<_, Infallible>(Frame::data(Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]))),
                        Ok(Frame::trailers(trailers)),
                    ];
                    let response = http::Response::builder()
                        .header("content-type", "application/grpc")
                        .body(StreamBody::new(futures::stream::iter(frames)))
                        .expect("response");
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    port
}

#[tokio::test]
async fn grpc_probes_check_the_health_service_over_h2c() {
    let grpc = |port| Action::Grpc { port, service: "web".into() };
    let serving = grpc_server(1, "0").await;
    assert_eq!(run(&grpc(serving), &target(), Duration::from_secs(2)).await, Ok(()));
    let not_serving = grpc_server(2, "0").await;
    let err = run(&grpc(not_serving), &target(), Duration::from_secs(2)).await.expect_err("not serving");
    assert_eq!(err, "service unhealthy (responded with \"NOT_SERVING\")");
    let unimplemented = grpc_server(1, "12").await;
    let err = run(&grpc(unimplemented), &target(), Duration::from_secs(2)).await.expect_err("unimplemented");
    assert!(err.contains("code = 12"), "{err}");
}

#[tokio::test]
async fn https_probes_skip_certificate_verification_like_upstream() {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("self-signed cert");
    let cert = key.cert.der().clone();
    let private = rustls_pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], private)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let Ok(mut tls) = acceptor.accept(s).await else { continue };
            let mut buf = vec![0u8; 4096];
            let _ = tls.read(&mut buf).await;
            let _ = tls.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n").await;
            let _ = tls.shutdown().await;
        }
    });
    let https = Action::HttpGet { scheme: "HTTPS".into(), host: None, port, path: "/".into(), headers: vec![] };
    assert_eq!(run(&https, &target(), Duration::from_secs(5)).await, Ok(()));
    // The same port spoken to in plain HTTP is no success.
    let plain = Action::HttpGet { scheme: "HTTP".into(), host: None, port, path: "/".into(), headers: vec![] };
    assert!(run(&plain, &target(), Duration::from_secs(2)).await.is_err());
}
