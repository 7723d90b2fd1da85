//! Pod volumes on the node: materialised under the pod directory before a container starts and
//! bind-mounted per `volumeMounts`. emptyDir (a directory, or a tmpfs for `medium: Memory`),
//! hostPath (type-checked), and configMap, secret, downwardAPI and projected volumes (files
//! written atomically, refreshed every [`REFRESH_INTERVAL`] so running containers see updates;
//! secret and projected volumes on a tmpfs of their own, so secrets never reach the disk).
//! Failures become FailedMount events and leave the container waiting in ContainerCreating, as
//! upstream. Talks to the API (reads) and mounts tmpfs; never touches the runtime.
//!
//! | module | what it does |
//! |---|---|
//! | [`projection`] | the files of configMap/secret/downwardAPI/projected volumes (pure) |
//! | [`atomic_writer`] | `..data` symlink swaps |
//! | [`host_path`] | hostPath `type` checks |
//! | [`objects`] | API reads of ConfigMaps, Secrets, Services, the Node |

pub mod atomic_writer;
pub mod host_path;
pub mod objects;
pub mod projection;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, Volume};
use kube::Api;
use tokio_util::sync::CancellationToken;

use super::container::{self, EnvSources, volume_dir};
use super::{Shared, error_chain};
use crate::bundle::BindMount;

/// How often configMap, secret, downwardAPI and projected volumes are rewritten from the API
/// (upstream syncs them with the pod every minute or so; faster here for quick feedback).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// The waiting reason of a container whose volumes cannot be set up (upstream keeps the pod in
/// ContainerCreating and records FailedMount events).
pub const WAITING_REASON: &str = "ContainerCreating";

/// The refresh task of each pod directory that has API-backed volumes.
static REFRESHERS: LazyLock<Mutex<HashMap<PathBuf, CancellationToken>>> = LazyLock::new(Default::default);

fn pod_volumes(pod: &Pod) -> &[Volume] {
    pod.spec.as_ref().and_then(|s| s.volumes.as_deref()).unwrap_or_default()
}

/// Fetches what the pod's API-backed volumes refer to.
async fn volume_sources(shared: &Shared, pod: &Pod) -> Result<EnvSources, String> {
    let (cms, secrets, allocatable) = projection::references(pod_volumes(pod));
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut sources =
        objects::fetch_sources(&shared.client, ns, &cms, &secrets, allocatable, &shared.config.node_name).await?;
    sources.host_ip = Some(shared.config.node_ip.to_string());
    Ok(sources)
}

/// Writes one API-backed volume's files (no-op for other types); whether anything changed.
async fn write_projected(volume: &Volume, pod: &Pod, pod_dir: &Path, sources: &EnvSources) -> Result<bool, String> {
    let mut skipped = Vec::new();
    let Some(payload) = projection::volume_payload(volume, pod, sources, &mut skipped)? else { return Ok(false) };
    for s in skipped {
        tracing::warn!(pod = %pod.metadata.name.as_deref().unwrap_or_default(), volume = %volume.name, "projected volume source skipped: {s}");
    }
    let target = volume_dir(pod_dir, &volume.name);
    tokio::task::spawn_blocking(move || atomic_writer::write(&target, &payload))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| error_chain(&e))
}

