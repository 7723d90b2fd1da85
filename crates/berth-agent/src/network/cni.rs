//! CNI (Container Network Interface, spec 1.0.0) configuration lists and plugin invocation.
//!
//! [`CniConfig`] holds a conflist (the default Berth one is built from a [`PodCidr`] by
//! [`BridgeNetworkOptions::conflist`]) and runs its plugins as the spec says: binaries found in
//! the plugin dirs (`/usr/lib/cni`, `/opt/cni/bin`), parameters in `CNI_*` environment
//! variables, the per-plugin network config on stdin (with `name`, `cniVersion`, `prevResult`
//! and `runtimeConfig` for the capabilities a plugin declares), the result or a structured error
//! on stdout. ADD runs the plugins in order, chaining results; DEL runs them in reverse and keeps
//! going past failures. May spawn plugin processes (which change host networking); nothing else.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;

/// The CNI spec version Berth speaks.
pub const CNI_VERSION: &str = "1.0.0";

/// Where plugins are looked up by default: Debian's containernetworking-plugins, then upstream.
pub const DEFAULT_PLUGIN_DIRS: &[&str] = &["/usr/lib/cni", "/opt/cni/bin"];

/// How long one plugin invocation may take before it is killed.
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("invalid CNI network configuration list")]
    ParseConfig(#[source] serde_json::Error),
    #[error("failed to read CNI configuration {path}")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid CNI configuration: {0}")]
    InvalidConfig(String),
    #[error("invalid pod CIDR {0:?}")]
    InvalidCidr(String),
    #[error("CNI plugin {plugin:?} not found in {dirs:?}")]
    PluginNotFound { plugin: String, dirs: Vec<PathBuf> },
    #[error("failed to run CNI plugin {plugin}")]
    Spawn {
        plugin: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CNI plugin {plugin} timed out after {timeout:?} on {command}")]
    Timeout { plugin: String, command: CniCommand, timeout: Duration },
    #[error("CNI plugin {plugin} failed on {command}: {msg} (code {code}){}", details_suffix(.details))]
    Plugin { plugin: String, command: CniCommand, code: u32, msg: String, details: String },
    #[error("CNI plugin {plugin} failed on {command} with {status}: {output}")]
    PluginFailed { plugin: String, command: CniCommand, status: std::process::ExitStatus, output: String },
    #[error("CNI plugin {plugin} returned an invalid result on {command}")]
    InvalidResult {
        plugin: String,
        command: CniCommand,
        #[source]
        source: serde_json::Error,
    },
}

fn details_suffix(details: &str) -> String {
    if details.is_empty() { String::new() } else { format!(": {details}") }
}

/// The operation asked of a plugin (`CNI_COMMAND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CniCommand {
    Add,
    Del,
    Check,
}

impl CniCommand {
    pub fn as_str(self) -> &'static str {
        match self {
            CniCommand::Add => "ADD",
            CniCommand::Del => "DEL",
            CniCommand::Check => "CHECK",
        }
    }
}

impl fmt::Display for CniCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node's pod CIDR (`Node.spec.podCIDR`), e.g. `10.244.1.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodCidr {
    network: IpAddr,
    prefix_len: u8,
}

