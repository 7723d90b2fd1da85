//! The autoscaler's config file (YAML or JSON): node groups with their min/max size, provider and
//! node template, and the scan interval, thresholds and delays, with upstream's defaults.
//!
//! ```yaml
//! scanInterval: 10s
//! scaleDownUnneededTime: 10m
//! scaleDownDelayAfterAdd: 10m
//! scaleDownUtilizationThreshold: 0.5
//! expander: least-waste
//! nodeGroups:
//! - name: workers
//!   provider: local          # or sim
//!   minSize: 0
//!   maxSize: 3
//!   template:
//!     labels: {pool: workers}
//!     capacity: {cpu: "2", memory: 4Gi, pods: "110"}
//!   agentArgs: ["--cni-bridge", "bca{index}"]   # local only; {name} and {index} are filled in
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Taint;
use serde::Deserialize;

/// The label that says which node group a node belongs to.
pub const NODE_GROUP_LABEL: &str = "autoscaler.berth.dev/node-group";

/// Errors reading the config file; each names the file or field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

/// How the group to grow is chosen among those that would help.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expander {
    /// The group whose new nodes would have the least idle cpu and memory (the default here).
    #[default]
    LeastWaste,
    /// The group whose new nodes would schedule the most pending pods.
    MostPods,
    /// The first group in the file that helps.
    Priority,
}

/// Which [`crate::NodeProvider`] makes a group's nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Sim,
    Local,
}

/// What every new node of a group looks like.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeTemplate {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub taints: Vec<Taint>,
    /// cpu, memory, pods (quantities as strings).
    #[serde(default)]
    pub capacity: BTreeMap<String, String>,
}

/// One node group.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeGroupConfig {
    pub name: String,
    pub provider: ProviderKind,
    #[serde(default)]
    pub min_size: usize,
    pub max_size: usize,
    #[serde(default)]
    pub template: NodeTemplate,
    /// Extra `berth agent` arguments for the `local` provider; `{name}` and `{index}` are
    /// replaced by the node's name and a number unique among the group's nodes.
    #[serde(default)]
    pub agent_args: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawConfig {
    scan_interval: Option<String>,
    scale_down_unneeded_time: Option<String>,
    scale_down_delay_after_add: Option<String>,
    scale_down_utilization_threshold: Option<f64>,
    max_node_provision_time: Option<String>,
    #[serde(default)]
    expander: Expander,
    #[serde(default)]
    scale_down_enabled: Option<bool>,
    node_groups: Vec<NodeGroupConfig>,
}

/// The whole configuration.
#[derive(Clone, Debug)]
pub struct AutoscalerConfig {
    /// How often the cluster is looked at (10 s).
    pub scan_interval: Duration,
    /// How long a node must be unneeded before it is removed (10 min).
    pub scale_down_unneeded_time: Duration,
    /// How long after a scale-up no node is removed (10 min).
    pub scale_down_delay_after_add: Duration,
    /// A node whose requested cpu and memory are both below this fraction is a candidate (0.5).
    pub scale_down_utilization_threshold: f64,
    /// How long a requested node may take to become Ready before it is given up (15 min).
    pub max_node_provision_time: Duration,
    pub scale_down_enabled: bool,
    pub expander: Expander,
    pub node_groups: Vec<NodeGroupConfig>,
}

