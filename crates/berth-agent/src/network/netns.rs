//! Named network namespaces kept alive by a bind mount, as `ip netns add` does: a file under a
//! runtime dir (default [`DEFAULT_NETNS_DIR`]) with the namespace's nsfs inode mounted on it.
//!
//! May touch the host: creates the runtime dir, turns it into a private bind mount of itself, and
//! mounts/unmounts nsfs files in it. `unshare` and `setns` change the calling *thread*, so they
//! only ever run on a dedicated, short-lived `std::thread` (never a tokio worker), which exits
//! afterwards so no other code runs in the wrong namespace.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::statfs::{NSFS_MAGIC, statfs};

/// Where pod network namespaces live unless configured otherwise.
pub const DEFAULT_NETNS_DIR: &str = "/run/berth/netns";

/// The calling thread's own network namespace (`/proc/self/ns/net` would be the main thread's).
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// Serialises the "is the runtime dir a mount point yet?" check-then-mount within this process.
static RUN_DIR_LOCK: Mutex<()> = Mutex::new(());

#[derive(Debug, thiserror::Error)]
pub enum NetNsError {
    #[error("invalid network namespace name {0:?}: must be non-empty, without '/' and not '.' or '..'")]
    InvalidName(String),
    #[error("network namespace {0} already exists")]
    AlreadyExists(PathBuf),
    #[error("{0} is not a mounted network namespace")]
    NotANetNs(PathBuf),
    #[error("failed to prepare the netns runtime dir {path}")]
    PrepareDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to create the netns file {path}")]
    CreateFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to open network namespace {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unshare(CLONE_NEWNET) failed")]
    Unshare(#[source] Errno),
    #[error("failed to bind-mount the new network namespace onto {path}")]
    BindMount {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("setns into {path} failed")]
    Setns {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to bring up lo in {path}")]
    LoopbackUp {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to unmount network namespace {path}")]
    Unmount {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to remove the netns file {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to spawn a thread for network namespace {path}")]
    SpawnThread {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the thread working in network namespace {0} panicked")]
    ThreadPanicked(PathBuf),
}

/// A network namespace pinned by a bind mount at [`NetNs::path`]. Dropping the value does not
/// delete the namespace; call [`NetNs::delete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetNs {
    path: PathBuf,
}

impl NetNs {
    /// Creates `<DEFAULT_NETNS_DIR>/<name>`. See [`NetNs::create_in`].
    pub fn create(name: &str) -> Result<NetNs, NetNsError> {
        Self::create_in(Path::new(DEFAULT_NETNS_DIR), name)
    }

    /// Creates a new network namespace pinned at `dir/name`, with `lo` up.
    ///
    /// # Errors
    /// [`NetNsError::AlreadyExists`] if the file exists; on any later failure the file is
    /// unmounted and removed again.
    pub fn create_in(dir: &Path, name: &str) -> Result<NetNs, NetNsError> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(NetNsError::InvalidName(name.to_string()));
        }
        prepare_run_dir(dir)?;
        let path = dir.join(name);
        // Mode 0 and O_EXCL as iproute2: the file is only a mount point.
        match OpenOptions::new().write(true).create_new(true).mode(0o000).open(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(NetNsError::AlreadyExists(path)),
            Err(source) => return Err(NetNsError::CreateFile { path, source }),
        }
        let ns = NetNs { path };
        let target = ns.path.clone();
        let result = on_dedicated_thread(&ns.path, "berth-netns-add", move || -> Result<(), NetNsError> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(NetNsError::Unshare)?;
            mount(Some(THREAD_NETNS), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(|source| NetNsError::BindMount { path: target.clone(), source })?;
            loopback_up().map_err(|source| NetNsError::LoopbackUp { path: target.clone(), source })
        })
        .and_then(|r| r);
        if let Err(e) = result {
            let _ = ns.delete();
            return Err(e);
        }
        Ok(ns)
    }

    /// Opens an existing namespace at `path`, checking that an nsfs inode is mounted there.
    pub fn open(path: impl Into<PathBuf>) -> Result<NetNs, NetNsError> {
        let path = path.into();
        match statfs(&path) {
            Ok(fs) if fs.filesystem_type() == NSFS_MAGIC => Ok(NetNs { path }),
            Ok(_) | Err(Errno::ENOENT) => Err(NetNsError::NotANetNs(path)),
            Err(e) => Err(NetNsError::Open { path, source: e.into() }),
        }
    }

    /// A handle on `path` without checking it, for [`NetNs::delete`] of leftovers.
    pub(crate) fn stale(path: PathBuf) -> NetNs {
        NetNs { path }
    }

    /// The bind-mounted file, suitable for `CNI_NETNS` and the OCI `network` namespace path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a new thread that has joined this namespace and returns its result. Sockets
    /// `f` creates stay in the namespace after the thread has exited. Blocks the caller until
    /// `f` returns; from async code call it inside `spawn_blocking`.
    pub fn run_in<F, T>(&self, f: F) -> Result<T, NetNsError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let file = File::open(&self.path).map_err(|source| NetNsError::Open { path: self.path.clone(), source })?;
        let path = self.path.clone();
        on_dedicated_thread(&self.path, "berth-netns-run", move || {
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| NetNsError::Setns { path, source })?;
            drop(file);
            Ok(f())
        })?
    }

    /// [`NetNs::run_in`] for async callers: the dedicated thread hands its result back over a
    /// oneshot channel, so no tokio worker blocks or changes namespace.
    pub async fn run_in_async<F, T>(&self, f: F) -> Result<T, NetNsError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let file = File::open(&self.path).map_err(|source| NetNsError::Open { path: self.path.clone(), source })?;
        let path = self.path.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        thread::Builder::new()
            .name("berth-netns-run".to_string())
            .spawn(move || {
                let result = setns(&file, CloneFlags::CLONE_NEWNET).map(|()| {
                    drop(file);
                    f()
                });
                let _ = tx.send(result.map_err(|source| NetNsError::Setns { path, source }));
            })
            .map_err(|source| NetNsError::SpawnThread { path: self.path.clone(), source })?;
        rx.await.map_err(|_| NetNsError::ThreadPanicked(self.path.clone()))?
    }

    /// Unmounts and removes the namespace file. Idempotent: a missing or unmounted file is fine.
    pub fn delete(&self) -> Result<(), NetNsError> {
        match umount2(&self.path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(source) => return Err(NetNsError::Unmount { path: self.path.clone(), source }),
        }
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(NetNsError::Remove { path: self.path.clone(), source }),
        }
    }
}

