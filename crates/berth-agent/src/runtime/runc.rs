//! The `runc` runtime: shells out to the `runc` binary with its own `--root` under the agent's
//! data dir (never the system default `/run/runc`). Containers run detached with their stdout and
//! stderr on FIFOs (`<state>/<id>/{stdout,stderr}`) that agent threads copy into CRI log files
//! (see `kubelet::logs`); the FIFOs outlive the agent and the pumps resume when it starts again.
//! The agent makes itself the child subreaper so that orphaned container processes become its
//! children, and one named thread per container waits for the exit and records it in
//! `<state>/<id>/exit`. May spawn runc and wait for (only) the container processes it created.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::Deserialize;
use tokio::process::Command;
use tokio::sync::watch;

use super::{ContainerIo, ContainerState, Runtime, RuntimeError, TtyProcess, open_terminal, validate_id};
use crate::bundle::Bundle;
use crate::io_error::io_err;

/// How long `state` waits for the exit watcher after runc already reports the process stopped.
const EXIT_RECORD_GRACE: Duration = Duration::from_secs(2);
/// How often the fallback watcher (for processes that are not our children) and `wait` without a
/// watcher look again.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// `None` while running; `Some(code)` once exited (`code` `None` if unknown).
type ExitWatch = watch::Receiver<Option<Option<i32>>>;
/// `true` once a container's log pumps have copied everything (its stdio reached end of file).
type LogsWatch = watch::Receiver<bool>;
/// How long `wait` waits, after the exit, for the log pumps to drain the container's output.
const LOG_DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Signals that a container's log pumps are done when the last pump thread drops it.
struct PumpsDone(watch::Sender<bool>);

impl Drop for PumpsDone {
    fn drop(&mut self) {
        let _ = self.0.send(true);
    }
}

/// Where a container's stdio FIFOs copy to (`io.json` in its state dir, for adoption).
#[derive(Debug, serde::Serialize, Deserialize)]
struct IoRecord {
    stdout: PathBuf,
    stderr: PathBuf,
}

/// The `runc` runtime. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Runc {
    binary: PathBuf,
    root: PathBuf,
    state_dir: PathBuf,
    exits: Arc<Mutex<HashMap<String, ExitWatch>>>,
    logs: Arc<Mutex<HashMap<String, LogsWatch>>>,
}

#[derive(Debug, Deserialize)]
struct RuncState {
    status: String,
    #[serde(default)]
    pid: i32,
}

#[derive(Debug, Deserialize)]
struct RuncListEntry {
    id: String,
}

impl Runc {
    /// A runtime keeping runc's state in `<data_dir>/runc` and exit records in
    /// `<data_dir>/containers`, using the `runc` found on `PATH`.
    ///
    /// Makes this process the child subreaper (process-wide, idempotent): detached container
    /// processes are re-parented to it, which is how their exit codes are collected. Resumes the
    /// log pumps of containers an earlier agent created (see [`Runc::resume_log_pumps`]).
    pub fn new(data_dir: &Path) -> Result<Self, RuntimeError> {
        Self::with_binary(data_dir, "runc")
    }

    /// Like [`Runc::new`] with an explicit binary (e.g. `crun`, a drop-in).
    pub fn with_binary(data_dir: &Path, binary: impl Into<PathBuf>) -> Result<Self, RuntimeError> {
        let root = data_dir.join("runc");
        let state_dir = data_dir.join("containers");
        for dir in [&root, &state_dir] {
            fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        }
        nix::sys::prctl::set_child_subreaper(true).map_err(RuntimeError::Subreaper)?;
        let runc = Self { binary: binary.into(), root, state_dir, exits: Arc::default(), logs: Arc::default() };
        if let Err(e) = runc.resume_log_pumps() {
            tracing::warn!(error = %e, "failed to resume container log pumps");
        }
        Ok(runc)
    }

