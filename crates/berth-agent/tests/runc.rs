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

use berth_agent::image::{ImageStore, media_type};
use berth_agent::layers::{OVERLAY_OPAQUE_XATTR, layer_dir};
use berth_agent::runtime::Signal;
use berth_agent::snapshot::is_mounted;
use berth_agent::{
    Bundle, ContainerIo, ContainerSpec, ContainerState, Runc, Runtime, bundle::build_spec, cleanup, prepare_rootfs,
};
use sha2::{Digest, Sha256};

const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &[
    "sh", "echo", "sleep", "httpd", "cat", "ls", "wget", "nc", "true", "false", "env", "id", "mkdir", "rm", "ps",
    "kill", "test", "hostname", "printf",
];

// ---------------------------------------------------------------------------------------------
// prerequisites

/// Whether this machine can run the tests. Missing prerequisites fail under `CI=true`; otherwise
/// the test prints why it is skipped.
fn prerequisites(test: &str) -> bool {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root");
    }
    if Command::new("runc").arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        missing.push("runc on PATH");
    }
    if !Path::new(BUSYBOX).is_file() {
        missing.push("/bin/busybox (Debian busybox-static)");
    }
    if !fs::read_to_string("/proc/filesystems").unwrap_or_default().contains("overlay") {
        missing.push("overlayfs");
    }
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: missing prerequisites under CI=true: {}", missing.join(", "));
    }
    eprintln!("SKIPPED {test}: missing {}", missing.join(", "));
    false
}

// ---------------------------------------------------------------------------------------------
// building a busybox image

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

struct LayerBuilder(tar::Builder<Vec<u8>>);

impl LayerBuilder {
    fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    fn header(path: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = Self::header(path, tar::EntryType::Directory, mode, 0);
        h.set_cksum();
        self.0.append(&h, &[][..]).unwrap();
        self
    }

    fn file_owned(mut self, path: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = Self::header(path, tar::EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn file(self, path: &str, data: &[u8], mode: u32) -> Self {
        self.file_owned(path, data, mode, 0, 0)
    }

    fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(path, tar::EntryType::Symlink, 0o777, 0);
        h.set_link_name(target).unwrap();
        h.set_cksum();
        self.0.append(&h, &[][..]).unwrap();
        self
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// A two-layer busybox image: layer 1 is busybox plus a few files; layer 2 deletes
/// `/etc/gone.txt` (whiteout) and makes `/data` opaque (hiding `old.txt`), adding `new.txt`.
struct TestImage {
    layers: Vec<Vec<u8>>,
    config: Vec<u8>,
}

impl TestImage {
    fn busybox() -> Self {
        let busybox = fs::read(BUSYBOX).unwrap();
        let mut base = LayerBuilder::new()
            .dir("bin/", 0o755)
            .dir("etc/", 0o755)
            .dir("tmp/", 0o1777)
            .dir("data/", 0o755)
            .dir("proc/", 0o555)
            .dir("sys/", 0o555)
            .dir("dev/", 0o755)
            .file("bin/busybox", &busybox, 0o755)
            .file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n", 0o644)
            .file("etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644)
            .file("etc/gone.txt", b"deleted by layer 2\n", 0o644)
            .file_owned("etc/owned.txt", b"owned\n", 0o640, 1234, 5678)
            .file("data/old.txt", b"hidden by the opaque dir\n", 0o644);
        for applet in APPLETS {
            base = base.symlink(&format!("bin/{applet}"), "busybox");
        }
        let top = LayerBuilder::new()
            .file("etc/.wh.gone.txt", b"", 0o644)
            .dir("data/", 0o755)
            .file("data/.wh..wh..opq", b"", 0o644)
            .file("data/new.txt", b"added by layer 2\n", 0o644)
            .finish();
        let layers = vec![base.finish(), top];
        let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "IMAGE=busybox"],
                "Cmd": ["sh"],
                "WorkingDir": "/",
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        Self { layers, config }
    }

    fn diff_ids(&self) -> Vec<String> {
        self.layers.iter().map(|l| sha256(l)).collect()
    }

    /// An OCI image-layout archive; the first layer gzip-compressed, the second plain.
    fn oci_archive(&self, name: &str, path: &Path) {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&self.layers[0]).unwrap();
        let base_gz = gz.finish().unwrap();
        let blobs = [(media_type::OCI_LAYER_TAR_GZIP, base_gz), (media_type::OCI_LAYER_TAR, self.layers[1].clone())];
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "config": {"mediaType": media_type::OCI_CONFIG, "digest": sha256(&self.config), "size": self.config.len()},
            "layers": blobs.iter().map(|(mt, b)| serde_json::json!({
                "mediaType": mt, "digest": sha256(b), "size": b.len(),
            })).collect::<Vec<_>>(),
        }))
        .unwrap();
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": media_type::OCI_MANIFEST,
                "digest": sha256(&manifest),
                "size": manifest.len(),
                "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "latest"},
            }],
        }))
        .unwrap();
        let mut out = LayerBuilder::new()
            .file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, 0o644)
            .dir("blobs/", 0o755)
            .dir("blobs/sha256/", 0o755);
        for blob in blobs.iter().map(|(_, b)| b).chain([&self.config, &manifest]) {
            out = out.file(&format!("blobs/sha256/{}", &sha256(blob)[7..]), blob, 0o644);
        }
        fs::write(path, out.file("index.json", &index, 0o644).finish()).unwrap();
    }

    /// A legacy `docker save` archive: `<id>/layer.tar`, `<config hex>.json`, `manifest.json`,
    /// with the second layer stored through a symlink as docker does for shared layers.
    fn docker_archive(&self, tag: &str, path: &Path) {
        let config_name = format!("{}.json", &sha256(&self.config)[7..]);
        let ids: Vec<String> = self.diff_ids().iter().map(|d| d[7..].to_string()).collect();
        let manifest = serde_json::to_vec(&serde_json::json!([{
            "Config": config_name,
            "RepoTags": [tag],
            "Layers": ids.iter().map(|id| format!("{id}/layer.tar")).collect::<Vec<_>>(),
        }]))
        .unwrap();
        let mut out = LayerBuilder::new().file(&config_name, &self.config, 0o644);
        out = out.dir(&format!("{}/", ids[0]), 0o755).file(&format!("{}/layer.tar", ids[0]), &self.layers[0], 0o644);
        out = out.file(&format!("{}/VERSION", ids[0]), b"1.0", 0o644).file(&format!("{}/json", ids[0]), b"{}", 0o644);
        out = out.dir("shared/", 0o755).file("shared/layer.tar", &self.layers[1], 0o644);
        out = out.dir(&format!("{}/", ids[1]), 0o755).symlink(&format!("{}/layer.tar", ids[1]), "../shared/layer.tar");
        out = out.file("manifest.json", &manifest, 0o644).file("repositories", b"{}", 0o644);
        fs::write(path, out.finish()).unwrap();
    }
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
    assert_eq!(fs::read_to_string(&stdout).unwrap(), "hello\n");
    assert_eq!(fs::read_to_string(stdout.with_file_name("stderr.log")).unwrap(), "oops\n");

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
