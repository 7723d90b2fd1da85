//! Content-addressed image store under one root directory (the agent uses `DATA_DIR/agent/images`):
//!
//! ```text
//! blobs/sha256/<hex>     manifests, configs and layer blobs, verified by sha256 on write
//! layers/sha256/<hex>    unpacked layers by diff id (see the `layers` module)
//! images.json            normalised image reference -> manifest digest; the imported names
//! tmp/                   temp files and dirs, renamed into place when complete
//! lock                   flock(2) taken while images.json is rewritten
//! ```
//!
//! May touch only files under its root. All methods do blocking file I/O: call them from
//! `spawn_blocking` in async code.
//!
//! # Guarantees
//!
//! Every blob and `images.json` is written to `tmp/` and renamed into place, so a reader (another
//! agent thread or process) never sees a partial file; an import is visible only once all its blobs
//! are stored and verified.

mod archive;
pub mod pull;
mod reference;
#[cfg(feature = "testing")]
pub mod testing;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::io_error::{IoError, io_err};

pub use reference::{DEFAULT_DOMAIN, normalize_reference};

/// OCI and docker media types this store understands.
pub mod media_type {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index (multi-platform).
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// Uncompressed OCI layer.
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    /// Gzip-compressed OCI layer.
    pub const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// Docker schema 2 manifest (same shape as the OCI manifest).
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list (same shape as the OCI index).
    pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
}

/// Errors of the image store. Each variant names the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("invalid digest {digest:?}: only sha256:<64 lower-case hex> is supported")]
    InvalidDigest { digest: String },
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("blob {expected} failed verification: content hashes to {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("blob {digest} is not in the store")]
    BlobNotFound { digest: String },
    #[error("failed to read archive {path}")]
    ReadArchive {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("archive {path} is neither an OCI image layout (index.json) nor a docker save tar (manifest.json)")]
    UnknownArchiveFormat { path: PathBuf },
    #[error("archive entry {entry:?} is not a safe relative path")]
    UnsafeArchivePath { entry: String },
    #[error("archive refers to {entry:?}, which it does not contain")]
    MissingArchiveEntry { entry: String },
    #[error("failed to parse {what}")]
    Parse {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("image {digest}: {reason}")]
    InvalidImage { digest: String, reason: String },
    #[error("image index {digest} has no manifest for {os}/{architecture}")]
    NoMatchingPlatform { digest: String, os: String, architecture: String },
    #[error("unsupported media type {media_type:?} for {digest}")]
    UnsupportedMediaType { digest: String, media_type: String },
    #[error("failed to pull image {reference:?}: {message}")]
    Pull { reference: String, message: String },
    #[error("failed to lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
}

type Result<T, E = ImageError> = std::result::Result<T, E>;

/// Checks that `digest` is `sha256:` followed by 64 lower-case hex digits; returns the hex part.
pub fn validate_digest(digest: &str) -> Result<&str> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => {
            Ok(hex)
        }
        _ => Err(ImageError::InvalidDigest { digest: digest.to_string() }),
    }
}

/// A named image in the store: a normalised reference and the digest of its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// Normalised reference (`docker.io/library/busybox:latest`), or the manifest digest for an
    /// image imported without a name.
    pub name: String,
    /// `sha256:...` of the image manifest.
    pub digest: String,
}

/// The parts of an image config a container runtime needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=VALUE` entries, in image order.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`, as written in the image.
    pub user: Option<String>,
}

/// One layer of an image: the blob as stored and the digest of its uncompressed tar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub digest: String,
    pub diff_id: String,
    pub media_type: String,
    pub size: u64,
}

/// An image resolved from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub name: String,
    pub manifest_digest: String,
    pub config_digest: String,
    pub config: ImageConfig,
    /// Bottom-most first, as in the manifest.
    pub layers: Vec<Layer>,
}

