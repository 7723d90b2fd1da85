//! From a pod's container to what the runtime needs: container ids, environment (literal values
//! and the downward API's field references), `/etc/hosts`, volume mounts, and the
//! CrashLoopBackOff delay. Pure, apart from nothing: the worker does the I/O.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::bundle::BindMount;

/// The first restart waits this long; each further one twice as long (upstream kubelet).
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
/// The longest CrashLoopBackOff delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// The delay before restart number `restart_count + 1` (10 s doubling, at most 5 min).
pub fn crash_backoff(restart_count: i32) -> Duration {
    let shift = u32::try_from(restart_count.clamp(0, 16)).unwrap_or(0);
    BACKOFF_INITIAL.saturating_mul(1u32 << shift).min(BACKOFF_MAX)
}

/// The runtime id of a pod's container: `<pod uid>_<container name>` (`_` occurs in neither).
pub fn container_id(pod_uid: &str, name: &str) -> String {
    format!("{pod_uid}_{name}")
}

/// The pod uid and container name of a runtime id made by [`container_id`].
pub fn parse_container_id(id: &str) -> Option<(&str, &str)> {
    id.split_once('_').filter(|(uid, name)| !uid.is_empty() && !name.is_empty())
}

/// A field reference (`valueFrom.fieldRef.fieldPath`) resolved against the pod.
fn field_ref(pod: &Pod, path: &str, pod_ip: Option<&str>) -> Result<String, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let label_or_annotation = |prefix: &str, map: Option<&std::collections::BTreeMap<String, String>>| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix("']"))
            .map(|key| map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    if let Some(v) = label_or_annotation("metadata.labels['", meta.labels.as_ref()) {
        return Ok(v);
    }
    if let Some(v) = label_or_annotation("metadata.annotations['", meta.annotations.as_ref()) {
        return Ok(v);
    }
    let value = match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.podIP" => pod_ip.map(String::from).or_else(|| status.and_then(|s| s.pod_ip.clone())),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()),
        other => return Err(format!("unsupported fieldRef fieldPath {other:?}")),
    };
    Ok(value.unwrap_or_default())
}

/// Expands `$(VAR)` references to earlier variables (`$$` escapes), as upstream does.
fn expand(value: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The container's environment: literal values (with `$(VAR)` expansion) and field references.
/// Secret, ConfigMap and resource references are not supported yet: an error names the variable
/// (the worker reports it as CreateContainerConfigError).
pub fn resolve_env(container: &Container, pod: &Pod, pod_ip: Option<&str>) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = Vec::new();
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (_, Some(from)) => match &from.field_ref {
                Some(f) => field_ref(pod, &f.field_path, pod_ip)?,
                None => return Err(format!("env {}: only value and valueFrom.fieldRef are supported", var.name)),
            },
            (Some(v), None) => expand(v, &env),
            (None, None) => String::new(),
        };
        env.push((var.name.clone(), value));
    }
    Ok(env)
}

/// `command`/`args` with `$(VAR)` references to the container's environment expanded (upstream
/// `ExpandContainerCommandAndArgs`).
pub fn expand_args(args: &[String], env: &[(String, String)]) -> Vec<String> {
    args.iter().map(|a| expand(a, env)).collect()
}

/// `/etc/hosts` of a pod (upstream's managed hosts file).
pub fn hosts_file(pod_ips: &[String], hostname: &str) -> String {
    let mut s = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    for ip in pod_ips {
        s.push_str(&format!("{ip}\t{hostname}\n"));
    }
    s
}

/// The bind mounts of a container: the pod's hosts/resolv.conf/hostname files and its
/// `volumeMounts` of emptyDir volumes (under `<pod_dir>/volumes/<name>`).
pub fn mounts(pod: &Pod, container: &Container, pod_dir: &Path) -> Result<Vec<BindMount>, String> {
    let mut mounts = vec![
        BindMount { source: pod_dir.join("etc-hosts"), destination: "/etc/hosts".into(), readonly: false },
        BindMount { source: pod_dir.join("resolv.conf"), destination: "/etc/resolv.conf".into(), readonly: false },
        BindMount { source: pod_dir.join("hostname"), destination: "/etc/hostname".into(), readonly: false },
    ];
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
    for vm in container.volume_mounts.iter().flatten() {
        let Some(volume) = volumes.and_then(|vs| vs.iter().find(|v| v.name == vm.name)) else {
            return Err(format!("volumeMount {:?} names no volume of the pod", vm.name));
        };
        if volume.empty_dir.is_none() {
            return Err(format!("volume {:?}: only emptyDir volumes are supported yet", volume.name));
        }
        let mut source = volume_dir(pod_dir, &volume.name);
        if let Some(sub) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if Path::new(sub).components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
                return Err(format!("volumeMount {:?}: invalid subPath {sub:?}", vm.name));
            }
            source = source.join(sub);
        }
        mounts.push(BindMount {
            source,
            destination: PathBuf::from(&vm.mount_path),
            readonly: vm.read_only.unwrap_or(false),
        });
    }
    Ok(mounts)
}

