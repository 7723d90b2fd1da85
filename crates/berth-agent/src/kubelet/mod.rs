//! The kubelet: registers this host as a Node, renews its Lease, and runs one worker per pod
//! bound to it (sandbox network, containers in runc, status, restarts, deletion). An API client
//! like any other component; touches the host through the agent's building blocks.
//!
//! | module | what it does |
//! |---|---|
//! | [`node`] | Node registration and status (capacity, addresses, conditions) |
//! | [`lease`] | the heartbeat Lease in `kube-node-lease` |
//! | [`pod_worker`] | one task per pod: start, watch, restart, terminate |
//! | [`status`] | pod status calculation (pure) |
//! | [`static_pods`] | pods from manifest files (`--pod-manifest-path`) and their mirror pods |
//! | [`container`] | env, `/etc/hosts`, mounts, ids, CrashLoopBackOff (pure) |
//! | [`sandbox`] | the pod directory and its network namespace |
//! | [`dns_config`] | the pod's resolv.conf from dnsPolicy/dnsConfig (pure) |
//! | [`events`] | core/v1 Events from the kubelet |
//! | [`probe`], [`hooks`] | liveness/readiness/startup probes; postStart and preStop hooks |
//! | [`cgroup`] | cgroup paths, limits from requests/limits, QoS class, OOM detection |
//! | [`volumes`] | emptyDir, hostPath, configMap, secret, downwardAPI and projected volumes |
//! | [`image_pull`] | imagePullPolicy, pull secrets and registry pulls for a container |
//! | [`logs`], [`server`], [`stats`] | CRI log files; the HTTPS server (logs, exec, port-forward); cgroup stats |

pub mod cgroup;
pub mod container;
pub mod dns_config;
pub mod events;
pub mod hooks;
pub mod image_pull;
pub mod lease;
pub mod logs;
pub mod node;
pub mod pod_worker;
pub mod probe;
pub mod sandbox;
pub mod server;
pub mod static_pods;
pub mod stats;
pub mod status;
pub mod volumes;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio_util::sync::CancellationToken;

use crate::image::ImageStore;
use crate::network::{BridgeNetworkOptions, CniConfig, CniNetwork, PodCidr};
use crate::runtime::{Runc, Runtime};

/// How often the Lease is renewed.
pub const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);
/// How often the Node conditions are written.
pub const NODE_STATUS_INTERVAL: Duration = Duration::from_secs(30);

/// Kubelet settings (`berth server` flags).
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    pub node_name: String,
    pub node_ip: IpAddr,
    /// `DATA_DIR/agent`: images, pods, runc state, CNI state.
    pub data_dir: PathBuf,
    /// The OCI runtime binary (`runc`, or `crun`).
    pub runc: PathBuf,
    pub cni_plugin_dirs: Vec<PathBuf>,
    /// The Linux bridge pods attach to.
    pub bridge: String,
    pub netns_dir: PathBuf,
    pub is_gateway: bool,
    pub ip_masq: bool,
    /// A directory of static pod manifests (`--pod-manifest-path`), watched by the kubelet.
    pub pod_manifest_path: Option<PathBuf>,
    /// The cluster DNS IP written into ClusterFirst pods' resolv.conf (`--cluster-dns`); `None`
    /// gives them the host's resolv.conf.
    pub cluster_dns: Option<IpAddr>,
    /// The cluster domain of the pods' search list (`--cluster-domain`).
    pub cluster_domain: String,
    /// The kubelet server's port (`--kubelet-port`; 0: any free port, published in the Node's
    /// `daemonEndpoints`). Set to the bound port once listening.
    pub kubelet_port: u16,
    /// The CA whose client certificates the kubelet server requires (the cluster CA); not
    /// checked when the file does not exist. Default: `<data_dir>/../tls/server-ca.crt`.
    pub client_ca_file: Option<PathBuf>,
    /// The image store, when not `<data_dir>/images` (`--image-store`: nodes on one host may share
    /// one; it is safe for concurrent use).
    pub image_store: Option<PathBuf>,
    /// DiskPressure below this much free space on the data dir's filesystem, in percent
    /// (`--eviction-hard nodefs.available<10%`).
    pub min_disk_free_percent: u8,
    /// Labels the Node gets besides the well-known ones (`--node-label`).
    pub node_labels: std::collections::BTreeMap<String, String>,
    /// Air-gapped (`--airgap`): images come from `berth image import`; only registries on
    /// loopback are ever asked.
    pub airgap: bool,
}