impl AutoscalerConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<AutoscalerConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.display().to_string(), message },
            other => other,
        })
    }

    /// Parses and checks a config document (YAML or JSON).
    pub fn parse(text: &str) -> Result<AutoscalerConfig, ConfigError> {
        let raw: RawConfig = serde_saphyr::from_str(text)
            .map_err(|e| ConfigError::Parse { path: "config".into(), message: e.to_string() })?;
        let duration = |field: &str, value: Option<String>, default: Duration| match value {
            None => Ok(default),
            Some(v) => parse_duration(&v).ok_or_else(|| ConfigError::Invalid {
                field: field.into(),
                message: format!("invalid duration {v:?}"),
            }),
        };
        let threshold = raw.scale_down_utilization_threshold.unwrap_or(0.5);
        if !(0.0..=1.0).contains(&threshold) {
            return Err(ConfigError::Invalid {
                field: "scaleDownUtilizationThreshold".into(),
                message: format!("must be between 0 and 1, not {threshold}"),
            });
        }
        let mut names = std::collections::HashSet::new();
        for (i, g) in raw.node_groups.iter().enumerate() {
            let field = |f: &str| format!("nodeGroups[{i}].{f}");
            if g.name.is_empty() || !g.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(ConfigError::Invalid {
                    field: field("name"),
                    message: format!("{:?} must be lower-case letters, digits and '-'", g.name),
                });
            }
            if !names.insert(g.name.clone()) {
                return Err(ConfigError::Invalid { field: field("name"), message: format!("duplicate {:?}", g.name) });
            }
            if g.max_size < g.min_size || g.max_size == 0 {
                return Err(ConfigError::Invalid {
                    field: field("maxSize"),
                    message: format!("must be at least 1 and at least minSize ({})", g.min_size),
                });
            }
            for (k, v) in &g.template.capacity {
                if berth_api::quantity::Quantity::parse(v).is_err() {
                    return Err(ConfigError::Invalid {
                        field: field(&format!("template.capacity.{k}")),
                        message: format!("invalid quantity {v:?}"),
                    });
                }
            }
        }
        Ok(AutoscalerConfig {
            scan_interval: duration("scanInterval", raw.scan_interval, Duration::from_secs(10))?,
            scale_down_unneeded_time: duration(
                "scaleDownUnneededTime",
                raw.scale_down_unneeded_time,
                Duration::from_secs(600),
            )?,
            scale_down_delay_after_add: duration(
                "scaleDownDelayAfterAdd",
                raw.scale_down_delay_after_add,
                Duration::from_secs(600),
            )?,
            scale_down_utilization_threshold: threshold,
            max_node_provision_time: duration(
                "maxNodeProvisionTime",
                raw.max_node_provision_time,
                Duration::from_secs(900),
            )?,
            scale_down_enabled: raw.scale_down_enabled.unwrap_or(true),
            expander: raw.expander,
            node_groups: raw.node_groups,
        })
    }
}

/// Parses a Go-style duration: `10s`, `1m30s`, `500ms`, `2h`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let part = match &rest[..unit] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            _ => return None,
        };
        total = total.checked_add(part)?;
        rest = &rest[unit..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
scanInterval: 2s
scaleDownUnneededTime: 1m30s
nodeGroups:
- name: workers
  provider: sim
  maxSize: 3
  template:
    labels: {pool: workers}
    capacity: {cpu: "2", memory: 4Gi, pods: "110"}
"#;

    #[test]
    fn a_config_parses_with_upstream_defaults_for_what_it_leaves_out() {
        let c = AutoscalerConfig::parse(EXAMPLE).expect("parses");
        assert_eq!(c.scan_interval, Duration::from_secs(2));
        assert_eq!(c.scale_down_unneeded_time, Duration::from_secs(90));
        assert_eq!(c.scale_down_delay_after_add, Duration::from_secs(600));
        assert_eq!(c.scale_down_utilization_threshold, 0.5);
        assert_eq!(c.expander, Expander::LeastWaste);
        assert_eq!(c.node_groups[0].min_size, 0);
        assert_eq!(c.node_groups[0].provider, ProviderKind::Sim);
        assert_eq!(c.node_groups[0].template.capacity["memory"], "4Gi");
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cases = [
            (EXAMPLE.replace("maxSize: 3", "maxSize: 0"), "nodeGroups[0].maxSize"),
            (EXAMPLE.replace("4Gi", "four"), "nodeGroups[0].template.capacity.memory"),
            (EXAMPLE.replace("2s", "2 parsecs"), "scanInterval"),
            (EXAMPLE.replace("name: workers", "name: Work_ers"), "nodeGroups[0].name"),
        ];
        for (text, field) in cases {
            let err = AutoscalerConfig::parse(&text).expect_err("invalid");
            assert!(err.to_string().starts_with(field), "{err} should name {field}");
        }
        assert!(AutoscalerConfig::parse("nodeGroups: [{name: a, provider: cloud, maxSize: 1}]").is_err());
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5d"), None);
    }
}
