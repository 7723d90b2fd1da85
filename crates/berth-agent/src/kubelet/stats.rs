//! Resource usage for `kubectl top` and metrics-server: per-container CPU (cumulative, from
//! `cpu.stat usage_usec` on cgroup v2 or `cpuacct.usage` on v1) and memory working set (usage
//! minus inactive file pages), per-pod sums, node totals from `/proc/stat` and `/proc/meminfo`.
//! Served as `/metrics/resource` (the upstream kubelet's Prometheus text) and `/stats/summary`
//! (the summary API subset metrics-server reads). Read-only.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde_json::{Value, json};

use super::cgroup::{self, CGROUP_ROOT};
use super::container::container_id;
use super::server::Context;
use crate::runtime::ContainerState;

/// CPU and memory of one cgroup (or a sum of them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Cumulative CPU time in nanoseconds.
    pub cpu_ns: u64,
    /// Memory usage in bytes (including page cache).
    pub memory_bytes: u64,
    /// Usage minus inactive file pages: what the kubelet calls the working set.
    pub working_set_bytes: u64,
    /// Anonymous memory (rss).
    pub rss_bytes: u64,
}

impl std::ops::Add for Usage {
    type Output = Usage;
    fn add(self, o: Usage) -> Usage {
        Usage {
            cpu_ns: self.cpu_ns + o.cpu_ns,
            memory_bytes: self.memory_bytes + o.memory_bytes,
            working_set_bytes: self.working_set_bytes + o.working_set_bytes,
            rss_bytes: self.rss_bytes + o.rss_bytes,
        }
    }
}

/// A `key value` line of a stat file (`cpu.stat`, `memory.stat`).
fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        if k == key { v.trim().parse().ok() } else { None }
    })
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Usage of a cgroup v2 directory.
pub fn usage_v2(dir: &Path) -> Option<Usage> {
    let cpu = std::fs::read_to_string(dir.join("cpu.stat")).ok()?;
    let memory = read_u64(&dir.join("memory.current")).unwrap_or(0);
    let stat = std::fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
    let inactive = stat_value(&stat, "inactive_file").unwrap_or(0);
    Some(Usage {
        cpu_ns: stat_value(&cpu, "usage_usec").unwrap_or(0) * 1000,
        memory_bytes: memory,
        working_set_bytes: memory.saturating_sub(inactive),
        rss_bytes: stat_value(&stat, "anon").unwrap_or(0),
    })
}

/// Usage of a cgroup v1 path (relative to each controller's mount).
pub fn usage_v1(root: &Path, path: &Path) -> Option<Usage> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let cpu_dir = ["cpuacct", "cpu,cpuacct", "cpu"].iter().map(|c| root.join(c).join(rel)).find(|d| d.exists());
    let memory_dir = root.join("memory").join(rel);
    let cpu_ns = cpu_dir.and_then(|d| read_u64(&d.join("cpuacct.usage")));
    let memory = read_u64(&memory_dir.join("memory.usage_in_bytes"));
    if cpu_ns.is_none() && memory.is_none() {
        return None;
    }
    let memory = memory.unwrap_or(0);
    let stat = std::fs::read_to_string(memory_dir.join("memory.stat")).unwrap_or_default();
    let inactive = stat_value(&stat, "total_inactive_file").unwrap_or(0);
    Some(Usage {
        cpu_ns: cpu_ns.unwrap_or(0),
        memory_bytes: memory,
        working_set_bytes: memory.saturating_sub(inactive),
        rss_bytes: stat_value(&stat, "total_rss").unwrap_or(0),
    })
}

/// Usage of the cgroup at `path` (cgroupfs style, e.g. `/berth/node/pod<uid>/c`), v2 or v1.
pub fn cgroup_usage(path: &Path) -> Option<Usage> {
    let root = Path::new(CGROUP_ROOT);
    if root.join("cgroup.controllers").exists() {
        usage_v2(&root.join(path.strip_prefix("/").unwrap_or(path)))
    } else {
        usage_v1(root, path)
    }
}

/// Node CPU time (everything but idle and iowait) from `/proc/stat`'s first line, in ns.
pub fn parse_proc_stat(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = ticks.iter().enumerate().filter(|(i, _)| *i != 3 && *i != 4 && *i < 8).map(|(_, v)| v).sum();
    // USER_HZ is 100 on Linux: one tick is 10 ms.
    Some(busy * 10_000_000)
}

