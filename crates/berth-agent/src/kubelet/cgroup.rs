//! Pod and container cgroups: the cgroupfs paths the kubelet hands to runc
//! (`/berth/<node>/pod<uid>/<container>`, one subtree per kubelet so that parallel agents on one
//! host never share a cgroup), the resources from requests and limits, the QoS class, OOM-kill
//! detection (v2 `memory.events`, v1 `memory.oom_control`) and removal of a pod's cgroup. Touches
//! only `/sys/fs/cgroup` below the paths it builds.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};

use crate::bundle::Resources;

/// Where cgroup hierarchies are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// This kubelet's cgroup subtree: `/berth/<node name>` (characters other than letters, digits,
/// `-`, `_` and `.` become `_`).
pub fn kubelet_cgroup(node_name: &str) -> PathBuf {
    let safe: String = node_name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .collect();
    let safe = if safe.is_empty() || safe.starts_with('.') { format!("node{safe}") } else { safe };
    Path::new("/berth").join(safe)
}

/// A pod's cgroup below the kubelet's.
pub fn pod_cgroup(kubelet: &Path, pod_uid: &str) -> PathBuf {
    kubelet.join(format!("pod{pod_uid}"))
}

/// A container's cgroup (its pod's child).
pub fn container_cgroup(kubelet: &Path, pod_uid: &str, container: &str) -> PathBuf {
    pod_cgroup(kubelet, pod_uid).join(container)
}

fn quantity(r: Option<&ResourceRequirements>, limits: bool, name: &str) -> Option<berth_api::Quantity> {
    let map = r.and_then(|r| if limits { r.limits.as_ref() } else { r.requests.as_ref() })?;
    berth_api::Quantity::parse(&map.get(name)?.0).ok()
}

/// The runtime resources of a container: CPU request and limit in millicores, memory limit in
/// bytes. Unparsable quantities are ignored (the apiserver validated them).
pub fn resources(container: &Container) -> Resources {
    let r = container.resources.as_ref();
    let millis = |limits| quantity(r, limits, "cpu").and_then(|q| u64::try_from(q.as_millis()).ok()).filter(|m| *m > 0);
    Resources {
        cpu_request_millis: millis(false),
        cpu_limit_millis: millis(true),
        memory_limit_bytes: quantity(r, true, "memory")
            .and_then(|q| i64::try_from(q.as_bytes()).ok())
            .filter(|b| *b > 0),
    }
}

/// The pod's QoS class (upstream `GetPodQOS`, init containers included), for a pod the apiserver
/// has not given one.
pub fn qos_class(spec: &PodSpec) -> &'static str {
    berth_api::qos::pod_qos(&serde_json::to_value(spec).unwrap_or_default())
}

/// The cgroup hierarchies mounted on this host: (mount point, is cgroup v2).
fn hierarchies() -> Vec<(PathBuf, bool)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|line| {
            let (_, post) = line.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            let mount_point = line.split(' ').nth(4)?;
            match fstype {
                "cgroup" => Some((PathBuf::from(mount_point), false)),
                "cgroup2" => Some((PathBuf::from(mount_point), true)),
                _ => None,
            }
        })
        .filter(|(p, _)| p.starts_with(CGROUP_ROOT))
        .collect()
}

fn below(mount: &Path, cgroup: &Path) -> PathBuf {
    mount.join(cgroup.strip_prefix("/").unwrap_or(cgroup))
}

/// The OOM-kill count in a v2 `memory.events` or a v1 `memory.oom_control` file. Pure.
pub fn parse_oom_kills(text: &str) -> u64 {
    text.lines().filter_map(|l| l.strip_prefix("oom_kill ")).filter_map(|v| v.trim().parse().ok()).max().unwrap_or(0)
}

/// Whether the kernel OOM-killed a process in `cgroup` (read before the container is deleted:
/// its cgroup goes with it).
pub fn oom_killed(cgroup: &Path) -> bool {
    hierarchies().iter().any(|(mount, v2)| {
        let file = below(mount, cgroup).join(if *v2 { "memory.events" } else { "memory.oom_control" });
        std::fs::read_to_string(file).is_ok_and(|t| parse_oom_kills(&t) > 0)
    })
}

fn remove_tree(dir: &Path) -> std::io::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    remove_tree(&entry.path())?;
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes `cgroup` and its children in every hierarchy (their processes must be gone). The
/// first failure is returned after trying all hierarchies.
pub fn remove(cgroup: &Path) -> Result<(), (PathBuf, std::io::Error)> {
    let mut first = None;
    for (mount, _) in hierarchies() {
        let dir = below(&mount, cgroup);
        if let Err(e) = remove_tree(&dir)
            && first.is_none()
        {
            first = Some((dir, e));
        }
    }
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::*;

    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let map = |kv: &[(&str, &str)]| -> Option<BTreeMap<String, Quantity>> {
            (!kv.is_empty()).then(|| kv.iter().map(|(k, v)| (k.to_string(), Quantity(v.to_string()))).collect())
        };
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: map(requests),
                limits: map(limits),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn spec(containers: Vec<Container>) -> PodSpec {
        PodSpec { containers, ..Default::default() }
    }

    #[test]
    fn qos_class_follows_requests_and_limits_of_all_containers() {
        assert_eq!(qos_class(&spec(vec![container(&[], &[])])), "BestEffort");
        let full = container(&[("cpu", "1"), ("memory", "1Gi")], &[("cpu", "1000m"), ("memory", "1Gi")]);
        assert_eq!(qos_class(&spec(vec![full.clone()])), "Guaranteed");
        assert_eq!(qos_class(&spec(vec![container(&[("cpu", "100m")], &[])])), "Burstable");
        let unequal = container(&[("cpu", "1"), ("memory", "1Gi")], &[("cpu", "2"), ("memory", "1Gi")]);
        assert_eq!(qos_class(&spec(vec![unequal])), "Burstable");
        assert_eq!(qos_class(&spec(vec![full.clone(), container(&[], &[])])), "Burstable");
        let mut s = spec(vec![full]);
        s.init_containers = Some(vec![container(&[("memory", "1Mi")], &[])]);
        assert_eq!(qos_class(&s), "Burstable", "init containers count");
    }

    #[test]
    fn resources_come_from_requests_and_limits() {
        let c = container(&[("cpu", "250m")], &[("cpu", "1"), ("memory", "16Mi")]);
        assert_eq!(
            resources(&c),
            Resources {
                cpu_request_millis: Some(250),
                cpu_limit_millis: Some(1000),
                memory_limit_bytes: Some(16 << 20)
            }
        );
        assert_eq!(resources(&container(&[], &[])), Resources::default());
    }

    #[test]
    fn cgroup_paths_are_per_kubelet_pod_and_container() {
        let k = kubelet_cgroup("e2e-12/3 x");
        assert_eq!(k, Path::new("/berth/e2e-12_3_x"));
        assert_eq!(container_cgroup(&k, "u1", "web"), Path::new("/berth/e2e-12_3_x/podu1/web"));
        assert_eq!(kubelet_cgroup(".."), Path::new("/berth/node.."));
    }

    #[test]
    fn oom_kill_counts_parse_from_v1_and_v2_files() {
        assert_eq!(parse_oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"), 2);
        assert_eq!(parse_oom_kills("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n"), 1);
        assert_eq!(parse_oom_kills("oom_kill_disable 0\nunder_oom 0\n"), 0);
    }
}
