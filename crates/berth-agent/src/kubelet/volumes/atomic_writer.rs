//! Writes a volume's files so that a running container sees either the old set or the new one,
//! never a mix (upstream `pkg/volume/util/atomic_writer.go`).
//!
//! Layout of a volume directory:
//!
//! ```text
//! ..2026_11_22_07_50_00.123456789/   the files of one version (mode 0755 dirs)
//! ..data -> ..2026_11_22_07_50_00.123456789
//! key    -> ..data/key                one symlink per top-level path of the payload
//! ```
//!
//! An update writes a new timestamped directory, swaps `..data` with a rename of a fresh
//! symlink, fixes the top-level symlinks and removes the old directory. The symlinks are
//! relative, so they resolve inside the container's bind mount of the volume directory.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::projection::{FileProjection, Payload};

const DATA_DIR: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// An atomic write that failed.
#[derive(Debug, thiserror::Error)]
pub enum AtomicWriteError {
    #[error("invalid path {path:?} in volume payload: {why}")]
    InvalidPath { path: String, why: &'static str },
    #[error("I/O on {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> AtomicWriteError + '_ {
    move |source| AtomicWriteError::Io { path: path.to_path_buf(), source }
}

/// Checks a payload path as upstream's `validatePath`: relative, no `..` element, not starting
/// with `..`, not empty.
pub fn validate_path(path: &str) -> Result<(), AtomicWriteError> {
    let invalid = |why| Err(AtomicWriteError::InvalidPath { path: path.to_string(), why });
    if path.is_empty() {
        return invalid("empty");
    }
    if path.starts_with("..") {
        return invalid("must not start with '..'");
    }
    let p = Path::new(path);
    if p.is_absolute() {
        return invalid("must be relative");
    }
    if p.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return invalid("must not contain '..'");
    }
    Ok(())
}

/// The first path element of each payload path: the user-visible entries of the volume.
fn top_level(payload: &Payload) -> BTreeSet<String> {
    payload
        .keys()
        .filter_map(|p| {
            Path::new(p).components().find_map(|c| match c {
                Component::Normal(s) => s.to_str().map(String::from),
                _ => None,
            })
        })
        .collect()
}

/// The files under `dir` (recursively) as a payload, to compare with a new one.
fn read_payload(dir: &Path) -> io::Result<Payload> {
    let mut payload = Payload::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in fs::read_dir(dir.join(&rel))? {
            let entry = entry?;
            let rel_path = rel.join(entry.file_name());
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(rel_path);
            } else {
                let data = fs::read(entry.path())?;
                let key = rel_path.to_string_lossy().into_owned();
                payload.insert(key, FileProjection { data, mode: meta.permissions().mode() & 0o7777 });
            }
        }
    }
    Ok(payload)
}

/// A fresh `..<timestamp>` directory name, unique within this process.
fn ts_dir_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = jiff::Timestamp::now();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("..{}.{:09}{n}", now.strftime("%Y_%m_%d_%H_%M_%S"), now.subsec_nanosecond())
}

/// Writes `payload` into `target` atomically; returns whether anything changed. Serialised per
/// process, so a refresh and a container start never interleave on one volume.
///
/// # Errors
/// An invalid payload path (nothing is written), or an I/O failure (the previous version stays
/// in place; a partly written new directory is removed).
pub fn write(target: &Path, payload: &Payload) -> Result<bool, AtomicWriteError> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for path in payload.keys() {
        validate_path(path)?;
    }
    fs::DirBuilder::new().recursive(true).mode(0o755).create(target).map_err(io_err(target))?;
    let data_link = target.join(DATA_DIR);
    let old_ts = fs::read_link(&data_link).ok();
    if let Some(old) = &old_ts
        && read_payload(&target.join(old)).is_ok_and(|current| current == *payload)
    {
        return Ok(false);
    }
    let ts_name = ts_dir_name();
    let ts_dir = target.join(&ts_name);
    if let Err(e) = write_version(&ts_dir, payload) {
        let _ = fs::remove_dir_all(&ts_dir);
        return Err(e);
    }
    let tmp_link = target.join(DATA_TMP);
    match fs::remove_file(&tmp_link) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(&tmp_link)(e)),
        _ => {}
    }
    std::os::unix::fs::symlink(&ts_name, &tmp_link).map_err(io_err(&tmp_link))?;
    fs::rename(&tmp_link, &data_link).map_err(io_err(&data_link))?;
    let wanted = top_level(payload);
    for name in &wanted {
        let link = target.join(name);
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA_DIR).join(name), &link).map_err(io_err(&link))?;
        }
    }
    for entry in fs::read_dir(target).map_err(io_err(target))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        if !name.starts_with("..") && is_link && !wanted.contains(&name) {
            fs::remove_file(entry.path()).map_err(io_err(&entry.path()))?;
        }
    }
    if let Some(old) = old_ts.filter(|o| o.as_os_str() != ts_name.as_str()) {
        let old_dir = target.join(old);
        if old_dir.starts_with(target) && old_dir.file_name().is_some_and(|n| n.to_string_lossy().starts_with("..")) {
            fs::remove_dir_all(&old_dir).map_err(io_err(&old_dir))?;
        }
    }
    Ok(true)
}

