//! A throwaway etcd server for tests and benches: Debian's `etcd` on free loopback ports with a
//! temporary data dir, killed (by PID) and removed when the guard drops.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_store::EtcdStore;

/// Where Debian's etcd-server package installs the binary (`BERTH_ETCD_BIN` overrides it).
const DEFAULT_ETCD: &str = "/usr/bin/etcd";
/// How long etcd may take to answer after it starts.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// A running etcd; dropping it kills the process and removes its data dir.
pub struct EtcdServer {
    child: Child,
    pub endpoint: String,
    dir: tempfile::TempDir,
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        // `Child::kill` signals exactly this child's PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
        // `dir` is removed by its own drop after this.
        let _ = &self.dir;
    }
}

fn etcd_binary() -> PathBuf {
    std::env::var_os("BERTH_ETCD_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_ETCD))
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("local address of a bound socket").port()
}

fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

impl EtcdServer {
    /// Starts etcd, or returns `None` (after saying why) when the binary is missing outside CI.
    /// Under `CI=true` a missing etcd is a failure, so the etcd cases cannot silently pass.
    pub async fn start_or_skip(test: &str) -> Option<EtcdServer> {
        let binary = etcd_binary();
        if !binary.exists() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{test}: {} is missing and CI=true (apt-get install etcd-server)", binary.display());
            }
            eprintln!("SKIPPED {test}: {} is missing (apt-get install etcd-server)", binary.display());
            return None;
        }
        Some(EtcdServer::start(&binary).await)
    }

    async fn start(binary: &Path) -> EtcdServer {
        let dir = tempfile::tempdir().expect("create a temp dir for etcd");
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("127.0.0.1:{client}");
        let client_url = format!("http://{endpoint}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log_path = dir.path().join("etcd.log");
        let log = std::fs::File::create(&log_path).expect("create the etcd log file");
        let child = Command::new(binary)
            .arg("--name=test")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=test={peer_url}"))
            .arg("--log-outputs=stderr")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        let mut server = EtcdServer { child, endpoint, dir };
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("etcd exited with {status} before answering:\n{}", log_tail(&log_path));
            }
            let attempt =
                tokio::time::timeout(Duration::from_secs(2), EtcdStore::connect(&[server.endpoint.clone()])).await;
            if let Ok(Ok(_)) = attempt {
                return server;
            }
            if Instant::now() > deadline {
                let tail = log_tail(&log_path);
                drop(server);
                panic!("etcd did not answer within {START_DEADLINE:?}:\n{tail}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A store connected to this server.
    pub async fn store(&self) -> EtcdStore {
        EtcdStore::connect(std::slice::from_ref(&self.endpoint)).await.expect("connect to the test etcd")
    }
}