impl KubeletConfig {
    /// Defaults for an agent data dir: hostname, first host IPv4, `runc` on PATH, plugins from
    /// `/usr/lib/cni` and `/opt/cni/bin`, bridge `berth0`.
    pub fn new(data_dir: PathBuf) -> Self {
        KubeletConfig {
            node_name: node::hostname(),
            node_ip: node::default_node_ip(),
            data_dir: data_dir.clone(),
            runc: PathBuf::from("runc"),
            cni_plugin_dirs: vec![PathBuf::from("/usr/lib/cni"), PathBuf::from("/opt/cni/bin")],
            bridge: "berth0".to_string(),
            netns_dir: PathBuf::from(crate::network::DEFAULT_NETNS_DIR),
            is_gateway: true,
            ip_masq: true,
            pod_manifest_path: None,
            cluster_dns: None,
            cluster_domain: "cluster.local".to_string(),
            kubelet_port: 10250,
            image_store: None,
            min_disk_free_percent: 10,
            node_labels: std::collections::BTreeMap::new(),
            airgap: false,
            client_ca_file: data_dir.parent().map(|p| p.join("tls").join("server-ca.crt")),
        }
    }

    /// The image store directory.
    pub fn images_dir(&self) -> PathBuf {
        self.image_store.clone().unwrap_or_else(|| self.data_dir.join("images"))
    }
}

/// Errors of the kubelet; each names what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("failed to {what} {name}")]
    Api {
        what: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "node {0} has no spec.podCIDR (the apiserver assigns one when a Node is created; delete the Node to get one)"
    )]
    NoPodCidr(String),
    #[error("invalid pod CIDR of node {node}")]
    PodCidr {
        node: String,
        #[source]
        source: crate::network::CniError,
    },
    #[error("failed to open the image store")]
    Images(#[source] crate::image::ImageError),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error("pod network of {pod}")]
    Network {
        pod: String,
        #[source]
        source: crate::network::NetworkError,
    },
    #[error("container dir {}", container.display())]
    Snapshot {
        container: PathBuf,
        #[source]
        source: crate::snapshot::SnapshotError,
    },
    #[error("I/O on {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What every pod worker shares.
pub struct Shared {
    pub client: kube::Client,
    pub config: KubeletConfig,
    pub images: ImageStore,
    pub runtime: Arc<dyn Runtime>,
    pub network: CniNetwork,
    pub events: events::Recorder,
}

/// Runs the kubelet until `cancel` fires. Containers keep running when it stops; the next start
/// adopts them.
pub async fn run(
    client: kube::Client,
    mut config: KubeletConfig,
    cancel: CancellationToken,
) -> Result<(), KubeletError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|source| KubeletError::Io { path: config.data_dir.clone(), source })?;
    let images = ImageStore::open(config.images_dir()).map_err(KubeletError::Images)?;
    let runtime: Arc<dyn Runtime> = Arc::new(Runc::with_binary(&config.data_dir, config.runc.clone())?);
    let kubelet_listener = server::listen(&mut config).await;
    let node = node::register(&client, &config).await?;
    let cidr = node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.clone())
        .filter(|c| !c.is_empty())
        .ok_or_else(|| KubeletError::NoPodCidr(config.node_name.clone()))?;
    let pod_cidr: PodCidr =
        cidr.parse().map_err(|source| KubeletError::PodCidr { node: config.node_name.clone(), source })?;
    let mut options = BridgeNetworkOptions::new(pod_cidr);
    options.bridge = config.bridge.clone();
    options.is_gateway = config.is_gateway;
    options.ip_masq = config.ip_masq;
    options.ipam_data_dir = Some(config.data_dir.join("cni").join("networks"));
    let cni = CniConfig::bridge(&options)
        .map_err(|source| KubeletError::PodCidr { node: config.node_name.clone(), source })?
        .with_plugin_dirs(config.cni_plugin_dirs.clone());
    let network = CniNetwork::new(cni, config.netns_dir.clone(), config.data_dir.join("network"));
    tracing::info!(node = %config.node_name, pod_cidr = %cidr, bridge = %config.bridge, "kubelet registered node");
    let shared = Arc::new(Shared {
        events: events::Recorder::new(client.clone(), &config.node_name),
        client: client.clone(),
        config,
        images,
        runtime,
        network,
    });
    server::spawn(&shared, kubelet_listener, cancel.clone());
    tokio::spawn(heartbeat(shared.clone(), node, cancel.clone()));
    let static_pods = tokio::spawn(static_pods::run(shared.clone(), cancel.clone()));
    watch_pods(shared, cancel).await;
    let _ = static_pods.await;
    Ok(())
}