    /// runc's `--root` directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.state_dir.join(id)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(&self.root).stdin(Stdio::null());
        cmd
    }

    /// Runs a runc subcommand to completion, returning stdout; a failure carries runc's stderr.
    async fn run(&self, command: &'static str, id: &str, args: &[&str]) -> Result<String, RuntimeError> {
        let output = self
            .command()
            .arg(command)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .await
            .map_err(|source| RuntimeError::Spawn { binary: self.binary.clone(), source })?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let message = String::from_utf8_lossy(&output.stderr).trim().to_string();
        if message.contains("container does not exist") {
            return Err(RuntimeError::NotFound { id: id.to_string() });
        }
        Err(RuntimeError::Command { command, id: id.to_string(), message })
    }

    /// Starts the log pumps of container `id`: its stdout and stderr FIFO read ends are copied
    /// into the CRI log files of `io`.
    fn start_pumps(&self, id: &str, stdout: File, stderr: File, io: &IoRecord) -> Result<(), RuntimeError> {
        let (tx, rx) = watch::channel(false);
        self.logs.lock().unwrap_or_else(PoisonError::into_inner).insert(id.to_string(), rx);
        crate::kubelet::logs::spawn_pumps(stdout, stderr, &io.stdout, &io.stderr, PumpsDone(tx))
            .map_err(|e| io_err("start log pumps for", &io.stdout)(e).into())
    }

    /// Waits (a bounded time) until the log pumps of `id` have copied all its output.
    async fn logs_drained(&self, id: &str) {
        let rx = self.logs.lock().unwrap_or_else(PoisonError::into_inner).get(id).cloned();
        if let Some(mut rx) = rx {
            let _ = tokio::time::timeout(LOG_DRAIN_GRACE, rx.wait_for(|done| *done)).await;
        }
    }

    /// Restarts the log pumps of containers created by an earlier agent (after a restart of the
    /// agent, their output waited in the FIFO). Containers that already have pumps are skipped.
    pub fn resume_log_pumps(&self) -> Result<(), RuntimeError> {
        let entries = match fs::read_dir(&self.state_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("read", &self.state_dir)(e).into()),
        };
        for entry in entries.flatten() {
            let Some(id) = entry.file_name().to_str().map(str::to_string) else { continue };
            if self.logs.lock().unwrap_or_else(PoisonError::into_inner).contains_key(&id) {
                continue;
            }
            let dir = entry.path();
            let Ok(text) = fs::read_to_string(dir.join("io.json")) else { continue };
            let Ok(record) = serde_json::from_str::<IoRecord>(&text) else { continue };
            let (Ok(stdout), Ok(stderr)) =
                (open_fifo_reader(&dir.join("stdout")), open_fifo_reader(&dir.join("stderr")))
            else {
                continue;
            };
            self.start_pumps(&id, stdout, stderr, &record)?;
            tracing::info!(container = %id, "resumed container log pumps");
        }
        Ok(())
    }

    fn exit_watch(&self, id: &str) -> Option<ExitWatch> {
        self.exits.lock().unwrap_or_else(PoisonError::into_inner).get(id).cloned()
    }

    async fn recorded_exit(&self, id: &str) -> Option<Option<i32>> {
        let text = tokio::fs::read_to_string(self.container_dir(id).join("exit")).await.ok()?;
        Some(text.trim().parse().ok())
    }

    /// Starts the thread that reaps container `id`'s process `pid` and records its exit.
    fn watch_exit(&self, id: &str, pid: i32) -> Result<(), RuntimeError> {
        let (tx, rx) = watch::channel(None);
        self.exits.lock().unwrap_or_else(PoisonError::into_inner).insert(id.to_string(), rx);
        let exit_file = self.container_dir(id).join("exit");
        let error_path = exit_file.clone();
        std::thread::Builder::new()
            .name(format!("runc-wait-{pid}"))
            .spawn(move || {
                let code = reap(Pid::from_raw(pid));
                let text = code.map_or_else(|| "unknown".to_string(), |c| c.to_string());
                let tmp = exit_file.with_extension("tmp");
                let written = fs::write(&tmp, text).and_then(|()| fs::rename(&tmp, &exit_file));
                // NotFound: the container was deleted (e.g. forcibly) before it exited.
                if let Err(e) = written.filter_not_found() {
                    tracing::warn!(path = %exit_file.display(), error = %e, "failed to record container exit");
                }
                let _ = tx.send(Some(code));
            })
            .map(drop)
            .map_err(|source| io_err("spawn exit watcher for", &error_path)(source).into())
    }
}

trait FilterNotFound {
    fn filter_not_found(self) -> std::io::Result<()>;
}

