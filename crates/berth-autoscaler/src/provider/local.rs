//! The `local` provider: each node is a `berth agent` process on this machine, started with the
//! server's URL and join token, its own data dir, and the group's `agentArgs`; stopped by PID
//! (SIGTERM, then SIGKILL after a grace period). Needs what a real agent needs (root, runc, CNI).
//! Each agent's PID is in `<data_dir>/<name>/agent.pid` while it runs, so whoever stops the server
//! uncleanly can still find and stop the agents it started.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use super::{NodeProvider, ProviderError};
use crate::config::NodeGroupConfig;

/// How long an agent gets to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What every agent process is started with.
#[derive(Debug, Clone)]
pub struct LocalProviderConfig {
    /// The `berth` binary.
    pub berth: PathBuf,
    /// `https://HOST:PORT` of the server.
    pub server: String,
    /// The join token (`K10…::server:…`).
    pub token: String,
    /// Each node gets `<data_dir>/<name>`.
    pub data_dir: PathBuf,
}

/// Agent processes started by this provider, by node name.
pub struct LocalProvider {
    config: LocalProviderConfig,
    agents: Mutex<HashMap<String, Child>>,
}

impl LocalProvider {
    pub fn new(config: LocalProviderConfig) -> Self {
        LocalProvider { config, agents: Mutex::new(HashMap::new()) }
    }

    /// The command line of node `name`: the fixed flags, then the group's arguments with
    /// `{name}` and `{index}` filled in. Pure.
    pub fn args(&self, group: &NodeGroupConfig, name: &str, index: usize) -> Vec<String> {
        let data_dir = self.config.data_dir.join(name);
        let mut args = vec![
            "agent".to_string(),
            "--server".to_string(),
            self.config.server.clone(),
            "--token".to_string(),
            self.config.token.clone(),
            "--node-name".to_string(),
            name.to_string(),
            "--data-dir".to_string(),
            data_dir.display().to_string(),
        ];
        for label in group.template.labels.iter().map(|(k, v)| format!("{k}={v}")).chain(std::iter::once(format!(
            "{}={}",
            crate::config::NODE_GROUP_LABEL,
            group.name
        ))) {
            args.push("--node-label".to_string());
            args.push(label);
        }
        args.extend(group.agent_args.iter().map(|a| a.replace("{name}", name).replace("{index}", &index.to_string())));
        args
    }
}

/// Stops a child: SIGTERM by PID, then SIGKILL after the grace period; reaps it.
async fn stop(mut child: Child) -> std::io::Result<()> {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_ok() {
            return Ok(());
        }
    }
    child.kill().await
}

#[async_trait]
impl NodeProvider for LocalProvider {
    async fn create_node(&self, group: &NodeGroupConfig, name: &str, index: usize) -> Result<(), ProviderError> {
        let err = |message: String| ProviderError::Start { node: name.to_string(), message };
        let data_dir = self.config.data_dir.join(name);
        std::fs::create_dir_all(&data_dir).map_err(|e| err(format!("{}: {e}", data_dir.display())))?;
        let log_path = data_dir.join("agent.log");
        let log = std::fs::File::create(&log_path).map_err(|e| err(format!("{}: {e}", log_path.display())))?;
        let log2 = log.try_clone().map_err(|e| err(e.to_string()))?;
        let child = Command::new(&self.config.berth)
            .args(self.args(group, name, index))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| err(format!("{}: {e}", self.config.berth.display())))?;
        if let Some(pid) = child.id() {
            let pid_path = data_dir.join("agent.pid");
            std::fs::write(&pid_path, format!("{pid}\n")).map_err(|e| err(format!("{}: {e}", pid_path.display())))?;
        }
        tracing::info!(node = name, pid = child.id(), log = %log_path.display(), "started a berth agent");
        self.agents.lock().await.insert(name.to_string(), child);
        Ok(())
    }

    async fn delete_node(&self, _group: &NodeGroupConfig, name: &str) -> Result<(), ProviderError> {
        let Some(child) = self.agents.lock().await.remove(name) else { return Ok(()) };
        stop(child).await.map_err(|e| ProviderError::Stop { node: name.to_string(), message: e.to_string() })?;
        let _ = std::fs::remove_dir_all(self.config.data_dir.join(name));
        tracing::info!(node = name, "stopped a berth agent");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NodeTemplate, ProviderKind};

    #[test]
    fn agent_arguments_carry_the_join_data_labels_and_the_groups_templated_args() {
        let provider = LocalProvider::new(LocalProviderConfig {
            berth: "berth".into(),
            server: "https://127.0.0.1:6443".into(),
            token: "K10abc::server:s".into(),
            data_dir: "/var/lib/berth/autoscaler".into(),
        });
        let group = NodeGroupConfig {
            name: "workers".into(),
            provider: ProviderKind::Local,
            min_size: 0,
            max_size: 2,
            template: NodeTemplate { labels: [("pool".into(), "w".into())].into(), ..Default::default() },
            agent_args: vec!["--cni-bridge".into(), "bca{index}".into(), "--node-ip={name}".into()],
        };
        let args = provider.args(&group, "workers-3", 3).join(" ");
        assert_eq!(
            args,
            "agent --server https://127.0.0.1:6443 --token K10abc::server:s --node-name workers-3 \
             --data-dir /var/lib/berth/autoscaler/workers-3 --node-label pool=w \
             --node-label autoscaler.berth.dev/node-group=workers --cni-bridge bca3 --node-ip=workers-3"
        );
    }
}
