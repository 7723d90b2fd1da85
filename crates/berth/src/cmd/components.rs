//! The control-plane components `berth server` runs beside the apiserver: the controller
//! manager, the scheduler and the agent (kubelet, as root only). Each is an API client over HTTPS with the
//! admin kubeconfig, exactly as it would be in its own process, and runs as one tokio task under a
//! child of the server's cancellation token.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use berth_autoscaler::NodeProvider;
use berth_autoscaler::config::ProviderKind;

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

/// The cluster CA (PEM) embedded in the admin kubeconfig, for the root CA publisher.
fn cluster_ca_pem(kubeconfig: &Path) -> Option<String> {
    use base64::Engine;
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).ok()?;
    let data = kc.clusters.into_iter().find_map(|c| c.cluster?.certificate_authority_data)?;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(data.trim()).ok()?).ok()
}

/// Starts the components the flags leave enabled. A component that fails cancels `cancel`, so
/// the server stops rather than run half a cluster.
pub async fn start(
    kubeconfig: &Path,
    args: &ServerArgs,
    join: &Join,
    cancel: &CancellationToken,
) -> anyhow::Result<Components> {
    let client = local_client(kubeconfig).await?;
    let mut components = Components { tasks: Vec::new() };
    if !args.disable_controller_manager {
        let (client, token) = (client.clone(), cancel.child_token());
        let hpa_sync_period = args.horizontal_pod_autoscaler_sync_period;
        let (controllers, servicelb_pool) = servicelb_settings(args)?;
        let root_ca_pem = cluster_ca_pem(kubeconfig);
        components.spawn("controller-manager", cancel, async move {
            let config = berth_controllers::ControllersConfig {
                horizontal_pod_autoscaler_sync_period: hpa_sync_period,
                controllers,
                servicelb_pool,
                root_ca_pem,
                ..Default::default()
            };
            berth_controllers::run(client, config, token).await?;
            Ok(())
        });
    }
    if !args.disable_agent {
        if is_root() {
            let (client, token) = (client.clone(), cancel.child_token());
            let config = kubelet_config(args)?;
            components.spawn("agent", cancel, async move {
                berth_agent::kubelet::run(client, config, token).await?;
                Ok(())
            });
        } else {
            tracing::warn!("the agent needs root (runc, network namespaces); running the control plane only");
        }
    }
    if !args.disable_agent {
        let kubelet = kubelet_config(args)?;
        let (node, ip) = (&kubelet.node_name, kubelet.node_ip);
        if let Some(config) = super::proxy::config(&args.proxy, node, ip, &args.service_cidr, &args.cluster_cidr)? {
            components.spawn("proxy", cancel, super::proxy::run(client.clone(), config, cancel.child_token()));
        }
    }
    // Cluster DNS runs beside the kubelet (as root), like the CoreDNS pod of a k3s node.
    if !args.disable_agent && is_root() && !args.dns.disabled(&args.disable) {
        let kubelet = kubelet_config(args)?;
        let cluster_dns = args.dns.cluster_dns_ip(&args.service_cidr)?;
        let config = args.dns.config(&kubelet.node_name, kubelet.node_ip);
        components.spawn("dns", cancel, super::dns::run(client.clone(), cluster_dns, config, cancel.child_token()));
    }
    if args.sim.sim_nodes > 0 {
        let (client, token, config) = (client.clone(), cancel.child_token(), args.sim.config());
        components.spawn("sim-nodes", cancel, async move {
            berth_agent::sim::run(client, config, token).await?;
            Ok(())
        });
    }
    if let Some(path) = &args.cluster_autoscaler_config {
        let config = berth_autoscaler::AutoscalerConfig::load(path)?;
        let providers = autoscaler_providers(&client, args, join, cancel)?;
        let (client, token) = (client.clone(), cancel.child_token());
        components.spawn("cluster-autoscaler", cancel, async move {
            berth_autoscaler::run(client, config, providers, token).await;
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

/// How nodes this server starts (the cluster autoscaler's `local` provider) join it.
pub struct Join {
    /// `https://HOST:PORT` of the apiserver.
    pub url: String,
    /// The join token (`K10…`).
    pub token: String,
}

/// The cluster autoscaler's node providers: `sim` nodes in this process (their pod ranges from
/// 10.128.0.0/10, apart from `--sim-nodes`' range) and `local` `berth agent` processes.
fn autoscaler_providers(
    client: &kube::Client,
    args: &ServerArgs,
    join: &Join,
    cancel: &CancellationToken,
) -> anyhow::Result<HashMap<ProviderKind, Arc<dyn NodeProvider>>> {
    use berth_autoscaler::provider::local::{LocalProvider, LocalProviderConfig};
    use berth_autoscaler::provider::sim::SimProvider;
    let data_dir = args.data_dir.clone().unwrap_or_else(super::server::default_data_dir);
    let berth = std::env::current_exe().context("failed to find the berth binary for the local node provider")?;
    let local = LocalProvider::new(LocalProviderConfig {
        berth,
        server: join.url.clone(),
        token: join.token.clone(),
        data_dir: data_dir.join("autoscaler"),
    });
    let sim = SimProvider::new(client.clone(), "10.128.0.0/10".to_string(), cancel.child_token());
    Ok(HashMap::from([
        (ProviderKind::Local, Arc::new(local) as Arc<dyn NodeProvider>),
        (ProviderKind::Sim, Arc::new(sim) as Arc<dyn NodeProvider>),
    ]))
}

/// The controller list and load balancer pool from `--disable servicelb` and `--servicelb-pool`.
fn servicelb_settings(args: &ServerArgs) -> anyhow::Result<(Vec<String>, Option<berth_controllers::servicelb::Pool>)> {
    let mut controllers = vec!["*".to_string()];
    if args.disable.iter().any(|d| d == berth_controllers::servicelb::NAME) {
        controllers.push(format!("-{}", berth_controllers::servicelb::NAME));
    }
    let pool = match &args.servicelb_pool {
        Some(cidr) => Some(
            berth_controllers::servicelb::Pool::parse(cidr)
                .with_context(|| format!("--servicelb-pool {cidr:?} is not an IPv4 CIDR"))?,
        ),
        None => None,
    };
    Ok((controllers, pool))
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// The kubelet's configuration from the server flags (its data lives in DATA_DIR/agent); the
/// server's node is the control-plane node.
fn kubelet_config(args: &ServerArgs) -> anyhow::Result<berth_agent::kubelet::KubeletConfig> {
    let data_dir = args.data_dir.clone().unwrap_or_else(super::server::default_data_dir);
    let mut config = args.kubelet.config(&data_dir)?;
    config.node_labels.entry("node-role.kubernetes.io/control-plane".to_string()).or_insert_with(|| "true".to_string());
    config.cluster_dns = args.dns.cluster_dns_ip(&args.service_cidr).ok();
    config.cluster_domain = args.dns.cluster_domain.clone();
    Ok(config)
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