/// Node memory (total − available as the working set) from `/proc/meminfo`.
pub fn parse_meminfo(text: &str) -> Usage {
    let kb = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.trim().trim_end_matches(" kB").parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let total = kb("MemTotal");
    let used = total.saturating_sub(kb("MemAvailable"));
    Usage { cpu_ns: 0, memory_bytes: used, working_set_bytes: used, rss_bytes: kb("AnonPages") }
}

/// The node's usage now.
pub fn node_usage() -> Usage {
    let mut usage = parse_meminfo(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default());
    usage.cpu_ns = parse_proc_stat(&std::fs::read_to_string("/proc/stat").unwrap_or_default()).unwrap_or(0);
    usage
}

/// One running container's usage.
#[derive(Debug, Clone)]
pub struct ContainerStats {
    pub name: String,
    pub start_time: Option<Timestamp>,
    pub usage: Usage,
}

/// One pod's containers.
#[derive(Debug, Clone)]
pub struct PodStats {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub start_time: Option<Timestamp>,
    pub containers: Vec<ContainerStats>,
}

impl PodStats {
    pub fn usage(&self) -> Usage {
        self.containers.iter().fold(Usage::default(), |a, c| a + c.usage)
    }
}

/// A snapshot of the node and its pods.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub time: Timestamp,
    pub node: Usage,
    pub pods: Vec<PodStats>,
}

/// Collects the usage of the running containers of this node's pods.
pub async fn collect(ctx: &Context) -> Result<Snapshot, kube::Error> {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let pods = api.list(&ListParams::default().fields(&format!("spec.nodeName={}", ctx.node_name))).await?;
    let kubelet = cgroup::kubelet_cgroup(&ctx.node_name);
    let mut out = Vec::new();
    for pod in pods.items {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
        let mut containers = Vec::new();
        for c in pod.spec.as_ref().map(|s| s.containers.clone()).unwrap_or_default() {
            if !matches!(ctx.runtime.state(&container_id(&uid, &c.name)).await, Ok(ContainerState::Running { .. })) {
                continue;
            }
            let path: PathBuf = cgroup::container_cgroup(&kubelet, &uid, &c.name);
            let Some(usage) = tokio::task::spawn_blocking(move || cgroup_usage(&path)).await.ok().flatten() else {
                continue;
            };
            let start_time = statuses
                .iter()
                .find(|s| s.name == c.name)
                .and_then(|s| s.state.as_ref()?.running.as_ref()?.started_at.as_ref())
                .map(|t| t.0);
            containers.push(ContainerStats { name: c.name.clone(), start_time, usage });
        }
        if containers.is_empty() {
            continue;
        }
        out.push(PodStats {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid,
            start_time: pod.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0),
            containers,
        });
    }
    let node = tokio::task::spawn_blocking(node_usage).await.unwrap_or_default();
    Ok(Snapshot { time: Timestamp::now(), node, pods: out })
}

fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn seconds(ns: u64) -> String {
    format!("{}", ns as f64 / 1e9)
}

/// The upstream kubelet's `/metrics/resource` text for a snapshot.
pub fn prometheus_text(s: &Snapshot) -> String {
    let ts = s.time.as_millisecond();
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} [STABLE] {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value} {ts}");
        }
    };
    let container_labels = |p: &PodStats, c: &ContainerStats| {
        format!("{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}}", label(&c.name), label(&p.namespace), label(&p.name))
    };
    let pod_labels = |p: &PodStats| format!("{{namespace=\"{}\",pod=\"{}\"}}", label(&p.namespace), label(&p.name));
    let containers = || s.pods.iter().flat_map(|p| p.containers.iter().map(move |c| (p, c)));
    family(
        "container_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the container in core-seconds",
        containers().map(|(p, c)| (container_labels(p, c), seconds(c.usage.cpu_ns))).collect(),
    );
    family(
        "container_memory_working_set_bytes",
        "gauge",
        "Current working set of the container in bytes",
        containers().map(|(p, c)| (container_labels(p, c), c.usage.working_set_bytes.to_string())).collect(),
    );
    family(
        "container_start_time_seconds",
        "gauge",
        "Start time of the container since unix epoch in seconds",
        containers()
            .filter_map(|(p, c)| Some((container_labels(p, c), c.start_time?.as_second().to_string())))
            .collect(),
    );
    family(
        "node_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the node in core-seconds",
        vec![(String::new(), seconds(s.node.cpu_ns))],
    );
    family(
        "node_memory_working_set_bytes",
        "gauge",
        "Current working set of the node in bytes",
        vec![(String::new(), s.node.working_set_bytes.to_string())],
    );
    family(
        "pod_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the pod in core-seconds",
        s.pods.iter().map(|p| (pod_labels(p), seconds(p.usage().cpu_ns))).collect(),
    );
    family(
        "pod_memory_working_set_bytes",
        "gauge",
        "Current working set of the pod in bytes",
        s.pods.iter().map(|p| (pod_labels(p), p.usage().working_set_bytes.to_string())).collect(),
    );
    let _ = writeln!(
        out,
        "# HELP scrape_error [ALPHA] 1 if there was an error while getting container metrics, 0 otherwise"
    );
    let _ = writeln!(out, "# TYPE scrape_error gauge");
    let _ = writeln!(out, "scrape_error 0");
    out
}

