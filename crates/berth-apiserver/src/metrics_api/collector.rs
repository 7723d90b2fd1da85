//! The embedded metrics collector (what metrics-server does upstream): every resolution period
//! it reads the Nodes and Pods from the store, scrapes each Ready node's kubelet
//! `/metrics/resource` (Prometheus text: `node_cpu_usage_seconds_total`,
//! `node_memory_working_set_bytes`, `container_cpu_usage_seconds_total` and
//! `container_memory_working_set_bytes` with labels `container`, `pod`, `namespace`) over the
//! apiserver's kubelet client TLS, computes CPU rates from the two latest distinct samples of each
//! counter, synthesizes usage for sim nodes (see the module above), and publishes the result to
//! [`MetricsApi`]. May read the store and call kubelets; never writes.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Map, Value};
use tokio::task::JoinHandle;

use super::prometheus;
use super::{MetricsApi, NodeUsage, PodUsage, Snapshot, Usage};
use crate::state::AppState;

/// The label that marks a simulated node.
pub const SIM_NODE_LABEL: &str = "node.berth.dev/sim";
/// A sim pod's total CPU usage (a quantity).
pub const SIM_CPU_ANNOTATION: &str = "sim.berth.dev/cpu-usage";
/// A sim pod's total memory usage (a quantity).
pub const SIM_MEMORY_ANNOTATION: &str = "sim.berth.dev/memory-usage";
/// The fraction of its requests a sim pod without annotations uses.
pub const SIM_DEFAULT_FRACTION: f64 = 0.1;
/// The kubelet's resource metrics endpoint.
pub const RESOURCE_METRICS_PATH: &str = "/metrics/resource";
/// metrics-server's default `--metric-resolution`.
pub const DEFAULT_RESOLUTION: Duration = Duration::from_secs(15);

const NODE_CPU: &str = "node_cpu_usage_seconds_total";
const NODE_MEMORY: &str = "node_memory_working_set_bytes";
const CONTAINER_CPU: &str = "container_cpu_usage_seconds_total";
const CONTAINER_MEMORY: &str = "container_memory_working_set_bytes";
/// A scrape body larger than this is refused.
const MAX_BODY: usize = 32 << 20;

/// A failed scrape of one node.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("node {node} has no address to reach its kubelet")]
    NoAddress { node: String },
    #[error("no kubelet client certificate")]
    NoClientCertificate,
    #[error("scraping node {node}")]
    Request {
        node: String,
        #[source]
        source: crate::error::ApiError,
    },
    #[error("scraping node {node}: timed out after {after:?}")]
    Timeout { node: String, after: Duration },
    #[error("reading the metrics of node {node}: {message}")]
    Body { node: String, message: String },
    #[error("parsing the metrics of node {node}")]
    Parse {
        node: String,
        #[source]
        source: prometheus::ParseError,
    },
}

/// One counter reading: cumulative core-seconds at a time (ms since the epoch).
#[derive(Clone, Copy, Debug, PartialEq)]
struct CpuSample {
    seconds: f64,
    at_ms: i64,
}

/// The two latest distinct readings of one counter.
#[derive(Clone, Copy, Debug, Default)]
struct CpuSeries {
    older: Option<CpuSample>,
    newer: Option<CpuSample>,
}

impl CpuSeries {
    fn push(&mut self, s: CpuSample) {
        match self.newer {
            Some(n) if s.at_ms <= n.at_ms => {}
            _ => {
                self.older = self.newer;
                self.newer = Some(s);
            }
        }
    }

