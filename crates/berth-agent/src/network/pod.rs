//! The pod sandbox's network: [`PodNetwork`] is what the kubelet calls when it creates and
//! removes a pod sandbox; [`CniNetwork`] implements it with one netns per pod (named after the
//! pod uid) plus the `loopback` plugin and a conflist.
//!
//! Each successful setup is recorded as `<state dir>/<pod uid>.json` (the final ADD result and
//! what DEL needs), so that after an agent restart a second setup returns the existing address
//! (after a CNI CHECK) and teardown can hand plugins their `prevResult`. May create and delete
//! netns files and spawn CNI plugins; never the API.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cni::{self, CniConfig, CniError, PortMapping, RuntimeParams};
use super::netns::{NetNs, NetNsError};

/// The interface name pods get, as with every Kubernetes CNI setup.
pub const POD_IFNAME: &str = "eth0";

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("invalid pod uid {0:?} for a network namespace name")]
    InvalidPodUid(String),
    #[error("failed to create the network namespace of pod {uid}")]
    CreateNetNs {
        uid: String,
        #[source]
        source: NetNsError,
    },
    #[error("failed to delete the network namespace of pod {uid}")]
    DeleteNetNs {
        uid: String,
        #[source]
        source: NetNsError,
    },
    #[error("failed to set up loopback for pod {uid}")]
    Loopback {
        uid: String,
        #[source]
        source: Box<CniError>,
    },
    #[error("failed to add pod {uid} to network {network}")]
    Add {
        uid: String,
        network: String,
        #[source]
        source: Box<CniError>,
    },
    #[error("failed to remove pod {uid} from network {network}")]
    Del {
        uid: String,
        network: String,
        #[source]
        source: Box<CniError>,
    },
    #[error("failed to read the network record {path}")]
    ReadRecord {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to write the network record {path}")]
    WriteRecord {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("a blocking network task failed")]
    Join(#[source] tokio::task::JoinError),
}

/// The pod a sandbox network is for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodNetworkRequest {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// `hostPort`s of the pod's containers.
    pub port_mappings: Vec<PortMapping>,
}

/// The result of [`PodNetwork::setup`]: where the containers join, and the pod's IPs
/// (`status.podIPs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNetworkStatus {
    pub netns: PathBuf,
    pub ips: Vec<IpAddr>,
}

/// The pod sandbox network as the kubelet sees it.
///
/// # Guarantees
/// Both calls are idempotent: `setup` of a pod that is already set up returns its existing
/// status, `teardown` of a pod that is gone (or half set up) succeeds.
#[async_trait::async_trait]
pub trait PodNetwork: Send + Sync {
    async fn setup(&self, req: &PodNetworkRequest) -> Result<PodNetworkStatus, NetworkError>;
    async fn teardown(&self, req: &PodNetworkRequest) -> Result<(), NetworkError>;
}

/// What a successful setup leaves behind for the next setup and teardown.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    netns: PathBuf,
    #[serde(rename = "portMappings", default)]
    port_mappings: Vec<PortMapping>,
    /// The conflist's final ADD result.
    result: Value,
}

/// [`PodNetwork`] through CNI plugins.
#[derive(Debug, Clone)]
pub struct CniNetwork {
    config: CniConfig,
    loopback: CniConfig,
    netns_dir: PathBuf,
    state_dir: PathBuf,
}

impl CniNetwork {
    /// `netns_dir` holds the pods' netns files (normally [`super::DEFAULT_NETNS_DIR`]),
    /// `state_dir` the setup records (under the agent's data dir). The loopback plugin is looked
    /// up in `config`'s plugin dirs.
    pub fn new(config: CniConfig, netns_dir: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        let loopback = cni::loopback_config().with_plugin_dirs(config.plugin_dirs.clone());
        CniNetwork { config, loopback, netns_dir: netns_dir.into(), state_dir: state_dir.into() }
    }

    /// The netns path a pod gets.
    pub fn netns_path(&self, uid: &str) -> PathBuf {
        self.netns_dir.join(uid)
    }

    fn record_path(&self, uid: &str) -> PathBuf {
        self.state_dir.join(format!("{uid}.json"))
    }

    fn runtime_params(&self, req: &PodNetworkRequest, netns: PathBuf, ifname: &str) -> RuntimeParams {
        RuntimeParams {
            container_id: req.uid.clone(),
            netns,
            ifname: ifname.to_string(),
            args: cni::kubernetes_args(&req.namespace, &req.name, &req.uid, &req.uid),
            port_mappings: req.port_mappings.clone(),
        }
    }