// ---- OCI JSON documents (only the fields the store uses; unknown fields are ignored) ----

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    pub config: Option<ConfigSection>,
    pub rootfs: RootFsSection,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ConfigSection {
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct RootFsSection {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct IndexFile {
    /// Normalised reference -> manifest digest.
    images: BTreeMap<String, String>,
    /// Names that came from `berth image import`: pinned, as k3s pins airgap images, so the
    /// kubelet uses them as they are and never asks a registry for them.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    imported: std::collections::BTreeSet<String>,
}

const INDEX_FILE: &str = "images.json";

/// A content-addressed image store rooted at one directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

impl ImageStore {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for dir in ["blobs/sha256", "layers/sha256", "tmp"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(io_err("create directory", &path))?;
        }
        Ok(Self { root })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let hex = validate_digest(digest)?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    /// Whether the blob with `digest` is stored.
    pub fn has_blob(&self, digest: &str) -> Result<bool> {
        Ok(self.blob_path(digest)?.is_file())
    }

    /// Reads a whole blob into memory (manifests and configs).
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        match fs::read(&path) {
            Ok(data) => Ok(data),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ImageError::BlobNotFound { digest: digest.into() }),
            Err(e) => Err(io_err("read blob", &path)(e).into()),
        }
    }

    /// Opens a blob for streaming (layers).
    pub fn open_blob(&self, digest: &str) -> Result<File> {
        let path = self.blob_path(digest)?;
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ImageError::BlobNotFound { digest: digest.into() },
            _ => io_err("open blob", &path)(e).into(),
        })
    }

    /// Streams `reader` into the store and returns its digest and size. With `expected`, the
    /// content must hash to it or nothing is stored.
    pub fn write_blob(&self, reader: &mut dyn Read, expected: Option<&str>) -> Result<(String, u64)> {
        if let Some(expected) = expected {
            validate_digest(expected)?;
        }
        let tmp = self.temp_path("blob");
        let result = (|| {
            let mut file = File::create(&tmp).map_err(io_err("create", &tmp))?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut size = 0u64;
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_err("read blob content for", &tmp)(e).into()),
                };
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n]).map_err(io_err("write", &tmp))?;
                size += n as u64;
            }
            file.sync_all().map_err(io_err("sync", &tmp))?;
            let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
            if let Some(expected) = expected
                && expected != digest
            {
                return Err(ImageError::DigestMismatch { expected: expected.into(), actual: digest });
            }
            let dest = self.blob_path(&digest)?;
            fs::rename(&tmp, &dest).map_err(io_err("rename blob into", &dest))?;
            Ok((digest, size))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Stores a small in-memory blob (a manifest written by the store itself).
    pub fn write_blob_bytes(&self, data: &[u8]) -> Result<String> {
        Ok(self.write_blob(&mut &data[..], None)?.0)
    }

    /// Imports an OCI image-layout archive or a `docker save` tar (either may be gzipped) and
    /// returns the images it named. Blobs are verified; names are added to the index only once
    /// every blob of the image is stored.
    pub fn import(&self, archive: &Path) -> Result<Vec<ImageRef>> {
        let refs = archive::import(self, archive)?;
        self.update_index(|index| {
            for r in &refs {
                index.images.insert(r.name.clone(), r.digest.clone());
                index.imported.insert(r.name.clone());
            }
        })?;
        Ok(refs)
    }

    /// Records `image.name` as pulled from a registry (a later import pins it again).
    pub fn tag(&self, image: &ImageRef) -> Result<()> {
        self.update_index(|index| {
            index.images.insert(image.name.clone(), image.digest.clone());
            index.imported.remove(&image.name);
        })
    }

    /// Whether `reference` names an image that was imported (pinned) rather than pulled.
    pub fn is_imported(&self, reference: &str) -> Result<bool> {
        let name = normalize_reference(reference)?;
        Ok(self.read_index()?.imported.contains(&name))
    }

    /// All named images, sorted by name.
    pub fn list(&self) -> Result<Vec<ImageRef>> {
        let index = self.read_index()?;
        Ok(index.images.into_iter().map(|(name, digest)| ImageRef { name, digest }).collect())
    }

    /// Resolves `reference` (any form `normalize_reference` accepts, or a bare manifest digest)
    /// to an image. `Ok(None)` if no such image is stored.
    pub fn get(&self, reference: &str) -> Result<Option<Image>> {
        let index = self.read_index()?;
        let (name, digest) = if validate_digest(reference).is_ok() {
            let name = index.images.iter().find(|(_, d)| *d == reference).map(|(n, _)| n.clone());
            match name {
                Some(n) => (n, reference.to_string()),
                None if self.has_blob(reference)? => (reference.to_string(), reference.to_string()),
                None => return Ok(None),
            }
        } else {
            let name = normalize_reference(reference)?;
            match (index.images.get(&name), name.split_once('@')) {
                (Some(d), _) => (name, d.clone()),
                // `name@sha256:...` pins the manifest: any stored manifest with that digest.
                (None, Some((_, digest))) if self.has_blob(digest)? => (name.clone(), digest.to_string()),
                (None, _) => return Ok(None),
            }
        };
        self.load_image(&name, &digest).map(Some)
    }

    /// Removes the name `reference` from the index. Returns whether it was there. Blobs and
    /// unpacked layers stay until garbage collection.
    pub fn remove(&self, reference: &str) -> Result<bool> {
        let name =
            if validate_digest(reference).is_ok() { reference.to_string() } else { normalize_reference(reference)? };
        let mut removed = false;
        self.update_index(|index| {
            index.imported.remove(&name);
            removed = index.images.remove(&name).is_some();
            if !removed && validate_digest(&name).is_ok() {
                let before = index.images.len();
                index.images.retain(|_, d| *d != name);
                removed = index.images.len() != before;
            }
        })?;
        Ok(removed)
    }

    /// Reads and checks an image manifest and its config.
    pub(crate) fn load_image(&self, name: &str, manifest_digest: &str) -> Result<Image> {
        let manifest: Manifest = parse(&self.read_blob(manifest_digest)?, || format!("manifest {manifest_digest}"))?;
        let config_digest = manifest.config.digest.clone();
        let config: ConfigFile = parse(&self.read_blob(&config_digest)?, || format!("image config {config_digest}"))?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::InvalidImage {
                digest: manifest_digest.into(),
                reason: format!(
                    "manifest has {} layers but config has {} diff ids",
                    manifest.layers.len(),
                    config.rootfs.diff_ids.len()
                ),
            });
        }
        let mut layers = Vec::with_capacity(manifest.layers.len());
        for (desc, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            validate_digest(&desc.digest)?;
            validate_digest(diff_id)?;
            layers.push(Layer {
                digest: desc.digest.clone(),
                diff_id: diff_id.clone(),
                media_type: desc.media_type.clone(),
                size: desc.size,
            });
        }
        let section = config.config.unwrap_or_default();
        Ok(Image {
            name: name.to_string(),
            manifest_digest: manifest_digest.to_string(),
            config_digest,
            config: ImageConfig {
                entrypoint: section.entrypoint.unwrap_or_default(),
                cmd: section.cmd.unwrap_or_default(),
                env: section.env.unwrap_or_default(),
                working_dir: section.working_dir.filter(|w| !w.is_empty()),
                user: section.user.filter(|u| !u.is_empty()),
            },
            layers,
        })
    }

    /// A fresh, unique path under `tmp/` (not created).
    pub(crate) fn temp_path(&self, kind: &str) -> PathBuf {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        self.root.join("tmp").join(format!("{kind}-{}-{n}-{nanos}", std::process::id()))
    }

    fn read_index(&self) -> Result<IndexFile> {
        let path = self.root.join(INDEX_FILE);
        match fs::read(&path) {
            Ok(data) => parse(&data, || path.display().to_string()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(IndexFile::default()),
            Err(e) => Err(io_err("read", &path)(e).into()),
        }
    }

    /// Read-modify-write of `images.json` under an exclusive flock, replaced atomically.
    fn update_index(&self, change: impl FnOnce(&mut IndexFile)) -> Result<()> {
        let lock_path = self.root.join("lock");
        let lock_file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("open", &lock_path))?;
        let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
            .map_err(|(_, source)| ImageError::Lock { path: lock_path.clone(), source })?;
        let mut index = self.read_index()?;
        change(&mut index);
        let data = serde_json::to_vec_pretty(&index)
            .map_err(|source| ImageError::Parse { what: "image index".into(), source })?;
        let tmp = self.temp_path("index");
        let path = self.root.join(INDEX_FILE);
        let written = fs::write(&tmp, &data)
            .and_then(|()| File::open(&tmp)?.sync_all())
            .map_err(io_err("write", &tmp))
            .and_then(|()| fs::rename(&tmp, &path).map_err(io_err("rename index into", &path)));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        Ok(written?)
    }
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(data: &[u8], what: impl FnOnce() -> String) -> Result<T> {
    serde_json::from_slice(data).map_err(|source| ImageError::Parse { what: what(), source })
}