impl PodCidr {
    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip` lies inside this CIDR.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix_len)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix_len)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// The default route for this address family.
    fn default_route(&self) -> &'static str {
        if self.network.is_ipv4() { "0.0.0.0/0" } else { "::/0" }
    }
}

impl FromStr for PodCidr {
    type Err = CniError;

    fn from_str(s: &str) -> Result<Self, CniError> {
        let invalid = || CniError::InvalidCidr(s.to_string());
        let (addr, len) = s.split_once('/').ok_or_else(invalid)?;
        let network: IpAddr = addr.parse().map_err(|_| invalid())?;
        let prefix_len: u8 = len.parse().map_err(|_| invalid())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        if prefix_len > max {
            return Err(invalid());
        }
        // Reject host bits: `10.244.1.5/24` is almost certainly a typo for a node address.
        if mask_network(network, prefix_len) != network {
            return Err(invalid());
        }
        Ok(PodCidr { network, prefix_len })
    }
}

fn mask_network(ip: IpAddr, prefix_len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix_len)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix_len)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

impl fmt::Display for PodCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// Options of the default Berth network: `bridge` + `host-local` IPAM + `portmap`, the setup of
/// kubenet and of k3s' flannel-less mode.
#[derive(Debug, Clone)]
pub struct BridgeNetworkOptions {
    /// The network name (conflist `name`).
    pub name: String,
    /// The Linux bridge (at most 15 characters).
    pub bridge: String,
    pub pod_cidr: PodCidr,
    /// Give the bridge the gateway address and pods a default route through it (the bridge
    /// plugin then also enables IP forwarding on the host).
    pub is_gateway: bool,
    /// Masquerade traffic from pods leaving the pod CIDR (iptables rules on the host).
    pub ip_masq: bool,
    /// Let a pod reach itself through its Service address.
    pub hairpin_mode: bool,
    /// host-local's allocation state; the plugin's default (`/var/lib/cni/networks`) if `None`.
    pub ipam_data_dir: Option<PathBuf>,
    pub mtu: Option<u32>,
}

impl BridgeNetworkOptions {
    /// The defaults: network `berth`, bridge `cni0`, gateway, masquerading and hairpin on.
    pub fn new(pod_cidr: PodCidr) -> Self {
        BridgeNetworkOptions {
            name: "berth".to_string(),
            bridge: "cni0".to_string(),
            pod_cidr,
            is_gateway: true,
            ip_masq: true,
            hairpin_mode: true,
            ipam_data_dir: None,
            mtu: None,
        }
    }

    /// The conflist as JSON.
    pub fn conflist(&self) -> Value {
        let mut ipam = json!({
            "type": "host-local",
            "ranges": [[{ "subnet": self.pod_cidr.to_string() }]],
            "routes": [{ "dst": self.pod_cidr.default_route() }],
        });
        if let Some(dir) = &self.ipam_data_dir {
            ipam["dataDir"] = json!(dir);
        }
        let mut bridge = json!({
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": self.is_gateway,
            "ipMasq": self.ip_masq,
            "hairpinMode": self.hairpin_mode,
            "ipam": ipam,
        });
        if let Some(mtu) = self.mtu {
            bridge["mtu"] = json!(mtu);
        }
        json!({
            "cniVersion": CNI_VERSION,
            "name": self.name,
            "plugins": [
                bridge,
                { "type": "portmap", "capabilities": { "portMappings": true }, "snat": true },
            ],
        })
    }
}

/// A network configuration list as read from a `.conflist` file. Plugin configs stay JSON
/// objects so third-party plugins' fields pass through untouched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfigList {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub name: String,
    #[serde(rename = "disableCheck", default)]
    pub disable_check: bool,
    pub plugins: Vec<Map<String, Value>>,
}

/// A port a pod publishes on the host (`containers[].ports[].hostPort`), the `portMappings`
/// capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    #[serde(rename = "hostPort")]
    pub host_port: u16,
    #[serde(rename = "containerPort")]
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp` (lower case, as the CNI convention has it).
    pub protocol: String,
    #[serde(rename = "hostIP", default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// What the runtime tells the plugins about one attachment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuntimeParams {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: PathBuf,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS` pairs, e.g. `K8S_POD_NAMESPACE`.
    pub args: Vec<(String, String)>,
    /// For the `portMappings` capability.
    pub port_mappings: Vec<PortMapping>,
}

/// A plugin's successful result (spec 1.0.0 "Success"); `raw` is the exact JSON, chained to the
/// next plugin as `prevResult`.
#[derive(Debug, Clone, PartialEq)]
pub struct CniResult {
    pub parsed: ResultBody,
    pub raw: Value,
}