impl FilterNotFound for std::io::Result<()> {
    fn filter_not_found(self) -> std::io::Result<()> {
        match self {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

/// Waits for `pid` to exit; blocking. Returns the exit code (128+signal when killed), or `None`
/// when the process is not our child (we were not its subreaper) and its status is lost.
fn reap(pid: Pid) -> Option<i32> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Some(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => return Some(128 + signal as i32),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => {
                // Not our child: all we can learn is when it is gone.
                while kill(pid, None).is_ok() {
                    std::thread::sleep(POLL_INTERVAL);
                }
                return None;
            }
        }
    }
}

/// Opens the read end of a FIFO without waiting for a writer, then makes reads blocking: they
/// wait for data and return end of file once no writer is left.
fn open_fifo_reader(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new().read(true).custom_flags(nix::libc::O_NONBLOCK).open(path)?;
    nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()))?;
    Ok(file)
}

/// Makes the FIFO `path` (replacing a stale one) and returns (read end, write end). The write
/// end is opened read-write: the container holding it keeps the pipe alive, so its writes never
/// fail with EPIPE while no agent reads (they block once the pipe buffer is full).
fn make_fifo(path: &Path) -> Result<(File, File), RuntimeError> {
    let _ = fs::remove_file(path);
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| io_err("create fifo", path)(e.into()))?;
    let reader = open_fifo_reader(path).map_err(io_err("open fifo", path))?;
    let writer = fs::OpenOptions::new().read(true).write(true).open(path).map_err(io_err("open fifo", path))?;
    Ok((reader, writer))
}

/// The last error message in a runc `--log-format json` log.
fn last_log_error(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["level"] == "error" || v["level"] == "fatal")
        .and_then(|v| v["msg"].as_str().map(str::to_string))
}

#[async_trait]
impl Runtime for Runc {
    async fn create(&self, id: &str, bundle: &Bundle, io: &ContainerIo) -> Result<(), RuntimeError> {
        validate_id(id)?;
        let dir = self.container_dir(id);
        tokio::fs::create_dir_all(&dir).await.map_err(io_err("create", &dir))?;
        let _ = tokio::fs::remove_file(dir.join("exit")).await;
        let pid_file = dir.join("pid");
        let log = dir.join("runc.log");
        // The container writes to FIFOs; pump threads turn them into CRI log files.
        let record = IoRecord { stdout: io.stdout.clone(), stderr: io.stderr.clone() };
        let io_json = dir.join("io.json");
        let text = serde_json::to_string(&record).unwrap_or_default();
        tokio::fs::write(&io_json, text).await.map_err(io_err("write", &io_json))?;
        let (stdout_r, stdout) = make_fifo(&dir.join("stdout"))?;
        let (stderr_r, stderr) = make_fifo(&dir.join("stderr"))?;
        self.start_pumps(id, stdout_r, stderr_r, &record)?;
        // runc passes its own stdio to the container process: the FIFOs, never a pipe to us.
        let status = self
            .command()
            .arg("--log")
            .arg(&log)
            .args(["--log-format", "json", "create", "--bundle"])
            .arg(bundle.path())
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(id)
            .stdout(stdout)
            .stderr(stderr)
            .status()
            .await
            .map_err(|source| RuntimeError::Spawn { binary: self.binary.clone(), source })?;
        if !status.success() {
            let message = tokio::fs::read_to_string(&log)
                .await
                .ok()
                .and_then(|l| last_log_error(&l))
                .unwrap_or_else(|| format!("{status} (see {})", io.stderr.display()));
            return Err(RuntimeError::Command { command: "create", id: id.to_string(), message });
        }
        let pid_text = tokio::fs::read_to_string(&pid_file).await.map_err(io_err("read", &pid_file))?;
        let pid: i32 = pid_text.trim().parse().map_err(|_| RuntimeError::Output {
            command: "create",
            id: id.to_string(),
            output: pid_text.clone(),
        })?;
        self.watch_exit(id, pid)
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        validate_id(id)?;
        self.run("start", id, &[id]).await.map(drop)
    }

    async fn state(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        validate_id(id)?;
        let out = self.run("state", id, &[id]).await?;
        let state: RuncState = serde_json::from_str(&out).map_err(|_| RuntimeError::Output {
            command: "state",
            id: id.into(),
            output: out,
        })?;
        match state.status.as_str() {
            "created" | "creating" => Ok(ContainerState::Created { pid: state.pid }),
            "running" | "paused" | "pausing" => Ok(ContainerState::Running { pid: state.pid }),
            _ => {
                // runc sees the process gone; the watcher records its status right after.
                if let Some(mut rx) = self.exit_watch(id) {
                    let recorded = tokio::time::timeout(EXIT_RECORD_GRACE, rx.wait_for(Option::is_some)).await;
                    if let Ok(Ok(code)) = recorded {
                        return Ok(ContainerState::Stopped { exit_code: code.flatten() });
                    }
                }
                Ok(ContainerState::Stopped { exit_code: self.recorded_exit(id).await.flatten() })
            }
        }
    }

