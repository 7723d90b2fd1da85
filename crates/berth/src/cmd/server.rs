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
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    #[error("invalid --datastore-endpoint")]
    DatastoreEndpoint(#[source] berth_store::StoreError),
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
    config.datastore = Datastore::parse(args.datastore_endpoint.as_deref(), data_dir.join("db").join("state.db"))
        .map_err(FlagError::DatastoreEndpoint)?;
    config.token_auth_file = args.token_auth_file.clone();
    config.tls_san = args.tls_san.clone();
    config.service_cidr = args.service_cidr.clone();
    config.cluster_cidr = args.cluster_cidr.clone();
    config.metrics_resolution = args.metrics_resolution;
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
    // The apiserver has its own token: it stops last, once the components that talk to it have.
    let api_stop = CancellationToken::new();
    let server = Server::start(config, api_stop.clone()).await.context("failed to start the apiserver")?;
    let kubeconfig = server.kubeconfig_path().to_path_buf();
    tracing::info!(path = %server.node_token_path().display(), "node join token (berth agent --token) is available");

    if let Some(path) = &args.write_kubeconfig {
        copy_kubeconfig(&kubeconfig, path, mode.unwrap_or(0o600))
            .with_context(|| format!("failed to write kubeconfig to {}", path.display()))?;
    }
    if !args.no_default_kubeconfig {
        write_default_kubeconfig(&kubeconfig);
    }
    let join = super::components::Join { url: server.url(), token: server.node_token().to_string() };
    let components = super::components::start(&kubeconfig, &args, &join, &cancel).await?;

    let url = server.url();
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "berth server ready at {url} (kubeconfig: {})", kubeconfig.display())?;
        stdout.flush()?;
    }

    cancel.cancelled().await;
    components.wait().await;
    api_stop.cancel();
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
    fn kubeconfig_mode_is_octal() {
        assert_eq!(parse_mode("0644").unwrap(), 0o644);
        assert_eq!(parse_mode("600").unwrap(), 0o600);
        assert!(parse_mode("0999").is_err());
        assert!(parse_mode("").is_err());
    }
}
