//! Import of image archives into the store: OCI image layouts (`oci-layout`, `index.json`,
//! `blobs/`) and `docker save` tars (`manifest.json` plus layer tars), the latter converted to an
//! OCI manifest. Reads the archive once, streaming every blob into the store; touches nothing else.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Component, Path};

use serde::Deserialize;

use super::{
    Descriptor, ImageError, ImageRef, ImageStore, Index, Manifest, Platform, Result, decompress, is_gzip, media_type,
    normalize_reference, parse, validate_digest,
};

/// Annotation containerd (and docker 25+) write with the full image name.
const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// OCI annotation with the reference name (a full name or, per the spec, possibly only a tag).
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Metadata files kept in memory rather than stored as blobs.
const METADATA_FILES: [&str; 4] = ["index.json", "manifest.json", "oci-layout", "repositories"];
const MAX_METADATA_SIZE: u64 = 16 << 20;

/// A file of the archive as stored: its blob digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlobInfo {
    pub digest: String,
    pub size: u64,
    pub gzip: bool,
}

/// One entry of a `docker save` `manifest.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DockerManifestEntry {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    pub layers: Vec<String>,
}

/// Normalises an archive entry path: strips `./` and leading `/`; rejects `..`.
pub(crate) fn archive_path(path: &Path) -> Result<String> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(ImageError::UnsafeArchivePath { entry: path.display().to_string() });
            }
        }
    }
    Ok(parts.join("/"))
}

/// Resolves a symlink target found at `link` (relative to the link's directory) to an archive path.
fn resolve_link(link: &str, target: &Path) -> Result<String> {
    let base = Path::new(link).parent().unwrap_or(Path::new(""));
    let mut parts: Vec<String> = if target.is_absolute() {
        Vec::new()
    } else {
        base.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect()
    };
    for c in target.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir if parts.pop().is_none() => {
                return Err(ImageError::UnsafeArchivePath { entry: link.to_string() });
            }
            _ => {}
        }
    }
    Ok(parts.join("/"))
}

pub(super) fn import(store: &ImageStore, path: &Path) -> Result<Vec<ImageRef>> {
    let read_err = |source| ImageError::ReadArchive { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(read_err)?;
    let mut archive = tar::Archive::new(decompress(file).map_err(read_err)?);
    let mut metadata: HashMap<String, Vec<u8>> = HashMap::new();
    let mut files: HashMap<String, BlobInfo> = HashMap::new();
    let mut links: HashMap<String, String> = HashMap::new();
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let name = archive_path(&entry.path().map_err(read_err)?)?;
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            if let Some(target) = entry.link_name().map_err(read_err)? {
                let target = if kind.is_hard_link() { archive_path(&target)? } else { resolve_link(&name, &target)? };
                links.insert(name, target);
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        if METADATA_FILES.contains(&name.as_str()) {
            let mut data = Vec::new();
            (&mut entry).take(MAX_METADATA_SIZE).read_to_end(&mut data).map_err(read_err)?;
            metadata.insert(name, data);
            continue;
        }
        let expected = name.strip_prefix("blobs/sha256/").map(|hex| format!("sha256:{hex}"));
        if let Some(expected) = &expected {
            validate_digest(expected)?;
        } else if !(name.ends_with(".tar") || name.ends_with(".tar.gz") || name.ends_with(".json")) {
            // docker save's legacy per-layer `json` and `VERSION` files: not needed.
            continue;
        }
        let mut head = [0u8; 2];
        let mut tee = HeadCapture { inner: &mut entry, head: &mut head, seen: 0 };
        let (digest, size) = store.write_blob(&mut tee, expected.as_deref())?;
        files.insert(name, BlobInfo { digest, size, gzip: is_gzip(&head) });
    }
    let lookup = |name: &str| -> Option<BlobInfo> {
        let mut name = name.trim_start_matches("./").to_string();
        for _ in 0..16 {
            if let Some(info) = files.get(&name) {
                return Some(info.clone());
            }
            name = links.get(&name)?.clone();
        }
        None
    };

    if let Some(index) = metadata.get("index.json") {
        let index: Index = parse(index, || format!("{}: index.json", path.display()))?;
        if !index.manifests.is_empty() {
            return import_oci_index(store, &index);
        }
    }
    if let Some(manifest) = metadata.get("manifest.json") {
        let entries: Vec<DockerManifestEntry> = parse(manifest, || format!("{}: manifest.json", path.display()))?;
        let mut refs = Vec::new();
        for entry in &entries {
            let manifest = docker_to_oci_manifest(entry, &lookup)?;
            let data = serde_json::to_vec(&manifest)
                .map_err(|source| ImageError::Parse { what: "converted manifest".into(), source })?;
            let digest = store.write_blob_bytes(&data)?;
            check_blobs(store, &digest)?;
            let tags = entry.repo_tags.clone().unwrap_or_default();
            if tags.is_empty() {
                refs.push(ImageRef { name: digest.clone(), digest: digest.clone() });
            }
            for tag in tags {
                refs.push(ImageRef { name: normalize_reference(&tag)?, digest: digest.clone() });
            }
        }
        return Ok(refs);
    }
    Err(ImageError::UnknownArchiveFormat { path: path.to_path_buf() })
}

/// Checks that an imported image parses and that all its layer blobs are stored.
fn check_blobs(store: &ImageStore, digest: &str) -> Result<()> {
    let image = store.load_image(digest, digest)?;
    for layer in &image.layers {
        if !store.has_blob(&layer.digest)? {
            return Err(ImageError::BlobNotFound { digest: layer.digest.clone() });
        }
    }
    Ok(())
}

/// Captures the first bytes read through it (to sniff compression while streaming).
struct HeadCapture<'a, R> {
    inner: &'a mut R,
    head: &'a mut [u8],
    seen: usize,
}