    fn read_record(&self, uid: &str) -> Result<Option<Record>, NetworkError> {
        let path = self.record_path(uid);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(NetworkError::ReadRecord { path, source }),
        };
        match serde_json::from_slice(&text) {
            Ok(record) => Ok(Some(record)),
            Err(e) => {
                // A torn or foreign file must not wedge the pod: treat it as missing.
                tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable network record");
                Ok(None)
            }
        }
    }

    fn write_record(&self, uid: &str, record: &Record) -> Result<(), NetworkError> {
        let path = self.record_path(uid);
        let err = |source| NetworkError::WriteRecord { path: path.clone(), source };
        std::fs::create_dir_all(&self.state_dir).map_err(err)?;
        let tmp = self.state_dir.join(format!(".{uid}.json.tmp"));
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| err(io::Error::other(e)))?;
        std::fs::write(&tmp, bytes).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)
    }

    fn remove_record(&self, uid: &str) -> Result<(), NetworkError> {
        let path = self.record_path(uid);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(NetworkError::WriteRecord { path, source }),
        }
    }

    /// The existing setup if the netns and record exist and the plugins CHECK it; otherwise
    /// cleans up what is left of an earlier attempt and returns `None`.
    async fn existing(&self, req: &PodNetworkRequest, ns: &NetNs) -> Result<Option<PodNetworkStatus>, NetworkError> {
        let rt = self.runtime_params(req, ns.path().to_path_buf(), POD_IFNAME);
        let Some(record) = self.read_record(&req.uid)? else {
            // Interrupted before the record was written: release whatever the plugins hold.
            if let Err(e) = self.config.del(&rt, None).await {
                tracing::warn!(pod = %req.uid, error = %e, "CNI DEL of a half set-up pod failed");
            }
            return Ok(None);
        };
        match self.config.check(&rt, &record.result).await {
            Ok(()) => {
                let result = cni::parse_result(&record.result, "record").map_err(|source| NetworkError::Add {
                    uid: req.uid.clone(),
                    network: self.config.list.name.clone(),
                    source: Box::new(source),
                })?;
                Ok(Some(PodNetworkStatus { netns: ns.path().to_path_buf(), ips: result.ips() }))
            }
            Err(e) => {
                tracing::warn!(pod = %req.uid, error = %e, "CNI CHECK failed; setting the pod network up again");
                let rt = RuntimeParams { port_mappings: record.port_mappings.clone(), ..rt };
                if let Err(e) = self.config.del(&rt, Some(&record.result)).await {
                    tracing::warn!(pod = %req.uid, error = %e, "CNI DEL after a failed CHECK failed");
                }
                self.remove_record(&req.uid)?;
                Ok(None)
            }
        }
    }

    /// ADD loopback and the conflist into `ns`; on failure undoes its own part.
    async fn add(&self, req: &PodNetworkRequest, ns: &NetNs) -> Result<PodNetworkStatus, NetworkError> {
        let lo = self.runtime_params(req, ns.path().to_path_buf(), "lo");
        self.loopback
            .add(&lo)
            .await
            .map_err(|source| NetworkError::Loopback { uid: req.uid.clone(), source: Box::new(source) })?;
        let rt = self.runtime_params(req, ns.path().to_path_buf(), POD_IFNAME);
        let result = match self.config.add(&rt).await {
            Ok(result) => result,
            Err(source) => {
                if let Err(e) = self.config.del(&rt, None).await {
                    tracing::warn!(pod = %req.uid, error = %e, "CNI DEL after a failed ADD failed");
                }
                let (uid, network) = (req.uid.clone(), self.config.list.name.clone());
                return Err(NetworkError::Add { uid, network, source: Box::new(source) });
            }
        };
        let record = Record {
            netns: ns.path().to_path_buf(),
            port_mappings: req.port_mappings.clone(),
            result: result.raw.clone(),
        };
        if let Err(e) = self.write_record(&req.uid, &record) {
            let _ = self.config.del(&rt, Some(&result.raw)).await;
            return Err(e);
        }
        Ok(PodNetworkStatus { netns: ns.path().to_path_buf(), ips: result.ips() })
    }
}