/// Remembers the previous CPU sample per key to report `usageNanoCores`.
#[derive(Debug, Default, Clone)]
pub struct Rates(Arc<Mutex<HashMap<String, (Timestamp, u64)>>>);

impl Rates {
    /// Records `cpu_ns` at `time` and returns the rate since the previous sample (nanocores).
    pub fn rate(&self, key: &str, time: Timestamp, cpu_ns: u64) -> Option<u64> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = map.insert(key.to_string(), (time, cpu_ns));
        let (t0, c0) = previous?;
        let elapsed = time.duration_since(t0).as_nanos();
        if elapsed <= 0 || cpu_ns < c0 {
            return None;
        }
        u64::try_from(u128::from(cpu_ns - c0) * 1_000_000_000 / u128::try_from(elapsed).ok()?).ok()
    }
}

fn cpu_json(rates: &Rates, key: &str, time: Timestamp, u: &Usage) -> Value {
    let mut cpu = json!({"time": time.to_string(), "usageCoreNanoSeconds": u.cpu_ns});
    if let Some(rate) = rates.rate(key, time, u.cpu_ns) {
        cpu["usageNanoCores"] = json!(rate);
    }
    cpu
}

fn memory_json(time: Timestamp, u: &Usage) -> Value {
    json!({
        "time": time.to_string(),
        "usageBytes": u.memory_bytes,
        "workingSetBytes": u.working_set_bytes,
        "rssBytes": u.rss_bytes,
    })
}

/// The `/stats/summary` document (node, pods, containers; CPU and memory only).
pub fn summary_json(s: &Snapshot, node_name: &str, rates: &Rates) -> Value {
    let t = s.time;
    let pods: Vec<Value> = s
        .pods
        .iter()
        .map(|p| {
            let containers: Vec<Value> = p
                .containers
                .iter()
                .map(|c| {
                    let key = format!("{}/{}", p.uid, c.name);
                    json!({
                        "name": c.name,
                        "startTime": c.start_time.map(|t| t.to_string()),
                        "cpu": cpu_json(rates, &key, t, &c.usage),
                        "memory": memory_json(t, &c.usage),
                    })
                })
                .collect();
            let usage = p.usage();
            json!({
                "podRef": {"name": p.name, "namespace": p.namespace, "uid": p.uid},
                "startTime": p.start_time.map(|t| t.to_string()),
                "containers": containers,
                "cpu": cpu_json(rates, &p.uid, t, &usage),
                "memory": memory_json(t, &usage),
            })
        })
        .collect();
    json!({
        "node": {
            "nodeName": node_name,
            "cpu": cpu_json(rates, "", t, &s.node),
            "memory": memory_json(t, &s.node),
        },
        "pods": pods,
    })
}

fn failed(e: &kube::Error) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("failed to list pods: {e}")).into_response()
}

/// `GET /metrics/resource`.
pub async fn metrics_resource(State(ctx): State<Arc<Context>>) -> Response {
    match collect(&ctx).await {
        Ok(s) => {
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], prometheus_text(&s)).into_response()
        }
        Err(e) => failed(&e),
    }
}

