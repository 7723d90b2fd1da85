//! The sim Node objects: `<prefix><index>` with labels `type=sim` and `node.berth.dev/sim=true`,
//! the configured capacity, the conditions of a healthy kubelet, and a /24 of the sim pod range as
//! `spec.podCIDR` (set by us, so the apiserver's allocator is not consulted). Talks to the API.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::{SIM_LABEL, SimConfig, SimError};

/// The container runtime a sim node reports.
pub const RUNTIME_VERSION: &str = "sim://0.1.0";

/// One sim node as the sim keeps it.
#[derive(Debug, Clone)]
pub struct SimNode {
    pub name: String,
    pub index: usize,
    /// The first address of the node's /24.
    pub pod_cidr_base: Ipv4Addr,
    /// The node's InternalIP (fake, from 100.64.0.0/10: never routed anywhere).
    pub internal_ip: Ipv4Addr,
    /// The Node's uid, for the Lease's ownerReference.
    pub uid: Option<String>,
}

impl SimNode {
    /// `spec.podCIDR` of the node.
    pub fn pod_cidr(&self) -> String {
        format!("{}/24", self.pod_cidr_base)
    }
}

/// `(base, prefix length)` of an IPv4 CIDR with room for /24s.
pub fn parse_cidr(cidr: &str) -> Result<(u32, u32), SimError> {
    let bad = |reason: &str| SimError::PodCidr { cidr: cidr.to_string(), reason: reason.to_string() };
    let (addr, bits) = cidr.trim().split_once('/').ok_or_else(|| bad("expected ADDRESS/BITS"))?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad("not an IPv4 address"))?;
    let bits: u32 = bits.parse().map_err(|_| bad("invalid prefix length"))?;
    if !(1..=24).contains(&bits) {
        return Err(bad("the prefix length must be between 1 and 24"));
    }
    Ok((u32::from(addr) & (u32::MAX << (32 - bits)), bits))
}

/// The sim nodes of `config` (names, ranges, addresses), before registration.
pub fn plan(config: &SimConfig) -> Result<Vec<SimNode>, SimError> {
    let (base, bits) = parse_cidr(&config.pod_cidr)?;
    let capacity = 1usize << (24 - bits);
    if config.first_index + config.nodes > capacity {
        return Err(SimError::PodCidr {
            cidr: config.pod_cidr.clone(),
            reason: format!("room for {capacity} /24s, but {} nodes were asked for", config.nodes),
        });
    }
    let ip_base = u32::from(Ipv4Addr::new(100, 64, 0, 0));
    Ok((config.first_index..config.first_index + config.nodes)
        .map(|i| {
            let offset = u32::try_from(i).unwrap_or(u32::MAX);
            SimNode {
                name: format!("{}{i}", config.prefix),
                index: i,
                pod_cidr_base: Ipv4Addr::from(base + (offset << 8)),
                internal_ip: Ipv4Addr::from(ip_base + offset + 1),
                uid: None,
            }
        })
        .collect())
}

fn labels(node: &SimNode, config: &SimConfig) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = [
        ("type", "sim"),
        (SIM_LABEL, "true"),
        ("kubernetes.io/hostname", node.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("node.kubernetes.io/instance-type", "sim"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    labels.extend(config.labels.clone());
    labels
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
        "lastHeartbeatTime": now, "lastTransitionTime": now})
}

/// The status of a healthy sim node.
pub fn status(node: &SimNode, config: &SimConfig) -> Value {
    let now = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let resources = json!({"cpu": config.cpu, "memory": config.memory, "pods": config.pods,
        "ephemeral-storage": "100Gi"});
    json!({
        "capacity": resources,
        "allocatable": resources,
        "conditions": [
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status", &now),
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available", &now),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure", &now),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available", &now),
        ],
        "addresses": [
            {"type": "InternalIP", "address": node.internal_ip.to_string()},
            {"type": "Hostname", "address": node.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "architecture": "amd64", "bootID": "", "containerRuntimeVersion": RUNTIME_VERSION,
            "kernelVersion": "", "kubeProxyVersion": "", "kubeletVersion": crate::kubelet::node::KUBELET_VERSION,
            "machineID": "", "operatingSystem": "linux", "osImage": "Berth sim node", "systemUUID": "",
        },
    })
}