/// Renews the Lease and writes the Node conditions until cancelled. Failures are logged.
async fn heartbeat(shared: Arc<Shared>, node: k8s_openapi::api::core::v1::Node, cancel: CancellationToken) {
    let mut lease_tick = tokio::time::interval(LEASE_RENEW_INTERVAL);
    let mut status_tick = tokio::time::interval(NODE_STATUS_INTERVAL);
    status_tick.tick().await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = lease_tick.tick() => {
                if let Err(e) = lease::renew(&shared.client, &node).await {
                    tracing::warn!(error = %error_chain(&e), "lease renewal failed");
                }
            }
            _ = status_tick.tick() => {
                if let Err(e) = node::update_status(&shared.client, &shared.config).await {
                    tracing::warn!(error = %error_chain(&e), "node status update failed");
                }
            }
        }
    }
}

/// An error and its sources on one line.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        s.push_str(": ");
        s.push_str(&e.to_string());
        cur = e.source();
    }
    s
}

/// Watches the pods bound to this node and keeps one worker per pod.
async fn watch_pods(shared: Arc<Shared>, cancel: CancellationToken) {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let selector = format!("spec.nodeName={}", shared.config.node_name);
    let stream = watcher::watcher(api, watcher::Config::default().fields(&selector)).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut workers: HashMap<String, pod_worker::Handle> = HashMap::new();
    let mut listed: HashSet<String> = HashSet::new();
    let mut first_list = true;
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => break,
            event = stream.next() => event,
        };
        workers.retain(|_, w| !w.is_finished());
        match event {
            None => break,
            Some(Err(e)) => tracing::warn!(error = %error_chain(&e), "pod watch failed; retrying"),
            Some(Ok(Event::Init)) => listed.clear(),
            Some(Ok(Event::InitApply(pod))) => {
                if let Some(uid) = pod.metadata.uid.clone() {
                    listed.insert(uid);
                }
                dispatch(&shared, &mut workers, pod, &cancel);
            }
            Some(Ok(Event::Apply(pod))) => dispatch(&shared, &mut workers, pod, &cancel),
            Some(Ok(Event::Delete(pod))) => {
                if let Some(w) = pod.metadata.uid.as_ref().and_then(|uid| workers.get(uid)) {
                    w.gone();
                }
            }
            Some(Ok(Event::InitDone)) => {
                for (uid, w) in &workers {
                    if !listed.contains(uid) {
                        w.gone();
                    }
                }
                if first_list {
                    first_list = false;
                    let mut live = listed.clone();
                    live.extend(static_pods::manifest_uids(&shared.config));
                    cleanup_orphans(&shared, &live).await;
                }
            }
        }
    }
    // Workers stop with `cancel` and leave their containers running.
    for (_, w) in workers {
        w.join().await;
    }
}

fn dispatch(
    shared: &Arc<Shared>,
    workers: &mut HashMap<String, pod_worker::Handle>,
    pod: Pod,
    cancel: &CancellationToken,
) {
    // A mirror pod is the API's view of a static pod, which static_pods runs.
    if static_pods::is_mirror(&pod) {
        return;
    }
    let Some(uid) = pod.metadata.uid.clone() else { return };
    match workers.get(&uid) {
        Some(w) => w.update(pod),
        None => {
            workers.insert(uid, pod_worker::Handle::spawn(shared.clone(), pod, cancel.child_token()));
        }
    }
}

/// Removes containers, networks and directories of pods that no longer exist (after a restart of
/// the kubelet while pods were deleted).
async fn cleanup_orphans(shared: &Shared, live: &HashSet<String>) {
    let mut orphans: HashSet<String> = HashSet::new();
    match shared.runtime.list().await {
        Ok(ids) => {
            for id in ids {
                let Some((uid, _)) = container::parse_container_id(&id) else { continue };
                if !live.contains(uid) {
                    if let Err(e) = shared.runtime.delete(&id, true).await {
                        tracing::warn!(container = %id, error = %error_chain(&e), "failed to remove orphaned container");
                    }
                    orphans.insert(uid.to_string());
                }
            }
        }
        Err(e) => tracing::warn!(error = %error_chain(&e), "failed to list containers"),
    }
    if let Ok(entries) = std::fs::read_dir(shared.config.data_dir.join("pods")) {
        for entry in entries.flatten() {
            if let Some(uid) = entry.file_name().to_str()
                && !live.contains(uid)
            {
                orphans.insert(uid.to_string());
            }
        }
    }
    for uid in orphans {
        tracing::info!(pod = %uid, "cleaning up a pod that no longer exists");
        if let Err(e) = sandbox::teardown(shared, &uid, "", "").await {
            tracing::warn!(pod = %uid, error = %error_chain(&e), "failed to clean up orphaned pod");
        }
    }
}
