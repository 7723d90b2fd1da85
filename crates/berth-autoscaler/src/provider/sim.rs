//! The `sim` provider: each node is a sim node (crate berth-agent, module `sim`) running in this
//! process: a real Node and Lease whose pods go Running at once, with the group template's
//! capacity, labels and taints. For autoscaling at scale without processes.

use std::collections::HashMap;

use async_trait::async_trait;
use berth_agent::sim::{self, SimConfig, SimHandle};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::{NodeProvider, ProviderError};
use crate::config::{NODE_GROUP_LABEL, NodeGroupConfig};

/// Sim nodes started by this provider, by node name.
pub struct SimProvider {
    client: kube::Client,
    /// The range the sim nodes' pod CIDRs come from (node `index` gets the `index`-th /24).
    pod_cidr: String,
    nodes: Mutex<HashMap<String, (SimHandle, CancellationToken)>>,
    cancel: CancellationToken,
}

impl SimProvider {
    /// A provider whose nodes stop when `cancel` fires.
    pub fn new(client: kube::Client, pod_cidr: String, cancel: CancellationToken) -> Self {
        SimProvider { client, pod_cidr, nodes: Mutex::new(HashMap::new()), cancel }
    }

    /// The sim settings of node `index` of `group`, named `<group>-<index>`. Pure.
    pub fn sim_config(&self, group: &NodeGroupConfig, index: usize) -> SimConfig {
        let capacity =
            |k: &str, default: &str| group.template.capacity.get(k).cloned().unwrap_or_else(|| default.into());
        let mut labels = group.template.labels.clone();
        labels.insert(NODE_GROUP_LABEL.to_string(), group.name.clone());
        SimConfig {
            nodes: 1,
            first_index: index,
            prefix: format!("{}-", group.name),
            cpu: capacity("cpu", "4"),
            memory: capacity("memory", "16Gi"),
            pods: capacity("pods", "110"),
            pod_cidr: self.pod_cidr.clone(),
            labels,
            taints: group.template.taints.clone(),
            ..SimConfig::default()
        }
    }
}

#[async_trait]
impl NodeProvider for SimProvider {
    async fn create_node(&self, group: &NodeGroupConfig, name: &str, index: usize) -> Result<(), ProviderError> {
        let config = self.sim_config(group, index);
        let cancel = self.cancel.child_token();
        let handle = sim::start(self.client.clone(), config, cancel.clone())
            .await
            .map_err(|e| ProviderError::Start { node: name.to_string(), message: e.to_string() })?;
        if handle.nodes.first().map(String::as_str) != Some(name) {
            cancel.cancel();
            return Err(ProviderError::Start {
                node: name.to_string(),
                message: format!("the sim registered {:?} instead", handle.nodes),
            });
        }
        self.nodes.lock().await.insert(name.to_string(), (handle, cancel));
        Ok(())
    }

    async fn delete_node(&self, _group: &NodeGroupConfig, name: &str) -> Result<(), ProviderError> {
        if let Some((handle, cancel)) = self.nodes.lock().await.remove(name) {
            cancel.cancel();
            handle.join().await;
        }
        Ok(())
    }
}