    /// (nanocores, window, timestamp of the newer reading); `None` until two readings exist or
    /// after a counter reset.
    fn rate(&self) -> Option<(u64, Duration, Timestamp)> {
        let (o, n) = (self.older?, self.newer?);
        if n.seconds < o.seconds || n.at_ms <= o.at_ms {
            return None;
        }
        let dt_ms = (n.at_ms - o.at_ms) as f64;
        let cores = (n.seconds - o.seconds) / (dt_ms / 1000.0);
        let window = Duration::from_millis(u64::try_from(n.at_ms - o.at_ms).ok()?);
        Some(((cores * 1e9).round() as u64, window, Timestamp::from_millisecond(n.at_ms).ok()?))
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum SeriesKey {
    Node(String),
    Container { namespace: String, pod: String, container: String },
}

/// Starts the collector; it stops when the server's cancellation token fires.
pub fn spawn(state: AppState, api: MetricsApi, resolution: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut series: HashMap<SeriesKey, CpuSeries> = HashMap::new();
        loop {
            let snapshot = collect_once(&state, &mut series, resolution).await;
            api.set(snapshot);
            tokio::select! {
                () = state.cancel.cancelled() => return,
                () = tokio::time::sleep(resolution) => {}
            }
        }
    })
}

/// The objects of one resource from the store.
async fn list(state: &AppState, group: &str, plural: &str) -> Vec<Value> {
    let Some(rt) = state.registry.get().by_resource(group, "v1", plural) else { return Vec::new() };
    let req = berth_store::RangeRequest { prefix: rt.key_prefix(None), ..Default::default() };
    match state.store.range(req).await {
        Ok(resp) => resp.kvs.iter().filter_map(crate::object::from_kv).collect(),
        Err(e) => {
            tracing::warn!(resource = plural, error = %crate::error::error_chain(&e), "metrics collector: list failed");
            Vec::new()
        }
    }
}

fn is_ready(node: &Value) -> bool {
    node["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn labels(obj: &Value) -> Map<String, Value> {
    obj["metadata"]["labels"].as_object().cloned().unwrap_or_default()
}

fn pod_key(pod: &Value) -> (String, String) {
    let m = &pod["metadata"];
    (m["namespace"].as_str().unwrap_or_default().to_string(), m["name"].as_str().unwrap_or_default().to_string())
}

/// One collection round over every Ready node.
async fn collect_once(state: &AppState, series: &mut HashMap<SeriesKey, CpuSeries>, resolution: Duration) -> Snapshot {
    let nodes = list(state, "", "nodes").await;
    let pods = list(state, "", "pods").await;
    let pods_by_key: HashMap<(String, String), &Value> = pods.iter().map(|p| (pod_key(p), p)).collect();
    let mut snapshot = Snapshot::default();
    let now = Timestamp::now();
    let mut real = Vec::new();
    for node in nodes.iter().filter(|n| is_ready(n)) {
        let name = node["metadata"]["name"].as_str().unwrap_or_default().to_string();
        if node["metadata"]["labels"][SIM_NODE_LABEL] == "true" {
            let on_node = pods.iter().filter(|p| p["spec"]["nodeName"] == name.as_str());
            synthesize(&mut snapshot, &name, labels(node), on_node, now, resolution);
        } else {
            real.push((name, node));
        }
    }
    let timeout = resolution.clamp(Duration::from_secs(1), Duration::from_secs(10));
    let scrapes = real.iter().map(|(name, node)| scrape(state, name, node, timeout));
    let pages = futures::future::join_all(scrapes).await;
    let mut seen = std::collections::HashSet::new();
    for ((name, node), page) in real.iter().zip(pages) {
        let samples = match page {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %crate::error::error_chain(&e), "metrics collector: scrape failed");
                continue;
            }
        };
        let scraped_ms = Timestamp::now().as_millisecond();
        apply_samples(&mut snapshot, series, &mut seen, name, labels(node), &samples, scraped_ms, &pods_by_key);
    }
    series.retain(|k, _| seen.contains(k));
    snapshot
}

