//! pods/log is proxied to the kubelet of the pod's node (a fake kubelet over HTTPS here).

mod common;

use std::sync::Arc;

use common::TestServer;
use hyper_util::rt::TokioIo;
use serde_json::json;

/// A TLS listener on a free loopback port with a self-signed certificate, as a fake kubelet's
/// (the apiserver does not verify kubelet certificates).
async fn kubelet_listener() -> (tokio_rustls::TlsAcceptor, tokio::net::TcpListener, u16) {
    berth_apiserver::pki::install_crypto_provider();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let der = rustls_pki_types::CertificateDer::from(cert.cert.der().to_vec());
    let key = rustls_pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(vec![der], key).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), listener, port)
}

/// A fake kubelet answering `/containerLogs/...` with the path and query it was asked for.
async fn fake_kubelet() -> (u16, tokio::task::JoinHandle<()>) {
    let (acceptor, listener, port) = kubelet_listener().await;
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let svc = hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let body = format!("log of {}\n", req.uri());
                    Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                        bytes::Bytes::from(body),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc).await;
            });
        }
    });
    (port, task)
}

#[tokio::test]
async fn pod_logs_come_from_the_nodes_kubelet() {
    let ts = TestServer::start().await;
    let (port, kubelet) = fake_kubelet().await;
    let node = json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}], "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}
    });
    let (code, body) = ts.post("/api/v1/nodes", &node).await;
    assert_eq!(code, 201, "{body}");
    let pod =
        json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]}});
    let (code, body) = ts.post("/api/v1/namespaces/default/pods", &pod).await;
    assert_eq!(code, 201, "{body}");
    let (code, body, _) = ts.raw("GET", "/api/v1/namespaces/default/pods/p/log?tailLines=3", &[], Vec::new()).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body.as_str().unwrap(), "log of /containerLogs/default/p/c?tailLines=3\n");
    let (code, _, _) = ts.raw("GET", "/api/v1/namespaces/default/pods/p/log?container=nope", &[], Vec::new()).await;
    assert_eq!(code, 400);
    kubelet.abort();
}

#[tokio::test]
async fn logs_of_an_unscheduled_pod_are_a_bad_request() {
    let ts = TestServer::start().await;
    let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
    ts.post("/api/v1/namespaces/default/pods", &pod).await;
    let (code, body, _) = ts.raw("GET", "/api/v1/namespaces/default/pods/p/log", &[], Vec::new()).await;
    assert_eq!(code, 400);
    assert_eq!(body["message"], "pod p does not have a host assigned");
}

/// A fake kubelet that accepts one exec WebSocket, writes "hello" on stdout and reports success.
async fn fake_exec_kubelet() -> (u16, tokio::sync::oneshot::Receiver<String>, tokio::task::JoinHandle<()>) {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    let (acceptor, listener, port) = kubelet_listener().await;
    let (path_tx, path_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else { return };
        let Ok(tls) = acceptor.accept(tcp).await else { return };
        let mut path_tx = Some(path_tx);
        #[allow(clippy::result_large_err)] // the signature tungstenite's callback requires
        let callback = |req: &Request, mut resp: Response| {
            if let Some(tx) = path_tx.take() {
                let _ = tx.send(req.uri().to_string());
            }
            let proto = req.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).unwrap_or_default();
            let first = proto.split(',').next().unwrap_or_default().trim().to_string();
            resp.headers_mut().insert("sec-websocket-protocol", first.parse().unwrap());
            Ok(resp)
        };
        let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tls, callback).await else { return };
        let mut stdout = vec![1u8];
        stdout.extend_from_slice(b"hello");
        let _ = ws.send(Message::binary(stdout)).await;
        let mut status = vec![3u8];
        status.extend_from_slice(br#"{"metadata":{},"status":"Success"}"#);
        let _ = ws.send(Message::binary(status)).await;
        let _ = ws.close(None).await;
    });
    (port, path_rx, task)
}

#[tokio::test]
async fn exec_is_proxied_to_the_kubelet_over_websocket() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, AttachParams};
    use tokio::io::AsyncReadExt;
    let ts = TestServer::start().await;
    let (port, path_rx, kubelet) = fake_exec_kubelet().await;
    let node = json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}], "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}
    });
    ts.post("/api/v1/nodes", &node).await;
    let pod =
        json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]}});
    ts.post("/api/v1/namespaces/default/pods", &pod).await;
    let pods: Api<Pod> = Api::namespaced(ts.client.clone(), "default");
    let mut proc = pods.exec("p", ["echo", "hello"], &AttachParams::default().stderr(false)).await.unwrap();
    let mut out = String::new();
    proc.stdout().unwrap().read_to_string(&mut out).await.unwrap();
    assert_eq!(out, "hello");
    let path = path_rx.await.unwrap();
    assert!(path.starts_with("/exec/default/p/c?"), "{path}");
    assert!(path.contains("command=echo"), "{path}");
    kubelet.abort();
}
