//! Pod networking: one network namespace per pod, wired up by CNI plugins.
//!
//! | module | what it does |
//! |---|---|
//! | [`netns`] | named network namespaces pinned by bind mounts; run code inside one |
//! | [`cni`] | conflists (the default bridge network from a [`PodCidr`]) and plugin invocation |
//! | [`pod`] | the [`PodNetwork`] trait the kubelet uses, and its CNI implementation |
//!
//! May touch the host's network (through the plugins) and mounts (netns files); never the API.

pub mod cni;
pub mod netns;
pub mod pod;

pub use cni::{
    BridgeNetworkOptions, CniCommand, CniConfig, CniError, CniResult, NetworkConfigList, PodCidr, PortMapping,
    RuntimeParams,
};
pub use netns::{DEFAULT_NETNS_DIR, NetNs, NetNsError};
pub use pod::{CniNetwork, NetworkError, PodNetwork, PodNetworkRequest, PodNetworkStatus};