/// `GET /stats/summary`.
pub async fn summary(State(ctx): State<Arc<Context>>) -> Response {
    match collect(&ctx).await {
        Ok(s) => Json(summary_json(&s, &ctx.node_name, &ctx.rates)).into_response(),
        Err(e) => failed(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_v2_working_set_is_current_minus_inactive_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cpu.stat"), "usage_usec 2500000\nuser_usec 2000000\n").unwrap();
        std::fs::write(dir.path().join("memory.current"), "10485760\n").unwrap();
        std::fs::write(dir.path().join("memory.stat"), "anon 4096\nfile 8192\ninactive_file 1048576\n").unwrap();
        let u = usage_v2(dir.path()).unwrap();
        assert_eq!(
            u,
            Usage { cpu_ns: 2_500_000_000, memory_bytes: 10485760, working_set_bytes: 9437184, rss_bytes: 4096 }
        );
        assert_eq!(usage_v2(&dir.path().join("missing")), None);
    }

    #[test]
    fn cgroup_v1_reads_cpuacct_and_memory_controllers() {
        let root = tempfile::tempdir().unwrap();
        let path = Path::new("/berth/node/podu/c");
        let cpu = root.path().join("cpuacct/berth/node/podu/c");
        let mem = root.path().join("memory/berth/node/podu/c");
        std::fs::create_dir_all(&cpu).unwrap();
        std::fs::create_dir_all(&mem).unwrap();
        std::fs::write(cpu.join("cpuacct.usage"), "123456789\n").unwrap();
        std::fs::write(mem.join("memory.usage_in_bytes"), "5000\n").unwrap();
        std::fs::write(mem.join("memory.stat"), "cache 10\ntotal_rss 300\ntotal_inactive_file 1000\n").unwrap();
        let u = usage_v1(root.path(), path).unwrap();
        assert_eq!(u, Usage { cpu_ns: 123456789, memory_bytes: 5000, working_set_bytes: 4000, rss_bytes: 300 });
        assert_eq!(usage_v1(root.path(), Path::new("/nope")), None);
    }

    #[test]
    fn node_totals_come_from_proc() {
        let stat = "cpu  100 20 30 1000 50 5 5 10 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        // user+nice+system+irq+softirq+steal = 170 ticks of 10 ms.
        assert_eq!(parse_proc_stat(stat), Some(1_700_000_000));
        let mem =
            parse_meminfo("MemTotal:       2000 kB\nMemFree:  100 kB\nMemAvailable:   500 kB\nAnonPages: 300 kB\n");
        assert_eq!(mem.working_set_bytes, 1500 * 1024);
        assert_eq!(mem.rss_bytes, 300 * 1024);
    }

    fn snapshot() -> Snapshot {
        let usage = Usage { cpu_ns: 1_500_000_000, memory_bytes: 2048, working_set_bytes: 1024, rss_bytes: 512 };
        Snapshot {
            time: "2026-11-22T07:00:00Z".parse().unwrap(),
            node: Usage { cpu_ns: 10_000_000_000, memory_bytes: 9, working_set_bytes: 8, rss_bytes: 7 },
            pods: vec![PodStats {
                namespace: "default".into(),
                name: "web".into(),
                uid: "u1".into(),
                start_time: None,
                containers: vec![
                    ContainerStats { name: "a".into(), start_time: None, usage },
                    ContainerStats { name: "b".into(), start_time: None, usage },
                ],
            }],
        }
    }

    #[test]
    fn prometheus_text_has_the_upstream_metric_names_and_labels() {
        let text = prometheus_text(&snapshot());
        let ts = "1795330800000";
        for line in [
            format!("container_cpu_usage_seconds_total{{container=\"a\",namespace=\"default\",pod=\"web\"}} 1.5 {ts}"),
            format!(
                "container_memory_working_set_bytes{{container=\"b\",namespace=\"default\",pod=\"web\"}} 1024 {ts}"
            ),
            format!("pod_cpu_usage_seconds_total{{namespace=\"default\",pod=\"web\"}} 3 {ts}"),
            format!("pod_memory_working_set_bytes{{namespace=\"default\",pod=\"web\"}} 2048 {ts}"),
            format!("node_cpu_usage_seconds_total 10 {ts}"),
            format!("node_memory_working_set_bytes 8 {ts}"),
            "# TYPE container_cpu_usage_seconds_total counter".to_string(),
            "scrape_error 0".to_string(),
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn summary_reports_usage_and_a_cpu_rate_from_the_second_sample_on() {
        let rates = Rates::default();
        let mut s = snapshot();
        let first = summary_json(&s, "n1", &rates);
        assert_eq!(first["node"]["nodeName"], "n1");
        assert_eq!(first["pods"][0]["podRef"]["name"], "web");
        assert_eq!(first["pods"][0]["containers"][1]["memory"]["workingSetBytes"], 1024);
        assert_eq!(first["pods"][0]["memory"]["workingSetBytes"], 2048);
        assert!(first["pods"][0]["cpu"].get("usageNanoCores").is_none());
        // One second later, container a used another half a core-second.
        s.time = "2026-11-22T07:00:01Z".parse().unwrap();
        s.pods[0].containers[0].usage.cpu_ns += 500_000_000;
        let second = summary_json(&s, "n1", &rates);
        assert_eq!(second["pods"][0]["containers"][0]["cpu"]["usageNanoCores"], 500_000_000);
        assert_eq!(second["pods"][0]["containers"][1]["cpu"]["usageNanoCores"], 0);
    }
}