/// Mounts a tmpfs on `dir` unless one is there already.
fn mount_tmpfs(
    dir: &Path,
    size_limit: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
) -> Result<(), String> {
    let canonical = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
    if crate::mountinfo::is_mount_point(&canonical).map_err(|e| format!("reading mountinfo: {e}"))? {
        return Ok(());
    }
    let mut options = String::from("mode=0777");
    if let Some(q) = size_limit {
        let bytes = berth_api::Quantity::try_from(q).map_err(|e| format!("invalid sizeLimit {:?}: {e}", q.0))?.value();
        if bytes > 0 {
            options.push_str(&format!(",size={bytes}"));
        }
    }
    nix::mount::mount(
        Some("tmpfs"),
        &canonical,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(|e| format!("mount tmpfs on {}: {e}", canonical.display()))
}

/// Sets one volume up (idempotent).
async fn setup_volume(volume: &Volume, pod: &Pod, pod_dir: &Path, sources: &EnvSources) -> Result<(), String> {
    if let Some(ed) = &volume.empty_dir {
        let dir = volume_dir(pod_dir, &volume.name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        match ed.medium.as_deref().unwrap_or_default() {
            "" => {}
            "Memory" => mount_tmpfs(&dir, ed.size_limit.as_ref())?,
            other => return Err(format!("emptyDir medium {other:?} is not supported")),
        }
        // Upstream makes emptyDir world-writable so any container user can use it.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        return Ok(());
    }
    if let Some(hp) = &volume.host_path {
        return host_path::check_type(Path::new(&hp.path), hp.type_.as_deref());
    }
    // Secrets never touch the disk: secret and projected volumes are a tmpfs each, as upstream's.
    if volume.secret.is_some() || volume.projected.is_some() {
        let dir = volume_dir(pod_dir, &volume.name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        mount_tmpfs(&dir, None)?;
    }
    write_projected(volume, pod, pod_dir, sources).await.map(drop)
}

/// Creates a missing `subPath` inside a writable volume and checks that it stays inside the
/// volume (upstream `doSafeMakeDir`).
fn prepare_sub_path(volume: &Volume, root: &Path, sub: &str) -> Result<(), String> {
    let full = root.join(sub);
    if std::fs::symlink_metadata(&full).is_err() && (volume.empty_dir.is_some() || volume.host_path.is_some()) {
        std::fs::create_dir_all(&full)
            .map_err(|e| format!("failed to create subPath directory {}: {e}", full.display()))?;
    }
    let canonical_root = root.canonicalize().map_err(|e| format!("{}: {e}", root.display()))?;
    let canonical = full.canonicalize().map_err(|e| format!("subPath {sub:?}: {e}"))?;
    if !canonical.starts_with(&canonical_root) {
        return Err(format!("subPath {sub:?} resolves outside the volume"));
    }
    Ok(())
}

/// Sets up the pod's volumes and returns the bind mounts of `c` (hosts files and volumeMounts).
/// Starts the pod's refresh task once.
///
/// # Errors
/// `(reason, message)` for the worker: a volume that cannot be set up records a FailedMount
/// event (`MountVolume.SetUp failed for volume "x" : configmap "y" not found`) and waits in
/// ContainerCreating; a bad volumeMount is a CreateContainerConfigError.
pub async fn mounts(
    shared: &Arc<Shared>,
    pod: &Pod,
    c: &Container,
    pod_dir: &Path,
) -> Result<Vec<BindMount>, (&'static str, String)> {
    let failed_mount = |volume: &str, e: String| format!("MountVolume.SetUp failed for volume {volume:?} : {e}");
    let needs_sources = pod_volumes(pod).iter().any(projection::is_projected);
    let sources = if needs_sources {
        match volume_sources(shared, pod).await {
            Ok(s) => s,
            Err(e) => {
                let msg = format!("MountVolume.SetUp failed: {e}");
                shared.events.pod_event(pod, None, true, "FailedMount", msg.clone()).await;
                return Err((WAITING_REASON, msg));
            }
        }
    } else {
        EnvSources::default()
    };
    if !pod_volumes(pod).is_empty() {
        // Secrets and ConfigMaps are written here: other host users must not read them. The
        // containers see only the volume directories, through their bind mounts.
        let dir = pod_dir.join("volumes");
        let restricted = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)));
        if let Err(e) = restricted {
            let msg = format!("MountVolume.SetUp failed: {}: {e}", dir.display());
            shared.events.pod_event(pod, None, true, "FailedMount", msg.clone()).await;
            return Err((WAITING_REASON, msg));
        }
    }
    for volume in pod_volumes(pod) {
        if let Err(e) = setup_volume(volume, pod, pod_dir, &sources).await {
            let msg = failed_mount(&volume.name, e);
            shared.events.pod_event(pod, None, true, "FailedMount", msg.clone()).await;
            return Err((WAITING_REASON, msg));
        }
    }
    if needs_sources {
        ensure_refresher(shared, pod, pod_dir);
    }
    let mounts = container::mounts(pod, c, pod_dir).map_err(|e| ("CreateContainerConfigError", e))?;
    for vm in c.volume_mounts.iter().flatten() {
        let Some(sub) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) else { continue };
        let Some(volume) = pod_volumes(pod).iter().find(|v| v.name == vm.name) else { continue };
        let root = container::volume_source(volume, pod_dir).map_err(|e| ("CreateContainerConfigError", e))?;
        prepare_sub_path(volume, &root, sub).map_err(|e| ("CreateContainerConfigError", e))?;
    }
    Ok(mounts)
}