    async fn kill(&self, id: &str, signal: Signal) -> Result<(), RuntimeError> {
        validate_id(id)?;
        let signal = (signal as i32).to_string();
        self.run("kill", id, &[id, &signal]).await.map(drop)
    }

    async fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        validate_id(id)?;
        let result =
            if force { self.run("delete", id, &["--force", id]).await } else { self.run("delete", id, &[id]).await };
        match result {
            Ok(_) | Err(RuntimeError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        self.exits.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
        self.logs.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
        let dir = self.container_dir(id);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(io_err("remove", &dir)(source).into()),
        }
    }

    async fn wait(&self, id: &str) -> Result<Option<i32>, RuntimeError> {
        validate_id(id)?;
        if let Some(mut rx) = self.exit_watch(id) {
            let code = rx.wait_for(Option::is_some).await.map(|c| c.flatten()).ok();
            if let Some(code) = code {
                self.logs_drained(id).await;
                return Ok(code);
            }
        }
        // Created by an earlier agent: no watcher, so poll runc until it reports the exit.
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        loop {
            tick.tick().await;
            if let ContainerState::Stopped { exit_code } = self.state(id).await? {
                self.logs_drained(id).await;
                return Ok(exit_code);
            }
        }
    }

    async fn list(&self) -> Result<Vec<String>, RuntimeError> {
        let out = self.run("list", "", &["--format", "json"]).await?;
        let out = out.trim();
        if out.is_empty() || out == "null" {
            return Ok(Vec::new());
        }
        let entries: Vec<RuncListEntry> = serde_json::from_str(out).map_err(|_| RuntimeError::Output {
            command: "list",
            id: String::new(),
            output: out.to_string(),
        })?;
        Ok(entries.into_iter().map(|e| e.id).collect())
    }

    /// `runc exec` (not detached): runc copies between its own stdio and the process, so the
    /// child's stdin/stdout/stderr are pipes to the process, and the child's exit status is the
    /// process's exit code. Dropping the child does not kill it; close its stdin or kill it.
    async fn exec(&self, id: &str, args: &[String], tty: bool) -> Result<tokio::process::Child, RuntimeError> {
        validate_id(id)?;
        if tty {
            return Err(RuntimeError::Unsupported {
                operation: "exec with a tty through Runtime::exec (use exec_tty)",
            });
        }
        if args.is_empty() {
            return Err(RuntimeError::Command {
                command: "exec",
                id: id.to_string(),
                message: "no command given".into(),
            });
        }
        self.command()
            .arg("exec")
            .arg(id)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| RuntimeError::Spawn { binary: self.binary.clone(), source })
    }

    /// `runc exec -t` (not detached) with a terminal of ours as runc's stdio: runc makes the
    /// container's terminal and copies between it and ours, and forwards SIGWINCH as a resize.
    async fn exec_tty(&self, id: &str, args: &[String]) -> Result<TtyProcess, RuntimeError> {
        validate_id(id)?;
        if args.is_empty() {
            return Err(RuntimeError::Command {
                command: "exec",
                id: id.to_string(),
                message: "no command given".into(),
            });
        }
        let (master, slave) = open_terminal().map_err(|e| io_err("open", Path::new("/dev/ptmx"))(e))?;
        let dup = |f: &File| f.try_clone().map_err(|e| io_err("dup", Path::new("/dev/ptmx"))(e));
        let (slave_out, slave_err) = (dup(&slave)?, dup(&slave)?);
        let child = self
            .command()
            .args(["exec", "--tty"])
            .arg(id)
            .args(args)
            .stdin(slave)
            .stdout(slave_out)
            .stderr(slave_err)
            .spawn()
            .map_err(|source| RuntimeError::Spawn { binary: self.binary.clone(), source })?;
        Ok(TtyProcess { child, master })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_error_of_a_runc_log_is_reported() {
        let log = concat!(
            r#"{"level":"info","msg":"starting","time":"t"}"#,
            "\n",
            r#"{"level":"error","msg":"exec: \"nope\": executable file not found in $PATH","time":"t"}"#,
            "\n",
            "not json\n"
        );
        assert_eq!(last_log_error(log).unwrap(), r#"exec: "nope": executable file not found in $PATH"#);
        assert_eq!(last_log_error(""), None);
    }
}
