//! Layer unpacking: each layer is unpacked once to `<store>/layers/sha256/<diff-id hex>/` (a colon
//! cannot appear in an overlayfs `lowerdir`, so the digest algorithm is a directory level), with
//! OCI whiteouts converted to overlayfs form:
//!
//! - `dir/.wh.name` becomes a 0/0 character device `dir/name`;
//! - `dir/.wh..wh..opq` becomes the xattr `trusted.overlay.opaque=y` on `dir`.
//!
//! Ownership, modes, mtimes and xattrs are preserved (the agent runs as root); entries that would
//! escape the layer directory are rejected. The uncompressed stream is checked against the diff
//! id. Touches only the image store's `layers/` and `tmp/` directories. Blocking file I/O.

use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use sha2::{Digest as _, Sha256};

use crate::image::{ImageError, ImageStore, Layer, decompress, validate_digest};
use crate::io_error::{IoError, io_err};

/// Prefix of an OCI whiteout file name.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of the OCI opaque-directory marker.
pub const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";
/// The xattr overlayfs reads to treat a directory as opaque.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Errors of layer unpacking. Each variant names the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("layer entry {entry:?} escapes the layer root")]
    PathTraversal { entry: String },
    #[error("layer entry {entry:?} is an invalid whiteout")]
    InvalidWhiteout { entry: String },
    #[error("failed to read layer {digest}")]
    Read {
        digest: String,
        #[source]
        source: io::Error,
    },
    #[error("failed to unpack {entry:?} of layer {digest}")]
    Unpack {
        digest: String,
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("failed to create whiteout {path}")]
    Whiteout {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("failed to mark {path} opaque")]
    Opaque {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("layer {digest} uncompresses to {actual}, not its diff id {expected}")]
    DiffIdMismatch { digest: String, expected: String, actual: String },
    #[error(transparent)]
    Io(#[from] IoError),
}

/// What an entry of a layer tar means once mapped to overlayfs form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryAction {
    /// The layer root itself (`./`): nothing to do.
    Root,
    /// An ordinary file, directory or link at this relative path.
    Regular(PathBuf),
    /// A whiteout: make a 0/0 character device at this relative path.
    Whiteout(PathBuf),
    /// An opaque marker: mark this relative directory (empty = the layer root) opaque.
    Opaque(PathBuf),
    /// Another `.wh..wh.` metadata file (e.g. aufs hard-link dirs): skipped.
    Skip,
}

/// Maps a layer tar path to what to do with it. Pure; rejects `..` anywhere in the path.
pub fn classify_entry(path: &Path) -> Result<EntryAction, LayerError> {
    let mut rel = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => rel.push(p),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(LayerError::PathTraversal { entry: path.display().to_string() });
            }
        }
    }
    let Some(name) = rel.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(EntryAction::Root);
    };
    let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
    if name == WHITEOUT_OPAQUE {
        return Ok(EntryAction::Opaque(parent));
    }
    if name.starts_with(".wh..wh.") {
        return Ok(EntryAction::Skip);
    }
    if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) {
        if target.is_empty() || target == "." || target == ".." {
            return Err(LayerError::InvalidWhiteout { entry: path.display().to_string() });
        }
        return Ok(EntryAction::Whiteout(parent.join(target)));
    }
    Ok(EntryAction::Regular(rel))
}

/// The directory a layer is (or will be) unpacked to.
pub fn layer_dir(store: &ImageStore, diff_id: &str) -> Result<PathBuf, LayerError> {
    let hex = validate_digest(diff_id)?;
    Ok(store.root().join("layers/sha256").join(hex))
}

/// Unpacks `layer` unless already unpacked; returns its directory. Safe against a concurrent
/// unpack of the same layer: each unpacks into its own temp dir and the first rename wins.
pub fn unpack_layer(store: &ImageStore, layer: &Layer) -> Result<PathBuf, LayerError> {
    let dest = layer_dir(store, &layer.diff_id)?;
    if dest.is_dir() {
        return Ok(dest);
    }
    let tmp = store.temp_path("layer");
    let result = unpack_into(store, layer, &tmp).and_then(|()| match fs::rename(&tmp, &dest) {
        Ok(()) => Ok(()),
        // Another unpacker won the race: keep theirs.
        Err(_) if dest.is_dir() => Ok(()),
        Err(source) => Err(io_err("rename layer into", &dest)(source).into()),
    });
    if tmp.exists() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result.map(|()| dest)
}

