//! Scale benchmark on sim nodes (kwok-like fake nodes, `berth_agent::sim`), all in this process:
//! apiserver (SQLite) + scheduler (+ controllers) + N sim nodes. Prints figures, asserts nothing
//! about time:
//!
//! 1. `lease`: N sim nodes renewing their Leases every 10 s: registration time, renewals per
//!    second, the longest gap between two renewals of one Lease, the oldest `renewTime` seen in
//!    the API while it runs (on time means under the 40 s lease duration, ideally near 10 s).
//! 2. `scheduler`: for each node count, P unbound pods through the real scheduler: binding
//!    throughput (pods/s), per-pod latency create -> bound (p50/p99), time until all Running.
//! 3. `deployment`: a Deployment of R replicas through controllers + scheduler + sim: time
//!    until every replica is Running.
//!
//! Each phase prints the process RSS. Sizes come from the environment (defaults in brackets):
//! `BERTH_BENCH_PHASES` [lease,scheduler,deployment], `BERTH_BENCH_LEASE_NODES` [1000],
//! `BERTH_BENCH_LEASE_SECS` [25], `BERTH_BENCH_SCHED_NODES` [1000,5000], `BERTH_BENCH_SCHED_PODS`
//! [3000], `BERTH_BENCH_DEPLOY_NODES` [1000], `BERTH_BENCH_DEPLOY_REPLICAS` [3000],
//! `BERTH_BENCH_TIMEOUT_SECS` [600]. The defaults finish in a few minutes on two cores; the
//! issue's figures are `BERTH_BENCH_SCHED_PODS=10000 BERTH_BENCH_DEPLOY_REPLICAS=10000`.
//! Run: `cargo bench -p berth --bench sim`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_agent::sim::{self, SimConfig};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Resident set size of this process, MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// An in-process apiserver in a temp dir; stopped (and the dir removed) on drop.
struct Cluster {
    client: Client,
    cancel: CancellationToken,
    _server: berth_apiserver::Server,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn cluster() -> Cluster {
    let dir = tempfile::Builder::new().prefix("berth-bench-sim-").tempdir().expect("temp dir");
    let mut config = berth_apiserver::Config::new(dir.path().to_path_buf());
    config.https_port = 0;
    let cancel = CancellationToken::new();
    let server = berth_apiserver::Server::start(config, cancel.child_token()).await.expect("apiserver starts");
    let kc = kube::config::Kubeconfig::read_from(server.kubeconfig_path()).expect("kubeconfig");
    let mut kconfig = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("kube config");
    kconfig.read_timeout = Some(Duration::from_secs(120));
    let client = Client::try_from(kconfig).expect("client");
    Cluster { client, cancel, _server: server, _dir: dir }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

async fn lease_phase() {
    let nodes = env_usize("BERTH_BENCH_LEASE_NODES", 1000);
    let secs = env_usize("BERTH_BENCH_LEASE_SECS", 25) as u64;
    let c = cluster().await;
    let start = Instant::now();
    let config = SimConfig { nodes, prefix: "lease-".into(), ..Default::default() };
    let handle = sim::start(c.client.clone(), config, c.cancel.child_token()).await.expect("sim starts");
    let registered = start.elapsed();
    let leases: Api<Lease> = Api::namespaced(c.client.clone(), "kube-node-lease");
    let mut oldest = Duration::ZERO;
    let run_start = Instant::now();
    let renewals_before = handle.stats.lease_renewals.load(std::sync::atomic::Ordering::Relaxed);
    while run_start.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = Timestamp::now();
        if let Ok(list) = leases.list(&ListParams::default()).await {
            for l in list.items {
                if let Some(t) = l.spec.and_then(|s| s.renew_time) {
                    let age = now.duration_since(t.0).unsigned_abs();
                    oldest = oldest.max(age);
                }
            }
        }
    }
    let renewals = handle.stats.lease_renewals.load(std::sync::atomic::Ordering::Relaxed) - renewals_before;
    let failures = handle.stats.lease_failures.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "lease: {nodes} sim nodes registered in {:.1}s; over {secs}s: {:.0} renewals/s, {failures} failures, \
         max gap between renewals {:.2}s, oldest renewTime seen {:.2}s (lease duration 40s); RSS {:.0} MiB",
        registered.as_secs_f64(),
        renewals as f64 / run_start.elapsed().as_secs_f64(),
        handle.stats.max_lease_gap().as_secs_f64(),
        oldest.as_secs_f64(),
        rss_mib(),
    );
}

/// What the bench's pod watch saw, by pod name.
#[derive(Default)]
struct Seen {
    bound: HashMap<String, Instant>,
    running: HashMap<String, Instant>,
}

fn watch_pods(client: Client, cancel: CancellationToken) -> Arc<Mutex<Seen>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let state = seen.clone();
    tokio::spawn(async move {
        let api: Api<Pod> = Api::all(client);
        let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
        let mut stream = std::pin::pin!(stream);
        loop {
            let event = tokio::select! {
                _ = cancel.cancelled() => return,
                e = stream.next() => e,
            };
            let pod = match event {
                None => return,
                Some(Ok(Event::Apply(p) | Event::InitApply(p))) => p,
                _ => continue,
            };
            let now = Instant::now();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let mut s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
                s.bound.entry(name.clone()).or_insert(now);
            }
            if pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                s.running.entry(name).or_insert(now);
            }
        }
    });
    seen
}

