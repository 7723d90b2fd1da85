//! Mount points of this process's mount namespace, read from `/proc/self/mountinfo`. Shared by
//! the rootfs snapshots and the pod network namespaces.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Every mount point, with the kernel's octal escapes (`\040` for a space) decoded.
pub fn mount_points() -> io::Result<Vec<PathBuf>> {
    let info = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(info.lines().filter_map(|line| line.split(' ').nth(4)).map(|field| PathBuf::from(unescape(field))).collect())
}

/// Whether `path` (canonical) is a mount point.
pub fn is_mount_point(path: &Path) -> io::Result<bool> {
    Ok(mount_points()?.iter().any(|p| p == path))
}

/// Decodes the octal escapes of a mountinfo field. Pure.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            out.push((bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_decodes_octal_escapes_of_mountinfo() {
        assert_eq!(unescape(r"/run/a\040b"), "/run/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/trailing\\"), "/trailing\\");
        assert_eq!(unescape(r"/trailing\04"), r"/trailing\04");
    }
}
