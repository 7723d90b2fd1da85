//! The streaming endpoints over WebSocket: `exec` with the `v5.channel.k8s.io` and
//! `v4.channel.k8s.io` subprotocols (binary messages whose first byte is the channel: 0 stdin,
//! 1 stdout, 2 stderr, 3 error/status, 4 resize, 255 close in v5; the exit is reported on channel
//! 3 as a metav1.Status, `Success` or `Failure` with reason `NonZeroExitCode`), and `portForward`
//! (per requested port a data channel 2i and an error channel 2i+1, each opened by a frame with
//! the port number as two little-endian bytes; connections are made inside the pod's network
//! namespace). SPDY is not supported: clients get a 400 and kubectl reports it.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::response::Response;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{StatusCode, header};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{Context, error, get_pod, get_pod_container, parse_query, query_flag};
use crate::kubelet::container::container_id;
use crate::network::netns::NetNs;
use crate::runtime::{ContainerState, Runtime};

/// The channel protocol with a close signal (kubectl 1.30+).
pub const V5_PROTOCOL: &str = "v5.channel.k8s.io";
/// The channel protocol with a Status on the error channel.
pub const V4_PROTOCOL: &str = "v4.channel.k8s.io";
/// The port-forward protocol name of the upstream WebSocket handler.
pub const PORT_FORWARD_PROTOCOL: &str = "portforward.k8s.io";

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

fn not_websocket() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "this kubelet streams over WebSocket only (v5.channel.k8s.io, v4.channel.k8s.io); SPDY is not supported",
    )
}

/// What an exec asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecRequest {
    /// From the query of an exec request.
    pub fn from_query(query: &[(String, String)]) -> Result<Self, String> {
        let command: Vec<String> = query.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.clone()).collect();
        if command.is_empty() {
            return Err("you must specify at least 1 command".into());
        }
        let req = ExecRequest {
            command,
            stdin: query_flag(query, "stdin") || query_flag(query, "input"),
            stdout: query_flag(query, "stdout") || query_flag(query, "output"),
            stderr: query_flag(query, "stderr") || query_flag(query, "error"),
            tty: query_flag(query, "tty"),
        };
        if !(req.stdin || req.stdout || req.stderr) {
            return Err("you must specify at least one of stdin, stdout, stderr".into());
        }
        Ok(req)
    }
}

/// The metav1.Status sent on the error channel when the command ended with `code`.
pub fn exit_status(code: i32, command: &[String]) -> serde_json::Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// The metav1.Status for an exec that could not run at all.
pub fn internal_error_status(message: &str) -> serde_json::Value {
    json!({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError", "code": 500})
}

/// Ends the connection with status 1000: kubectl treats anything else (even a close frame without
/// a code) as an error of the stream.
async fn close_normally(sink: &mut futures::stream::SplitSink<WebSocket, Message>) {
    let frame = CloseFrame { code: axum::extract::ws::close_code::NORMAL, reason: "".into() };
    let _ = sink.send(Message::Close(Some(frame))).await;
    let _ = sink.close().await;
}

/// Picks the subprotocol among `protocols`; whether it is v5. `None` when the client asks only
/// for others, to be refused with [`not_websocket`]: e.g. kubectl 1.31+'s SPDY tunnelled over
/// WebSocket, so it tries SPDY and says why.
fn negotiate<const N: usize>(
    ws: WebSocketUpgrade,
    headers: &http::HeaderMap,
    protocols: [&'static str; N],
) -> Option<(WebSocketUpgrade, bool)> {
    let ws = ws.protocols(protocols);
    if headers.contains_key(header::SEC_WEBSOCKET_PROTOCOL) && ws.selected_protocol().is_none() {
        return None;
    }
    let v5 = ws.selected_protocol().is_some_and(|p| p == V5_PROTOCOL);
    Some((ws, v5))
}

/// Sends what comes on the returned channel to `sink` until every sender is gone, then closes the
/// connection normally.
fn spawn_writer(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
) -> (mpsc::Sender<Message>, tokio::task::JoinHandle<()>) {
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(32);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if sink.send(m).await.is_err() {
                return;
            }
        }
        close_normally(&mut sink).await;
    });
    (out_tx, writer)
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(channel);
    bytes.extend_from_slice(data);
    Message::Binary(Bytes::from(bytes))
}