/// Creates (or adopts) one Node and writes its status; returns it with its uid.
async fn register(api: &Api<Node>, mut node: SimNode, config: &SimConfig) -> Result<SimNode, SimError> {
    let err = |what: &'static str, name: &str| {
        let name = name.to_string();
        move |source| SimError::Api { what, name, source }
    };
    let object: Node = serde_json::from_value(json!({
        "metadata": {"name": node.name, "labels": labels(&node, config)},
        "spec": {"podCIDR": node.pod_cidr(), "podCIDRs": [node.pod_cidr()], "taints": config.taints},
    }))
    .expect("a sim Node is a valid Node");
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = json!({"metadata": {"labels": labels(&node, config)}});
            api.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(err("label node", &node.name))?;
        }
        Err(e) => return Err(err("register node", &node.name)(e)),
    }
    let patch = json!({"status": status(&node, config)});
    let stored = api
        .patch_status(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(err("update node status", &node.name))?;
    // An existing Node keeps the range it had (it may predate a change of --sim-pod-cidr).
    if let Some(base) = stored
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .and_then(|c| c.split_once('/'))
        .and_then(|(a, _)| a.parse().ok())
    {
        node.pod_cidr_base = base;
    }
    node.uid = stored.metadata.uid;
    Ok(node)
}

/// Registers every node of `config`, `config.concurrency` at a time.
pub async fn register_all(client: &kube::Client, config: &SimConfig) -> Result<Vec<SimNode>, SimError> {
    let api: Api<Node> = Api::all(client.clone());
    let planned = plan(config)?;
    let mut nodes: Vec<SimNode> = futures::stream::iter(planned)
        .map(|n| register(&api, n, config))
        .buffer_unordered(config.concurrency.max(1))
        .try_collect()
        .await?;
    nodes.sort_by_key(|n| n.index);
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_get_consecutive_ranges_and_addresses() {
        let config = SimConfig { nodes: 3, prefix: "s-".into(), pod_cidr: "10.64.0.0/10".into(), ..Default::default() };
        let nodes = plan(&config).expect("plan");
        let got: Vec<(String, String, String)> =
            nodes.iter().map(|n| (n.name.clone(), n.pod_cidr(), n.internal_ip.to_string())).collect();
        assert_eq!(
            got,
            vec![
                ("s-0".into(), "10.64.0.0/24".into(), "100.64.0.1".into()),
                ("s-1".into(), "10.64.1.0/24".into(), "100.64.0.2".into()),
                ("s-2".into(), "10.64.2.0/24".into(), "100.64.0.3".into()),
            ]
        );
    }

    #[test]
    fn a_range_too_small_for_the_nodes_is_rejected() {
        let config = SimConfig { nodes: 5, pod_cidr: "10.1.0.0/22".into(), ..Default::default() };
        let err = plan(&config).expect_err("4 /24s only").to_string();
        assert!(err.contains("room for 4"), "{err}");
        for bad in ["10.1.0.0", "10.1.0.0/25", "x/16", "10.1.0.0/abc"] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sim_nodes_carry_both_sim_labels_and_their_capacity() {
        let config = SimConfig {
            nodes: 1,
            first_index: 4,
            cpu: "8".into(),
            labels: [("pool".to_string(), "a".to_string())].into(),
            ..Default::default()
        };
        let node = plan(&config).expect("plan").remove(0);
        assert_eq!((node.name.as_str(), node.pod_cidr().as_str()), ("sim-4", "10.64.4.0/24"));
        let l = labels(&node, &config);
        assert_eq!(l.get("pool").map(String::as_str), Some("a"));
        assert_eq!(l.get("type").map(String::as_str), Some("sim"));
        assert_eq!(l.get(SIM_LABEL).map(String::as_str), Some("true"));
        let s = status(&node, &config);
        assert_eq!(s["allocatable"]["cpu"], "8");
        assert_eq!(s["allocatable"]["pods"], "110");
        assert_eq!(s["conditions"][0]["type"], "Ready");
        assert_eq!(s["conditions"][0]["status"], "True");
    }
}
