//! Host tests of the agent's container stack: image import (OCI layout and `docker save`), layer
//! unpacking with whiteouts, overlayfs rootfs and real `runc` containers, using a busybox image the
//! tests build from Debian's `busybox-static` (`/bin/busybox`).
//!
//! They need root, overlayfs and runc, so they are `#[ignore]`d; run them with
//! `cargo nextest run -p berth-agent --run-ignored all`. Without a prerequisite they fail under
//! `CI=true` and print a skip otherwise. Everything a test creates (containers, mounts, cgroups,
//! directories) is removed by a drop guard, also when the test fails; container ids carry the
//! per-run prefix `berth-test-<pid>-`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use berth_agent::image::testing::{LayerBuilder, TestImage, sha256};
use berth_agent::image::{ImageStore, media_type};
use berth_agent::kubelet::logs::read_content;
use berth_agent::layers::{OVERLAY_OPAQUE_XATTR, layer_dir};
use berth_agent::runtime::Signal;
use berth_agent::snapshot::is_mounted;
use berth_agent::testing::Prerequisites;
use berth_agent::{
    Bundle, ContainerIo, ContainerSpec, ContainerState, Runc, Runtime, bundle::build_spec, cleanup, prepare_rootfs,
};

// ---------------------------------------------------------------------------------------------
// prerequisites

/// Whether this machine can run the tests. Missing prerequisites fail under `CI=true`; otherwise
/// the test prints why it is skipped.
fn prerequisites(test: &str) -> bool {
    Prerequisites::new().root().containers().check(test)
}