impl<R: Read> Read for HeadCapture<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let want = self.head.len().saturating_sub(self.seen).min(n);
        self.head[self.seen..self.seen + want].copy_from_slice(&buf[..want]);
        self.seen += want;
        Ok(n)
    }
}

/// Builds the OCI manifest equivalent of one `docker save` entry. Pure: `lookup` maps archive
/// paths to stored blobs.
pub(crate) fn docker_to_oci_manifest(
    entry: &DockerManifestEntry,
    lookup: &dyn Fn(&str) -> Option<BlobInfo>,
) -> Result<Manifest> {
    let find = |name: &str| lookup(name).ok_or_else(|| ImageError::MissingArchiveEntry { entry: name.to_string() });
    let config = find(&entry.config)?;
    let layers = entry
        .layers
        .iter()
        .map(|name| {
            let blob = find(name)?;
            let media_type = if blob.gzip { media_type::OCI_LAYER_TAR_GZIP } else { media_type::OCI_LAYER_TAR };
            Ok(descriptor(media_type, blob))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.to_string()),
        config: descriptor(media_type::OCI_CONFIG, config),
        layers,
    })
}

fn descriptor(media_type: &str, blob: BlobInfo) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest: blob.digest,
        size: blob.size,
        annotations: Default::default(),
        platform: None,
    }
}

/// The OCI `GOARCH` name of the host.
pub(crate) fn host_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    Platform { architecture: architecture.to_string(), os: "linux".to_string(), variant: None }
}

fn import_oci_index(store: &ImageStore, index: &Index) -> Result<Vec<ImageRef>> {
    let mut refs = Vec::new();
    for desc in &index.manifests {
        let digest = resolve_manifest(store, desc, 0)?;
        check_blobs(store, &digest)?;
        let name = desc
            .annotations
            .get(ANNOTATION_CONTAINERD_NAME)
            .or_else(|| desc.annotations.get(ANNOTATION_REF_NAME).filter(|n| n.contains('/') || n.contains(':')));
        let name = match name {
            Some(n) => normalize_reference(n)?,
            None => digest.clone(),
        };
        refs.push(ImageRef { name, digest });
    }
    Ok(refs)
}

