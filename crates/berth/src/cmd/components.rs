//! The control-plane components `berth server` runs beside the apiserver: the controller
//! manager and the scheduler (and, as it lands, the agent). Each is an API client over HTTPS with the
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
    if !args.disable_scheduler {
        let (client, token) = (client.clone(), cancel.child_token());
        components.spawn("scheduler", cancel, async move {
            berth_scheduler::run(client, berth_scheduler::SchedulerConfig::default(), token).await?;
            Ok(())
        });
    }
    Ok(components)
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