impl CniResult {
    /// The pod's addresses without prefix length.
    pub fn ips(&self) -> Vec<IpAddr> {
        self.parsed.ips.iter().filter_map(|ip| ip.address.split('/').next()?.parse().ok()).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct ResultBody {
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    #[serde(default)]
    pub interfaces: Vec<ResultInterface>,
    #[serde(default)]
    pub ips: Vec<ResultIp>,
    #[serde(default)]
    pub routes: Vec<ResultRoute>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ResultInterface {
    pub name: String,
    #[serde(default)]
    pub mac: String,
    /// The netns path for interfaces inside the container, empty for host-side ones.
    #[serde(default)]
    pub sandbox: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ResultIp {
    /// CIDR notation, e.g. `10.244.1.5/24`.
    pub address: String,
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default)]
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ResultRoute {
    pub dst: String,
    #[serde(default)]
    pub gw: Option<IpAddr>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: u32,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    details: String,
}

/// A conflist plus where its plugins live.
#[derive(Debug, Clone)]
pub struct CniConfig {
    pub list: NetworkConfigList,
    pub plugin_dirs: Vec<PathBuf>,
}

impl CniConfig {
    /// Parses a conflist; plugins are looked up in [`DEFAULT_PLUGIN_DIRS`].
    pub fn from_conflist(json: &str) -> Result<Self, CniError> {
        let list: NetworkConfigList = serde_json::from_str(json).map_err(CniError::ParseConfig)?;
        Self::from_list(list)
    }

    /// Reads a `.conflist` file.
    pub fn from_file(path: &Path) -> Result<Self, CniError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| CniError::ReadConfig { path: path.to_path_buf(), source })?;
        Self::from_conflist(&text)
    }

    /// The default Berth network (bridge + host-local + portmap).
    pub fn bridge(options: &BridgeNetworkOptions) -> Result<Self, CniError> {
        let list = serde_json::from_value(options.conflist()).map_err(CniError::ParseConfig)?;
        Self::from_list(list)
    }

    fn from_list(list: NetworkConfigList) -> Result<Self, CniError> {
        if list.name.is_empty() {
            return Err(CniError::InvalidConfig("the conflist has no name".into()));
        }
        if list.plugins.is_empty() {
            return Err(CniError::InvalidConfig(format!("network {} has no plugins", list.name)));
        }
        if let Some(i) = list.plugins.iter().position(|p| !p.get("type").is_some_and(Value::is_string)) {
            return Err(CniError::InvalidConfig(format!("plugin {i} of network {} has no type", list.name)));
        }
        Ok(CniConfig { list, plugin_dirs: DEFAULT_PLUGIN_DIRS.iter().map(PathBuf::from).collect() })
    }

    /// Replaces the plugin search path.
    pub fn with_plugin_dirs(mut self, dirs: Vec<PathBuf>) -> Self {
        self.plugin_dirs = dirs;
        self
    }

    /// ADD: every plugin in order, each getting the previous one's result; returns the last.
    pub async fn add(&self, rt: &RuntimeParams) -> Result<CniResult, CniError> {
        let mut prev: Option<Value> = None;
        for plugin in &self.list.plugins {
            let config = self.plugin_config(plugin, prev.as_ref(), rt);
            let out = invoke(&self.plugin_dirs, plugin_type(plugin), CniCommand::Add, &config, rt).await?;
            prev = Some(out);
        }
        let raw = prev.unwrap_or(Value::Null);
        parse_result(&raw, plugin_type(&self.list.plugins[self.list.plugins.len() - 1]))
    }

    /// DEL: every plugin in reverse order. Keeps going after a failure so one broken plugin
    /// does not leak the others' state, and returns the first error. `prev` is the recorded ADD
    /// result, if any (plugins must cope with its absence).
    pub async fn del(&self, rt: &RuntimeParams, prev: Option<&Value>) -> Result<(), CniError> {
        let mut first_error = None;
        for plugin in self.list.plugins.iter().rev() {
            let config = self.plugin_config(plugin, prev, rt);
            if let Err(e) = invoke(&self.plugin_dirs, plugin_type(plugin), CniCommand::Del, &config, rt).await {
                tracing::warn!(error = %e, network = %self.list.name, "CNI DEL failed");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// CHECK: every plugin in order with the recorded ADD result. A no-op if the conflist sets
    /// `disableCheck`.
    pub async fn check(&self, rt: &RuntimeParams, prev: &Value) -> Result<(), CniError> {
        if !self.supports_check() {
            return Ok(());
        }
        for plugin in &self.list.plugins {
            let config = self.plugin_config(plugin, Some(prev), rt);
            invoke(&self.plugin_dirs, plugin_type(plugin), CniCommand::Check, &config, rt).await?;
        }
        Ok(())
    }

    /// Whether CHECK may be called: not if the conflist disables it, and not for configs older
    /// than 0.4.0, which predate CHECK (plugins reject it).
    pub fn supports_check(&self) -> bool {
        let version: Vec<u32> = self.list.cni_version.split('.').map(|p| p.parse().unwrap_or(0)).collect();
        let at_least_0_4 = version.first().copied().unwrap_or(0) >= 1 || version.get(1).copied().unwrap_or(0) >= 4;
        !self.list.disable_check && at_least_0_4
    }

    /// The stdin of one plugin: its own config plus `name`, `cniVersion`, `prevResult` and the
    /// `runtimeConfig` entries for the capabilities it declares (spec "Deriving execution
    /// configuration from plugin configuration").
    fn plugin_config(&self, plugin: &Map<String, Value>, prev: Option<&Value>, rt: &RuntimeParams) -> Value {
        let mut config = plugin.clone();
        config.insert("name".into(), json!(self.list.name));
        config.insert("cniVersion".into(), json!(self.list.cni_version));
        config.remove("capabilities");
        let capabilities = plugin.get("capabilities").and_then(Value::as_object);
        let mut runtime_config = Map::new();
        if capabilities.and_then(|c| c.get("portMappings")).and_then(Value::as_bool) == Some(true)
            && !rt.port_mappings.is_empty()
        {
            runtime_config.insert("portMappings".into(), json!(rt.port_mappings));
        }
        if !runtime_config.is_empty() {
            config.insert("runtimeConfig".into(), Value::Object(runtime_config));
        }
        if let Some(prev) = prev {
            config.insert("prevResult".into(), prev.clone());
        }
        Value::Object(config)
    }
}

/// The loopback plugin's config, run on its own for `lo` before the pod network (as kubelet and
/// containerd do).
pub fn loopback_config() -> CniConfig {
    let mut plugin = Map::new();
    plugin.insert("type".into(), json!("loopback"));
    CniConfig {
        list: NetworkConfigList {
            cni_version: CNI_VERSION.into(),
            name: "cni-loopback".into(),
            disable_check: false,
            plugins: vec![plugin],
        },
        plugin_dirs: DEFAULT_PLUGIN_DIRS.iter().map(PathBuf::from).collect(),
    }
}

fn plugin_type(plugin: &Map<String, Value>) -> &str {
    plugin.get("type").and_then(Value::as_str).unwrap_or_default()
}

/// Finds `name` in the plugin dirs. Plugin types are bare names; anything with a path
/// separator could escape the dirs.
fn find_plugin(dirs: &[PathBuf], name: &str) -> Result<PathBuf, CniError> {
    let not_found = || CniError::PluginNotFound { plugin: name.to_string(), dirs: dirs.to_vec() };
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(not_found());
    }
    dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()).ok_or_else(not_found)
}

fn cni_args(args: &[(String, String)]) -> String {
    std::iter::once("IgnoreUnknown=1".to_string())
        .chain(args.iter().map(|(k, v)| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(";")
}

/// Runs one plugin binary and returns its stdout JSON (`null` for DEL/CHECK's empty output).
async fn invoke(
    dirs: &[PathBuf],
    plugin: &str,
    command: CniCommand,
    config: &Value,
    rt: &RuntimeParams,
) -> Result<Value, CniError> {
    let binary = find_plugin(dirs, plugin)?;
    let cni_path = std::env::join_paths(dirs).map_err(|e| CniError::InvalidConfig(e.to_string()))?;
    let spawn_err = |source| CniError::Spawn { plugin: binary.clone(), source };
    // The rest of the environment is inherited: plugins such as portmap find iptables via PATH.
    let mut child = tokio::process::Command::new(&binary)
        .env("CNI_COMMAND", command.as_str())
        .env("CNI_CONTAINERID", &rt.container_id)
        .env("CNI_NETNS", &rt.netns)
        .env("CNI_IFNAME", &rt.ifname)
        .env("CNI_ARGS", cni_args(&rt.args))
        .env("CNI_PATH", cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_err)?;
    let stdin_bytes = serde_json::to_vec(config).map_err(|e| CniError::InvalidConfig(e.to_string()))?;
    let mut stdin = child.stdin.take().ok_or_else(|| spawn_err(std::io::Error::other("no stdin pipe")))?;
    let run = async {
        // A plugin that exits without reading stdin makes this write fail with EPIPE; its
        // exit status and stdout then tell what went wrong.
        let _ = stdin.write_all(&stdin_bytes).await;
        drop(stdin);
        child.wait_with_output().await
    };
    let output = tokio::time::timeout(PLUGIN_TIMEOUT, run)
        .await
        .map_err(|_| CniError::Timeout { plugin: plugin.to_string(), command, timeout: PLUGIN_TIMEOUT })?
        .map_err(spawn_err)?;
    if !output.status.success() {
        if let Ok(err) = serde_json::from_slice::<ErrorBody>(&output.stdout)
            && (err.code != 0 || !err.msg.is_empty())
        {
            return Err(CniError::Plugin {
                plugin: plugin.to_string(),
                command,
                code: err.code,
                msg: err.msg,
                details: err.details,
            });
        }
        let text = [output.stdout.as_slice(), output.stderr.as_slice()].concat();
        return Err(CniError::PluginFailed {
            plugin: plugin.to_string(),
            command,
            status: output.status,
            output: String::from_utf8_lossy(&text).trim().to_string(),
        });
    }
    if command != CniCommand::Add || output.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&output.stdout).map_err(|source| CniError::InvalidResult {
        plugin: plugin.to_string(),
        command,
        source,
    })
}

/// Parses a (final) ADD result.
pub fn parse_result(raw: &Value, plugin: &str) -> Result<CniResult, CniError> {
    let parsed = ResultBody::deserialize(raw).map_err(|source| CniError::InvalidResult {
        plugin: plugin.to_string(),
        command: CniCommand::Add,
        source,
    })?;
    Ok(CniResult { parsed, raw: raw.clone() })
}

/// `CNI_ARGS` keys as kubelet/dockershim pass them.
pub fn kubernetes_args(namespace: &str, name: &str, uid: &str, sandbox_id: &str) -> Vec<(String, String)> {
    BTreeMap::from([
        ("K8S_POD_NAMESPACE", namespace),
        ("K8S_POD_NAME", name),
        ("K8S_POD_UID", uid),
        ("K8S_POD_INFRA_CONTAINER_ID", sandbox_id),
    ])
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> PodCidr {
        s.parse().unwrap()
    }

    #[test]
    fn pod_cidr_parses_and_contains() {
        let c = cidr("10.244.3.0/24");
        assert!(c.contains("10.244.3.7".parse().unwrap()));
        assert!(!c.contains("10.244.4.7".parse().unwrap()));
        assert!(!c.contains("fd00::1".parse().unwrap()));
        assert_eq!(c.to_string(), "10.244.3.0/24");
        assert!(cidr("fd00:10::/64").contains("fd00:10::5".parse().unwrap()));
        for bad in ["10.244.3.0", "10.244.3.0/33", "10.244.3.5/24", "x/24", "10.244.3.0/-1"] {
            assert!(bad.parse::<PodCidr>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn default_conflist_has_bridge_host_local_and_portmap() {
        let mut o = BridgeNetworkOptions::new(cidr("10.244.3.0/24"));
        o.bridge = "br-test".into();
        o.ip_masq = false;
        o.ipam_data_dir = Some("/tmp/x".into());
        let c = o.conflist();
        assert_eq!(c["cniVersion"], "1.0.0");
        assert_eq!(c["plugins"][0]["type"], "bridge");
        assert_eq!(c["plugins"][0]["bridge"], "br-test");
        assert_eq!(c["plugins"][0]["isGateway"], true);
        assert_eq!(c["plugins"][0]["ipMasq"], false);
        assert_eq!(c["plugins"][0]["hairpinMode"], true);
        assert_eq!(c["plugins"][0]["ipam"]["type"], "host-local");
        assert_eq!(c["plugins"][0]["ipam"]["ranges"][0][0]["subnet"], "10.244.3.0/24");
        assert_eq!(c["plugins"][0]["ipam"]["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(c["plugins"][0]["ipam"]["dataDir"], "/tmp/x");
        assert_eq!(c["plugins"][1]["type"], "portmap");
        assert_eq!(c["plugins"][1]["capabilities"]["portMappings"], true);
        CniConfig::bridge(&o).unwrap();
    }

    #[test]
    fn plugin_config_adds_name_version_prev_result_and_capabilities() {
        let config = CniConfig::bridge(&BridgeNetworkOptions::new(cidr("10.244.3.0/24"))).unwrap();
        let pm = PortMapping { host_port: 8080, container_port: 80, protocol: "tcp".into(), host_ip: String::new() };
        let rt = RuntimeParams { port_mappings: vec![pm], ..Default::default() };
        let prev = json!({"cniVersion": "1.0.0", "ips": []});
        let bridge = config.plugin_config(&config.list.plugins[0], None, &rt);
        assert_eq!(bridge["name"], "berth");
        assert_eq!(bridge["cniVersion"], "1.0.0");
        assert!(bridge.get("prevResult").is_none());
        assert!(bridge.get("runtimeConfig").is_none(), "bridge declares no capabilities");
        let portmap = config.plugin_config(&config.list.plugins[1], Some(&prev), &rt);
        assert_eq!(portmap["prevResult"], prev);
        assert_eq!(
            portmap["runtimeConfig"]["portMappings"],
            json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}])
        );
        assert!(portmap.get("capabilities").is_none());
    }

    #[test]
    fn conflist_without_plugin_type_is_rejected() {
        let err = CniConfig::from_conflist(r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"x":1}]}"#).unwrap_err();
        assert!(matches!(err, CniError::InvalidConfig(_)), "{err}");
        assert!(CniConfig::from_conflist("{").is_err());
    }

    #[test]
    fn result_parses_ips_interfaces_and_routes() {
        let raw = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "cni0", "mac": "aa"}, {"name": "eth0", "mac": "bb", "sandbox": "/run/x"}],
            "ips": [{"address": "10.244.3.2/24", "gateway": "10.244.3.1", "interface": 1}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.3.1"}],
            "dns": {}
        });
        let r = parse_result(&raw, "bridge").unwrap();
        assert_eq!(r.ips(), vec!["10.244.3.2".parse::<IpAddr>().unwrap()]);
        assert_eq!(r.parsed.interfaces[1].sandbox, "/run/x");
        assert_eq!(r.parsed.routes[0].gw, Some("10.244.3.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn plugin_errors_become_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("failing");
        std::fs::write(
            &script,
            "#!/bin/sh\ncat >/dev/null\necho '{\"cniVersion\":\"1.0.0\",\"code\":7,\"msg\":\"no luck\",\"details\":\"d\"}'\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let config = CniConfig::from_conflist(r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"failing"}]}"#)
            .unwrap()
            .with_plugin_dirs(vec![dir.path().to_path_buf()]);
        let err = config.add(&RuntimeParams::default()).await.unwrap_err();
        match err {
            CniError::Plugin { code, msg, details, command, .. } => {
                assert_eq!((code, msg.as_str(), details.as_str(), command), (7, "no luck", "d", CniCommand::Add));
            }
            other => panic!("unexpected {other}"),
        }
        let missing = config.clone().with_plugin_dirs(vec![PathBuf::from("/nonexistent")]);
        assert!(matches!(missing.add(&RuntimeParams::default()).await, Err(CniError::PluginNotFound { .. })));
    }

    #[test]
    fn check_is_skipped_when_disabled_or_older_than_0_4() {
        let conf = |version: &str, disable: bool| {
            CniConfig::from_conflist(&format!(
                r#"{{"cniVersion":"{version}","name":"n","disableCheck":{disable},"plugins":[{{"type":"x"}}]}}"#
            ))
            .unwrap()
        };
        assert!(conf("1.0.0", false).supports_check());
        assert!(conf("0.4.0", false).supports_check());
        assert!(!conf("0.3.1", false).supports_check());
        assert!(!conf("1.0.0", true).supports_check());
    }

    /// Writes a fake plugin that logs `<name> <command>` to `log`, saves its stdin as
    /// `<dir>/<name>.<command>.json` and prints a result.
    fn fake_plugin(dir: &Path, name: &str, log: &Path, result: &str) {
        let script = dir.join(name);
        let text = format!(
            "#!/bin/sh\necho \"{name} $CNI_COMMAND $CNI_IFNAME $CNI_CONTAINERID\" >> {log}\ncat > {dir}/{name}.$CNI_COMMAND.json\n\
             [ \"$CNI_COMMAND\" = ADD ] && echo '{result}'\nexit 0\n",
            log = log.display(),
            dir = dir.display(),
        );
        std::fs::write(&script, text).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }

    #[tokio::test]
    async fn add_chains_prev_results_in_order_and_del_runs_in_reverse() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let first = r#"{"cniVersion":"1.0.0","ips":[{"address":"10.9.0.5/24"}]}"#;
        let second =
            r#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"address":"10.9.0.5/24","interface":0}]}"#;
        fake_plugin(dir.path(), "first", &log, first);
        fake_plugin(dir.path(), "second", &log, second);
        let config = CniConfig::from_conflist(
            r#"{"cniVersion":"1.0.0","name":"chain","plugins":[{"type":"first","x":1},{"type":"second"}]}"#,
        )
        .unwrap()
        .with_plugin_dirs(vec![dir.path().to_path_buf()]);
        let rt = RuntimeParams { container_id: "c1".into(), ifname: "eth0".into(), ..Default::default() };

        let result = config.add(&rt).await.unwrap();
        assert_eq!(result.ips(), vec!["10.9.0.5".parse::<IpAddr>().unwrap()]);
        assert_eq!(result.parsed.interfaces[0].name, "eth0");
        let read = |name: &str| -> Value {
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(name)).unwrap()).unwrap()
        };
        let first_in = read("first.ADD.json");
        assert_eq!((first_in["name"].as_str(), first_in["x"].as_i64()), (Some("chain"), Some(1)));
        assert!(first_in.get("prevResult").is_none());
        let second_in = read("second.ADD.json");
        assert_eq!(second_in["prevResult"], serde_json::from_str::<Value>(first).unwrap());

        config.check(&rt, &result.raw).await.unwrap();
        config.del(&rt, Some(&result.raw)).await.unwrap();
        assert_eq!(read("first.DEL.json")["prevResult"], result.raw, "DEL gets the final ADD result");
        let log = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            log.lines().collect::<Vec<_>>(),
            [
                "first ADD eth0 c1",
                "second ADD eth0 c1",
                "first CHECK eth0 c1",
                "second CHECK eth0 c1",
                "second DEL eth0 c1",
                "first DEL eth0 c1"
            ]
        );
    }

    #[test]
    fn cni_args_start_with_ignore_unknown() {
        let args = kubernetes_args("default", "web", "u1", "s1");
        assert_eq!(
            cni_args(&args),
            "IgnoreUnknown=1;K8S_POD_INFRA_CONTAINER_ID=s1;K8S_POD_NAME=web;K8S_POD_NAMESPACE=default;K8S_POD_UID=u1"
        );
    }
}