/// Follows image indexes down to the manifest for the host platform.
fn resolve_manifest(store: &ImageStore, desc: &Descriptor, depth: usize) -> Result<String> {
    match desc.media_type.as_str() {
        media_type::OCI_MANIFEST | media_type::DOCKER_MANIFEST => Ok(desc.digest.clone()),
        media_type::OCI_INDEX | media_type::DOCKER_MANIFEST_LIST if depth < 4 => {
            let nested: Index = parse(&store.read_blob(&desc.digest)?, || format!("image index {}", desc.digest))?;
            let host = host_platform();
            let chosen = nested
                .manifests
                .iter()
                .find(|m| m.platform.as_ref().is_some_and(|p| p.os == host.os && p.architecture == host.architecture))
                .or_else(|| if nested.manifests.len() == 1 { nested.manifests.first() } else { None })
                .ok_or_else(|| ImageError::NoMatchingPlatform {
                    digest: desc.digest.clone(),
                    os: host.os.clone(),
                    architecture: host.architecture.clone(),
                })?;
            resolve_manifest(store, chosen, depth + 1)
        }
        other => Err(ImageError::UnsupportedMediaType { digest: desc.digest.clone(), media_type: other.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(c: char, size: u64, gzip: bool) -> BlobInfo {
        BlobInfo { digest: format!("sha256:{}", c.to_string().repeat(64)), size, gzip }
    }

    #[test]
    fn docker_save_entry_converts_to_an_oci_manifest_with_sniffed_layer_compression() {
        let entry: DockerManifestEntry = serde_json::from_str(
            r#"{"Config":"abc.json","RepoTags":["busybox:latest"],"Layers":["l1/layer.tar","l2/layer.tar"]}"#,
        )
        .unwrap();
        let lookup = |name: &str| match name {
            "abc.json" => Some(blob('c', 10, false)),
            "l1/layer.tar" => Some(blob('1', 100, false)),
            "l2/layer.tar" => Some(blob('2', 50, true)),
            _ => None,
        };
        let m = docker_to_oci_manifest(&entry, &lookup).unwrap();
        assert_eq!(m.schema_version, 2);
        assert_eq!(m.media_type.as_deref(), Some(media_type::OCI_MANIFEST));
        assert_eq!(m.config.media_type, media_type::OCI_CONFIG);
        assert_eq!(m.config.digest, blob('c', 0, false).digest);
        assert_eq!(m.config.size, 10);
        assert_eq!(m.layers.len(), 2);
        assert_eq!(m.layers[0].media_type, media_type::OCI_LAYER_TAR);
        assert_eq!(m.layers[0].size, 100);
        assert_eq!(m.layers[1].media_type, media_type::OCI_LAYER_TAR_GZIP);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["schemaVersion"], 2);
        assert_eq!(json["config"]["mediaType"], media_type::OCI_CONFIG);
        assert!(json["layers"][0].get("annotations").is_none());
    }

    #[test]
    fn docker_save_entry_with_a_missing_layer_is_an_error() {
        let entry = DockerManifestEntry { config: "c.json".into(), repo_tags: None, layers: vec!["gone.tar".into()] };
        let lookup = |name: &str| (name == "c.json").then(|| blob('c', 1, false));
        let err = docker_to_oci_manifest(&entry, &lookup).unwrap_err();
        assert!(matches!(err, ImageError::MissingArchiveEntry { ref entry } if entry == "gone.tar"), "{err:?}");
    }

    #[test]
    fn archive_paths_are_normalised_and_traversal_is_rejected() {
        assert_eq!(archive_path(Path::new("./blobs/sha256/ab")).unwrap(), "blobs/sha256/ab");
        assert_eq!(archive_path(Path::new("/manifest.json")).unwrap(), "manifest.json");
        assert!(archive_path(Path::new("../../etc/passwd")).is_err());
        assert!(archive_path(Path::new("a/../../b")).is_err());
    }

    #[test]
    fn image_indexes_resolve_to_the_host_platform_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let host = host_platform();
        let manifest = |arch: &str, d: char| Descriptor {
            media_type: media_type::OCI_MANIFEST.into(),
            digest: blob(d, 0, false).digest,
            size: 1,
            annotations: Default::default(),
            platform: Some(Platform { architecture: arch.into(), os: "linux".into(), variant: None }),
        };
        let index = Index {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.into()),
            manifests: vec![manifest("s390x", 'a'), manifest(&host.architecture, 'b')],
        };
        let data = serde_json::to_vec(&index).unwrap();
        let digest = store.write_blob_bytes(&data).unwrap();
        let desc = Descriptor {
            media_type: media_type::OCI_INDEX.into(),
            digest: digest.clone(),
            size: data.len() as u64,
            annotations: Default::default(),
            platform: None,
        };
        assert_eq!(resolve_manifest(&store, &desc, 0).unwrap(), blob('b', 0, false).digest);

        let other_only = Index { manifests: vec![manifest("s390x", 'a'), manifest("riscv64", 'c')], ..index };
        let data = serde_json::to_vec(&other_only).unwrap();
        let desc = Descriptor { digest: store.write_blob_bytes(&data).unwrap(), ..desc };
        assert!(matches!(resolve_manifest(&store, &desc, 0), Err(ImageError::NoMatchingPlatform { .. })));
        let layer = Descriptor { media_type: "application/vnd.example.unknown".into(), ..desc };
        assert!(matches!(resolve_manifest(&store, &layer, 0), Err(ImageError::UnsupportedMediaType { .. })));
    }

    #[test]
    fn symlinked_layers_resolve_relative_to_the_link() {
        assert_eq!(resolve_link("l2/layer.tar", Path::new("../l1/layer.tar")).unwrap(), "l1/layer.tar");
        assert!(resolve_link("layer.tar", Path::new("../../x")).is_err());
    }
}