// ---------------------------------------------------------------------------------------------
// the environment guard

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A unique name with this run's prefix.
fn unique(kind: &str) -> String {
    format!("berth-test-{}-{kind}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A data dir with an image store and a runc runtime. Dropping it force-deletes the containers
/// it created, unmounts and removes their directories, then removes the data dir.
struct Env {
    store: ImageStore,
    runc: Runc,
    containers: Vec<String>,
    container_dirs: Vec<PathBuf>,
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::Builder::new().prefix(&unique("data")).tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("images")).unwrap();
        let runc = Runc::new(&dir.path().join("runtime")).unwrap();
        Self { store, runc, containers: Vec::new(), container_dirs: Vec::new(), dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn import_busybox(&self) -> berth_agent::Image {
        let archive = self.path().join("busybox-oci.tar");
        TestImage::busybox().oci_archive("docker.io/library/busybox:latest", &archive);
        self.store.import(&archive).unwrap();
        self.store.get("busybox").unwrap().expect("busybox imported")
    }

    /// Registers a container dir for cleanup and returns it.
    fn container_dir(&mut self) -> PathBuf {
        let dir = self.path().join("containers").join(unique("ctr"));
        self.container_dirs.push(dir.clone());
        dir
    }

    /// Creates (not starts) a busybox container running `args`; returns its id and stdout path.
    async fn create(&mut self, args: &[&str]) -> (String, PathBuf) {
        let image = self.import_busybox();
        let dir = self.container_dir();
        let rootfs = prepare_rootfs(&self.store, &image, &dir).unwrap();
        let id = unique("c");
        let spec = ContainerSpec {
            command: args.iter().map(|a| a.to_string()).collect(),
            hostname: Some("busybox".into()),
            cgroups_path: Some(PathBuf::from(format!("/{id}"))),
            ..Default::default()
        };
        let spec = build_spec(&spec, &image.config, rootfs.path()).unwrap();
        let bundle = Bundle::write(&dir, &spec).unwrap();
        let io = ContainerIo { stdout: dir.join("stdout.log"), stderr: dir.join("stderr.log") };
        self.containers.push(id.clone());
        self.runc.create(&id, &bundle, &io).await.unwrap();
        (id, io.stdout)
    }

    fn runc_list(&self) -> String {
        let out = Command::new("runc").arg("--root").arg(self.runc.root()).args(["list", "-q"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for id in &self.containers {
            let _ = Command::new("runc").arg("--root").arg(self.runc.root()).args(["delete", "--force", id]).output();
        }
        for dir in &self.container_dirs {
            if let Err(e) = cleanup(dir) {
                eprintln!("cleanup of {} failed: {e}", dir.display());
            }
        }
    }
}

/// Polls `state` until `done` holds, failing after `timeout`.
async fn wait_for_state(
    runc: &dyn Runtime,
    id: &str,
    timeout: Duration,
    done: impl Fn(&ContainerState) -> bool,
) -> ContainerState {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let state = runc.state(id).await.unwrap();
        if done(&state) {
            return state;
        }
        assert!(tokio::time::Instant::now() < deadline, "container {id} stuck in {state:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// tests

#[test]
#[ignore = "needs root: runc, overlayfs"]
fn oci_layout_archive_imports_and_can_be_listed_resolved_and_removed() {
    if !prerequisites("oci_layout_archive_imports_and_can_be_listed_resolved_and_removed") {
        return;
    }
    let env = Env::new();
    let image = TestImage::busybox();
    let archive = env.path().join("oci.tar");
    image.oci_archive("busybox", &archive);
    let refs = env.store.import(&archive).unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].name, "docker.io/library/busybox:latest");
    assert_eq!(env.store.list().unwrap(), refs);

    let got = env.store.get("busybox:latest").unwrap().unwrap();
    assert_eq!(got.name, "docker.io/library/busybox:latest");
    assert_eq!(got.manifest_digest, refs[0].digest);
    assert_eq!(got.config.cmd, vec!["sh"]);
    assert!(got.config.env.contains(&"IMAGE=busybox".to_string()));
    assert_eq!(got.config.working_dir.as_deref(), Some("/"));
    assert_eq!(got.layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(), image.diff_ids());
    assert_eq!(got.layers[0].media_type, media_type::OCI_LAYER_TAR_GZIP);
    assert_ne!(got.layers[0].digest, got.layers[0].diff_id, "compressed blob digest differs from the diff id");
    for layer in &got.layers {
        assert!(env.store.has_blob(&layer.digest).unwrap());
    }
    assert_eq!(env.store.get(&refs[0].digest).unwrap().unwrap().name, refs[0].name, "get by digest");
    let pinned = env.store.get(&format!("busybox@{}", refs[0].digest)).unwrap().expect("get by name@digest");
    assert_eq!(pinned.manifest_digest, refs[0].digest);
    assert!(env.store.get(&format!("busybox@sha256:{}", "0".repeat(64))).unwrap().is_none());

    // A second import of the same archive is idempotent.
    assert_eq!(env.store.import(&archive).unwrap(), refs);
    assert!(env.store.remove("docker.io/library/busybox").unwrap());
    assert!(!env.store.remove("busybox").unwrap());
    assert!(env.store.get("busybox").unwrap().is_none());
    assert!(env.store.list().unwrap().is_empty());
    assert_eq!(fs::read_dir(env.store.root().join("tmp")).unwrap().count(), 0, "temp files left behind");
}

#[test]
#[ignore = "needs root: runc, overlayfs"]
fn docker_save_archive_imports_as_an_oci_manifest() {
    if !prerequisites("docker_save_archive_imports_as_an_oci_manifest") {
        return;
    }
    let env = Env::new();
    let image = TestImage::busybox();
    let archive = env.path().join("docker.tar");
    image.docker_archive("example.com/team/busybox:1.0", &archive);
    let refs = env.store.import(&archive).unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].name, "example.com/team/busybox:1.0");

    let manifest: serde_json::Value = serde_json::from_slice(&env.store.read_blob(&refs[0].digest).unwrap()).unwrap();
    assert_eq!(manifest["mediaType"], media_type::OCI_MANIFEST);
    assert_eq!(manifest["config"]["digest"], sha256(&image.config));
    assert_eq!(manifest["layers"][0]["mediaType"], media_type::OCI_LAYER_TAR);
    assert_eq!(manifest["layers"][1]["size"], image.layers[1].len());

    let got = env.store.get("example.com/team/busybox:1.0").unwrap().unwrap();
    assert_eq!(got.layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>(), image.diff_ids());
    assert!(env.store.get("busybox").unwrap().is_none(), "a different name must not resolve");

    // `docker save | gzip` imports the same.
    let gzipped = env.path().join("docker.tar.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&fs::read(&archive).unwrap()).unwrap();
    fs::write(&gzipped, gz.finish().unwrap()).unwrap();
    assert_eq!(env.store.import(&gzipped).unwrap(), refs);

    let not_an_image = env.path().join("empty.tar");
    fs::write(&not_an_image, LayerBuilder::new().file("hello.txt", b"hi", 0o644).finish()).unwrap();
    let err = env.store.import(&not_an_image).unwrap_err();
    assert!(matches!(err, berth_agent::ImageError::UnknownArchiveFormat { .. }), "{err:?}");
}

#[test]
#[ignore = "needs root: runc, overlayfs"]
fn readers_never_see_a_half_done_import() {
    if !prerequisites("readers_never_see_a_half_done_import") {
        return;
    }
    let env = Env::new();
    let archive = env.path().join("docker.tar");
    TestImage::busybox().docker_archive("concurrent:v1", &archive);
    let writer_store = env.store.clone();
    let writer = std::thread::spawn(move || {
        for _ in 0..10 {
            writer_store.import(&archive).unwrap();
            assert!(writer_store.remove("concurrent:v1").unwrap());
        }
    });
    let (mut seen, mut absent) = (0, 0);
    while !writer.is_finished() {
        match env.store.get("concurrent:v1").unwrap() {
            Some(image) => {
                seen += 1;
                assert_eq!(image.layers.len(), 2);
                for layer in &image.layers {
                    assert!(env.store.has_blob(&layer.digest).unwrap(), "named image with a missing blob");
                }
            }
            None => absent += 1,
        }
        env.store.list().unwrap();
    }
    writer.join().expect("importer thread");
    eprintln!("reads: {seen} saw the image, {absent} did not");
    assert!(env.store.get("concurrent:v1").unwrap().is_none());
}

#[test]
#[ignore = "needs root: runc, overlayfs"]
fn whiteouts_hide_deleted_files_and_opaque_dirs_in_the_merged_rootfs() {
    if !prerequisites("whiteouts_hide_deleted_files_and_opaque_dirs_in_the_merged_rootfs") {
        return;
    }
    let mut env = Env::new();
    let image = env.import_busybox();
    let dir = env.container_dir();
    let rootfs = prepare_rootfs(&env.store, &image, &dir).unwrap().unmount_on_drop(true);
    let root = rootfs.path().to_path_buf();
    assert!(is_mounted(&root).unwrap());

    // Layer 2 in overlayfs form: a 0/0 char device and an opaque xattr.
    let top = layer_dir(&env.store, &image.layers[1].diff_id).unwrap();
    let whiteout = fs::symlink_metadata(top.join("etc/gone.txt")).unwrap();
    assert!(whiteout.file_type().is_char_device());
    assert_eq!(whiteout.rdev(), 0);
    assert_eq!(xattr::get(top.join("data"), OVERLAY_OPAQUE_XATTR).unwrap().as_deref(), Some(&b"y"[..]));
    assert!(!top.join("etc/.wh.gone.txt").exists() && !top.join("data/.wh..wh..opq").exists());

    // The merged view.
    assert!(root.join("bin/busybox").is_file());
    assert_eq!(fs::read_link(root.join("bin/sh")).unwrap(), Path::new("busybox"));
    assert!(!root.join("etc/gone.txt").exists(), "whited-out file is visible");
    assert!(root.join("etc/passwd").is_file());
    assert!(!root.join("data/old.txt").exists(), "opaque dir shows the lower layer");
    assert_eq!(fs::read_to_string(root.join("data/new.txt")).unwrap(), "added by layer 2\n");
    let owned = fs::metadata(root.join("etc/owned.txt")).unwrap();
    assert_eq!((owned.uid(), owned.gid(), owned.mode() & 0o7777), (1234, 5678, 0o640), "ownership and mode kept");
    assert_eq!(fs::metadata(root.join("tmp")).unwrap().mode() & 0o7777, 0o1777);

    // A second rootfs reuses the unpacked layers; preparing the same one again is idempotent.
    let again = prepare_rootfs(&env.store, &image, &dir).unwrap();
    assert_eq!(again.path(), root);
    drop(again);
    assert!(is_mounted(&root).unwrap(), "dropping a handle does not unmount by default");

    rootfs.release().unwrap();
    assert!(!is_mounted(&root).unwrap());
    cleanup(&dir).unwrap();
    assert!(!dir.exists());
}

#[tokio::test]
#[ignore = "needs root: runc, overlayfs"]
async fn a_container_writes_stdout_to_its_file_and_reports_its_exit_code() {
    if !prerequisites("a_container_writes_stdout_to_its_file_and_reports_its_exit_code") {
        return;
    }
    let mut env = Env::new();
    let (id, stdout) = env.create(&["sh", "-c", "echo hello; echo oops >&2; exit 3"]).await;
    assert!(matches!(env.runc.state(&id).await.unwrap(), ContainerState::Created { pid } if pid > 0));
    env.runc.start(&id).await.unwrap();
    let code = tokio::time::timeout(Duration::from_secs(20), env.runc.wait(&id)).await.expect("container exits");
    assert_eq!(code.unwrap(), Some(3));
    assert_eq!(env.runc.state(&id).await.unwrap(), ContainerState::Stopped { exit_code: Some(3) });
    // The log files are in the CRI format; read_content gives the text as kubectl shows it.
    assert_eq!(read_content(&stdout).unwrap(), "hello\n");
    assert_eq!(read_content(&stdout.with_file_name("stderr.log")).unwrap(), "oops\n");

    env.runc.delete(&id, false).await.unwrap();
    assert!(matches!(env.runc.state(&id).await, Err(berth_agent::RuntimeError::NotFound { .. })));
    assert!(!env.runc_list().contains(&id));
    env.runc.delete(&id, false).await.expect("deleting twice is fine");
    let dir = stdout.parent().unwrap().to_path_buf();
    cleanup(&dir).unwrap();
    assert!(!dir.exists());
}

#[tokio::test]
#[ignore = "needs root: runc, overlayfs"]
async fn sigterm_stops_a_sleeping_container() {
    if !prerequisites("sigterm_stops_a_sleeping_container") {
        return;
    }
    let mut env = Env::new();
    // PID 1 ignores signals it has no handler for, so the shell traps TERM as real workloads do.
    let (id, _) = env.create(&["sh", "-c", "trap 'exit 143' TERM; sleep 1000 & wait"]).await;
    env.runc.start(&id).await.unwrap();
    wait_for_state(&env.runc, &id, Duration::from_secs(10), |s| matches!(s, ContainerState::Running { .. })).await;
    assert_eq!(env.runc.list().await.unwrap(), vec![id.clone()]);

    env.runc.kill(&id, Signal::SIGTERM).await.unwrap();
    let state =
        wait_for_state(&env.runc, &id, Duration::from_secs(20), |s| matches!(s, ContainerState::Stopped { .. })).await;
    assert_eq!(state, ContainerState::Stopped { exit_code: Some(143) });
    env.runc.delete(&id, false).await.unwrap();
    assert!(env.runc.list().await.unwrap().is_empty());
}

#[tokio::test]
#[ignore = "needs root: runc, overlayfs"]
async fn sigkill_and_force_delete_remove_a_running_container() {
    if !prerequisites("sigkill_and_force_delete_remove_a_running_container") {
        return;
    }
    let mut env = Env::new();
    let (id, _) = env.create(&["sleep", "1000"]).await;
    env.runc.start(&id).await.unwrap();
    wait_for_state(&env.runc, &id, Duration::from_secs(10), |s| matches!(s, ContainerState::Running { .. })).await;
    env.runc.kill(&id, Signal::SIGKILL).await.unwrap();
    let code = tokio::time::timeout(Duration::from_secs(20), env.runc.wait(&id)).await.expect("container exits");
    assert_eq!(code.unwrap(), Some(128 + 9));
    env.runc.delete(&id, false).await.unwrap();

    let (id2, _) = env.create(&["sleep", "1000"]).await;
    env.runc.start(&id2).await.unwrap();
    env.runc.delete(&id2, true).await.unwrap();
    assert!(env.runc_list().trim().lines().all(|l| l != id2 && l != id), "{}", env.runc_list());
}

#[tokio::test]
#[ignore = "needs root: runc, overlayfs"]
async fn a_missing_executable_fails_create_with_runcs_message() {
    if !prerequisites("a_missing_executable_fails_create_with_runcs_message") {
        return;
    }
    let mut env = Env::new();
    let image = env.import_busybox();
    let dir = env.container_dir();
    let rootfs = prepare_rootfs(&env.store, &image, &dir).unwrap();
    let spec = ContainerSpec { command: vec!["/no/such/binary".into()], ..Default::default() };
    let bundle = Bundle::write(&dir, &build_spec(&spec, &image.config, rootfs.path()).unwrap()).unwrap();
    let id = unique("c");
    env.containers.push(id.clone());
    let io = ContainerIo { stdout: dir.join("out.log"), stderr: dir.join("out.log") };
    let err = env.runc.create(&id, &bundle, &io).await.unwrap_err();
    assert!(err.to_string().contains("/no/such/binary"), "{err}");
}