/// Where an emptyDir volume of the pod lives.
pub fn volume_dir(pod_dir: &Path, name: &str) -> PathBuf {
    pod_dir.join("volumes").join(name)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                labels: Some([("app".to_string(), "shop".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: Some("node1".into()), ..Default::default() }),
            status: Some(PodStatus { host_ip: Some("192.0.2.7".into()), ..Default::default() }),
        }
    }

    fn field(name: &str, path: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector { field_path: path.into(), ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn literal(name: &str, value: &str) -> EnvVar {
        EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() }
    }

    #[test]
    fn env_resolves_literals_field_refs_and_expansions() {
        let c = Container {
            env: Some(vec![
                field("POD", "metadata.name"),
                field("NS", "metadata.namespace"),
                field("IP", "status.podIP"),
                field("NODE", "spec.nodeName"),
                field("APP", "metadata.labels['app']"),
                literal("URL", "http://$(IP):80/$(MISSING)$$(POD)"),
            ]),
            ..Default::default()
        };
        let env = resolve_env(&c, &pod(), Some("10.42.0.9")).expect("env");
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("POD"), Some("web"));
        assert_eq!(get("NS"), Some("prod"));
        assert_eq!(get("IP"), Some("10.42.0.9"));
        assert_eq!(get("NODE"), Some("node1"));
        assert_eq!(get("APP"), Some("shop"));
        assert_eq!(get("URL"), Some("http://10.42.0.9:80/$(MISSING)$(POD)"));
        let args = expand_args(&["echo $(POD) in $(NS)".to_string()], &env);
        assert_eq!(args, ["echo web in prod"]);
    }

    #[test]
    fn unsupported_env_sources_are_errors_naming_the_variable() {
        let c = Container {
            env: Some(vec![EnvVar {
                name: "SECRET".into(),
                value_from: Some(EnvVarSource::default()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let err = resolve_env(&c, &pod(), None).expect_err("unsupported");
        assert!(err.contains("SECRET"), "{err}");
        let c = Container { env: Some(vec![field("X", "spec.bogus")]), ..Default::default() };
        assert!(resolve_env(&c, &pod(), None).is_err());
    }

    #[test]
    fn hosts_file_maps_the_pod_ip_to_its_name() {
        let hosts = hosts_file(&["10.42.0.5".into()], "web");
        assert!(hosts.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(hosts.ends_with("\n10.42.0.5\tweb\n"), "{hosts}");
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_up_to_five_minutes() {
        let secs: Vec<u64> = (0..8).map(|n| crash_backoff(n).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(crash_backoff(-1).as_secs(), 10);
        assert_eq!(crash_backoff(i32::MAX).as_secs(), 300);
    }

    #[test]
    fn container_ids_round_trip() {
        let id = container_id("6f1c1b1e-0000-4000-8000-000000000001", "web");
        assert_eq!(parse_container_id(&id), Some(("6f1c1b1e-0000-4000-8000-000000000001", "web")));
        assert_eq!(parse_container_id("nounderscore"), None);
    }

    #[test]
    fn empty_dir_mounts_point_into_the_pod_dir_and_other_volumes_are_rejected() {
        use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, HostPathVolumeSource, Volume, VolumeMount};
        let mut p = pod();
        if let Some(spec) = p.spec.as_mut() {
            spec.volumes = Some(vec![
                Volume { name: "data".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() },
                Volume {
                    name: "host".into(),
                    host_path: Some(HostPathVolumeSource { path: "/".into(), ..Default::default() }),
                    ..Default::default()
                },
            ]);
        }
        let vm = |name: &str| VolumeMount { name: name.into(), mount_path: "/data".into(), ..Default::default() };
        let c = Container { volume_mounts: Some(vec![vm("data")]), ..Default::default() };
        let ms = mounts(&p, &c, Path::new("/pods/u1")).expect("mounts");
        let data = ms.iter().find(|m| m.destination == Path::new("/data")).expect("data mount");
        assert_eq!(data.source, Path::new("/pods/u1/volumes/data"));
        assert!(ms.iter().any(|m| m.destination == Path::new("/etc/hosts")));
        let c = Container { volume_mounts: Some(vec![vm("host")]), ..Default::default() };
        assert!(mounts(&p, &c, Path::new("/pods/u1")).is_err());
    }
}
