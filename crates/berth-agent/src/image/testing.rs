//! Test images built from the host's `/bin/busybox` (Debian's `busybox-static`): a layer tar
//! builder and a two-layer busybox image written as an OCI layout or `docker save` archive. Shared
//! by the agent's host tests and the end-to-end tests (cargo feature `testing`). Panics on I/O
//! errors: it only ever runs inside tests.

use std::fs;
use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::media_type;

/// Where the tests expect Debian's static busybox.
pub const BUSYBOX: &str = "/bin/busybox";
/// The applets linked into the test image's `/bin`.
pub const APPLETS: &[&str] = &[
    "sh", "echo", "sleep", "httpd", "cat", "ls", "wget", "nc", "true", "false", "env", "id", "mkdir", "rm", "ps",
    "kill", "test", "hostname", "printf",
];

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

pub struct LayerBuilder(tar::Builder<Vec<u8>>);

impl LayerBuilder {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    fn header(path: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).expect("building a test image");
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = Self::header(path, tar::EntryType::Directory, mode, 0);
        h.set_cksum();
        self.0.append(&h, &[][..]).expect("building a test image");
        self
    }

    pub fn file_owned(mut self, path: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = Self::header(path, tar::EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_cksum();
        self.0.append(&h, data).expect("building a test image");
        self
    }

    pub fn file(self, path: &str, data: &[u8], mode: u32) -> Self {
        self.file_owned(path, data, mode, 0, 0)
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(path, tar::EntryType::Symlink, 0o777, 0);
        h.set_link_name(target).expect("building a test image");
        h.set_cksum();
        self.0.append(&h, &[][..]).expect("building a test image");
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.0.into_inner().expect("building a test image")
    }
}

/// A two-layer busybox image: layer 1 is busybox plus a few files; layer 2 deletes
/// `/etc/gone.txt` (whiteout) and makes `/data` opaque (hiding `old.txt`), adding `new.txt`.
pub struct TestImage {
    pub layers: Vec<Vec<u8>>,
    pub config: Vec<u8>,
}

impl TestImage {
    pub fn busybox() -> Self {
        let busybox = fs::read(BUSYBOX).expect("reading /bin/busybox");
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
        .expect("building a test image");
        Self { layers, config }
    }

    pub fn diff_ids(&self) -> Vec<String> {
        self.layers.iter().map(|l| sha256(l)).collect()
    }

    /// An OCI image-layout archive; the first layer gzip-compressed, the second plain.
    pub fn oci_archive(&self, name: &str, path: &Path) {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&self.layers[0]).expect("building a test image");
        let base_gz = gz.finish().expect("building a test image");
        let blobs = [(media_type::OCI_LAYER_TAR_GZIP, base_gz), (media_type::OCI_LAYER_TAR, self.layers[1].clone())];
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "config": {"mediaType": media_type::OCI_CONFIG, "digest": sha256(&self.config), "size": self.config.len()},
            "layers": blobs.iter().map(|(mt, b)| serde_json::json!({
                "mediaType": mt, "digest": sha256(b), "size": b.len(),
            })).collect::<Vec<_>>(),
        }))
        .expect("building a test image");
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": media_type::OCI_MANIFEST,
                "digest": sha256(&manifest),
                "size": manifest.len(),
                "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "latest"},
            }],
        }))
        .expect("building a test image");
        let mut out = LayerBuilder::new()
            .file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, 0o644)
            .dir("blobs/", 0o755)
            .dir("blobs/sha256/", 0o755);
        for blob in blobs.iter().map(|(_, b)| b).chain([&self.config, &manifest]) {
            out = out.file(&format!("blobs/sha256/{}", &sha256(blob)[7..]), blob, 0o644);
        }
        fs::write(path, out.file("index.json", &index, 0o644).finish()).expect("building a test image");
    }

    /// A legacy `docker save` archive: `<id>/layer.tar`, `<config hex>.json`, `manifest.json`,
    /// with the second layer stored through a symlink as docker does for shared layers.
    pub fn docker_archive(&self, tag: &str, path: &Path) {
        let config_name = format!("{}.json", &sha256(&self.config)[7..]);
        let ids: Vec<String> = self.diff_ids().iter().map(|d| d[7..].to_string()).collect();
        let manifest = serde_json::to_vec(&serde_json::json!([{
            "Config": config_name,
            "RepoTags": [tag],
            "Layers": ids.iter().map(|id| format!("{id}/layer.tar")).collect::<Vec<_>>(),
        }]))
        .expect("building a test image");
        let mut out = LayerBuilder::new().file(&config_name, &self.config, 0o644);
        out = out.dir(&format!("{}/", ids[0]), 0o755).file(&format!("{}/layer.tar", ids[0]), &self.layers[0], 0o644);
        out = out.file(&format!("{}/VERSION", ids[0]), b"1.0", 0o644).file(&format!("{}/json", ids[0]), b"{}", 0o644);
        out = out.dir("shared/", 0o755).file("shared/layer.tar", &self.layers[1], 0o644);
        out = out.dir(&format!("{}/", ids[1]), 0o755).symlink(&format!("{}/layer.tar", ids[1]), "../shared/layer.tar");
        out = out.file("manifest.json", &manifest, 0o644).file("repositories", b"{}", 0o644);
        fs::write(path, out.finish()).expect("building a test image");
    }
}