/// Folds one node's samples into the snapshot.
#[allow(clippy::too_many_arguments)]
fn apply_samples(
    snapshot: &mut Snapshot,
    series: &mut HashMap<SeriesKey, CpuSeries>,
    seen: &mut std::collections::HashSet<SeriesKey>,
    node: &str,
    node_labels: Map<String, Value>,
    samples: &[prometheus::Sample],
    scraped_ms: i64,
    pods: &HashMap<(String, String), &Value>,
) {
    let mut node_memory = None;
    let mut container_memory: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let mut container_keys = Vec::new();
    for s in samples {
        let at_ms = s.timestamp_ms.unwrap_or(scraped_ms);
        let label = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
        match s.name.as_str() {
            NODE_CPU => {
                let key = SeriesKey::Node(node.to_string());
                series.entry(key.clone()).or_default().push(CpuSample { seconds: s.value, at_ms });
                seen.insert(key);
            }
            NODE_MEMORY => node_memory = Some(s.value.max(0.0) as u64),
            CONTAINER_CPU => {
                let key = SeriesKey::Container {
                    namespace: label("namespace"),
                    pod: label("pod"),
                    container: label("container"),
                };
                series.entry(key.clone()).or_default().push(CpuSample { seconds: s.value, at_ms });
                seen.insert(key.clone());
                container_keys.push(key);
            }
            CONTAINER_MEMORY => {
                container_memory
                    .insert((label("namespace"), label("pod"), label("container")), s.value.max(0.0) as u64);
            }
            _ => {}
        }
    }
    if let (Some((cpu, window, timestamp)), Some(memory)) =
        (series.get(&SeriesKey::Node(node.to_string())).and_then(CpuSeries::rate), node_memory)
    {
        snapshot.nodes.insert(
            node.to_string(),
            NodeUsage {
                labels: node_labels,
                usage: Usage { cpu_nanocores: cpu, memory_bytes: memory },
                timestamp,
                window,
            },
        );
    }
    for key in container_keys {
        let SeriesKey::Container { namespace, pod, container } = &key else { continue };
        let Some(obj) = pods.get(&(namespace.clone(), pod.clone())) else { continue };
        let Some((cpu, window, timestamp)) = series.get(&key).and_then(CpuSeries::rate) else { continue };
        let Some(memory) = container_memory.get(&(namespace.clone(), pod.clone(), container.clone())) else {
            continue;
        };
        let entry = snapshot.pods.entry((namespace.clone(), pod.clone())).or_insert_with(|| PodUsage {
            labels: labels(obj),
            containers: Vec::new(),
            timestamp,
            window,
        });
        entry.timestamp = entry.timestamp.max(timestamp);
        entry.containers.push((container.clone(), Usage { cpu_nanocores: cpu, memory_bytes: *memory }));
    }
}

/// One HTTPS GET of `/metrics/resource`, parsed.
async fn scrape(
    state: &AppState,
    name: &str,
    node: &Value,
    timeout: Duration,
) -> Result<Vec<prometheus::Sample>, ScrapeError> {
    let (addr, port) =
        crate::kubelet::kubelet_endpoint(node).ok_or_else(|| ScrapeError::NoAddress { node: name.to_string() })?;
    let tls = state.kubelet_tls.clone().ok_or(ScrapeError::NoClientCertificate)?;
    let fetch = async {
        let resp = crate::kubelet::proxy_get(tls, &addr, port, RESOURCE_METRICS_PATH)
            .await
            .map_err(|source| ScrapeError::Request { node: name.to_string(), source })?;
        let limited = http_body_util::Limited::new(resp.into_body(), MAX_BODY);
        http_body_util::BodyExt::collect(limited)
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| ScrapeError::Body { node: name.to_string(), message: e.to_string() })
    };
    let body = tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| ScrapeError::Timeout { node: name.to_string(), after: timeout })??;
    let text = String::from_utf8_lossy(&body);
    prometheus::parse(&text, &[NODE_CPU, NODE_MEMORY, CONTAINER_CPU, CONTAINER_MEMORY])
        .map_err(|source| ScrapeError::Parse { node: name.to_string(), source })
}

