//! Container root filesystems: an overlayfs mount at `<container_dir>/rootfs` whose lower
//! directories are the image's unpacked layers (top-most first) and whose `upper/` and `work/`
//! live in the container directory. May mount and unmount under the container directory and
//! unpack layers into the image store; nothing else. Everything here blocks (file I/O, mount):
//! call it from `spawn_blocking` in async code.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::image::{Image, ImageStore};
use crate::io_error::{IoError, io_err};
use crate::layers::{LayerError, unpack_layer};

/// The kernel copies at most one page of mount options.
const MAX_MOUNT_DATA: usize = 4096;

/// Errors of rootfs preparation and cleanup.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("failed to unpack a layer of {image}")]
    Layer {
        image: String,
        #[source]
        source: LayerError,
    },
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("path {path} cannot be used in overlayfs options (contains ',' or ':')")]
    UnsupportedPath { path: PathBuf },
    #[error("overlayfs options for {layers} layers exceed {MAX_MOUNT_DATA} bytes")]
    TooManyLayers { layers: usize },
    #[error("failed to mount overlayfs at {path}")]
    Mount {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("failed to unmount {path}")]
    Unmount {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
}

/// A mounted container rootfs.
///
/// Dropping it leaves the mount in place (a running container needs it after the agent lets go of
/// the handle) unless [`Rootfs::unmount_on_drop`] asked otherwise; [`Rootfs::release`] unmounts now
/// and reports errors; [`cleanup`] removes the whole container directory.
#[derive(Debug)]
pub struct Rootfs {
    path: PathBuf,
    unmount_on_drop: bool,
}

impl Rootfs {
    /// The mounted rootfs (`<container_dir>/rootfs`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether dropping this handle unmounts the rootfs (default: no).
    pub fn unmount_on_drop(mut self, unmount: bool) -> Self {
        self.unmount_on_drop = unmount;
        self
    }

    /// Unmounts the rootfs now.
    pub fn release(mut self) -> Result<(), SnapshotError> {
        self.unmount_on_drop = false;
        unmount_all(&self.path)
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        if self.unmount_on_drop
            && let Err(e) = unmount_all(&self.path)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "failed to unmount rootfs on drop");
        }
    }
}

/// Unpacks the image's layers (each once) and mounts the overlay at `<container_dir>/rootfs`.
/// If the rootfs is already mounted (an agent restart), returns it as is.
pub fn prepare_rootfs(store: &ImageStore, image: &Image, container_dir: &Path) -> Result<Rootfs, SnapshotError> {
    let rootfs = container_dir.join("rootfs");
    let upper = container_dir.join("upper");
    let work = container_dir.join("work");
    for dir in [&rootfs, &upper, &work] {
        fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    }
    if is_mounted(&rootfs)? {
        return Ok(Rootfs { path: rootfs, unmount_on_drop: false });
    }
    let mut lower = Vec::with_capacity(image.layers.len());
    for layer in image.layers.iter().rev() {
        let dir =
            unpack_layer(store, layer).map_err(|source| SnapshotError::Layer { image: image.name.clone(), source })?;
        lower.push(dir);
    }
    if lower.is_empty() {
        // overlayfs needs at least one lower directory.
        let empty = container_dir.join("empty");
        fs::create_dir_all(&empty).map_err(io_err("create", &empty))?;
        lower.push(empty);
    }
    let options = overlay_options(&lower, &upper, &work)?;
    mount(Some("overlay"), &rootfs, Some("overlay"), MsFlags::empty(), Some(options.as_str()))
        .map_err(|source| SnapshotError::Mount { path: rootfs.clone(), source })?;
    Ok(Rootfs { path: rootfs, unmount_on_drop: false })
}

/// The overlayfs mount options. Pure.
pub fn overlay_options(lower: &[PathBuf], upper: &Path, work: &Path) -> Result<String, SnapshotError> {
    let check = |p: &Path| -> Result<String, SnapshotError> {
        let s = p.to_string_lossy();
        if s.contains(',') || s.contains(':') {
            return Err(SnapshotError::UnsupportedPath { path: p.to_path_buf() });
        }
        Ok(s.into_owned())
    };
    let lower = lower.iter().map(|p| check(p)).collect::<Result<Vec<_>, _>>()?.join(":");
    let options = format!("lowerdir={lower},upperdir={},workdir={}", check(upper)?, check(work)?);
    if options.len() >= MAX_MOUNT_DATA {
        return Err(SnapshotError::TooManyLayers { layers: lower.split(':').count() });
    }
    Ok(options)
}

/// Unmounts the rootfs (if mounted) and removes the container directory entirely.
pub fn cleanup(container_dir: &Path) -> Result<(), SnapshotError> {
    unmount_all(&container_dir.join("rootfs"))?;
    match fs::remove_dir_all(container_dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(io_err("remove", container_dir)(source).into()),
    }
}

/// Unmounts everything mounted at `path` (mounts can stack), lazily if busy.
fn unmount_all(path: &Path) -> Result<(), SnapshotError> {
    for _ in 0..16 {
        if !is_mounted(path)? {
            return Ok(());
        }
        match umount2(path, MntFlags::empty()) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(Errno::EBUSY) => umount2(path, MntFlags::MNT_DETACH)
                .map_err(|source| SnapshotError::Unmount { path: path.into(), source })?,
            Err(source) => return Err(SnapshotError::Unmount { path: path.to_path_buf(), source }),
        }
    }
    Err(SnapshotError::Unmount { path: path.to_path_buf(), source: Errno::EBUSY })
}

/// Whether `path` is a mount point, from `/proc/self/mountinfo`.
pub fn is_mounted(path: &Path) -> Result<bool, SnapshotError> {
    let canonical = match fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => return Err(io_err("resolve", path)(source).into()),
    };
    crate::mountinfo::is_mount_point(&canonical)
        .map_err(|source| io_err("read", Path::new("/proc/self/mountinfo"))(source).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_list_lower_dirs_in_the_given_order() {
        let opts =
            overlay_options(&["/l/top".into(), "/l/base".into()], Path::new("/c/upper"), Path::new("/c/work")).unwrap();
        assert_eq!(opts, "lowerdir=/l/top:/l/base,upperdir=/c/upper,workdir=/c/work");
        assert!(matches!(
            overlay_options(&["/a:b".into()], Path::new("/u"), Path::new("/w")),
            Err(SnapshotError::UnsupportedPath { .. })
        ));
        let many: Vec<PathBuf> = (0..200).map(|i| PathBuf::from(format!("/var/lib/berth/layers/{i:064}"))).collect();
        assert!(matches!(
            overlay_options(&many, Path::new("/u"), Path::new("/w")),
            Err(SnapshotError::TooManyLayers { .. })
        ));
    }

    #[test]
    fn a_plain_directory_is_not_a_mount_point() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_mounted(dir.path()).unwrap());
        assert!(!is_mounted(&dir.path().join("missing")).unwrap());
        assert!(is_mounted(Path::new("/")).unwrap());
    }
}
