//! Where the HPA controller gets pod usage from: the resource metrics API
//! (`metrics.k8s.io/v1beta1` PodMetrics, upstream `resourceMetricsClient`), behind the
//! [`MetricsSource`] trait so tests can inject a fake.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::Timestamp;
use serde_json::Value;

use super::replica_calculator::PodMetric;

/// Why metrics could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("unable to fetch metrics from resource metrics API")]
    Fetch(#[source] kube::Error),
    #[error("no metrics returned from resource metrics API")]
    Empty,
}

/// Pod usage per pod name for one resource (`cpu`, `memory`).
pub trait MetricsSource: Send + Sync {
    /// The usage of `resource` of the pods in `namespace` matching `selector` (a label selector
    /// string), summed over each pod's containers, in milli-units.
    fn pod_metrics<'a>(
        &'a self,
        namespace: &'a str,
        selector: &'a str,
        resource: &'a str,
    ) -> BoxFuture<'a, Result<BTreeMap<String, PodMetric>, MetricsError>>;
}

/// Reads PodMetrics through the API, as upstream's `resourceMetricsClient` does.
pub struct ApiMetricsSource {
    client: kube::Client,
}

impl ApiMetricsSource {
    pub fn new(client: kube::Client) -> Self {
        ApiMetricsSource { client }
    }
}

/// Go's `time.Duration` string (`15s`, `1m0s`, `1.5s`, `500ms`).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}

/// The per-pod sums of `resource` from a PodMetricsList.
pub fn pod_metrics_from_list(list: &Value, resource: &str) -> BTreeMap<String, PodMetric> {
    let mut out = BTreeMap::new();
    for item in list["items"].as_array().into_iter().flatten() {
        let Some(name) = item["metadata"]["name"].as_str() else { continue };
        let mut sum = 0i64;
        let mut complete = true;
        for c in item["containers"].as_array().into_iter().flatten() {
            match c["usage"][resource].as_str().and_then(|q| berth_api::Quantity::parse(q).ok()) {
                Some(q) => sum += i64::try_from(q.as_millis()).unwrap_or(i64::MAX),
                None => complete = false,
            }
        }
        // Upstream skips a pod when one of its containers lacks the resource.
        if !complete {
            continue;
        }
        let timestamp = item["timestamp"].as_str().and_then(|t| t.parse::<Timestamp>().ok()).unwrap_or_default();
        let window = item["window"].as_str().and_then(parse_go_duration).unwrap_or_default();
        out.insert(name.to_string(), PodMetric { value_milli: sum, timestamp, window });
    }
    out
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl MetricsSource for ApiMetricsSource {
    fn pod_metrics<'a>(
        &'a self,
        namespace: &'a str,
        selector: &'a str,
        resource: &'a str,
    ) -> BoxFuture<'a, Result<BTreeMap<String, PodMetric>, MetricsError>> {
        Box::pin(async move {
            let uri = format!(
                "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods?labelSelector={}",
                encode(namespace),
                encode(selector)
            );
            let req =
                http::Request::get(uri).body(Vec::new()).map_err(|e| MetricsError::Fetch(kube::Error::HttpError(e)))?;
            let list: Value = self.client.request(req).await.map_err(MetricsError::Fetch)?;
            let metrics = pod_metrics_from_list(&list, resource);
            if metrics.is_empty() {
                return Err(MetricsError::Empty);
            }
            Ok(metrics)
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("15s"), Some(Duration::from_secs(15)));
        assert_eq!(parse_go_duration("1m0s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("abc"), None);
    }

    #[test]
    fn pod_metrics_sum_containers_and_skip_incomplete_pods() {
        let list = json!({"items": [
            {"metadata": {"name": "a"}, "timestamp": "2026-01-01T00:00:00Z", "window": "15s",
             "containers": [{"name": "x", "usage": {"cpu": "100m", "memory": "1Mi"}},
                            {"name": "y", "usage": {"cpu": "250000000n", "memory": "1Mi"}}]},
            {"metadata": {"name": "b"}, "containers": [{"name": "x", "usage": {"memory": "1Mi"}}]},
        ]});
        let m = pod_metrics_from_list(&list, "cpu");
        assert_eq!(m.len(), 1);
        assert_eq!(m["a"].value_milli, 350);
        assert_eq!(m["a"].window, Duration::from_secs(15));
        assert_eq!(pod_metrics_from_list(&list, "memory")["b"].value_milli, 1024 * 1024 * 1000);
    }
}