/// Runs `f` on a fresh named OS thread and hands back its result over a channel. The thread
/// exits when `f` returns, so namespace changes `f` makes never leak to other work.
fn on_dedicated_thread<T: Send + 'static>(
    path: &Path,
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NetNsError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let handle = thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|source| NetNsError::SpawnThread { path: path.to_path_buf(), source })?;
    let received = rx.recv();
    let joined = handle.join();
    match (received, joined) {
        (Ok(value), Ok(())) => Ok(value),
        _ => Err(NetNsError::ThreadPanicked(path.to_path_buf())),
    }
}

/// Sets `IFF_UP` on interface index 1, which is `lo` in every new network namespace. Must run
/// on the thread that is inside the namespace: the netlink socket binds to the thread's netns.
fn loopback_up() -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        let conn = tokio::spawn(connection);
        let result = handle
            .link()
            .set(rtnetlink::LinkUnspec::new_with_index(1).up().build())
            .execute()
            .await
            .map_err(io::Error::other);
        conn.abort();
        result
    })
}

/// Makes `dir` exist and be a private mount point (a bind mount of itself if it is not one
/// yet), as iproute2 does for `/run/netns`. Otherwise, with `/` mounted shared (systemd's
/// default), each nsfs bind mount would propagate into every peer mount namespace — including
/// containers' — and pin the network namespace there after we unmount it here.
fn prepare_run_dir(dir: &Path) -> Result<(), NetNsError> {
    let err = |source: io::Error| NetNsError::PrepareDir { path: dir.to_path_buf(), source };
    fs::create_dir_all(dir).map_err(err)?;
    let dir = fs::canonicalize(dir).map_err(err)?;
    let _guard = RUN_DIR_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if !is_mount_point(&dir).map_err(err)? {
        mount(Some(&dir), &dir, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .map_err(|e| err(e.into()))?;
    }
    mount(None::<&str>, &dir, None::<&str>, MsFlags::MS_PRIVATE | MsFlags::MS_REC, None::<&str>)
        .map_err(|e| err(e.into()))
}

/// Undoes [`prepare_run_dir`]'s bind mount of `dir` (for tests and uninstall); the namespaces
/// inside should have been deleted first. Idempotent.
pub fn release_run_dir(dir: &Path) -> Result<(), NetNsError> {
    let dir = match fs::canonicalize(dir) {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(NetNsError::PrepareDir { path: dir.to_path_buf(), source }),
    };
    let _guard = RUN_DIR_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    while is_mount_point(&dir).map_err(|source| NetNsError::PrepareDir { path: dir.clone(), source })? {
        umount2(&dir, MntFlags::MNT_DETACH).map_err(|source| NetNsError::Unmount { path: dir.clone(), source })?;
    }
    Ok(())
}

pub use crate::mountinfo::{is_mount_point, mount_points};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_rejects_names_that_escape_the_dir() {
        for name in ["", "a/b", "..", "."] {
            assert!(matches!(NetNs::create_in(Path::new("/nonexistent-berth"), name), Err(NetNsError::InvalidName(_))));
        }
    }
}
