//! hostPath volumes: the `type` check before mounting (upstream
//! `pkg/volume/hostpath/host_path.go` `checkType`), creating the path for `DirectoryOrCreate`
//! (0755) and `FileOrCreate` (0644, parent must exist). Touches only the given host path.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Checks (and for the `...OrCreate` types creates) `path` as `hostPath.type` demands. The error
/// is upstream's message, e.g. `hostPath type check failed: /x is not a directory`.
pub fn check_type(path: &Path, path_type: Option<&str>) -> Result<(), String> {
    let shown = path.display();
    let meta = fs::metadata(path).ok();
    let file_type = meta.as_ref().map(fs::Metadata::file_type);
    let failed = |what: &str| Err(format!("hostPath type check failed: {shown} is not {what}"));
    match path_type.unwrap_or_default() {
        "" => Ok(()),
        "DirectoryOrCreate" if meta.is_none() => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)
            .map_err(|e| format!("failed to create directory {shown}: {e}")),
        "DirectoryOrCreate" | "Directory" => {
            if file_type.is_some_and(|t| t.is_dir()) {
                Ok(())
            } else {
                failed("a directory")
            }
        }
        "FileOrCreate" if meta.is_none() => fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .map(drop)
            .map_err(|e| format!("failed to create file {shown}: {e}")),
        "FileOrCreate" | "File" => {
            if file_type.is_some_and(|t| t.is_file()) {
                Ok(())
            } else {
                failed("a file")
            }
        }
        "Socket" => {
            if file_type.is_some_and(|t| t.is_socket()) {
                Ok(())
            } else {
                failed("a socket file")
            }
        }
        "CharDevice" => {
            if file_type.is_some_and(|t| t.is_char_device()) {
                Ok(())
            } else {
                failed("a character device")
            }
        }
        "BlockDevice" => {
            if file_type.is_some_and(|t| t.is_block_device()) {
                Ok(())
            } else {
                failed("a block device")
            }
        }
        other => Err(format!("{other} is an invalid volume type")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, path, type, expected result)
    type Case<'a> = (&'a str, &'a Path, Option<&'a str>, Result<(), String>);

    #[test]
    fn types_are_checked_and_the_or_create_types_create() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().join("d");
        let f = dir.path().join("f");
        let missing = dir.path().join("missing");
        fs::create_dir(&d).expect("dir");
        fs::write(&f, "x").expect("file");
        let socket_path = dir.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket_path).expect("socket");

        let cases: &[Case] = &[
            ("unset accepts anything, even a missing path", &missing, None, Ok(())),
            ("empty string is unset", &f, Some(""), Ok(())),
            ("Directory on a directory", &d, Some("Directory"), Ok(())),
            (
                "Directory on a file",
                &f,
                Some("Directory"),
                Err(format!("hostPath type check failed: {} is not a directory", f.display())),
            ),
            (
                "Directory on a missing path",
                &missing,
                Some("Directory"),
                Err(format!("hostPath type check failed: {} is not a directory", missing.display())),
            ),
            ("File on a file", &f, Some("File"), Ok(())),
            (
                "File on a directory",
                &d,
                Some("File"),
                Err(format!("hostPath type check failed: {} is not a file", d.display())),
            ),
            (
                "FileOrCreate on an existing directory",
                &d,
                Some("FileOrCreate"),
                Err(format!("hostPath type check failed: {} is not a file", d.display())),
            ),
            ("Socket on a socket", &socket_path, Some("Socket"), Ok(())),
            (
                "Socket on a file",
                &f,
                Some("Socket"),
                Err(format!("hostPath type check failed: {} is not a socket file", f.display())),
            ),
            ("CharDevice on /dev/null", Path::new("/dev/null"), Some("CharDevice"), Ok(())),
            (
                "BlockDevice on a file",
                &f,
                Some("BlockDevice"),
                Err(format!("hostPath type check failed: {} is not a block device", f.display())),
            ),
            ("unknown type", &f, Some("Pipe"), Err("Pipe is an invalid volume type".to_string())),
        ];
        for (name, path, ty, want) in cases {
            assert_eq!(&check_type(path, *ty), want, "{name}");
        }

        let new_dir = dir.path().join("a/b/c");
        assert_eq!(check_type(&new_dir, Some("DirectoryOrCreate")), Ok(()));
        assert!(new_dir.is_dir());
        let new_file = dir.path().join("new.txt");
        assert_eq!(check_type(&new_file, Some("FileOrCreate")), Ok(()));
        assert!(new_file.is_file());
        assert!(check_type(&dir.path().join("no/parent.txt"), Some("FileOrCreate")).is_err());
    }
}