/// `GET /exec/{ns}/{pod}/{container}`.
pub async fn exec(
    State(ctx): State<Arc<Context>>,
    UrlPath((ns, pod_name, container)): UrlPath<(String, String, String)>,
    RawQuery(raw): RawQuery,
    headers: http::HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else { return not_websocket() };
    let request = match ExecRequest::from_query(&parse_query(raw.as_deref())) {
        Ok(r) => r,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let pod = match get_pod_container(&ctx, &ns, &pod_name, &container).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let id = container_id(pod.metadata.uid.as_deref().unwrap_or_default(), &container);
    match ctx.runtime.state(&id).await {
        Ok(ContainerState::Running { .. }) => {}
        _ => return error(StatusCode::BAD_REQUEST, format!("container not found (\"{container}\")")),
    }
    let Some((ws, v5)) = negotiate(ws, &headers, [V5_PROTOCOL, V4_PROTOCOL]) else { return not_websocket() };
    let runtime = ctx.runtime.clone();
    ws.on_upgrade(move |socket| run_exec(socket, runtime, id, request, v5))
}

/// Copies `source` to `channel` (or discards it when the client did not ask for the stream).
async fn forward_output(mut source: impl AsyncRead + Unpin, channel: u8, wanted: bool, out: mpsc::Sender<Message>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match source.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => {
                if wanted && out.send(frame(channel, &buf[..n])).await.is_err() {
                    return;
                }
            }
            // A pty master reports EIO once the other side is closed.
            Err(_) => return,
        }
    }
}

/// What the client sent that the process should see.
enum Input {
    Stdin(Bytes),
    CloseStdin,
    Resize { width: u16, height: u16 },
}

/// Reads client messages into `inputs` until the client goes away.
async fn read_client(mut source: futures::stream::SplitStream<WebSocket>, v5: bool, inputs: mpsc::Sender<Input>) {
    while let Some(Ok(msg)) = source.next().await {
        let data = match msg {
            Message::Binary(b) => b,
            Message::Close(_) => return,
            _ => continue,
        };
        let Some((&channel, rest)) = data.split_first() else { continue };
        let input = match channel {
            STDIN => Input::Stdin(data.slice(1..)),
            CLOSE if v5 && rest.first() == Some(&STDIN) => Input::CloseStdin,
            RESIZE => {
                #[derive(serde::Deserialize)]
                struct Size {
                    #[serde(rename = "Width")]
                    width: u16,
                    #[serde(rename = "Height")]
                    height: u16,
                }
                match serde_json::from_slice::<Size>(rest) {
                    Ok(s) => Input::Resize { width: s.width, height: s.height },
                    Err(_) => continue,
                }
            }
            _ => continue,
        };
        if inputs.send(input).await.is_err() {
            return;
        }
    }
}

async fn run_exec(socket: WebSocket, runtime: Arc<dyn Runtime>, id: String, request: ExecRequest, v5: bool) {
    let (sink, source) = socket.split();
    let (out_tx, writer) = spawn_writer(sink);
    let (in_tx, in_rx) = mpsc::channel::<Input>(32);
    let reader = tokio::spawn(read_client(source, v5, in_tx));
    let status = if request.tty {
        exec_tty(&*runtime, &id, &request, out_tx.clone(), in_rx).await
    } else {
        exec_pipes(&*runtime, &id, &request, out_tx.clone(), in_rx).await
    };
    if let Some(status) = status {
        let _ = out_tx.send(frame(ERROR, status.to_string().as_bytes())).await;
    }
    drop(out_tx);
    let _ = writer.await;
    reader.abort();
}

/// Runs the command with pipes; returns the Status to report (`None`: the client went away).
async fn exec_pipes(
    runtime: &dyn Runtime,
    id: &str,
    request: &ExecRequest,
    out: mpsc::Sender<Message>,
    mut inputs: mpsc::Receiver<Input>,
) -> Option<serde_json::Value> {
    let mut child = match runtime.exec(id, &request.command, false).await {
        Ok(c) => c,
        Err(e) => return Some(internal_error_status(&crate::kubelet::error_chain(&e))),
    };
    let pid = child.id();
    let mut stdin = child.stdin.take().filter(|_| request.stdin);
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let outputs = async {
        let o = async {
            if let Some(s) = stdout {
                forward_output(s, STDOUT, request.stdout, out.clone()).await;
            }
        };
        let e = async {
            if let Some(s) = stderr {
                forward_output(s, STDERR, request.stderr, out.clone()).await;
            }
        };
        tokio::join!(o, e);
        child.wait().await
    };
    tokio::pin!(outputs);
    loop {
        tokio::select! {
            status = &mut outputs => return Some(finished_status(status, &request.command)),
            input = inputs.recv() => match input {
                Some(Input::Stdin(data)) => {
                    if let Some(w) = stdin.as_mut() && w.write_all(&data).await.is_err() {
                        stdin = None;
                    }
                }
                Some(Input::CloseStdin) => stdin = None,
                Some(Input::Resize { .. }) => {}
                None => {
                    // The client is gone: stop the process (runc forwards the signal to it).
                    terminate(pid);
                    return None;
                }
            },
        }
    }
}

