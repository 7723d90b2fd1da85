//! The real kubectl for the binary's integration tests: `/usr/bin/kubectl` (or `BERTH_KUBECTL`)
//! bound to one kubeconfig with a private discovery cache, plus a kube client on its own runtime
//! for fixtures and for playing kubelet. Without kubectl, `Kubectl::new` returns `None` (skip),
//! except under `CI=true`, where it fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// A kubectl bound to one kubeconfig, with a private discovery cache.
pub struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    cache: tempfile::TempDir,
    /// `--request-timeout=30s`, for tests whose commands never wait on purpose.
    request_timeout: bool,
}

impl Kubectl {
    /// kubectl for `kubeconfig` with `--request-timeout=30s`, or `None` (skip) when kubectl is
    /// not installed outside CI.
    pub fn new(kubeconfig: &Path) -> Option<Kubectl> {
        Self::find(kubeconfig, true)
    }

    /// Like [`Kubectl::new`], without a request timeout: for the e2e tests, whose `logs -f`,
    /// `exec` and `rollout status` may wait longer than a request timeout allows.
    pub fn without_request_timeout(kubeconfig: &Path) -> Option<Kubectl> {
        Self::find(kubeconfig, false)
    }

    fn find(kubeconfig: &Path, request_timeout: bool) -> Option<Kubectl> {
        let binary = std::env::var_os("BERTH_KUBECTL").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/kubectl".into());
        if !binary.exists() {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "kubectl not found at {}", binary.display());
            eprintln!("skipping what needs kubectl: kubectl not found at {}", binary.display());
            return None;
        }
        let cache = tempfile::tempdir().expect("cache dir");
        Some(Kubectl { binary, kubeconfig: kubeconfig.to_path_buf(), cache, request_timeout })
    }

    /// `kubectl --kubeconfig K --cache-dir C [--request-timeout=30s] ARGS`, stdin null.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path())
            .args(self.request_timeout.then_some("--request-timeout=30s"))
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run kubectl")
    }

    /// Runs kubectl with `input` on stdin.
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn kubectl");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("kubectl output")
    }

    /// Runs kubectl and returns stdout, failing the test with kubectl's output if it failed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {} failed ({}):\nstdout: {}\nstderr: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kubectl {} should have failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).expect("utf-8 output")
    }
}

/// A kube client on its own runtime, for fixtures and for playing kubelet; each test file adds
/// the calls it needs in its own `impl Kube`.
pub struct Kube {
    pub rt: tokio::runtime::Runtime,
    pub client: Client,
}

impl Kube {
    pub fn new(kubeconfig: &Path) -> Kube {
        let (rt, client) = kube_client(kubeconfig);
        Kube { rt, client }
    }
}

/// A kube client for `kubeconfig` on its own single-worker runtime, which the caller keeps to
/// `block_on` the client's calls.
pub fn kube_client(kubeconfig: &Path) -> (tokio::runtime::Runtime, Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let client = rt.block_on(async {
        let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("config");
        Client::try_from(cfg).expect("client")
    });
    (rt, client)
}
