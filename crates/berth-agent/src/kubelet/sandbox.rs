//! The pod sandbox: its directory under `DATA_DIR/agent/pods/<uid>` (hosts, resolv.conf,
//! hostname, emptyDir volumes, logs, container dirs) and its network namespace (CNI).

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

use super::container::{hosts_file, volume_dir};
use super::{KubeletError, Shared};
use crate::network::{PodNetwork, PodNetworkRequest};

/// A pod's directory.
pub fn pod_dir(data_dir: &Path, uid: &str) -> PathBuf {
    data_dir.join("pods").join(uid)
}

/// A container's directory (rootfs, upper, work, config.json).
pub fn container_dir(pod_dir: &Path, name: &str) -> PathBuf {
    pod_dir.join("containers").join(name)
}

/// The log file of a container's `attempt`-th run.
pub fn log_path(pod_dir: &Path, name: &str, attempt: i32) -> PathBuf {
    pod_dir.join("logs").join(name).join(format!("{attempt}.log"))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KubeletError + '_ {
    move |source| KubeletError::Io { path: path.to_path_buf(), source }
}

fn request(pod: &Pod) -> PodNetworkRequest {
    PodNetworkRequest {
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        port_mappings: Vec::new(),
    }
}

/// Sets the sandbox up (idempotent): network, then the pod's files. Returns (netns, pod IPs);
/// a hostNetwork pod gets no netns and the node IP.
pub async fn setup(shared: &Shared, pod: &Pod) -> Result<(Option<PathBuf>, Vec<String>), KubeletError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let dir = pod_dir(&shared.config.data_dir, &uid);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let host_network = pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false);
    let (netns, ips) = if host_network {
        (None, vec![shared.config.node_ip.to_string()])
    } else {
        let status = shared
            .network
            .setup(&request(pod))
            .await
            .map_err(|source| KubeletError::Network { pod: uid.clone(), source })?;
        (Some(status.netns), status.ips.iter().map(|ip| ip.to_string()).collect())
    };
    let name = pod.metadata.name.clone().unwrap_or_default();
    let hostname = pod.spec.as_ref().and_then(|s| s.hostname.clone()).unwrap_or_else(|| name.clone());
    let files = [
        ("etc-hosts", hosts_file(&ips, &hostname)),
        ("hostname", format!("{hostname}\n")),
        ("resolv.conf", super::dns_config::resolv_conf_for(pod, &shared.config)),
    ];
    for (file, content) in files {
        let path = dir.join(file);
        std::fs::write(&path, content).map_err(io(&path))?;
    }
    for volume in pod.spec.as_ref().and_then(|s| s.volumes.as_ref()).into_iter().flatten() {
        if volume.empty_dir.is_some() {
            let path = volume_dir(&dir, &volume.name);
            std::fs::create_dir_all(&path).map_err(io(&path))?;
        }
    }
    Ok((netns, ips))
}

/// Releases what a finished pod (Succeeded/Failed) no longer needs: its network (netns, IP) and
/// container filesystems. Logs stay until the pod is deleted. Idempotent.
pub async fn release_finished(shared: &Shared, pod: &Pod) -> Result<(), KubeletError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    shared
        .network
        .teardown(&request(pod))
        .await
        .map_err(|source| KubeletError::Network { pod: uid.clone(), source })?;
    let containers = pod_dir(&shared.config.data_dir, &uid).join("containers");
    if let Ok(entries) = std::fs::read_dir(&containers) {
        for entry in entries.flatten() {
            crate::snapshot::cleanup(&entry.path())
                .map_err(|source| KubeletError::Snapshot { container: entry.path(), source })?;
        }
    }
    Ok(())
}

/// Tears the network down and removes the pod directory (containers must be gone).
pub async fn teardown(shared: &Shared, uid: &str, namespace: &str, name: &str) -> Result<(), KubeletError> {
    let req = PodNetworkRequest {
        uid: uid.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        port_mappings: Vec::new(),
    };
    shared.network.teardown(&req).await.map_err(|source| KubeletError::Network { pod: uid.to_string(), source })?;
    let dir = pod_dir(&shared.config.data_dir, uid);
    // tmpfs volumes are unmounted and the cgroup removed first, so the directory can go.
    super::volumes::teardown(&dir);
    let cgroup = super::cgroup::pod_cgroup(&super::cgroup::kubelet_cgroup(&shared.config.node_name), uid);
    if let Err((path, e)) = super::cgroup::remove(&cgroup) {
        tracing::warn!(cgroup = %path.display(), error = %e, "failed to remove pod cgroup");
    }
    let containers = dir.join("containers");
    if let Ok(entries) = std::fs::read_dir(&containers) {
        for entry in entries.flatten() {
            crate::snapshot::cleanup(&entry.path())
                .map_err(|source| KubeletError::Snapshot { container: entry.path(), source })?;
        }
    }
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(KubeletError::Io { path: dir, source }),
    }
}
