//! Shared fixture for the binary's integration tests: `TestServer` runs `berth server` on a free
//! loopback port in a temporary data dir, parses its ready line, and kills it (by PID) on drop.
#![allow(dead_code)] // each test file uses a different part of this module

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub mod cluster;
pub mod kubectl;

/// How long `berth server` may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the server gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Path of the `berth` binary under test.
pub fn berth_bin() -> &'static str {
    env!("CARGO_BIN_EXE_berth")
}

/// A running `berth server` with its own data dir; stopped and removed on drop.
pub struct TestServer {
    pub data_dir: TempDir,
    /// DATA_DIR/kubeconfig.yaml, the admin kubeconfig the server wrote.
    pub kubeconfig: PathBuf,
    /// `https://127.0.0.1:PORT` from the ready line.
    pub url: String,
    child: Child,
}

impl TestServer {
    /// Starts `berth server --https-listen-port 0 --data-dir TMP --no-default-kubeconfig`.
    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    /// Same as `start`, with extra `berth server` flags appended.
    pub fn start_with(args: &[&str]) -> TestServer {
        Self::start_opts(args, &[], true)
    }

    /// The general form: extra flags, extra environment variables (e.g. HOME), and whether to
    /// pass `--no-default-kubeconfig` (leave it true unless HOME points at a temporary dir).
    /// The agent is off (`--disable-agent`); see [`TestServer::start_with_agent`].
    pub fn start_opts(args: &[&str], envs: &[(&str, &Path)], no_default_kubeconfig: bool) -> TestServer {
        let data_dir = tempfile::Builder::new().prefix("berth-test-").tempdir().expect("create temp data dir");
        Self::start_in(data_dir, args, envs, no_default_kubeconfig, false)
    }

    /// Starts the server with the agent (kubelet) in `data_dir` (which may already hold
    /// DATA_DIR/agent/images), with extra flags. Needs root.
    pub fn start_with_agent(data_dir: TempDir, args: &[&str]) -> TestServer {
        Self::start_in(data_dir, args, &[], true, true)
    }

    /// Stops this server (SIGTERM, by PID) and starts a new one with the agent on the same data
    /// dir, as after a restart of the node. Needs root.
    pub fn restart_with_agent(mut self, args: &[&str]) -> TestServer {
        self.stop();
        let placeholder = tempfile::Builder::new().prefix("berth-test-").tempdir().expect("create temp dir");
        let data_dir = std::mem::replace(&mut self.data_dir, placeholder);
        drop(self);
        Self::start_in(data_dir, args, &[], true, true)
    }

    fn start_in(
        data_dir: TempDir,
        args: &[&str],
        envs: &[(&str, &Path)],
        no_default_kubeconfig: bool,
        agent: bool,
    ) -> TestServer {
        let log_path = data_dir.path().join("server.log");
        // Appended, so a restarted server's log follows the first one's.
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).expect("open server log");
        let mut child = Command::new(berth_bin())
            .arg("server")
            .args(["--https-listen-port", "0", "--data-dir"])
            .arg(data_dir.path())
            .args(no_default_kubeconfig.then_some("--no-default-kubeconfig"))
            .args((!agent).then_some("--disable-agent"))
            .args(args)
            .env_remove("KUBECONFIG")
            .envs(envs.iter().map(|(k, v)| (*k, *v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn berth server");
        let stdout = child.stdout.take().expect("piped stdout");

        // A reader thread forwards stdout lines, so waiting for the ready line has a deadline
        // and later output never blocks the server on a full pipe.
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Keep draining so the server never blocks on a full pipe.
                    continue;
                }
            }
        });

        // From here on the guard owns the child, so a failed start still kills it.
        let mut server = TestServer { data_dir, kubeconfig: PathBuf::new(), url: String::new(), child };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    if let Some((url, kubeconfig)) = parse_ready_line(&line) {
                        server.url = url;
                        server.kubeconfig = kubeconfig;
                        return server;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("berth server exited before it was ready; log:\n{}", read_log(&log_path))
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("berth server exited with {status} before it was ready; log:\n{}", read_log(&log_path));
            }
            if Instant::now() >= deadline {
                panic!("berth server not ready after {READY_TIMEOUT:?}; log:\n{}", read_log(&log_path));
            }
        }
    }

    /// The server's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The port from the ready line.
    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port in server url")
    }

    /// The server's stderr so far (for assertion messages).
    pub fn log(&self) -> String {
        read_log(&self.data_dir.path().join("server.log"))
    }

    /// `berth --kubeconfig DATA_DIR/kubeconfig.yaml`, ready for more arguments.
    pub fn berth(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::new(berth_bin());
        cmd.env_remove("KUBECONFIG").arg("--kubeconfig").arg(&self.kubeconfig);
        cmd.timeout(Duration::from_secs(120));
        cmd
    }

    /// Sends SIGTERM and waits (with a deadline) for the server to exit; returns its exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)), // polling the exit, with a deadline
                Err(_) => break,
            }
        }
        // Child::kill signals this child's PID with SIGKILL.
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Parses `berth server ready at https://127.0.0.1:PORT (kubeconfig: /path/kubeconfig.yaml)`.
pub fn parse_ready_line(line: &str) -> Option<(String, PathBuf)> {
    let rest = line.trim().strip_prefix("berth server ready at ")?;
    let (url, rest) = rest.split_once(" (kubeconfig: ")?;
    let kubeconfig = rest.strip_suffix(')')?;
    Some((url.to_string(), PathBuf::from(kubeconfig)))
}

fn read_log(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    text
}

/// Polls `check` until it returns true or `timeout` passes; returns whether it succeeded.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100)); // poll interval, bounded by the deadline
    }
}

/// Runs a berth command and returns (success, stdout, stderr).
pub fn run(server: &TestServer, args: &[&str]) -> (bool, String, String) {
    let out = server.berth().args(args).output().expect("run berth");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a berth command that must succeed; returns its stdout.
pub fn ok(server: &TestServer, args: &[&str]) -> String {
    let (success, stdout, stderr) = run(server, args);
    assert!(success, "berth {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver log:\n{}", server.log());
    stdout
}

/// Runs a berth command that must fail; returns its stderr.
pub fn fails(server: &TestServer, args: &[&str]) -> String {
    let (success, stdout, stderr) = run(server, args);
    assert!(!success, "berth {args:?} should fail\nstdout:\n{stdout}\nstderr:\n{stderr}");
    stderr
}