fn unpack_into(store: &ImageStore, layer: &Layer, dir: &Path) -> Result<(), LayerError> {
    let digest = &layer.digest;
    let read_err = |source| LayerError::Read { digest: digest.clone(), source };
    fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    let blob = store.open_blob(digest)?;
    let hashing = HashingReader { inner: decompress(blob).map_err(read_err)?, hasher: Sha256::new() };
    let mut archive = tar::Archive::new(hashing);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let raw = entry.path().map_err(read_err)?.into_owned();
        let unpack_err =
            |source| LayerError::Unpack { digest: digest.clone(), entry: raw.display().to_string(), source };
        match classify_entry(&raw)? {
            EntryAction::Root | EntryAction::Skip => {}
            EntryAction::Regular(_) => {
                // unpack_in also refuses entries whose parents are symlinks leading outside `dir`.
                if !entry.unpack_in(dir).map_err(unpack_err)? {
                    return Err(LayerError::PathTraversal { entry: raw.display().to_string() });
                }
            }
            EntryAction::Whiteout(rel) => make_whiteout(dir, &rel, &raw)?,
            EntryAction::Opaque(rel) => {
                reject_symlinks(dir, &rel, &raw)?;
                let path = dir.join(&rel);
                fs::create_dir_all(&path).map_err(|source| LayerError::Opaque { path: path.clone(), source })?;
                xattr::set(&path, OVERLAY_OPAQUE_XATTR, b"y").map_err(|source| LayerError::Opaque { path, source })?;
            }
        }
    }
    // The diff id covers the whole uncompressed stream, including the tar's end padding.
    let mut hashing = archive.into_inner();
    io::copy(&mut hashing, &mut io::sink()).map_err(read_err)?;
    let actual = format!("sha256:{}", hex::encode(hashing.hasher.finalize()));
    if actual != layer.diff_id {
        return Err(LayerError::DiffIdMismatch { digest: digest.clone(), expected: layer.diff_id.clone(), actual });
    }
    Ok(())
}

/// Creates the overlayfs whiteout for `rel` (a 0/0 character device), replacing anything there.
fn make_whiteout(dir: &Path, rel: &Path, raw: &Path) -> Result<(), LayerError> {
    reject_symlinks(dir, rel.parent().unwrap_or(Path::new("")), raw)?;
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    }
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(&path),
        Ok(_) => fs::remove_file(&path),
        Err(_) => Ok(()),
    }
    .map_err(io_err("replace", &path))?;
    mknod(&path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).map_err(|source| LayerError::Whiteout { path, source })
}

