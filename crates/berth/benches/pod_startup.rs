//! Pod startup latency with real containers: `berth server` with its agent (the end-to-end
//! fixture: private bridge, CIDR and data dir, busybox image imported) creates `BENCH_PODS`
//! (default 100) pods one every `BENCH_INTERVAL_MS` (default 100 ms) and times each from its
//! create call to the Ready condition seen on a watch; p50/p99 for `runc` and `crun` side by
//! side, and the server's RSS idle and with the pods running. Needs root, runc/crun and the CNI
//! plugins; prints a skip line otherwise. Prints figures; asserts nothing about speed.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, prerequisites};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

struct Figures {
    p50: Duration,
    p99: Duration,
    max: Duration,
    idle_rss: u64,
    busy_rss: u64,
}

/// Creates the pods and times them; `Err` with the agent's last start failure when they do not
/// all become Ready in time (e.g. a runtime that cannot run on this host's cgroup layout).
async fn measure(cluster: &Cluster, pods: u64, interval: Duration) -> Result<Figures, String> {
    let kc = Kubeconfig::read_from(&cluster.server().kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("config");
    let client = Client::try_from(config).expect("client");
    let api: Api<Pod> = Api::namespaced(client, "default");
    let idle_rss = rss_kib(cluster.server().pid());

    let created: std::sync::Arc<std::sync::Mutex<HashMap<String, Instant>>> = Default::default();
    let watch_api = api.clone();
    let created_w = created.clone();
    let watch = tokio::spawn(async move {
        let mut ready: HashMap<String, Duration> = HashMap::new();
        let stream = watcher::watcher(watch_api, watcher::Config::default().labels("bench=startup"));
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            let pod = match event {
                Ok(Event::Apply(p) | Event::InitApply(p)) => p,
                _ => continue,
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            if is_ready(&pod) && !ready.contains_key(&name) {
                let at = created_w.lock().expect("lock").get(&name).copied();
                if let Some(at) = at {
                    ready.insert(name, at.elapsed());
                }
            }
            if ready.len() as u64 == pods {
                break;
            }
        }
        ready
    });
    for i in 0..pods {
        let name = format!("startup-{i}");
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"bench": "startup"}},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "busybox",
                "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]},
        }))
        .expect("pod");
        created.lock().expect("lock").insert(name.clone(), Instant::now());
        api.create(&PostParams::default(), &pod).await.expect("create pod");
        tokio::time::sleep(interval).await;
    }
    let ready = tokio::time::timeout(Duration::from_secs(120), watch).await;
    let busy_rss = rss_kib(cluster.server().pid());
    let _ = api.delete_collection(&DeleteParams::default(), &ListParams::default().labels("bench=startup")).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline
        && !api.list(&ListParams::default().labels("bench=startup")).await.map(|l| l.items.is_empty()).unwrap_or(true)
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let Ok(Ok(ready)) = ready else {
        let log = cluster.log();
        let why = log.lines().rev().find(|l| l.contains("container start failed")).unwrap_or("timed out");
        return Err(why.split("reason=").nth(1).unwrap_or(why).to_string());
    };
    let mut latencies: Vec<Duration> = ready.into_values().collect();
    latencies.sort();
    Ok(Figures {
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or_default(),
        idle_rss,
        busy_rss,
    })
}

fn main() {
    if !prerequisites("pod_startup bench") {
        return;
    }
    let pods = env("BENCH_PODS", 100);
    let interval = Duration::from_millis(env("BENCH_INTERVAL_MS", 100));
    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    println!(
        "pod startup, create → Ready, {pods} pods, one every {} ms (busybox, image present):",
        interval.as_millis()
    );
    println!("{:<6} {:>9} {:>9} {:>9} {:>14} {:>16}", "RUNTIME", "P50", "P99", "MAX", "RSS IDLE", "RSS WITH PODS");
    for (index, binary) in ["runc", "crun"].into_iter().enumerate() {
        if std::process::Command::new(binary).arg("--version").output().is_err() {
            println!("{binary:<6} (not installed: apt-get install {binary})");
            continue;
        }
        let cluster = Cluster::start_with(index as u32, &|_| vec!["--runc".to_string(), binary.to_string()]);
        let f = match runtime.block_on(measure(&cluster, pods, interval)) {
            Ok(f) => f,
            Err(why) => {
                println!("{binary:<6} pods did not start: {why}");
                continue;
            }
        };
        println!(
            "{binary:<6} {:>7.0}ms {:>7.0}ms {:>7.0}ms {:>10.1} MiB {:>12.1} MiB",
            f.p50.as_secs_f64() * 1000.0,
            f.p99.as_secs_f64() * 1000.0,
            f.max.as_secs_f64() * 1000.0,
            f.idle_rss as f64 / 1024.0,
            f.busy_rss as f64 / 1024.0
        );
    }
}