fn write_version(dir: &Path, payload: &Payload) -> Result<(), AtomicWriteError> {
    fs::DirBuilder::new().mode(0o755).create(dir).map_err(io_err(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(io_err(dir))?;
    for (rel, file) in payload {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::DirBuilder::new().recursive(true).mode(0o755).create(parent).map_err(io_err(parent))?;
        }
        fs::write(&path, &file.data).map_err(io_err(&path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(file.mode)).map_err(io_err(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(entries: &[(&str, &str, u32)]) -> Payload {
        entries
            .iter()
            .map(|(p, d, m)| (p.to_string(), FileProjection { data: d.as_bytes().to_vec(), mode: *m }))
            .collect()
    }

    #[test]
    fn writes_files_behind_a_data_symlink_and_swaps_it_on_update() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("vol");
        let first = payload(&[("a", "one", 0o644), ("sub/b", "two", 0o600)]);
        assert!(write(&target, &first).expect("write"));
        assert_eq!(fs::read_to_string(target.join("a")).expect("a"), "one");
        assert_eq!(fs::read_to_string(target.join("sub/b")).expect("b"), "two");
        assert_eq!(fs::read_link(target.join("a")).expect("link"), Path::new("..data/a"));
        let meta = fs::metadata(target.join("sub/b")).expect("meta");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let v1 = fs::read_link(target.join("..data")).expect("data link");

        // The same payload again changes nothing.
        assert!(!write(&target, &first).expect("rewrite"));
        assert_eq!(fs::read_link(target.join("..data")).expect("data link"), v1);

        // An update replaces the version, drops removed keys and the old directory.
        let second = payload(&[("a", "uno", 0o644), ("c", "tres", 0o400)]);
        assert!(write(&target, &second).expect("update"));
        let v2 = fs::read_link(target.join("..data")).expect("data link");
        assert_ne!(v1, v2);
        assert!(!target.join(&v1).exists(), "old version removed");
        assert_eq!(fs::read_to_string(target.join("a")).expect("a"), "uno");
        assert_eq!(fs::read_to_string(target.join("c")).expect("c"), "tres");
        assert!(fs::symlink_metadata(target.join("sub")).is_err(), "removed key's link is gone");
        let names: BTreeSet<String> = fs::read_dir(&target)
            .expect("ls")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let expected: BTreeSet<String> =
            ["..data".to_string(), v2.to_string_lossy().into_owned(), "a".into(), "c".into()].into();
        assert_eq!(names, expected);
    }

    #[test]
    fn a_mode_change_alone_is_an_update() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(write(dir.path(), &payload(&[("k", "v", 0o644)])).expect("write"));
        assert!(write(dir.path(), &payload(&[("k", "v", 0o400)])).expect("write"));
        let meta = fs::metadata(dir.path().join("k")).expect("meta");
        assert_eq!(meta.permissions().mode() & 0o777, 0o400);
    }

    #[test]
    fn paths_escaping_the_volume_are_rejected_before_writing() {
        let dir = tempfile::tempdir().expect("tempdir");
        for bad in ["", "../x", "a/../../x", "/etc/passwd", "..data"] {
            let err = write(dir.path(), &payload(&[("ok", "v", 0o644), (bad, "v", 0o644)]));
            assert!(matches!(err, Err(AtomicWriteError::InvalidPath { .. })), "{bad:?}: {err:?}");
        }
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 0, "nothing written");
    }

    #[test]
    fn an_empty_payload_leaves_an_empty_volume() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(write(dir.path(), &Payload::new()).expect("write"));
        let visible = fs::read_dir(dir.path())
            .expect("ls")
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with(".."))
            .count();
        assert_eq!(visible, 0);
    }
}
