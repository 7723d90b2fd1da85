//! The kubelet's flags, the same for `berth server` (its embedded agent) and `berth agent`, and
//! the `KubeletConfig` they make.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::bail;
use berth_agent::kubelet::KubeletConfig;
use clap::Args;

/// Flags of the node's kubelet.
#[derive(Debug, Clone, Args)]
pub struct KubeletArgs {
    /// Node name [default: the hostname].
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// IP address the node advertises [default: the first non-loopback IPv4 of the host].
    #[arg(long, value_name = "IP")]
    pub node_ip: Option<std::net::IpAddr>,
    /// Labels to add to the Node (repeat or comma-separate): `key=value`.
    #[arg(long, value_name = "KEY=VALUE", value_delimiter = ',')]
    pub node_label: Vec<String>,
    /// Port of the kubelet's HTTPS server (logs, exec, port-forward, stats) on the node IP; 0
    /// picks a free port and publishes it in the Node's daemonEndpoints.
    #[arg(long, default_value_t = 10250, value_name = "PORT")]
    pub kubelet_port: u16,
    /// The OCI runtime binary containers run with (`runc`, or `crun`).
    #[arg(long, default_value = "runc", value_name = "PATH")]
    pub runc: PathBuf,
    /// Directories with the CNI plugins (bridge, host-local, portmap, loopback).
    #[arg(long, value_name = "DIR", default_values = ["/usr/lib/cni", "/opt/cni/bin"])]
    pub cni_bin_dir: Vec<PathBuf>,
    /// The Linux bridge pods are attached to.
    #[arg(long, default_value = "berth0", value_name = "NAME")]
    pub cni_bridge: String,
    /// Where pod network namespaces are pinned.
    #[arg(long, default_value = "/run/berth/netns", value_name = "DIR")]
    pub netns_dir: PathBuf,
    /// Do not give the bridge the pods' gateway address (the bridge plugin then leaves the host's
    /// ip_forward alone).
    #[arg(long)]
    pub no_cni_gateway: bool,
    /// Do not masquerade traffic from pods that leaves the pod network.
    #[arg(long)]
    pub no_ip_masq: bool,
    /// A directory of static pod manifests (YAML or JSON Pods) the kubelet runs.
    #[arg(long, value_name = "DIR")]
    pub pod_manifest_path: Option<PathBuf>,
    /// The image store to use instead of DATA_DIR/agent/images (nodes on one host may share one).
    #[arg(long, value_name = "DIR")]
    pub image_store: Option<PathBuf>,
    /// The hard eviction threshold of the node filesystem, as the kubelet's flag:
    /// `nodefs.available<N%` (below it the node reports DiskPressure).
    #[arg(long, value_name = "SIGNAL<N%", default_value = "nodefs.available<10%", value_parser = parse_eviction_hard)]
    pub eviction_hard: u8,
    /// Air-gapped node: images come from `berth image import`; only registries on loopback are
    /// ever asked for an image.
    #[arg(long)]
    pub airgap: bool,
}

/// Parses `nodefs.available<N%` into N.
fn parse_eviction_hard(text: &str) -> Result<u8, String> {
    text.strip_prefix("nodefs.available<")
        .and_then(|p| p.strip_suffix('%'))
        .and_then(|n| n.parse::<u8>().ok())
        .filter(|n| *n <= 100)
        .ok_or_else(|| format!("{text:?}: expected nodefs.available<N% with N from 0 to 100"))
}

/// Parses `key=value` node labels.
fn parse_labels(labels: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for label in labels {
        match label.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_string(), v.to_string());
            }
            _ => bail!("--node-label {label:?}: expected key=value"),
        }
    }
    Ok(out)
}

impl KubeletArgs {
    /// The kubelet configuration for the state under `data_dir` (the kubelet's is
    /// DATA_DIR/agent).
    pub fn config(&self, data_dir: &Path) -> anyhow::Result<KubeletConfig> {
        let mut config = KubeletConfig::new(data_dir.join("agent"));
        if let Some(name) = &self.node_name {
            config.node_name = name.clone();
        }
        if let Some(ip) = self.node_ip {
            config.node_ip = ip;
        }
        config.node_labels = parse_labels(&self.node_label)?;
        config.kubelet_port = self.kubelet_port;
        config.runc = self.runc.clone();
        config.cni_plugin_dirs = self.cni_bin_dir.clone();
        config.bridge = self.cni_bridge.clone();
        config.netns_dir = self.netns_dir.clone();
        config.is_gateway = !self.no_cni_gateway;
        config.ip_masq = !self.no_ip_masq;
        config.pod_manifest_path = self.pod_manifest_path.clone();
        config.airgap = self.airgap;
        config.min_disk_free_percent = self.eviction_hard;
        config.image_store = self.image_store.clone();
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_labels_must_be_key_value_pairs() {
        let labels = parse_labels(&["pool=a".into(), "empty=".into()]).expect("valid");
        assert_eq!(labels["pool"], "a");
        assert_eq!(labels["empty"], "");
        assert!(parse_labels(&["novalue".into()]).is_err());
        assert!(parse_labels(&["=x".into()]).is_err());
        assert_eq!(parse_eviction_hard("nodefs.available<5%"), Ok(5));
        assert!(parse_eviction_hard("memory.available<5%").is_err());
    }
}
