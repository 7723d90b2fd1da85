//! Container runtimes: the [`Runtime`] trait the kubelet drives (create from a bundle, start,
//! state, kill, delete, wait for the exit code) and its [`Runc`] implementation. May start and
//! signal container processes; never touches images or mounts.

mod runc;

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use async_trait::async_trait;
pub use nix::sys::signal::Signal;

use crate::bundle::Bundle;
use crate::io_error::IoError;
pub use runc::Runc;

/// Where a container's stdout and stderr go: CRI-format log files (see `kubelet::logs`), written
/// by the agent from FIFOs the container holds (a detached container outlives its creator, so
/// its stdio cannot be a pipe to it). May be the same file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerIo {
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

/// The state of a container as the runtime reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, its process waiting for `start`.
    Created { pid: i32 },
    /// Its process is running (or paused).
    Running { pid: i32 },
    /// Its process exited. `exit_code` is 128+signal for a killed process, `None` if the exit
    /// happened while no agent was watching.
    Stopped { exit_code: Option<i32> },
}

/// Errors of a container runtime. Each variant names the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid container id {id:?}: use letters, digits, '_', '+', '-' and '.'")]
    InvalidId { id: String },
    #[error("container {id} does not exist")]
    NotFound { id: String },
    #[error("failed to run {binary}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("runc {command} {id} failed: {message}")]
    Command { command: &'static str, id: String, message: String },
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("unexpected output from runc {command} {id}: {output:?}")]
    Output { command: &'static str, id: String, output: String },
    #[error("failed to become the child subreaper (needed to collect container exit codes)")]
    Subreaper(#[source] nix::Error),
    #[error("{operation} is not supported by this runtime")]
    Unsupported { operation: &'static str },
}

/// A container runtime. Every method is async and never blocks a tokio worker.
#[async_trait]
pub trait Runtime: Send + Sync {
    /// Creates container `id` from `bundle`; its process waits for [`Runtime::start`].
    async fn create(&self, id: &str, bundle: &Bundle, io: &ContainerIo) -> Result<(), RuntimeError>;
    /// Starts the process of a created container.
    async fn start(&self, id: &str) -> Result<(), RuntimeError>;
    /// The container's current state.
    async fn state(&self, id: &str) -> Result<ContainerState, RuntimeError>;
    /// Sends `signal` to the container's init process.
    async fn kill(&self, id: &str, signal: Signal) -> Result<(), RuntimeError>;
    /// Deletes the container (with `force`, kills it first). Deleting a missing container is Ok.
    async fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError>;
    /// Waits for the container's process to exit and returns its exit code (see
    /// [`ContainerState::Stopped`]).
    async fn wait(&self, id: &str) -> Result<Option<i32>, RuntimeError>;
    /// Ids of all containers this runtime knows.
    async fn list(&self) -> Result<Vec<String>, RuntimeError>;
    /// Runs `args` (`args[0]` the program) in the running container `id`, with piped stdin,
    /// stdout and stderr. With `tty` the process gets a terminal instead and the child's stdout
    /// carries the terminal output (stderr is merged into it); see the implementation.
    ///
    /// The default reports [`RuntimeError::Unsupported`].
    async fn exec(&self, id: &str, args: &[String], tty: bool) -> Result<tokio::process::Child, RuntimeError> {
        let _ = (id, args, tty);
        Err(RuntimeError::Unsupported { operation: "exec" })
    }
    /// Runs `args` in the running container `id` on a new terminal: read the process's output
    /// from, and write its input to, [`TtyProcess::master`]; resize with [`resize_terminal`].
    ///
    /// The default reports [`RuntimeError::Unsupported`].
    async fn exec_tty(&self, id: &str, args: &[String]) -> Result<TtyProcess, RuntimeError> {
        let _ = (id, args);
        Err(RuntimeError::Unsupported { operation: "exec with a terminal" })
    }
}

/// A process started by [`Runtime::exec_tty`].
#[derive(Debug)]
pub struct TtyProcess {
    /// The runtime's process; its exit status is the command's.
    pub child: tokio::process::Child,
    /// The terminal's master side.
    pub master: std::fs::File,
}

/// A new terminal: (master, slave).
pub fn open_terminal() -> std::io::Result<(std::fs::File, std::fs::File)> {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    let path = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(name.as_bytes()));
    let slave = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
    Ok((std::fs::File::from(master), slave))
}

/// Sets the size of the terminal whose master is `master` and tells `pid` (the runtime process
/// that copies to the container's own terminal) with SIGWINCH. Best effort.
pub fn resize_terminal(master: &std::fs::File, width: u16, height: u16, pid: Option<u32>) {
    let size = rustix::termios::Winsize { ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0 };
    if rustix::termios::tcsetwinsize(master, size).is_ok()
        && let Some(pid) = pid.and_then(|p| i32::try_from(p).ok())
    {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGWINCH);
    }
}

/// Checks a container id: it names directories and is passed to the runtime binary.
pub fn validate_id(id: &str) -> Result<(), RuntimeError> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && !id.starts_with('.')
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if ok { Ok(()) } else { Err(RuntimeError::InvalidId { id: id.to_string() }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_are_restricted_to_safe_characters() {
        assert!(validate_id("berth-test-1_a.b+c").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "a b", "a\nb"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }
}