/// Fails if any existing component of `dir/rel` is a symlink: whiteouts and opaque markers are
/// written by this module (not by `tar`'s checked unpack), so an earlier entry's symlink must not
/// redirect them outside the layer.
fn reject_symlinks(dir: &Path, rel: &Path, raw: &Path) -> Result<(), LayerError> {
    let mut path = dir.to_path_buf();
    for c in rel.components() {
        path.push(c);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(LayerError::PathTraversal { entry: raw.display().to_string() });
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Ok(())
}

/// Hashes everything read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiteouts_map_to_the_path_they_hide() {
        assert_eq!(classify_entry(Path::new("etc/.wh.passwd")).unwrap(), EntryAction::Whiteout("etc/passwd".into()));
        assert_eq!(classify_entry(Path::new("./.wh.tmp")).unwrap(), EntryAction::Whiteout("tmp".into()));
        assert_eq!(classify_entry(Path::new("var/lib/.wh..wh..opq")).unwrap(), EntryAction::Opaque("var/lib".into()));
        assert_eq!(classify_entry(Path::new(".wh..wh..opq")).unwrap(), EntryAction::Opaque(PathBuf::new()));
        assert_eq!(
            classify_entry(Path::new(".wh..wh.plnk/1234")).unwrap(),
            EntryAction::Regular(".wh..wh.plnk/1234".into())
        );
        assert_eq!(classify_entry(Path::new("x/.wh..wh.plnk")).unwrap(), EntryAction::Skip);
        assert_eq!(classify_entry(Path::new("./bin/sh")).unwrap(), EntryAction::Regular("bin/sh".into()));
        assert_eq!(classify_entry(Path::new("./")).unwrap(), EntryAction::Root);
        assert!(matches!(classify_entry(Path::new("etc/.wh.")), Err(LayerError::InvalidWhiteout { .. })));
    }

    #[test]
    fn traversal_is_rejected_in_files_and_whiteouts() {
        for bad in ["../etc/passwd", "a/../../b", "a/../.wh.x", "../.wh..wh..opq"] {
            assert!(
                matches!(classify_entry(Path::new(bad)), Err(LayerError::PathTraversal { .. })),
                "{bad} should be rejected"
            );
        }
        assert_eq!(classify_entry(Path::new("/abs/file")).unwrap(), EntryAction::Regular("abs/file".into()));
    }

    /// A tar entry owned by the current user (so the tests need no root).
    fn entry(path: &[u8], kind: tar::EntryType, data: &[u8], link: Option<&str>) -> (tar::Header, Vec<u8>) {
        let mut h = tar::Header::new_old();
        // Raw bytes: `set_path` would refuse the `..` these tests need.
        h.as_old_mut().name[..path.len()].copy_from_slice(path);
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_uid(nix::unistd::geteuid().as_raw().into());
        h.set_gid(nix::unistd::getegid().as_raw().into());
        if let Some(link) = link {
            h.set_link_name(link).unwrap();
        }
        h.set_cksum();
        (h, data.to_vec())
    }

    fn layer_of(store: &ImageStore, entries: &[(tar::Header, Vec<u8>)]) -> Layer {
        let mut b = tar::Builder::new(Vec::new());
        for (h, data) in entries {
            b.append(h, &data[..]).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let (digest, size) = store.write_blob(&mut &tar[..], None).unwrap();
        Layer {
            digest: digest.clone(),
            diff_id: digest,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            size,
        }
    }

    #[test]
    fn unpacking_writes_files_once_and_verifies_the_diff_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let layer = layer_of(&store, &[entry(b"./etc/hello", tar::EntryType::Regular, b"hi\n", None)]);
        let path = unpack_layer(&store, &layer).unwrap();
        assert_eq!(path, layer_dir(&store, &layer.diff_id).unwrap());
        assert_eq!(fs::read_to_string(path.join("etc/hello")).unwrap(), "hi\n");
        fs::write(path.join("marker"), "").unwrap();
        unpack_layer(&store, &layer).unwrap();
        assert!(path.join("marker").exists(), "an unpacked layer is not unpacked again");

        let mut wrong = layer_of(&store, &[entry(b"x", tar::EntryType::Regular, b"x", None)]);
        wrong.diff_id = format!("sha256:{}", "0".repeat(64));
        assert!(matches!(unpack_layer(&store, &wrong), Err(LayerError::DiffIdMismatch { .. })));
        assert!(!layer_dir(&store, &wrong.diff_id).unwrap().exists());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "temp dirs left behind");
    }

    #[test]
    fn unpacking_rejects_entries_that_escape_the_layer() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let store = ImageStore::open(dir.path().join("store")).unwrap();

        let dotdot = layer_of(&store, &[entry(b"../../outside/pwned", tar::EntryType::Regular, b"x", None)]);
        assert!(matches!(unpack_layer(&store, &dotdot), Err(LayerError::PathTraversal { .. })));

        let outside_str = outside.to_str().unwrap();
        let via_symlink = layer_of(
            &store,
            &[
                entry(b"escape", tar::EntryType::Symlink, b"", Some(outside_str)),
                entry(b"escape/pwned", tar::EntryType::Regular, b"x", None),
            ],
        );
        assert!(unpack_layer(&store, &via_symlink).is_err());
        for marker in [&b"escape/.wh.file"[..], b"escape/.wh..wh..opq"] {
            let whiteout_via_symlink = layer_of(
                &store,
                &[
                    entry(b"escape", tar::EntryType::Symlink, b"", Some(outside_str)),
                    entry(marker, tar::EntryType::Regular, b"", None),
                ],
            );
            let err = unpack_layer(&store, &whiteout_via_symlink).unwrap_err();
            assert!(matches!(err, LayerError::PathTraversal { .. }), "{err:?}");
        }
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "a layer wrote outside its directory");
        assert!(!layer_dir(&store, &dotdot.diff_id).unwrap().exists());
        assert!(!layer_dir(&store, &via_symlink.diff_id).unwrap().exists());
    }
}