/// Whether `data` starts with the gzip magic number.
pub(crate) fn is_gzip(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
}

/// Whether `data` starts with the zstd magic number.
pub(crate) fn is_zstd(head: &[u8]) -> bool {
    head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
}

/// Opens a possibly gzip-compressed stream: peeks at the magic number and wraps it in a decoder.
/// Returns `Err(head)` for zstd, which the store does not support yet.
pub(crate) fn decompress<R: Read + 'static>(mut reader: R) -> io::Result<Box<dyn Read>> {
    let mut head = [0u8; 4];
    let mut filled = 0;
    while filled < head.len() {
        match reader.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = head[..filled].to_vec();
    if is_zstd(&head) {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "zstd-compressed content is not supported"));
    }
    let chained = io::Cursor::new(head.clone()).chain(reader);
    if is_gzip(&head) { Ok(Box::new(flate2::read::MultiGzDecoder::new(chained))) } else { Ok(Box::new(chained)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_must_be_lowercase_sha256() {
        let hex = "a".repeat(64);
        assert_eq!(validate_digest(&format!("sha256:{hex}")).unwrap(), hex);
        assert!(validate_digest(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(validate_digest(&format!("sha512:{hex}")).is_err());
        assert!(validate_digest("sha256:../../etc").is_err());
    }

    #[test]
    fn write_blob_verifies_the_expected_digest_and_leaves_nothing_on_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let (digest, size) = store.write_blob(&mut &b"hello"[..], None).unwrap();
        assert_eq!(digest, "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        assert_eq!(size, 5);
        assert_eq!(store.read_blob(&digest).unwrap(), b"hello");
        let wrong = format!("sha256:{}", "0".repeat(64));
        let err = store.write_blob(&mut &b"other"[..], Some(&wrong)).unwrap_err();
        assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err:?}");
        assert!(!store.has_blob(&wrong).unwrap());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "temp files left behind");
    }

    #[test]
    fn decompress_handles_plain_and_gzip_streams() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"layer bytes").unwrap();
        let gz = gz.finish().unwrap();
        for input in [b"layer bytes".to_vec(), gz] {
            let mut out = String::new();
            decompress(io::Cursor::new(input)).unwrap().read_to_string(&mut out).unwrap();
            assert_eq!(out, "layer bytes");
        }
        let zstd = decompress(io::Cursor::new(vec![0x28, 0xb5, 0x2f, 0xfd, 0])).err().unwrap();
        assert_eq!(zstd.kind(), io::ErrorKind::Unsupported);
    }
}