/// The sum of a resource's requests per container of a pod, in nano-units (CPU) or bytes.
fn container_requests(pod: &Value, resource: &str) -> Vec<(String, f64)> {
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or_default().to_string();
            let req = c["resources"]["requests"][resource]
                .as_str()
                .and_then(|q| berth_api::Quantity::parse(q).ok())
                .map(|q| q.as_f64())
                .unwrap_or(0.0);
            (name, req)
        })
        .collect()
}

/// A pod's usage of one resource split over its containers (in the resource's units).
fn split_usage(pod: &Value, resource: &str, annotation: &str) -> Vec<(String, f64)> {
    let requests = container_requests(pod, resource);
    let requested: f64 = requests.iter().map(|(_, r)| r).sum();
    let total = pod["metadata"]["annotations"][annotation]
        .as_str()
        .and_then(|q| berth_api::Quantity::parse(q).ok())
        .map(|q| q.as_f64())
        .unwrap_or(requested * SIM_DEFAULT_FRACTION);
    let n = requests.len().max(1) as f64;
    requests.iter().map(|(c, r)| (c.clone(), if requested > 0.0 { total * r / requested } else { total / n })).collect()
}

/// Usage of a sim node's Running pods from their annotations (see the module docs).
fn synthesize<'a>(
    snapshot: &mut Snapshot,
    node: &str,
    node_labels: Map<String, Value>,
    pods: impl Iterator<Item = &'a Value>,
    now: Timestamp,
    window: Duration,
) {
    let mut total = Usage::default();
    for pod in pods {
        if pod["status"]["phase"] != "Running" || !pod["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        let cpu = split_usage(pod, "cpu", SIM_CPU_ANNOTATION);
        let memory = split_usage(pod, "memory", SIM_MEMORY_ANNOTATION);
        let containers: Vec<(String, Usage)> = cpu
            .iter()
            .zip(memory.iter())
            .map(|((c, cores), (_, bytes))| {
                (c.clone(), Usage { cpu_nanocores: (cores * 1e9).round() as u64, memory_bytes: bytes.round() as u64 })
            })
            .collect();
        for (_, u) in &containers {
            total.cpu_nanocores += u.cpu_nanocores;
            total.memory_bytes += u.memory_bytes;
        }
        snapshot.pods.insert(pod_key(pod), PodUsage { labels: labels(pod), containers, timestamp: now, window });
    }
    snapshot.nodes.insert(node.to_string(), NodeUsage { labels: node_labels, usage: total, timestamp: now, window });
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn cpu_rate_comes_from_the_two_latest_distinct_samples() {
        let mut s = CpuSeries::default();
        s.push(CpuSample { seconds: 10.0, at_ms: 1_000_000 });
        assert_eq!(s.rate(), None, "one sample gives no rate");
        s.push(CpuSample { seconds: 10.5, at_ms: 1_010_000 });
        // A repeated reading (cached stats) changes nothing.
        s.push(CpuSample { seconds: 10.5, at_ms: 1_010_000 });
        let (nanocores, window, _) = s.rate().expect("rate");
        assert_eq!(nanocores, 50_000_000, "0.5 core-seconds over 10 s is 50m");
        assert_eq!(window, Duration::from_secs(10));
        // A counter reset (container restart) gives no rate until the next sample.
        s.push(CpuSample { seconds: 0.1, at_ms: 1_020_000 });
        assert_eq!(s.rate(), None);
    }

    #[test]
    fn scraped_samples_become_node_and_pod_usage_for_known_pods() {
        let page = |cpu_node: f64, cpu_app: f64, at: i64| {
            format!(
                "node_cpu_usage_seconds_total {cpu_node} {at}\nnode_memory_working_set_bytes 2048 {at}\n\
                 container_cpu_usage_seconds_total{{container=\"app\",namespace=\"default\",pod=\"web\"}} {cpu_app} {at}\n\
                 container_memory_working_set_bytes{{container=\"app\",namespace=\"default\",pod=\"web\"}} 1024 {at}\n\
                 container_cpu_usage_seconds_total{{container=\"x\",namespace=\"default\",pod=\"gone\"}} 1 {at}\n\
                 container_memory_working_set_bytes{{container=\"x\",namespace=\"default\",pod=\"gone\"}} 1 {at}\n"
            )
        };
        let wanted = [NODE_CPU, NODE_MEMORY, CONTAINER_CPU, CONTAINER_MEMORY];
        let pod = json!({"metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}}});
        let pods: HashMap<(String, String), &Value> = [(pod_key(&pod), &pod)].into_iter().collect();
        let mut series = HashMap::new();
        for (i, (n, a)) in [(100.0, 1.0), (101.0, 1.25)].into_iter().enumerate() {
            let samples = prometheus::parse(&page(n, a, 1_000_000 + i as i64 * 5_000), &wanted).expect("parse");
            let mut snap = Snapshot::default();
            let mut seen = Default::default();
            apply_samples(&mut snap, &mut series, &mut seen, "n1", Map::new(), &samples, 0, &pods);
            if i == 0 {
                assert!(snap.nodes.is_empty() && snap.pods.is_empty(), "no rate after one scrape");
                continue;
            }
            assert_eq!(snap.nodes["n1"].usage, Usage { cpu_nanocores: 200_000_000, memory_bytes: 2048 });
            let web = &snap.pods[&("default".to_string(), "web".to_string())];
            assert_eq!(
                web.containers,
                vec![("app".to_string(), Usage { cpu_nanocores: 50_000_000, memory_bytes: 1024 })]
            );
            assert_eq!(web.labels["app"], "web");
            assert_eq!(web.window, Duration::from_secs(5));
            assert!(!snap.pods.contains_key(&("default".to_string(), "gone".to_string())), "unknown pods are dropped");
        }
    }

    #[test]
    fn sim_pods_use_their_annotations_or_a_fraction_of_requests() {
        let container = |name: &str, cpu: &str, mem: &str| json!({"name": name, "resources": {"requests": {"cpu": cpu, "memory": mem}}});
        let annotated = json!({
            "metadata": {"name": "a", "namespace": "default", "annotations": {
                SIM_CPU_ANNOTATION: "300m", SIM_MEMORY_ANNOTATION: "64Mi"}},
            "spec": {"nodeName": "sim-1", "containers": [container("x", "100m", "16Mi"), container("y", "200m", "16Mi")]},
            "status": {"phase": "Running"},
        });
        let plain = json!({
            "metadata": {"name": "b", "namespace": "default"},
            "spec": {"nodeName": "sim-1", "containers": [container("x", "500m", "100Mi")]},
            "status": {"phase": "Running"},
        });
        let pending = json!({
            "metadata": {"name": "c", "namespace": "default"},
            "spec": {"nodeName": "sim-1", "containers": [container("x", "1", "1Gi")]},
            "status": {"phase": "Pending"},
        });
        let mut snap = Snapshot::default();
        let pods = [annotated, plain, pending];
        synthesize(&mut snap, "sim-1", Map::new(), pods.iter(), Timestamp::now(), Duration::from_secs(15));
        let a = &snap.pods[&("default".to_string(), "a".to_string())];
        assert_eq!(a.containers[0].1.cpu_nanocores, 100_000_000);
        assert_eq!(a.containers[1].1.cpu_nanocores, 200_000_000);
        assert_eq!(a.containers[0].1.memory_bytes + a.containers[1].1.memory_bytes, 64 << 20);
        let b = &snap.pods[&("default".to_string(), "b".to_string())];
        assert_eq!(b.containers[0].1.cpu_nanocores, 50_000_000, "10% of 500m");
        assert!(!snap.pods.contains_key(&("default".to_string(), "c".to_string())));
        assert_eq!(snap.nodes["sim-1"].usage.cpu_nanocores, 350_000_000);
    }
}
