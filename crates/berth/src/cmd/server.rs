//! `berth server`: turns k3s-style flags into an apiserver `Config`, starts it, prints the one
//! ready line on stdout, writes kubeconfig copies, and shuts down cleanly on SIGINT/SIGTERM.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use berth_apiserver::{Config, Datastore, Server};
use tokio_util::sync::CancellationToken;

use crate::cli::ServerArgs;

/// Why a `berth server` flag was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlagError {
    #[error("invalid --datastore-endpoint {0:?}: expected etcd://host:port[,host:port...] or sqlite:///path")]
    DatastoreEndpoint(String),
    #[error("invalid --write-kubeconfig-mode {0:?}: expected an octal mode such as 0644")]
    KubeconfigMode(String),
}

/// The default data dir: /var/lib/berth as root, else $XDG_DATA_HOME/berth or ~/.local/share/berth.
pub fn default_data_dir() -> PathBuf {
    if is_root() {
        return PathBuf::from("/var/lib/berth");
    }
    match dirs::data_dir() {
        Some(dir) => dir.join("berth"),
        None => PathBuf::from(".berth"),
    }
}

/// Whether we run as root; /proc/self belongs to the effective user (no unsafe geteuid).
fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// Parses `--datastore-endpoint` (None: SQLite under DATA_DIR/db/).
pub fn parse_datastore(endpoint: Option<&str>, data_dir: &Path) -> Result<Datastore, FlagError> {
    let Some(endpoint) = endpoint.map(str::trim).filter(|e| !e.is_empty()) else {
        return Ok(Datastore::Sqlite(data_dir.join("db").join("state.db")));
    };
    if let Some(path) = endpoint.strip_prefix("sqlite://") {
        // `sqlite:///abs/path` or `sqlite://rel/path`; drop any `?_journal=WAL`-style parameters.
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() {
            return Err(FlagError::DatastoreEndpoint(endpoint.to_string()));
        }
        return Ok(Datastore::Sqlite(PathBuf::from(path)));
    }
    let hosts = ["etcd://", "https://", "http://"].iter().find_map(|p| endpoint.strip_prefix(p));
    let Some(hosts) = hosts else {
        return Err(FlagError::DatastoreEndpoint(endpoint.to_string()));
    };
    let mut endpoints = Vec::new();
    for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        // Later entries may repeat the scheme, as etcd's own --endpoints do.
        let host = ["etcd://", "https://", "http://"].iter().find_map(|p| host.strip_prefix(p)).unwrap_or(host);
        let host = host.trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(FlagError::DatastoreEndpoint(endpoint.to_string()));
        }
        endpoints.push(host.to_string());
    }
    if endpoints.is_empty() {
        return Err(FlagError::DatastoreEndpoint(endpoint.to_string()));
    }
    Ok(Datastore::Etcd(endpoints))
}

/// Parses an octal file mode such as `0644` or `644`.
pub fn parse_mode(mode: &str) -> Result<u32, FlagError> {
    let digits = mode.trim().trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 && !digits.is_empty() => Ok(m),
        _ => Err(FlagError::KubeconfigMode(mode.to_string())),
    }
}

/// Builds the apiserver configuration from the flags.
pub fn config_from_args(args: &ServerArgs) -> Result<Config, FlagError> {
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let mut config = Config::new(data_dir.clone());
    config.bind_address = args.bind_address;
    config.https_port = args.https_listen_port;
    config.datastore = parse_datastore(args.datastore_endpoint.as_deref(), &data_dir)?;
    config.token_auth_file = args.token_auth_file.clone();
    config.tls_san = args.tls_san.clone();
    config.service_cidr = args.service_cidr.clone();
    Ok(config)
}