/// The Status to report once the process has been waited for.
fn finished_status(status: std::io::Result<std::process::ExitStatus>, command: &[String]) -> serde_json::Value {
    match status {
        Ok(s) => exit_status(exit_code(s), command),
        Err(e) => internal_error_status(&format!("waiting for the exec process: {e}")),
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1)
}

fn terminate(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
    }
}

/// Runs the command on a terminal; stdout carries the terminal's output.
async fn exec_tty(
    runtime: &dyn Runtime,
    id: &str,
    request: &ExecRequest,
    out: mpsc::Sender<Message>,
    mut inputs: mpsc::Receiver<Input>,
) -> Option<serde_json::Value> {
    let mut tty = match runtime.exec_tty(id, &request.command).await {
        Ok(t) => t,
        Err(e) => return Some(internal_error_status(&crate::kubelet::error_chain(&e))),
    };
    let pid = tty.child.id();
    let (reader, writer) = match (tty.master.try_clone(), tty.master.try_clone()) {
        (Ok(r), Ok(w)) => (tokio::fs::File::from_std(r), tokio::fs::File::from_std(w)),
        (Err(e), _) | (_, Err(e)) => return Some(internal_error_status(&format!("terminal: {e}"))),
    };
    let master = tty.master;
    let mut writer = Some(writer).filter(|_| request.stdin);
    let outputs = async {
        let forward = forward_output(reader, STDOUT, request.stdout, out.clone());
        let status = tty.child.wait().await;
        // runc exits after copying the terminal's output; what is left is read until EIO.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), forward).await;
        status
    };
    tokio::pin!(outputs);
    loop {
        tokio::select! {
            status = &mut outputs => return Some(finished_status(status, &request.command)),
            input = inputs.recv() => match input {
                Some(Input::Stdin(data)) => {
                    if let Some(w) = writer.as_mut() && w.write_all(&data).await.is_err() {
                        writer = None;
                    }
                    if let Some(w) = writer.as_mut() {
                        let _ = w.flush().await;
                    }
                }
                // A terminal has no end of input; ^D is how a user ends it.
                Some(Input::CloseStdin) => {}
                Some(Input::Resize { width, height }) => {
                    crate::runtime::resize_terminal(&master, width, height, pid);
                }
                None => {
                    terminate(pid);
                    return None;
                }
            },
        }
    }
}

/// The ports of a port-forward request (`ports=80,443` or repeated `port=`).
pub fn forward_ports(query: &[(String, String)]) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for (k, v) in query {
        if k != "ports" && k != "port" {
            continue;
        }
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => ports.push(n),
                _ => return Err(format!("invalid port {p:?}")),
            }
        }
    }
    if ports.is_empty() {
        return Err("query parameter \"port\" is required".into());
    }
    Ok(ports)
}

