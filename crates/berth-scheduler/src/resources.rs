//! Resource amounts (cpu in millicores, memory and storage in bytes, pod slots, extended
//! resources) and the pod request arithmetic of upstream `resource.PodRequests`. Pure functions.

use std::collections::BTreeMap;

use berth_api::quantity::Quantity;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

/// Default cpu request (millicores) used for scoring a container that requests none
/// (upstream `DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Default memory request (bytes) used for scoring a container that requests none
/// (upstream `DefaultMemoryRequest`, 200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of each resource the scheduler accounts for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resource {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub allowed_pod_number: i64,
    /// Extended and hugepage resources by name, in their integer unit.
    pub scalar: BTreeMap<String, i64>,
}

fn clamp(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

impl Resource {
    /// Builds a resource from a resource list (`requests`, `allocatable`); unparsable quantities
    /// count as zero (the apiserver validated them).
    pub fn from_list(list: Option<&BTreeMap<String, K8sQuantity>>) -> Resource {
        let mut r = Resource::default();
        for (name, q) in list.into_iter().flatten() {
            let Ok(q) = Quantity::parse(&q.0) else { continue };
            match name.as_str() {
                "cpu" => r.milli_cpu = clamp(q.as_millis()),
                "memory" => r.memory = clamp(q.value()),
                "ephemeral-storage" => r.ephemeral_storage = clamp(q.value()),
                "pods" => r.allowed_pod_number = clamp(q.value()),
                other if is_scalar_resource(other) => {
                    r.scalar.insert(other.to_string(), clamp(q.value()));
                }
                _ => {}
            }
        }
        r
    }

    /// Adds `other` to `self`.
    pub fn add(&mut self, other: &Resource) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.allowed_pod_number += other.allowed_pod_number;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    /// Subtracts `other` from `self`.
    pub fn sub(&mut self, other: &Resource) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.allowed_pod_number -= other.allowed_pod_number;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// Raises each amount to at least `other`'s.
    pub fn set_max(&mut self, other: &Resource) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }

    /// The amount of the named resource (`cpu` in millicores).
    pub fn get(&self, name: &str) -> i64 {
        match name {
            "cpu" => self.milli_cpu,
            "memory" => self.memory,
            "ephemeral-storage" => self.ephemeral_storage,
            "pods" => self.allowed_pod_number,
            other => self.scalar.get(other).copied().unwrap_or(0),
        }
    }
}

/// Extended resources (`example.com/foo`), hugepages and attachable volumes: everything the
/// scheduler counts besides the native resources.
pub fn is_scalar_resource(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/') && !name.starts_with("kubernetes.io/"))
}

fn container_requests(c: &Container) -> Resource {
    Resource::from_list(c.resources.as_ref().and_then(|r| r.requests.as_ref()))
}

fn non_zero(mut r: Resource, c: &Container) -> Resource {
    let reqs = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    if !reqs.is_some_and(|m| m.contains_key("cpu")) {
        r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
    }
    if !reqs.is_some_and(|m| m.contains_key("memory")) {
        r.memory = DEFAULT_MEMORY_REQUEST;
    }
    r
}

/// The pod's effective requests: `max(sum of app containers + restartable init containers,
/// max over init containers of (init + sidecars started before it)) + overhead`, as upstream.
/// With `non_zero`, containers without a cpu/memory request count the scoring defaults.
pub fn pod_requests(pod: &Pod, with_defaults: bool) -> Resource {
    let Some(spec) = pod.spec.as_ref() else { return Resource::default() };
    let req = |c: &Container| if with_defaults { non_zero(container_requests(c), c) } else { container_requests(c) };
    let mut sum = Resource::default();
    for c in &spec.containers {
        sum.add(&req(c));
    }
    let mut sidecars = Resource::default();
    let mut init_max = Resource::default();
    for c in spec.init_containers.iter().flatten() {
        let r = req(c);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&r);
            sum.add(&r);
            init_max.set_max(&sidecars);
        } else {
            let mut with_sidecars = sidecars.clone();
            with_sidecars.add(&r);
            init_max.set_max(&with_sidecars);
        }
    }
    sum.set_max(&init_max);
    if let Some(overhead) = spec.overhead.as_ref() {
        sum.add(&Resource::from_list(Some(overhead)));
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("pod json")
    }

    #[test]
    fn pod_requests_follow_upstream_rules() {
        struct Case {
            name: &'static str,
            pod: serde_json::Value,
            cpu: i64,
            memory: i64,
        }
        let cases = [
            Case {
                name: "sum of app containers",
                pod: json!({"spec": {"containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "1", "memory": "512Mi"}}}]}}),
                cpu: 1250,
                memory: 1536 * 1024 * 1024,
            },
            Case {
                name: "init container larger than app sum wins",
                pod: json!({"spec": {"initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
                    "containers": [{"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "1Mi"}}}]}}),
                cpu: 2000,
                memory: 1024 * 1024,
            },
            Case {
                name: "overhead is added",
                pod: json!({"spec": {"overhead": {"cpu": "100m"},
                    "containers": [{"name": "a", "resources": {"requests": {"cpu": "500m"}}}]}}),
                cpu: 600,
                memory: 0,
            },
            Case {
                name: "sidecar init containers add to the app sum",
                pod: json!({"spec": {"initContainers": [{"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}}],
                    "containers": [{"name": "a", "resources": {"requests": {"cpu": "500m"}}}]}}),
                cpu: 600,
                memory: 0,
            },
        ];
        for c in cases {
            let r = pod_requests(&pod(c.pod), false);
            assert_eq!((r.milli_cpu, r.memory), (c.cpu, c.memory), "case {}", c.name);
        }
    }

    #[test]
    fn non_zero_requests_default_missing_cpu_and_memory() {
        let p = pod(json!({"spec": {"containers": [{"name": "a"}]}}));
        let r = pod_requests(&p, true);
        assert_eq!((r.milli_cpu, r.memory), (DEFAULT_MILLI_CPU_REQUEST, DEFAULT_MEMORY_REQUEST));
    }
}
