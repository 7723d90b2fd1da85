//! The Node object: registration with the host's capacity, addresses and system info, and the
//! periodic status update (Ready and the pressure conditions). Talks to the API; reads `/proc`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

use super::{KubeletConfig, KubeletError};

/// The kubelet version the Node reports.
pub const KUBELET_VERSION: &str = "v1.33.0+berth";

/// The host's name (`/proc/sys/kernel/hostname`), lowercased as a Node name must be.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_ascii_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The first non-loopback IPv4 address of the host, else 127.0.0.1.
pub fn default_node_ip() -> IpAddr {
    let found = nix::ifaddrs::getifaddrs().ok().and_then(|addrs| {
        addrs
            .filter(|a| a.interface_name != "lo")
            .filter_map(|a| a.address.and_then(|s| s.as_sockaddr_in().map(|sin| sin.ip())))
            .find(|ip| !ip.is_loopback())
    });
    IpAddr::V4(found.unwrap_or(Ipv4Addr::LOCALHOST))
}

/// A `key: value kB` field of `/proc/meminfo`, in bytes.
pub fn meminfo_bytes(meminfo: &str, key: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}

fn read_meminfo() -> String {
    std::fs::read_to_string("/proc/meminfo").unwrap_or_default()
}

/// (total, available) bytes of the filesystem holding `path`.
fn disk(path: &Path) -> Option<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let frag = st.fragment_size();
    Some((st.blocks() * frag, st.blocks_available() * frag))
}

fn os_image() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".to_string())
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `runc://<version>` from `runc --version`.
pub async fn runtime_version(binary: &Path) -> String {
    let out = tokio::process::Command::new(binary).arg("--version").output().await;
    let version = out
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(2).map(String::from))
        })
        .unwrap_or_else(|| "unknown".to_string());
    let name = binary.file_name().and_then(|n| n.to_str()).unwrap_or("runc");
    format!("{name}://{version}")
}