pub async fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let config = config_from_args(&args)?;
    let mode = args.write_kubeconfig_mode.as_deref().map(parse_mode).transpose()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("failed to create data dir {}", config.data_dir.display()))?;
    let data_dir = config.data_dir.clone();
    tracing::info!(data_dir = %data_dir.display(), "starting berth server");

    let cancel = CancellationToken::new();
    // Handlers go in before anything can observe readiness, so an early SIGTERM is a clean stop
    // rather than the default action (death by signal).
    let shutdown = cancel.clone();
    let signals = Signals::install();
    tokio::spawn(async move {
        signals.wait().await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
    let server = Server::start(config, cancel.child_token()).await.context("failed to start the apiserver")?;
    let kubeconfig = server.kubeconfig_path().to_path_buf();

    if let Some(path) = &args.write_kubeconfig {
        copy_kubeconfig(&kubeconfig, path, mode.unwrap_or(0o600))
            .with_context(|| format!("failed to write kubeconfig to {}", path.display()))?;
    }
    if !args.no_default_kubeconfig {
        write_default_kubeconfig(&kubeconfig);
    }
    // The agent does not exist yet; --disable-agent is accepted so k3s-style scripts work.
    let _ = args.disable_agent;

    let url = server.url();
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "berth server ready at {url} (kubeconfig: {})", kubeconfig.display())?;
        stdout.flush()?;
    }

    server.wait().await;
    Ok(ExitCode::SUCCESS)
}

/// SIGINT and SIGTERM listeners, registered when created.
struct Signals {
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(int), Ok(term)) => Signals { streams: Some((int, term)) },
            (Err(err), _) | (_, Err(err)) => {
                tracing::warn!(error = %err, "cannot install signal handlers; waiting for ctrl-c");
                Signals { streams: None }
            }
        }
    }

    /// Resolves on the first SIGINT or SIGTERM.
    async fn wait(self) {
        match self.streams {
            Some((mut int, mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

fn copy_kubeconfig(from: &Path, to: &Path, mode: u32) -> std::io::Result<()> {
    if let Some(parent) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(from, to)?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))
}

/// k3s-like convenience: ~/.kube/config gets the admin kubeconfig only when it does not exist.
fn write_default_kubeconfig(kubeconfig: &Path) {
    let Some(home) = dirs::home_dir() else { return };
    let target = home.join(".kube").join("config");
    if target.exists() {
        return;
    }
    match copy_kubeconfig(kubeconfig, &target, 0o600) {
        Ok(()) => tracing::info!(path = %target.display(), "wrote kubeconfig"),
        Err(err) => tracing::warn!(path = %target.display(), error = %err, "cannot write kubeconfig"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datastore_defaults_to_sqlite_under_data_dir() {
        let ds = parse_datastore(None, Path::new("/d")).unwrap();
        assert_eq!(ds, Datastore::Sqlite(PathBuf::from("/d/db/state.db")));
    }

    #[test]
    fn datastore_parses_sqlite_and_etcd_endpoints() {
        let cases = [
            ("sqlite:///tmp/x.db", Datastore::Sqlite(PathBuf::from("/tmp/x.db"))),
            ("etcd://127.0.0.1:2379", Datastore::Etcd(vec!["127.0.0.1:2379".into()])),
            ("etcd://a:1,b:2", Datastore::Etcd(vec!["a:1".into(), "b:2".into()])),
            ("http://a:1,http://b:2", Datastore::Etcd(vec!["a:1".into(), "b:2".into()])),
        ];
        for (input, want) in cases {
            assert_eq!(parse_datastore(Some(input), Path::new("/d")).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn datastore_rejects_unknown_schemes() {
        for bad in ["mysql://x", "etcd://", "sqlite://", "etcd://a:1/path"] {
            assert!(parse_datastore(Some(bad), Path::new("/d")).is_err(), "{bad}");
        }
    }

    #[test]
    fn kubeconfig_mode_is_octal() {
        assert_eq!(parse_mode("0644").unwrap(), 0o644);
        assert_eq!(parse_mode("600").unwrap(), 0o600);
        assert!(parse_mode("0999").is_err());
        assert!(parse_mode("").is_err());
    }
}
