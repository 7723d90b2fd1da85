//! Host prerequisites of the tests that need root, runc, CNI plugins and the like (behind the
//! `testing` feature): a missing prerequisite skips the test with a message, or fails it under
//! `CI=true`, so a CI machine without them cannot pass by skipping.

use std::path::Path;
use std::process::Command;

use crate::image::testing::BUSYBOX;

/// Collects missing prerequisites, then decides with [`Prerequisites::check`].
#[derive(Debug, Default)]
#[must_use = "call check() to act on what is missing"]
pub struct Prerequisites {
    missing: Vec<String>,
}

impl Prerequisites {
    /// No prerequisite checked yet.
    pub fn new() -> Prerequisites {
        Prerequisites::default()
    }

    /// Records `what` as missing unless `present`.
    pub fn require(mut self, present: bool, what: impl Into<String>) -> Prerequisites {
        if !present {
            self.missing.push(what.into());
        }
        self
    }

    /// The effective user is root.
    pub fn root(self) -> Prerequisites {
        self.require(nix::unistd::geteuid().is_root(), "root")
    }

    /// `program arg` runs and exits 0 (e.g. `runc --version`), else `what` is missing.
    pub fn command(self, program: &str, arg: &str, what: &str) -> Prerequisites {
        let works = Command::new(program).arg(arg).output().is_ok_and(|o| o.status.success());
        self.require(works, what)
    }

    /// `path` is a regular file, else `what` is missing.
    pub fn file(self, path: impl AsRef<Path>, what: impl Into<String>) -> Prerequisites {
        self.require(path.as_ref().is_file(), what)
    }

    /// The kernel lists overlayfs in /proc/filesystems.
    pub fn overlayfs(self) -> Prerequisites {
        let listed = std::fs::read_to_string("/proc/filesystems").unwrap_or_default().contains("overlay");
        self.require(listed, "overlayfs")
    }

    /// What running containers needs besides root: `runc` on PATH, the static busybox the test
    /// images are built from, and overlayfs.
    pub fn containers(self) -> Prerequisites {
        self.command("runc", "--version", "runc on PATH")
            .file(BUSYBOX, "/bin/busybox (Debian busybox-static)")
            .overlayfs()
    }

    /// What pod networking needs besides root: the CNI `plugins` in `dir` (see
    /// [`Prerequisites::cni_plugins`]) and `ip` (iproute2).
    pub fn pod_network(self, dir: &str, plugins: &[&str], package: &str) -> Prerequisites {
        self.cni_plugins(dir, plugins, package).command("ip", "-V", "ip (iproute2)")
    }

    /// Every CNI plugin binary in `dir`; a missing one is named `DIR/PLUGIN (PACKAGE)`.
    pub fn cni_plugins(self, dir: &str, plugins: &[&str], package: &str) -> Prerequisites {
        plugins
            .iter()
            .fold(self, |p, plugin| p.file(Path::new(dir).join(plugin), format!("{dir}/{plugin} ({package})")))
    }

    /// The names of what is missing, in the order checked.
    pub fn missing(&self) -> &[String] {
        &self.missing
    }

    /// True when nothing is missing. Otherwise panics under `CI=true`, or prints
    /// `SKIPPED <test>: missing ...` and returns false so the test can return early.
    pub fn check(self, test: &str) -> bool {
        if self.missing.is_empty() {
            return true;
        }
        let missing = self.missing.join(", ");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: missing prerequisites under CI=true: {missing}");
        }
        eprintln!("SKIPPED {test}: missing {missing}");
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_prerequisites_are_listed_in_order_with_their_wording() {
        let p = Prerequisites::new()
            .require(true, "present")
            .file("/nonexistent/berth-test-file", "the file")
            .command("/nonexistent/berth-test-program", "--version", "the program")
            .cni_plugins("/nonexistent", &["bridge", "loopback"], "pkg");
        assert_eq!(
            p.missing(),
            ["the file", "the program", "/nonexistent/bridge (pkg)", "/nonexistent/loopback (pkg)"]
        );
    }

    #[test]
    fn nothing_missing_passes() {
        assert!(Prerequisites::new().require(true, "x").check("t"));
    }
}