fn condition(type_: &str, status: bool, reason: &str, message: &str, now: Timestamp) -> NodeCondition {
    NodeCondition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The node's conditions now (transition times are kept by [`keep_transitions`]). DiskPressure
/// when the data dir's filesystem has less than `min_free_percent` available (upstream's
/// `nodefs.available<10%`).
pub fn conditions(data_dir: &Path, min_free_percent: u8) -> Vec<NodeCondition> {
    let now = Timestamp::now();
    let meminfo = read_meminfo();
    let mem_pressure = meminfo_bytes(&meminfo, "MemAvailable").is_some_and(|a| a < 100 * 1024 * 1024);
    let disk_pressure = disk(data_dir).is_some_and(|(total, avail)| {
        total > 0 && u128::from(avail) * 100 < u128::from(total) * u128::from(min_free_percent)
    });
    vec![
        condition("Ready", true, "KubeletReady", "kubelet is posting ready status", now),
        if mem_pressure {
            condition(
                "MemoryPressure",
                true,
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
                now,
            )
        } else {
            condition(
                "MemoryPressure",
                false,
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
                now,
            )
        },
        if disk_pressure {
            condition("DiskPressure", true, "KubeletHasDiskPressure", "kubelet has disk pressure", now)
        } else {
            condition("DiskPressure", false, "KubeletHasNoDiskPressure", "kubelet has no disk pressure", now)
        },
        condition("PIDPressure", false, "KubeletHasSufficientPID", "kubelet has sufficient PID available", now),
    ]
}

/// Keeps `lastTransitionTime` of conditions whose status did not change.
fn keep_transitions(new: &mut [NodeCondition], old: Option<&NodeStatus>) {
    let old = old.and_then(|s| s.conditions.as_ref());
    for c in new {
        if let Some(prev) = old.and_then(|o| o.iter().find(|p| p.type_ == c.type_ && p.status == c.status)) {
            c.last_transition_time = prev.last_transition_time.clone();
        }
    }
}

/// The full node status (capacity, addresses, info, conditions).
pub async fn node_status(config: &KubeletConfig) -> NodeStatus {
    let meminfo = read_meminfo();
    let mut capacity = BTreeMap::new();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    capacity.insert("cpu".to_string(), Quantity(cpus.to_string()));
    if let Some(mem) = meminfo_bytes(&meminfo, "MemTotal") {
        capacity.insert("memory".to_string(), Quantity(format!("{}Ki", mem / 1024)));
    }
    capacity.insert("pods".to_string(), Quantity("110".into()));
    if let Some((total, _)) = disk(&config.data_dir) {
        capacity.insert("ephemeral-storage".to_string(), Quantity(format!("{}Ki", total / 1024)));
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    let machine_id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default().trim().to_string();
    NodeStatus {
        allocatable: Some(capacity.clone()),
        capacity: Some(capacity),
        addresses: Some(vec![
            NodeAddress { type_: "InternalIP".into(), address: config.node_ip.to_string() },
            NodeAddress { type_: "Hostname".into(), address: config.node_name.clone() },
        ]),
        conditions: Some(conditions(&config.data_dir, config.min_disk_free_percent)),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: i32::from(config.kubelet_port) }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: arch().into(),
            boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim().into(),
            container_runtime_version: runtime_version(&config.runc).await,
            kernel_version: kernel,
            kube_proxy_version: String::new(),
            kubelet_version: KUBELET_VERSION.into(),
            machine_id: machine_id.clone(),
            operating_system: "linux".into(),
            os_image: os_image(),
            system_uuid: machine_id,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Creates the Node (or updates the status of an existing one) and returns it as stored, with
/// `spec.podCIDR` assigned by the apiserver.
pub async fn register(client: &kube::Client, config: &KubeletConfig) -> Result<Node, KubeletError> {
    let api: Api<Node> = Api::all(client.clone());
    let name = config.node_name.clone();
    let mut labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname".to_string(), name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), arch().to_string()),
    ]
    .into();
    labels.extend(config.node_labels.clone());
    let status = node_status(config).await;
    let node = Node {
        metadata: ObjectMeta { name: Some(name.clone()), labels: Some(labels.clone()), ..Default::default() },
        spec: None,
        status: Some(status.clone()),
    };
    let api_err = |what: &'static str| {
        let name = name.clone();
        move |source| KubeletError::Api { what, name: name.clone(), source }
    };
    let created = match api.create(&PostParams::default(), &node).await {
        Ok(n) => n,
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = serde_json::json!({ "metadata": { "labels": labels } });
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(api_err("label node"))?
        }
        Err(e) => return Err(api_err("register node")(e)),
    };
    let mut status = status;
    if let Some(conds) = status.conditions.as_mut() {
        keep_transitions(conds, created.status.as_ref());
    }
    let patch = serde_json::json!({ "status": status });
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(api_err("update node status"))
}

/// Writes the current conditions (with heartbeat) to the Node status.
pub async fn update_status(client: &kube::Client, config: &KubeletConfig) -> Result<(), KubeletError> {
    let api: Api<Node> = Api::all(client.clone());
    let name = config.node_name.clone();
    let api_err = |what: &'static str| {
        let name = name.clone();
        move |source| KubeletError::Api { what, name, source }
    };
    let current = api.get(&name).await.map_err(api_err("get node"))?;
    let mut conds = conditions(&config.data_dir, config.min_disk_free_percent);
    keep_transitions(&mut conds, current.status.as_ref());
    let patch = serde_json::json!({ "status": { "conditions": conds } });
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(api_err("update node status"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_fields_are_read_in_bytes() {
        let text = "MemTotal:       16318480 kB\nMemFree:         1234 kB\nMemAvailable:    8000000 kB\n";
        assert_eq!(meminfo_bytes(text, "MemTotal"), Some(16318480 * 1024));
        assert_eq!(meminfo_bytes(text, "MemAvailable"), Some(8000000 * 1024));
        assert_eq!(meminfo_bytes(text, "Mem"), None);
        assert_eq!(meminfo_bytes(text, "SwapTotal"), None);
    }

    #[test]
    fn transitions_are_kept_while_the_status_is_unchanged() {
        let old_time = Time(Timestamp::UNIX_EPOCH);
        let old = NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(old_time.clone()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let now = Timestamp::now();
        let mut new =
            vec![condition("Ready", true, "KubeletReady", "", now), condition("DiskPressure", false, "x", "", now)];
        keep_transitions(&mut new, Some(&old));
        assert_eq!(new[0].last_transition_time, Some(old_time));
        assert_eq!(new[1].last_transition_time, Some(Time(now)));
    }
}
