//! Apiserver benchmark, printing figures (never asserting times): release binary size, cold start
//! to /readyz, idle RSS, and create/get/list/watch throughput through kube-rs, against SQLite and,
//! when `etcd` is installed, against etcd in the same run.
//!
//! `cargo bench -p berth --bench apiserver` (`BERTH_BENCH_OBJECTS` sets the object count).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, ObjectMeta, PostParams, WatchEvent, WatchParams};
use kube::{Api, Client};

/// A process killed (by PID) and reaped on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port (the OS picks it; the listener is closed before use).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Starts etcd on loopback ports in `dir`, waiting until it serves; `None` if not installed.
fn start_etcd(dir: &Path) -> Option<(Guard, String)> {
    let etcd = ["/usr/bin/etcd", "/usr/local/bin/etcd"].into_iter().find(|p| Path::new(p).exists())?;
    let (client, peer) = (free_port(), free_port());
    let endpoint = format!("127.0.0.1:{client}");
    let child = Command::new(etcd)
        .args(["--data-dir", &dir.join("etcd").display().to_string()])
        .args(["--listen-client-urls", &format!("http://{endpoint}")])
        .args(["--advertise-client-urls", &format!("http://{endpoint}")])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-cluster", &format!("default=http://127.0.0.1:{peer}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let guard = Guard(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(&endpoint).is_ok() {
            return Some((guard, endpoint));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// A running `berth server` with its ready line read.
struct Server {
    _guard: Guard,
    pid: u32,
    kubeconfig: PathBuf,
    started_in: Duration,
}

fn start_server(data_dir: &Path, datastore: Option<&str>) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.args(["server", "--disable-agent", "--no-default-kubeconfig", "--https-listen-port", "0"])
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(ds) = datastore {
        cmd.args(["--datastore-endpoint", ds]);
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn berth server");
    let stdout = child.stdout.take().expect("stdout");
    let pid = child.id();
    let guard = Guard(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("ready line");
    assert!(line.contains("ready"), "unexpected first line: {line}");
    Server { _guard: guard, pid, kubeconfig: data_dir.join("kubeconfig.yaml"), started_in: start.elapsed() }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

async fn client(kubeconfig: &Path) -> Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("config");
    Client::try_from(cfg).expect("client")
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn throughput(label: &str, server: &Server, objects: usize) {
    let client = client(&server.kubeconfig).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    // A watcher started before the writes measures create-to-event latency.
    let watch_api = api.clone();
    let watcher = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(objects);
        let stream = watch_api.watch(&WatchParams::default().labels("bench=watch"), "0").await.expect("watch");
        futures::pin_mut!(stream);
        while let Some(Ok(ev)) = stream.next().await {
            if let WatchEvent::Added(cm) = ev {
                let sent: u128 = cm.data.as_ref().and_then(|d| d.get("sent")).and_then(|s| s.parse().ok()).unwrap_or(0);
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                latencies.push(Duration::from_micros(now.as_micros().saturating_sub(sent) as u64));
                if latencies.len() == objects {
                    break;
                }
            }
        }
        latencies
    });

    let t = Instant::now();
    stream::iter(0..objects)
        .map(|i| {
            let api = api.clone();
            async move {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                let cm = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(format!("bench-{i}")),
                        labels: Some([("bench".to_string(), "watch".to_string())].into()),
                        ..Default::default()
                    },
                    data: Some([("sent".to_string(), now.as_micros().to_string())].into()),
                    ..Default::default()
                };
                api.create(&PostParams::default(), &cm).await.map(|_| ())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .expect("creates");
    let create = t.elapsed();

    let t = Instant::now();
    stream::iter(0..objects)
        .map(|i| {
            let api = api.clone();
            async move { api.get(&format!("bench-{i}")).await.map(|_| ()) }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .expect("gets");
    let get = t.elapsed();

    let lists = 20;
    let t = Instant::now();
    for _ in 0..lists {
        let l = api.list(&ListParams::default()).await.expect("list");
        assert!(l.items.len() >= objects);
    }
    let list = t.elapsed();

    let mut latencies =
        tokio::time::timeout(Duration::from_secs(60), watcher).await.ok().and_then(Result::ok).unwrap_or_default();
    latencies.sort();
    println!(
        "{label:>7}  create {:>8.0}/s   get {:>8.0}/s   list({objects}) {:>6.1}/s   watch p50 {:>7.2?} p99 {:>7.2?} ({} events)",
        per_sec(objects, create),
        per_sec(objects, get),
        per_sec(lists, list),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.len()
    );
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let objects: usize = std::env::var("BERTH_BENCH_OBJECTS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_berth"));
    let size = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
    println!("berth binary: {} ({:.1} MiB)", binary.display(), size as f64 / (1024.0 * 1024.0));

    // Cold start: a fresh data dir (certificates generated), then a warm restart on the same dir.
    let dir = tempfile::tempdir().expect("temp dir");
    let first = start_server(dir.path(), None);
    println!("cold start (new data dir) to ready: {:?}", first.started_in);
    drop(first);
    let server = start_server(dir.path(), None);
    println!("warm start (existing data dir) to ready: {:?}", server.started_in);
    std::thread::sleep(Duration::from_secs(2));
    println!("idle RSS after start: {} KiB", rss_kib(server.pid));
    rt.block_on(throughput("sqlite", &server, objects));
    println!("RSS after {objects} objects: {} KiB", rss_kib(server.pid));
    drop(server);

    let etcd_dir = tempfile::tempdir().expect("temp dir");
    match start_etcd(etcd_dir.path()) {
        Some((_etcd, endpoint)) => {
            let dir = tempfile::tempdir().expect("temp dir");
            let server = start_server(dir.path(), Some(&format!("etcd://{endpoint}")));
            rt.block_on(throughput("etcd", &server, objects));
        }
        None => println!("   etcd  skipped: etcd is not installed (apt-get install etcd-server)"),
    }
}