/// Pod uids become file and netns names and `CNI_CONTAINERID` (letters, digits, `_.-`).
fn validate_uid(uid: &str) -> Result<(), NetworkError> {
    let ok = !uid.is_empty()
        && uid.len() <= 128
        && uid != "."
        && uid != ".."
        && !uid.starts_with('.')
        && uid.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok { Ok(()) } else { Err(NetworkError::InvalidPodUid(uid.to_string())) }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, NetworkError> {
    tokio::task::spawn_blocking(f).await.map_err(NetworkError::Join)
}

fn open_existing(path: &Path) -> Option<NetNs> {
    NetNs::open(path).ok()
}

#[async_trait::async_trait]
impl PodNetwork for CniNetwork {
    async fn setup(&self, req: &PodNetworkRequest) -> Result<PodNetworkStatus, NetworkError> {
        validate_uid(&req.uid)?;
        let path = self.netns_path(&req.uid);
        let existing = {
            let path = path.clone();
            blocking(move || open_existing(&path)).await?
        };
        let ns = match existing {
            Some(ns) => {
                if let Some(status) = self.existing(req, &ns).await? {
                    return Ok(status);
                }
                ns
            }
            None => {
                let (dir, uid) = (self.netns_dir.clone(), req.uid.clone());
                blocking(move || {
                    // A leftover file that is no longer a mounted netns (e.g. after a crash).
                    NetNs::stale(dir.join(&uid)).delete()?;
                    NetNs::create_in(&dir, &uid)
                })
                .await?
                .map_err(|source| NetworkError::CreateNetNs { uid: req.uid.clone(), source })?
            }
        };
        match self.add(req, &ns).await {
            Ok(status) => Ok(status),
            Err(e) => {
                let ns = ns.clone();
                if let Ok(Err(del)) = blocking(move || ns.delete()).await {
                    tracing::warn!(pod = %req.uid, error = %del, "deleting the netns after a failed setup failed");
                }
                Err(e)
            }
        }
    }

    async fn teardown(&self, req: &PodNetworkRequest) -> Result<(), NetworkError> {
        validate_uid(&req.uid)?;
        let record = self.read_record(&req.uid)?;
        let path = self.netns_path(&req.uid);
        let ns = {
            let path = path.clone();
            blocking(move || open_existing(&path)).await?
        };
        // Plugins skip the in-namespace part for an empty CNI_NETNS and only release their
        // host-side state (IPAM, port mappings).
        let netns = ns.as_ref().map(|ns| ns.path().to_path_buf()).unwrap_or_default();
        let mut rt = self.runtime_params(req, netns, POD_IFNAME);
        if let Some(record) = &record
            && rt.port_mappings.is_empty()
        {
            rt.port_mappings = record.port_mappings.clone();
        }
        let network = self.config.list.name.clone();
        self.config.del(&rt, record.as_ref().map(|r| &r.result)).await.map_err(|source| NetworkError::Del {
            uid: req.uid.clone(),
            network,
            source: Box::new(source),
        })?;
        let lo = RuntimeParams { ifname: "lo".into(), port_mappings: Vec::new(), ..rt };
        if let Err(e) = self.loopback.del(&lo, None).await {
            tracing::warn!(pod = %req.uid, error = %e, "CNI DEL of loopback failed");
        }
        blocking(move || NetNs::stale(path).delete())
            .await?
            .map_err(|source| NetworkError::DeleteNetNs { uid: req.uid.clone(), source })?;
        self.remove_record(&req.uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_uids_that_could_escape_a_dir_are_rejected() {
        assert!(validate_uid("0b7a5c1e-6e53-4b8f-9a51-2f0f3d3c9a10").is_ok());
        for bad in ["", ".", "..", "../x", "a/b", ".hidden", "a b"] {
            assert!(validate_uid(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[tokio::test]
    async fn records_round_trip_and_torn_records_read_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let config =
            CniConfig::from_conflist(r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"}]}"#).unwrap();
        let net = CniNetwork::new(config, dir.path().join("netns"), dir.path().join("state"));
        assert!(net.read_record("u1").unwrap().is_none());
        let record = Record { netns: "/x".into(), port_mappings: vec![], result: serde_json::json!({"ips": []}) };
        net.write_record("u1", &record).unwrap();
        assert_eq!(net.read_record("u1").unwrap().unwrap().netns, PathBuf::from("/x"));
        std::fs::write(net.record_path("u1"), b"{torn").unwrap();
        assert!(net.read_record("u1").unwrap().is_none());
        net.remove_record("u1").unwrap();
        net.remove_record("u1").unwrap();
    }
}
