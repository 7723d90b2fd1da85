//! Kubeconfig resolution as kubectl does it: `--kubeconfig`, then KUBECONFIG (colon-separated,
//! existing files merged, first wins), then ~/.kube/config, then the local server's admin
//! kubeconfig in the default data dir; `--context` and `-n` on top.

use std::path::{Path, PathBuf};

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::cli::GlobalArgs;

/// A client ready to talk to the selected cluster.
pub struct Connection {
    pub client: kube::Client,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
    pub cluster_url: String,
}

/// Which kubeconfig files to read, in kubectl's order of precedence.
pub fn kubeconfig_paths(
    flag: Option<&Path>,
    env: Option<&std::ffi::OsStr>,
    home: Option<&Path>,
    server_default: &Path,
) -> Vec<PathBuf> {
    if let Some(path) = flag {
        return vec![path.to_path_buf()];
    }
    if let Some(env) = env {
        let existing: Vec<PathBuf> =
            std::env::split_paths(env).filter(|p| !p.as_os_str().is_empty() && p.exists()).collect();
        if !existing.is_empty() {
            return existing;
        }
    }
    if let Some(home) = home {
        let path = home.join(".kube").join("config");
        if path.exists() {
            return vec![path];
        }
    }
    if server_default.exists() {
        return vec![server_default.to_path_buf()];
    }
    Vec::new()
}

/// Reads and merges the kubeconfig and builds a client.
pub async fn connect(global: &GlobalArgs) -> anyhow::Result<Connection> {
    let server_default = crate::cmd::server::default_data_dir().join("kubeconfig.yaml");
    let env = std::env::var_os("KUBECONFIG");
    let home = dirs::home_dir();
    let paths = kubeconfig_paths(global.kubeconfig.as_deref(), env.as_deref(), home.as_deref(), &server_default);
    if paths.is_empty() {
        anyhow::bail!(
            "no kubeconfig found: pass --kubeconfig, set KUBECONFIG, create ~/.kube/config, or run `berth server` here"
        );
    }
    let mut merged = Kubeconfig::default();
    for path in &paths {
        // kube's errors already name the file and carry their cause in the message.
        let kc = Kubeconfig::read_from(path).map_err(|e| anyhow::anyhow!("{e}"))?;
        merged = merged.merge(kc).map_err(|e| anyhow::anyhow!("failed to merge kubeconfig {}: {e}", path.display()))?;
    }
    let options = KubeConfigOptions { context: global.context.clone(), ..Default::default() };
    let config = kube::Config::from_custom_kubeconfig(merged, &options)
        .await
        .map_err(|e| anyhow::anyhow!("invalid kubeconfig: {e}"))?;
    let mut config = config;
    // kube retries 429/503/504 itself by default (for up to minutes); kubectl surfaces them, and
    // `drain` must see an eviction's 429 to print its retry message and honour --timeout.
    config.default_retry = false;
    if !global.request_timeout.is_zero() {
        config.read_timeout = Some(global.request_timeout);
        config.connect_timeout = Some(global.request_timeout);
    }
    let namespace = global.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    let cluster_url = config.cluster_url.to_string().trim_end_matches('/').to_string();
    let client = kube::Client::try_from(config).context("failed to build the API client")?;
    Ok(Connection { client, namespace, cluster_url })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_wins_even_when_missing() {
        let got = kubeconfig_paths(Some(Path::new("/nope")), None, None, Path::new("/nope2"));
        assert_eq!(got, [PathBuf::from("/nope")]);
    }

    #[test]
    fn env_keeps_existing_files_in_order_then_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, "").unwrap();
        std::fs::write(&b, "").unwrap();
        let env = std::env::join_paths([b.clone(), dir.path().join("missing"), a.clone()]).unwrap();
        assert_eq!(kubeconfig_paths(None, Some(&env), None, Path::new("/x")), [b, a]);

        let server = dir.path().join("server.yaml");
        std::fs::write(&server, "").unwrap();
        let env = std::env::join_paths([dir.path().join("missing")]).unwrap();
        assert_eq!(kubeconfig_paths(None, Some(&env), Some(Path::new("/nonexistent-home")), &server), [server]);
    }

    #[test]
    fn home_config_comes_before_the_server_default() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".kube")).unwrap();
        std::fs::write(dir.path().join(".kube/config"), "").unwrap();
        let server = dir.path().join("server.yaml");
        std::fs::write(&server, "").unwrap();
        assert_eq!(kubeconfig_paths(None, None, Some(dir.path()), &server), [dir.path().join(".kube/config")]);
    }
}
