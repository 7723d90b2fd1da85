//! Where nodes come from: the [`NodeProvider`] trait the autoscaler drives, and its two
//! implementations, [`sim`] (sim nodes in this process) and [`local`] (`berth agent` processes on
//! this machine, each a real node).

pub mod local;
pub mod sim;

use async_trait::async_trait;

use crate::config::NodeGroupConfig;

/// Errors of a provider; each names the node.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("failed to start node {node}: {message}")]
    Start { node: String, message: String },
    #[error("failed to stop node {node}: {message}")]
    Stop { node: String, message: String },
}

/// Makes and removes the nodes of node groups. The autoscaler names each node; the node then
/// registers itself through the API (the autoscaler waits for it there).
#[async_trait]
pub trait NodeProvider: Send + Sync {
    /// Starts node `name` of `group`; `index` is unique among the group's live nodes.
    async fn create_node(&self, group: &NodeGroupConfig, name: &str, index: usize) -> Result<(), ProviderError>;
    /// Stops node `name` (its pods were moved first). Stopping an unknown node is Ok. The autoscaler
    /// deletes the Node object afterwards.
    async fn delete_node(&self, group: &NodeGroupConfig, name: &str) -> Result<(), ProviderError>;
}
