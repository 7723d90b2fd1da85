//! The control-plane components `berth server` runs beside the apiserver: the controller
//! manager, the scheduler and the agent (kubelet, as root only). Each is an API client over HTTPS with the
//! admin kubeconfig, exactly as it would be in its own process, and runs as one tokio task under a
//! child of the server's cancellation token.

use std::path::Path;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cli::ServerArgs;

/// The running components.
pub struct Components {
    tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
}

/// A kube client for the local apiserver, from the admin kubeconfig it wrote.
async fn local_client(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("failed to read {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// Starts the components the flags leave enabled. A component that fails cancels `cancel`, so
/// the server stops rather than run half a cluster.
pub async fn start(kubeconfig: &Path, args: &ServerArgs, cancel: &CancellationToken) -> anyhow::Result<Components> {
    let client = local_client(kubeconfig).await?;
    let mut components = Components { tasks: Vec::new() };
    if !args.disable_controller_manager {
        let (client, token) = (client.clone(), cancel.child_token());
        components.spawn("controller-manager", cancel, async move {
            berth_controllers::run(client, berth_controllers::ControllersConfig::default(), token).await?;
            Ok(())
        });
    }
    if !args.disable_agent {
        if is_root() {
            let (client, token) = (client.clone(), cancel.child_token());
            let config = kubelet_config(args);
            components.spawn("agent", cancel, async move {
                berth_agent::kubelet::run(client, config, token).await?;
                Ok(())
            });
        } else {
            tracing::warn!("the agent needs root (runc, network namespaces); running the control plane only");
        }
    }
    if !args.disable_scheduler {
        let (client, token) = (client.clone(), cancel.child_token());
        components.spawn("scheduler", cancel, async move {
            berth_scheduler::run(client, berth_scheduler::SchedulerConfig::default(), token).await?;
            Ok(())
        });
    }
    Ok(components)
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// The kubelet's configuration from the server flags (its data lives in DATA_DIR/agent).
fn kubelet_config(args: &ServerArgs) -> berth_agent::kubelet::KubeletConfig {
    let data_dir = args.data_dir.clone().unwrap_or_else(super::server::default_data_dir);
    let mut config = berth_agent::kubelet::KubeletConfig::new(data_dir.join("agent"));
    if let Some(name) = &args.node_name {
        config.node_name = name.clone();
    }
    if let Some(ip) = args.node_ip {
        config.node_ip = ip;
    }
    config.runc = args.runc.clone();
    config.cni_plugin_dirs = args.cni_bin_dir.clone();
    config.bridge = args.cni_bridge.clone();
    config.netns_dir = args.netns_dir.clone();
    config.is_gateway = !args.no_cni_gateway;
    config.ip_masq = !args.no_ip_masq;
    config
}

impl Components {
    fn spawn(
        &mut self,
        name: &'static str,
        cancel: &CancellationToken,
        task: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        let cancel = cancel.clone();
        let handle = tokio::spawn(async move {
            let result = task.await;
            if let Err(err) = &result {
                tracing::error!(component = name, "{err:#}");
                cancel.cancel();
            }
            result
        });
        self.tasks.push((name, handle));
    }

    /// Waits for every component to stop (after cancellation).
    pub async fn wait(self) {
        for (name, handle) in self.tasks {
            if let Err(err) = handle.await {
                tracing::error!(component = name, error = %err, "component task panicked");
            }
        }
    }
}