/// `GET /portForward/{ns}/{pod}`.
pub async fn port_forward(
    State(ctx): State<Arc<Context>>,
    UrlPath((ns, pod_name)): UrlPath<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: http::HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else { return not_websocket() };
    let ports = match forward_ports(&parse_query(raw.as_deref())) {
        Ok(p) => p,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let pod = match get_pod(&ctx, &ns, &pod_name).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let host_network = pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let netns = (!host_network).then(|| ctx.netns_dir.join(&uid));
    if let Some(path) = &netns
        && !path.exists()
    {
        return error(StatusCode::BAD_REQUEST, format!("pod {pod_name} has no network namespace (not running?)"));
    }
    let Some((ws, v5)) = negotiate(ws, &headers, [V5_PROTOCOL, V4_PROTOCOL, PORT_FORWARD_PROTOCOL]) else {
        return not_websocket();
    };
    let label = format!("{ns}/{pod_name}");
    ws.on_upgrade(move |socket| run_port_forward(socket, netns, ports, v5, label))
}

/// Connects to `127.0.0.1:port` inside `netns` (or the host namespace).
async fn connect(netns: Option<PathBuf>, port: u16) -> Result<tokio::net::TcpStream, String> {
    let std_stream = match netns {
        Some(path) => {
            let ns = NetNs::open(&path).map_err(|e| crate::kubelet::error_chain(&e))?;
            ns.run_in_async(move || std::net::TcpStream::connect(("127.0.0.1", port)))
                .await
                .map_err(|e| crate::kubelet::error_chain(&e))?
                .map_err(|e| e.to_string())?
        }
        None => std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?,
    };
    std_stream.set_nonblocking(true).map_err(|e| e.to_string())?;
    tokio::net::TcpStream::from_std(std_stream).map_err(|e| e.to_string())
}

async fn run_port_forward(socket: WebSocket, netns: Option<PathBuf>, ports: Vec<u16>, v5: bool, label: String) {
    let (sink, mut source) = socket.split();
    let (out_tx, writer) = spawn_writer(sink);
    // Each channel opens with its port number.
    for (i, port) in ports.iter().enumerate() {
        for channel in [2 * i, 2 * i + 1] {
            let _ = out_tx.send(frame(u8::try_from(channel).unwrap_or(u8::MAX), &port.to_le_bytes())).await;
        }
    }
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for (i, port) in ports.iter().copied().enumerate() {
        let data = u8::try_from(2 * i).unwrap_or(u8::MAX);
        match connect(netns.clone(), port).await {
            Ok(stream) => {
                let (r, w) = stream.into_split();
                writers.push(Some(w));
                readers.push(tokio::spawn(forward_output(r, data, true, out_tx.clone())));
            }
            Err(e) => {
                let message =
                    format!("error forwarding port {port} to pod {label}: failed to connect to localhost:{port}: {e}");
                let _ = out_tx.send(frame(data + 1, message.as_bytes())).await;
                writers.push(None);
            }
        }
    }
    let all_read = futures::future::join_all(readers);
    tokio::pin!(all_read);
    loop {
        tokio::select! {
            _ = &mut all_read => break,
            msg = source.next() => {
                let data = match msg {
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let Some((&channel, rest)) = data.split_first() else { continue };
                if channel == CLOSE && v5 {
                    if let Some(&ch) = rest.first()
                        && let Some(Some(w)) = writers.get_mut(usize::from(ch) / 2)
                    {
                        let _ = w.shutdown().await;
                    }
                    continue;
                }
                if channel % 2 == 0
                    && let Some(slot) = writers.get_mut(usize::from(channel) / 2)
                    && let Some(w) = slot.as_mut()
                    && w.write_all(rest).await.is_err()
                {
                    *slot = None;
                }
            }
        }
    }
    drop(out_tx);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_become_the_status_kubectl_expects() {
        let cmd = vec!["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        assert_eq!(exit_status(0, &cmd), json!({"metadata": {}, "status": "Success"}));
        let failure = exit_status(3, &cmd);
        assert_eq!(failure["status"], "Failure");
        assert_eq!(failure["reason"], "NonZeroExitCode");
        assert_eq!(failure["details"]["causes"][0], json!({"reason": "ExitCode", "message": "3"}));
        assert_eq!(
            failure["message"],
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
        );
    }

    #[test]
    fn exec_requests_need_a_command_and_a_stream() {
        let q = parse_query(Some("command=ls&command=-l&stdout=true&stderr=true&tty=false"));
        let r = ExecRequest::from_query(&q).unwrap();
        assert_eq!(r.command, ["ls", "-l"]);
        assert!(r.stdout && r.stderr && !r.stdin && !r.tty);
        assert!(ExecRequest::from_query(&parse_query(Some("stdout=true"))).is_err());
        assert!(ExecRequest::from_query(&parse_query(Some("command=ls"))).is_err());
    }

    #[test]
    fn forwarded_ports_are_parsed_from_either_parameter() {
        assert_eq!(forward_ports(&parse_query(Some("ports=80%2C8080"))).unwrap(), [80, 8080]);
        assert_eq!(forward_ports(&parse_query(Some("port=80&port=81"))).unwrap(), [80, 81]);
        assert!(forward_ports(&parse_query(Some("ports=x"))).is_err());
        assert!(forward_ports(&parse_query(None)).is_err());
    }
}