/// Resumes the refresh of a pod's API-backed volumes whose containers were adopted after a
/// kubelet restart (no container start calls [`mounts`] for them). Idempotent.
pub fn start_refresh(shared: &Arc<Shared>, pod: &Pod) {
    if pod_volumes(pod).iter().any(projection::is_projected) {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        ensure_refresher(shared, pod, &super::sandbox::pod_dir(&shared.config.data_dir, uid));
    }
}

/// Starts the task that rewrites the pod's API-backed volumes every [`REFRESH_INTERVAL`] until
/// the pod directory goes, the pod is gone from the API, or [`teardown`] runs.
fn ensure_refresher(shared: &Arc<Shared>, pod: &Pod, pod_dir: &Path) {
    let token = {
        let mut map = REFRESHERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.contains_key(pod_dir) {
            return;
        }
        let token = CancellationToken::new();
        map.insert(pod_dir.to_path_buf(), token.clone());
        token
    };
    let weak = Arc::downgrade(shared);
    let (ns, name) =
        (pod.metadata.namespace.clone().unwrap_or_default(), pod.metadata.name.clone().unwrap_or_default());
    let uid = pod.metadata.uid.clone();
    let dir = pod_dir.to_path_buf();
    tokio::spawn(async move {
        refresh_loop(weak, &ns, &name, uid.as_deref(), &dir, &token).await;
        REFRESHERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&dir);
    });
}

async fn refresh_loop(
    weak: Weak<Shared>,
    ns: &str,
    name: &str,
    uid: Option<&str>,
    pod_dir: &Path,
    token: &CancellationToken,
) {
    let mut tick = tokio::time::interval(REFRESH_INTERVAL);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(shared) = weak.upgrade() else { return };
        if !pod_dir.exists() {
            return;
        }
        let api: Api<Pod> = Api::namespaced(shared.client.clone(), ns);
        let pod = match api.get_opt(name).await {
            Ok(Some(p)) if p.metadata.uid.as_deref() == uid => p,
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(pod = %name, error = %error_chain(&e), "volume refresh: reading the pod failed");
                continue;
            }
        };
        let sources = match volume_sources(&shared, &pod).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(pod = %name, error = %e, "volume refresh: reading sources failed");
                continue;
            }
        };
        for volume in pod_volumes(&pod).iter().filter(|v| projection::is_projected(v)) {
            // Never recreate a volume directory that teardown removed.
            if token.is_cancelled() || !volume_dir(pod_dir, &volume.name).is_dir() {
                continue;
            }
            match write_projected(volume, &pod, pod_dir, &sources).await {
                Ok(true) => tracing::info!(pod = %name, volume = %volume.name, "volume updated"),
                Ok(false) => {}
                Err(e) => tracing::warn!(pod = %name, volume = %volume.name, error = %e, "volume refresh failed"),
            }
        }
    }
}