fn counts(seen: &Mutex<Seen>) -> (usize, usize) {
    let s = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    (s.bound.len(), s.running.len())
}

async fn wait_running(seen: &Mutex<Seen>, want: usize, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if counts(seen).1 >= want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn scheduler_phase(nodes: usize, pods: usize, timeout: Duration) {
    let c = cluster().await;
    let config = SimConfig { nodes, prefix: "sched-".into(), ..Default::default() };
    let t = Instant::now();
    let _sim = sim::start(c.client.clone(), config, c.cancel.child_token()).await.expect("sim starts");
    let registered = t.elapsed();
    let seen = watch_pods(c.client.clone(), c.cancel.child_token());
    let (client, token) = (c.client.clone(), c.cancel.child_token());
    tokio::spawn(async move {
        if let Err(e) = berth_scheduler::run(client, berth_scheduler::SchedulerConfig::default(), token).await {
            eprintln!("scheduler failed: {e}");
        }
    });
    let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let start = Instant::now();
    futures::stream::iter(0..pods)
        .map(|i| {
            let (api, created) = (api.clone(), created.clone());
            async move {
                let name = format!("p-{i}");
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": name, "labels": {"app": format!("a{}", i % 10)}},
                    "spec": {"containers": [{"name": "c", "image": "busybox",
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
                }))
                .expect("pod");
                api.create(&PostParams::default(), &pod).await?;
                created.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(name, Instant::now());
                Ok::<_, kube::Error>(())
            }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<()>>()
        .await
        .expect("create pods");
    let created_in = start.elapsed();
    let all = wait_running(&seen, pods, timeout).await;
    let total = start.elapsed();
    let s = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let created = created.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut latencies: Vec<Duration> =
        created.iter().filter_map(|(name, at)| s.bound.get(name).map(|b| b.saturating_duration_since(*at))).collect();
    latencies.sort();
    let last_bound = s.bound.values().max().map_or(Duration::ZERO, |b| b.duration_since(start));
    println!(
        "scheduler: {nodes} sim nodes (registered in {:.1}s), {pods} pods created in {:.1}s; {} bound, \
         throughput {:.0} pods/s (create->last bind {:.1}s), latency create->bound p50 {:.0} ms p99 {:.0} ms; \
         {} Running after {:.1}s{}; RSS {:.0} MiB",
        registered.as_secs_f64(),
        created_in.as_secs_f64(),
        s.bound.len(),
        s.bound.len() as f64 / last_bound.as_secs_f64().max(0.001),
        last_bound.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        s.running.len(),
        total.as_secs_f64(),
        if all { "" } else { " (TIMED OUT)" },
        rss_mib(),
    );
}

async fn deployment_phase(nodes: usize, replicas: usize, timeout: Duration) {
    let c = cluster().await;
    let config = SimConfig { nodes, prefix: "deploy-".into(), ..Default::default() };
    let _sim = sim::start(c.client.clone(), config, c.cancel.child_token()).await.expect("sim starts");
    let seen = watch_pods(c.client.clone(), c.cancel.child_token());
    let (client, token) = (c.client.clone(), c.cancel.child_token());
    tokio::spawn(async move {
        if let Err(e) = berth_scheduler::run(client, berth_scheduler::SchedulerConfig::default(), token).await {
            eprintln!("scheduler failed: {e}");
        }
    });
    let (client, token) = (c.client.clone(), c.cancel.child_token());
    tokio::spawn(async move {
        if let Err(e) = berth_controllers::run(client, berth_controllers::ControllersConfig::default(), token).await {
            eprintln!("controllers failed: {e}");
        }
    });
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "big"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "big"}},
            "template": {"metadata": {"labels": {"app": "big"}},
                "spec": {"containers": [{"name": "c", "image": "busybox",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}},
    }))
    .expect("deployment");
    let start = Instant::now();
    Api::<Deployment>::namespaced(c.client.clone(), "default")
        .create(&PostParams::default(), &deploy)
        .await
        .expect("create deployment");
    let all = wait_running(&seen, replicas, timeout).await;
    let (bound, running) = counts(&seen);
    println!(
        "deployment: {replicas} replicas on {nodes} sim nodes: {running} Running ({bound} bound) after {:.1}s{}; RSS {:.0} MiB",
        start.elapsed().as_secs_f64(),
        if all { "" } else { " (TIMED OUT)" },
        rss_mib(),
    );
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let phases = env_list("BERTH_BENCH_PHASES", "lease,scheduler,deployment");
    let timeout = Duration::from_secs(env_usize("BERTH_BENCH_TIMEOUT_SECS", 600) as u64);
    runtime.block_on(async {
        if phases.iter().any(|p| p == "lease") {
            lease_phase().await;
        }
        if phases.iter().any(|p| p == "scheduler") {
            let pods = env_usize("BERTH_BENCH_SCHED_PODS", 3_000);
            for nodes in env_list("BERTH_BENCH_SCHED_NODES", "1000,5000") {
                let Ok(nodes) = nodes.parse() else { continue };
                scheduler_phase(nodes, pods, timeout).await;
            }
        }
        if phases.iter().any(|p| p == "deployment") {
            let nodes = env_usize("BERTH_BENCH_DEPLOY_NODES", 1000);
            let replicas = env_usize("BERTH_BENCH_DEPLOY_REPLICAS", 3_000);
            deployment_phase(nodes, replicas, timeout).await;
        }
    });
}