/// Stops the pod's volume refresh and unmounts its tmpfs volumes, so the pod directory can be
/// removed. Best effort: failures are logged.
pub fn teardown(pod_dir: &Path) {
    if let Some(token) = REFRESHERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(pod_dir) {
        token.cancel();
    }
    let Ok(volumes) = pod_dir.join("volumes").canonicalize() else { return };
    let mut mounted: Vec<PathBuf> = match crate::mountinfo::mount_points() {
        Ok(points) => points.into_iter().filter(|p| p.starts_with(&volumes)).collect(),
        Err(e) => {
            tracing::warn!(dir = %volumes.display(), error = %e, "reading mountinfo failed");
            return;
        }
    };
    mounted.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in mounted {
        if let Err(e) = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(mount = %point.display(), error = %e, "unmounting a volume failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::EmptyDirVolumeSource;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::*;

    /// Unmounts whatever the test mounted under its temp dir, pass or fail.
    struct Unmount(PathBuf);

    impl Drop for Unmount {
        fn drop(&mut self) {
            teardown(&self.0);
        }
    }

    #[tokio::test]
    #[ignore = "needs root: mounts a tmpfs"]
    async fn a_memory_empty_dir_is_a_sized_tmpfs_that_teardown_unmounts() {
        if !crate::testing::Prerequisites::new()
            .root()
            .check("a_memory_empty_dir_is_a_sized_tmpfs_that_teardown_unmounts")
        {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let pod_dir = dir.path().join("pod");
        let _guard = Unmount(pod_dir.clone());
        let volume = Volume {
            name: "mem".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                size_limit: Some(Quantity("4Mi".into())),
            }),
            ..Default::default()
        };
        let sources = EnvSources::default();
        setup_volume(&volume, &Pod::default(), &pod_dir, &sources).await.expect("setup");
        // Idempotent: a second container start mounts nothing more.
        setup_volume(&volume, &Pod::default(), &pod_dir, &sources).await.expect("setup again");
        let target = volume_dir(&pod_dir, "mem").canonicalize().expect("canonical");
        let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let lines: Vec<&str> = info.lines().filter(|l| l.split(' ').nth(4) == target.to_str()).collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains(" - tmpfs ") && lines[0].contains("size=4096k"), "{}", lines[0]);
        teardown(&pod_dir);
        assert!(!crate::mountinfo::is_mount_point(&target).expect("mountinfo"));
        std::fs::remove_dir_all(&pod_dir).expect("the pod dir can be removed once unmounted");
    }

    #[tokio::test]
    #[ignore = "needs root: mounts a tmpfs"]
    async fn secret_volumes_are_written_to_a_tmpfs_that_teardown_unmounts() {
        if !crate::testing::Prerequisites::new()
            .root()
            .check("secret_volumes_are_written_to_a_tmpfs_that_teardown_unmounts")
        {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let pod_dir = dir.path().join("pod");
        let _guard = Unmount(pod_dir.clone());
        let volume = Volume {
            name: "creds".into(),
            secret: Some(k8s_openapi::api::core::v1::SecretVolumeSource {
                secret_name: Some("db".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let secret = k8s_openapi::api::core::v1::Secret {
            data: Some([("password".to_string(), k8s_openapi::ByteString(b"hunter2".to_vec()))].into()),
            ..Default::default()
        };
        let sources = EnvSources { secrets: [("db".to_string(), Some(secret))].into(), ..Default::default() };
        setup_volume(&volume, &Pod::default(), &pod_dir, &sources).await.expect("setup");
        setup_volume(&volume, &Pod::default(), &pod_dir, &sources).await.expect("setup again");
        let target = volume_dir(&pod_dir, "creds").canonicalize().expect("canonical");
        let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let lines: Vec<&str> = info.lines().filter(|l| l.split(' ').nth(4) == target.to_str()).collect();
        assert_eq!(lines.len(), 1, "one tmpfs, mounted once: {lines:?}");
        assert!(lines[0].contains(" - tmpfs "), "{}", lines[0]);
        assert_eq!(std::fs::read(target.join("password")).expect("the key's file"), b"hunter2");
        teardown(&pod_dir);
        assert!(!crate::mountinfo::is_mount_point(&target).expect("mountinfo"));
        assert!(!target.join("password").exists(), "the secret went with the tmpfs");
    }
}
