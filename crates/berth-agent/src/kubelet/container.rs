//! From a pod's container to what the runtime needs: container ids, environment (literal values
//! with `$(VAR)` expansion, field and resource references, ConfigMap and Secret keys, `envFrom`,
//! service links), `/etc/hosts`, volume mounts, and the CrashLoopBackOff delay. Pure, except
//! [`environment`], which reads the referenced objects through the API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::{BTreeMap, BTreeSet};

use berth_api::Quantity;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service, Volume};

use crate::bundle::BindMount;

/// The first restart waits this long; each further one twice as long (upstream kubelet).
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
/// The longest CrashLoopBackOff delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// The delay before restart number `restart_count + 1` (10 s doubling, at most 5 min).
pub fn crash_backoff(restart_count: i32) -> Duration {
    let shift = u32::try_from(restart_count.clamp(0, 16)).unwrap_or(0);
    BACKOFF_INITIAL.saturating_mul(1u32 << shift).min(BACKOFF_MAX)
}

/// The runtime id of a pod's container: `<pod uid>_<container name>` (`_` occurs in neither).
pub fn container_id(pod_uid: &str, name: &str) -> String {
    format!("{pod_uid}_{name}")
}

/// The pod uid and container name of a runtime id made by [`container_id`].
pub fn parse_container_id(id: &str) -> Option<(&str, &str)> {
    id.split_once('_').filter(|(uid, name)| !uid.is_empty() && !name.is_empty())
}

/// Go's `%q` of a string, as upstream's `fieldpath.FormatMap` writes label and annotation values.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A whole label or annotation map as the downward API writes it: `key="value"` lines, sorted,
/// no trailing newline (upstream `fieldpath.FormatMap`).
pub fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter().flatten().map(|(k, v)| format!("{k}={}", go_quote(v))).collect::<Vec<_>>().join("\n")
}

/// A pod field (`fieldRef.fieldPath`) resolved against the pod, for env and downwardAPI volumes
/// (upstream `podFieldSelectorRuntimeValue` and `fieldpath.ExtractFieldPathAsString`).
/// `pod_ips` are the sandbox's addresses (the status may not carry them yet); `host_ip` is the
/// node's.
pub fn field_value(pod: &Pod, path: &str, pod_ips: &[String], host_ip: Option<&str>) -> Result<String, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let subscript = |prefix: &str| path.strip_prefix(prefix).and_then(|rest| rest.strip_suffix("']"));
    if let Some(key) = subscript("metadata.labels['") {
        return Ok(meta.labels.as_ref().and_then(|m| m.get(key)).cloned().unwrap_or_default());
    }
    if let Some(key) = subscript("metadata.annotations['") {
        return Ok(meta.annotations.as_ref().and_then(|m| m.get(key)).cloned().unwrap_or_default());
    }
    let status_ips = || -> Vec<String> {
        let ips: Vec<String> =
            status.and_then(|s| s.pod_ips.as_ref()).into_iter().flatten().map(|ip| ip.ip.clone()).collect();
        if ips.is_empty() { status.and_then(|s| s.pod_ip.clone()).into_iter().collect() } else { ips }
    };
    let ips = if pod_ips.is_empty() { status_ips() } else { pod_ips.to_vec() };
    let host = || host_ip.map(String::from).or_else(|| status.and_then(|s| s.host_ip.clone()));
    let value = match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "metadata.labels" => Some(format_map(meta.labels.as_ref())),
        "metadata.annotations" => Some(format_map(meta.annotations.as_ref())),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.podIP" => ips.first().cloned(),
        "status.podIPs" => Some(ips.join(",")),
        "status.hostIP" => host(),
        "status.hostIPs" => {
            let from_status: Vec<String> =
                status.and_then(|s| s.host_ips.as_ref()).into_iter().flatten().map(|h| h.ip.clone()).collect();
            if from_status.is_empty() { host() } else { Some(from_status.join(",")) }
        }
        other => return Err(format!("unsupported fieldRef fieldPath {other:?}")),
    };
    Ok(value.unwrap_or_default())
}

/// `ceil(a / b)` for non-negative `a` and positive `b`.
fn div_ceil(a: i128, b: i128) -> Result<i128, String> {
    if b <= 0 {
        return Err("resourceFieldRef divisor must be positive".into());
    }
    Ok(if a <= 0 { a / b } else { (a + b - 1) / b })
}

/// A container resource (`resourceFieldRef.resource`, e.g. `limits.cpu`) in units of `divisor`,
/// rounded up, as upstream's `ExtractContainerResourceValue`: CPU compares millicores, memory and
/// ephemeral storage whole bytes. A missing value counts as zero; callers fill missing limits
/// with the node's allocatable first ([`default_limits`]).
pub fn resource_field_value(
    container: &Container,
    resource: &str,
    divisor: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
) -> Result<String, String> {
    let parse = |q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| {
        Quantity::try_from(q).map_err(|e| format!("invalid quantity {:?}: {e}", q.0))
    };
    let divisor = match divisor.map(parse).transpose()? {
        Some(d) if !d.is_zero() => d,
        _ => Quantity::from_value(1, berth_api::quantity::Format::DecimalSI),
    };
    let (kind, name) =
        resource.split_once('.').ok_or_else(|| format!("unsupported container resource : {resource}"))?;
    let resources = container.resources.as_ref();
    let map = match kind {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => return Err(format!("unsupported container resource : {resource}")),
    };
    let amount = map.and_then(|m| m.get(name)).map(parse).transpose()?;
    let amount = amount.unwrap_or_else(|| Quantity::from_value(0, berth_api::quantity::Format::DecimalSI));
    let value = match name {
        "cpu" => div_ceil(amount.as_millis(), divisor.as_millis())?,
        "memory" | "ephemeral-storage" => div_ceil(amount.value(), divisor.value())?,
        n if n.starts_with("hugepages-") => div_ceil(amount.value(), divisor.value())?,
        _ => return Err(format!("unsupported container resource : {resource}")),
    };
    Ok(value.to_string())
}

/// The container with each missing cpu, memory and ephemeral-storage limit set to the node's
/// allocatable amount (upstream `defaultPodLimitsForDownwardAPI`).
pub fn default_limits(
    container: &Container,
    allocatable: &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
) -> Container {
    let mut c = container.clone();
    let resources = c.resources.get_or_insert_with(Default::default);
    let limits = resources.limits.get_or_insert_with(Default::default);
    for name in ["cpu", "memory", "ephemeral-storage"] {
        if !limits.contains_key(name)
            && let Some(q) = allocatable.get(name)
        {
            limits.insert(name.to_string(), q.clone());
        }
    }
    c
}

/// Expands `$(VAR)` references (`$$` escapes), looking names up with `lookup`; an unknown name
/// stays as written (upstream `third_party/forked/golang/expansion`).
fn expand_with(value: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match lookup(name) {
                Some(v) => out.push_str(&v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Expands `$(VAR)` references to the variables of `env` (the last one of a name wins).
fn expand(value: &str, env: &[(String, String)]) -> String {
    expand_with(value, &|name| env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

/// Whether `name` is a valid environment variable name (upstream `IsEnvVarName`:
/// `[-._a-zA-Z][-._a-zA-Z0-9]*`).
pub fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    let ok = |c: char, first: bool| {
        c.is_ascii_alphabetic() || matches!(c, '-' | '.' | '_') || (!first && c.is_ascii_digit())
    };
    chars.next().is_some_and(|c| ok(c, true)) && chars.all(|c| ok(c, false))
}

/// A Service name as an environment variable prefix: upper case, `-` → `_` (upstream
/// `envvars.makeEnvVariableName`).
pub fn service_env_name(name: &str) -> String {
    name.replace('-', "_").to_uppercase()
}

/// The Docker-link style variables of services that have a cluster IP, in the order upstream's
/// `envvars.FromServices` writes them: `_SERVICE_HOST`, `_SERVICE_PORT`, one
/// `_SERVICE_PORT_<NAME>` per named port, then `_PORT` and per port `_PORT_<port>_<PROTO>` with
/// `_PROTO`, `_PORT` and `_ADDR`.
pub fn service_env(services: &[&Service]) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for svc in services {
        let Some(spec) = svc.spec.as_ref() else { continue };
        let Some(ip) = spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty() && *ip != "None") else { continue };
        let ports = spec.ports.as_deref().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        let prefix = service_env_name(svc.metadata.name.as_deref().unwrap_or_default());
        env.push((format!("{prefix}_SERVICE_HOST"), ip.to_string()));
        let port_var = format!("{prefix}_SERVICE_PORT");
        env.push((port_var.clone(), first.port.to_string()));
        for p in ports {
            if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
                env.push((format!("{port_var}_{}", service_env_name(name)), p.port.to_string()));
            }
        }
        let host_port = |port: i32| match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(_)) => format!("[{ip}]:{port}"),
            _ => format!("{ip}:{port}"),
        };
        for (i, p) in ports.iter().enumerate() {
            let proto = p.protocol.as_deref().filter(|p| !p.is_empty()).unwrap_or("TCP");
            let lower = proto.to_lowercase();
            let url = format!("{lower}://{}", host_port(p.port));
            if i == 0 {
                env.push((format!("{prefix}_PORT"), url.clone()));
            }
            let port_prefix = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
            env.push((port_prefix.clone(), url));
            env.push((format!("{port_prefix}_PROTO"), lower));
            env.push((format!("{port_prefix}_PORT"), p.port.to_string()));
            env.push((format!("{port_prefix}_ADDR"), ip.to_string()));
        }
    }
    env
}

/// The service variables a pod in `namespace` gets (upstream `getServiceEnvVarMap`): always the
/// `kubernetes` service of `default`, and with `enableServiceLinks` every service of the pod's
/// namespace (which wins over the default one of the same name). Sorted by service name.
pub fn service_env_for_pod(services: &[Service], namespace: &str, enable_service_links: bool) -> Vec<(String, String)> {
    let mut by_name: BTreeMap<&str, &Service> = BTreeMap::new();
    for svc in services {
        let name = svc.metadata.name.as_deref().unwrap_or_default();
        let ns = svc.metadata.namespace.as_deref().unwrap_or_default();
        if ns == "default" && name == "kubernetes" {
            by_name.entry(name).or_insert(svc);
        } else if ns == namespace && enable_service_links {
            by_name.insert(name, svc);
        }
    }
    service_env(&by_name.into_values().collect::<Vec<_>>())
}

/// What a container's environment refers to outside the pod, fetched by the caller.
#[derive(Debug, Clone, Default)]
pub struct EnvSources {
    /// ConfigMaps by name; `None` when it does not exist.
    pub config_maps: BTreeMap<String, Option<ConfigMap>>,
    /// Secrets by name; `None` when it does not exist.
    pub secrets: BTreeMap<String, Option<Secret>>,
    /// The Services of the pod's namespace and `default/kubernetes`.
    pub services: Vec<Service>,
    /// The node's allocatable resources (the default for missing limits).
    pub node_allocatable: BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    /// The node's IP.
    pub host_ip: Option<String>,
    /// The pod's IPs from its sandbox.
    pub pod_ips: Vec<String>,
}

/// A resolved environment and the warnings (events) met on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    pub vars: Vec<(String, String)>,
    /// `(reason, message)` of Warning events to record, e.g. `InvalidEnvironmentVariableNames`.
    pub warnings: Vec<(String, String)>,
}

/// The names of the ConfigMaps and Secrets a container's `env` and `envFrom` refer to.
pub fn env_references(container: &Container) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut cms, mut secrets) = (BTreeSet::new(), BTreeSet::new());
    for from in container.env_from.iter().flatten() {
        if let Some(r) = &from.config_map_ref {
            cms.insert(r.name.clone());
        }
        if let Some(r) = &from.secret_ref {
            secrets.insert(r.name.clone());
        }
    }
    for var in container.env.iter().flatten() {
        let Some(from) = &var.value_from else { continue };
        if let Some(r) = &from.config_map_key_ref {
            cms.insert(r.name.clone());
        }
        if let Some(r) = &from.secret_key_ref {
            secrets.insert(r.name.clone());
        }
    }
    (cms, secrets)
}

/// Whether the container's environment has a `resourceFieldRef` to a limit (which needs the
/// node's allocatable resources).
pub fn env_needs_allocatable(container: &Container) -> bool {
    container.env.iter().flatten().any(|v| {
        v.value_from
            .as_ref()
            .and_then(|f| f.resource_field_ref.as_ref())
            .is_some_and(|r| r.resource.starts_with("limits."))
    })
}

/// A Secret's value of `key`: `data`, or `stringData` when an apiserver left it unmerged.
pub fn secret_value(secret: &Secret, key: &str) -> Option<Vec<u8>> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
        .or_else(|| secret.string_data.as_ref().and_then(|d| d.get(key)).map(|s| s.as_bytes().to_vec()))
}

/// Every key/value of a Secret (`data`, then unmerged `stringData`).
pub fn secret_entries(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut all: BTreeMap<String, Vec<u8>> =
        secret.string_data.iter().flatten().map(|(k, v)| (k.clone(), v.as_bytes().to_vec())).collect();
    all.extend(secret.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())));
    all
}

/// Sets `name` in an ordered environment: a later value replaces an earlier one in place.
fn set_var(env: &mut Vec<(String, String)>, name: &str, value: String) {
    match env.iter_mut().find(|(k, _)| k == name) {
        Some(slot) => slot.1 = value,
        None => env.push((name.to_string(), value)),
    }
}

/// The container's environment as upstream's `makeEnvironmentVariables` builds it: `envFrom`
/// first (ConfigMaps and Secrets, with prefix; invalid names skipped with a warning), then `env`
/// in order (literal values with `$(VAR)` expansion against the variables so far and the service
/// variables; `valueFrom` field, resource, ConfigMap key and Secret key references, `optional`
/// honoured), then the service variables the container does not define itself.
///
/// # Errors
/// A missing ConfigMap, Secret or key that is not optional, or an unsupported reference; the
/// message is upstream's (`configmap "x" not found`), and the worker shows it as
/// CreateContainerConfigError.
pub fn make_environment(container: &Container, pod: &Pod, sources: &EnvSources) -> Result<Environment, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod.spec.as_ref().and_then(|s| s.enable_service_links).unwrap_or(true);
    let service_vars = service_env_for_pod(&sources.services, ns, links);
    let mut env: Vec<(String, String)> = Vec::new();
    let mut warnings = Vec::new();
    let config_map = |name: &str| sources.config_maps.get(name).and_then(Option::as_ref);
    let secret = |name: &str| sources.secrets.get(name).and_then(Option::as_ref);
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        let (kind, name, entries) = if let Some(r) = &from.config_map_ref {
            let entries: Vec<(String, String)> = match config_map(&r.name) {
                Some(cm) => cm.data.iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect(),
                None if r.optional == Some(true) => continue,
                None => return Err(format!("configmap {:?} not found", r.name)),
            };
            ("configMap", r.name.clone(), entries)
        } else if let Some(r) = &from.secret_ref {
            let entries: Vec<(String, String)> = match secret(&r.name) {
                Some(s) => {
                    secret_entries(s).into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned())).collect()
                }
                None if r.optional == Some(true) => continue,
                None => return Err(format!("secret {:?} not found", r.name)),
            };
            ("secret", r.name.clone(), entries)
        } else {
            continue;
        };
        let mut invalid = Vec::new();
        for (k, v) in entries {
            let key = format!("{prefix}{k}");
            if is_env_var_name(&key) {
                set_var(&mut env, &key, v);
            } else {
                invalid.push(key);
            }
        }
        if !invalid.is_empty() {
            invalid.sort();
            warnings.push((
                "InvalidEnvironmentVariableNames".to_string(),
                format!(
                    "Keys [{}] from the EnvFrom {kind} {ns}/{name} were skipped since they are considered invalid environment variable names.",
                    invalid.join(", ")
                ),
            ));
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) if !v.is_empty() => {
                let lookup = |name: &str| {
                    env.iter().rev().chain(service_vars.iter()).find(|(k, _)| k == name).map(|(_, v)| v.clone())
                };
                expand_with(v, &lookup)
            }
            (_, Some(from)) => {
                if let Some(f) = &from.field_ref {
                    field_value(pod, &f.field_path, &sources.pod_ips, sources.host_ip.as_deref())?
                } else if let Some(r) = &from.resource_field_ref {
                    let target = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
                        Some(other) => pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.containers.iter().find(|c| c.name == other))
                            .ok_or_else(|| format!("container {other:?} not found in the pod"))?,
                        None => container,
                    };
                    let defaulted = default_limits(target, &sources.node_allocatable);
                    resource_field_value(&defaulted, &r.resource, r.divisor.as_ref())?
                } else if let Some(r) = &from.config_map_key_ref {
                    let optional = r.optional == Some(true);
                    match config_map(&r.name) {
                        None if optional => continue,
                        None => return Err(format!("configmap {:?} not found", r.name)),
                        Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                            Some(v) => v.clone(),
                            None if optional => continue,
                            None => return Err(format!("couldn't find key {} in ConfigMap {ns}/{}", r.key, r.name)),
                        },
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    let optional = r.optional == Some(true);
                    match secret(&r.name) {
                        None if optional => continue,
                        None => return Err(format!("secret {:?} not found", r.name)),
                        Some(s) => match secret_value(s, &r.key) {
                            Some(v) => String::from_utf8_lossy(&v).into_owned(),
                            None if optional => continue,
                            None => return Err(format!("couldn't find key {} in Secret {ns}/{}", r.key, r.name)),
                        },
                    }
                } else {
                    return Err(format!("env {}: valueFrom names no source", var.name));
                }
            }
            _ => String::new(),
        };
        set_var(&mut env, &var.name, value);
    }
    for (k, v) in service_vars {
        if !env.iter().any(|(name, _)| *name == k) {
            env.push((k, v));
        }
    }
    Ok(Environment { vars: env, warnings })
}

/// The container's environment, reading the ConfigMaps, Secrets, Services and (for limits) the
/// Node it refers to through the API; invalid `envFrom` keys are reported as Warning events.
/// The only part of this module that does I/O.
///
/// # Errors
/// As [`make_environment`], and API failures; the worker shows them as
/// CreateContainerConfigError.
pub async fn environment(
    shared: &super::Shared,
    container: &Container,
    pod: &Pod,
    pod_ips: &[String],
) -> Result<Vec<(String, String)>, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod.spec.as_ref().and_then(|s| s.enable_service_links).unwrap_or(true);
    let (cms, secrets) = env_references(container);
    let node = &shared.config.node_name;
    let allocatable = env_needs_allocatable(container);
    let mut sources =
        super::volumes::objects::fetch_sources(&shared.client, ns, &cms, &secrets, allocatable, node).await?;
    sources.services = super::volumes::objects::fetch_services(&shared.client, ns, links).await?;
    sources.host_ip = Some(shared.config.node_ip.to_string());
    sources.pod_ips = pod_ips.to_vec();
    let env = make_environment(container, pod, &sources)?;
    for (reason, message) in env.warnings {
        shared.events.pod_event(pod, None, true, &reason, message).await;
    }
    Ok(env.vars)
}

/// The container's environment from the pod alone (literal values and field references; no
/// ConfigMaps, Secrets or Services). Errors name the variable or the missing object.
pub fn resolve_env(container: &Container, pod: &Pod, pod_ip: Option<&str>) -> Result<Vec<(String, String)>, String> {
    let sources = EnvSources { pod_ips: pod_ip.map(String::from).into_iter().collect(), ..Default::default() };
    make_environment(container, pod, &sources).map(|e| e.vars)
}

/// `command`/`args` with `$(VAR)` references to the container's environment expanded (upstream
/// `ExpandContainerCommandAndArgs`).
pub fn expand_args(args: &[String], env: &[(String, String)]) -> Vec<String> {
    args.iter().map(|a| expand(a, env)).collect()
}

/// `/etc/hosts` of a pod (upstream's managed hosts file).
pub fn hosts_file(pod_ips: &[String], hostname: &str) -> String {
    let mut s = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    for ip in pod_ips {
        s.push_str(&format!("{ip}\t{hostname}\n"));
    }
    s
}

/// Where a volume's files live on the host: a hostPath volume's path, and for emptyDir,
/// configMap, secret, downwardAPI and projected volumes `<pod_dir>/volumes/<name>`.
///
/// # Errors
/// Any other volume type (persistentVolumeClaim, nfs, ...), named.
pub fn volume_source(volume: &Volume, pod_dir: &Path) -> Result<PathBuf, String> {
    if let Some(hp) = &volume.host_path {
        return Ok(PathBuf::from(&hp.path));
    }
    let served = volume.empty_dir.is_some()
        || volume.config_map.is_some()
        || volume.secret.is_some()
        || volume.downward_api.is_some()
        || volume.projected.is_some();
    if served {
        Ok(volume_dir(pod_dir, &volume.name))
    } else {
        Err(format!(
            "volume {:?}: unsupported volume type (Berth serves emptyDir, hostPath, configMap, secret, downwardAPI and projected)",
            volume.name
        ))
    }
}

/// Whether a volume is always mounted read-only (configMap, secret, downwardAPI, projected), as
/// upstream does since its mounts became read-only by plugin.
pub fn read_only_volume(volume: &Volume) -> bool {
    volume.config_map.is_some()
        || volume.secret.is_some()
        || volume.downward_api.is_some()
        || volume.projected.is_some()
}

/// The bind mounts of a container: the pod's hosts/resolv.conf/hostname files and one per
/// `volumeMount` (with `subPath` appended; read-only when asked or when the volume type demands).
pub fn mounts(pod: &Pod, container: &Container, pod_dir: &Path) -> Result<Vec<BindMount>, String> {
    let mut mounts = vec![
        BindMount { source: pod_dir.join("etc-hosts"), destination: "/etc/hosts".into(), readonly: false },
        BindMount { source: pod_dir.join("resolv.conf"), destination: "/etc/resolv.conf".into(), readonly: false },
        BindMount { source: pod_dir.join("hostname"), destination: "/etc/hostname".into(), readonly: false },
    ];
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
    for vm in container.volume_mounts.iter().flatten() {
        let Some(volume) = volumes.and_then(|vs| vs.iter().find(|v| v.name == vm.name)) else {
            return Err(format!("volumeMount {:?} names no volume of the pod", vm.name));
        };
        let mut source = volume_source(volume, pod_dir)?;
        if let Some(sub) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if Path::new(sub).components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
                return Err(format!("volumeMount {:?}: invalid subPath {sub:?}", vm.name));
            }
            source = source.join(sub);
        }
        mounts.push(BindMount {
            source,
            destination: PathBuf::from(&vm.mount_path),
            readonly: vm.read_only.unwrap_or(false) || read_only_volume(volume),
        });
    }
    Ok(mounts)
}

/// Where an emptyDir (or configMap, secret, downwardAPI, projected) volume of the pod lives.
pub fn volume_dir(pod_dir: &Path, name: &str) -> PathBuf {
    pod_dir.join("volumes").join(name)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                labels: Some([("app".to_string(), "shop".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: Some("node1".into()), ..Default::default() }),
            status: Some(PodStatus { host_ip: Some("192.0.2.7".into()), ..Default::default() }),
        }
    }

    fn field(name: &str, path: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector { field_path: path.into(), ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn literal(name: &str, value: &str) -> EnvVar {
        EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() }
    }

    #[test]
    fn env_resolves_literals_field_refs_and_expansions() {
        let c = Container {
            env: Some(vec![
                field("POD", "metadata.name"),
                field("NS", "metadata.namespace"),
                field("IP", "status.podIP"),
                field("NODE", "spec.nodeName"),
                field("APP", "metadata.labels['app']"),
                literal("URL", "http://$(IP):80/$(MISSING)$$(POD)"),
            ]),
            ..Default::default()
        };
        let env = resolve_env(&c, &pod(), Some("10.42.0.9")).expect("env");
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("POD"), Some("web"));
        assert_eq!(get("NS"), Some("prod"));
        assert_eq!(get("IP"), Some("10.42.0.9"));
        assert_eq!(get("NODE"), Some("node1"));
        assert_eq!(get("APP"), Some("shop"));
        assert_eq!(get("URL"), Some("http://10.42.0.9:80/$(MISSING)$(POD)"));
        let args = expand_args(&["echo $(POD) in $(NS)".to_string()], &env);
        assert_eq!(args, ["echo web in prod"]);
    }

    #[test]
    fn unsupported_env_sources_are_errors_naming_the_variable() {
        let c = Container {
            env: Some(vec![EnvVar {
                name: "SECRET".into(),
                value_from: Some(EnvVarSource::default()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let err = resolve_env(&c, &pod(), None).expect_err("unsupported");
        assert!(err.contains("SECRET"), "{err}");
        let c = Container { env: Some(vec![field("X", "spec.bogus")]), ..Default::default() };
        assert!(resolve_env(&c, &pod(), None).is_err());
    }

    #[test]
    fn hosts_file_maps_the_pod_ip_to_its_name() {
        let hosts = hosts_file(&["10.42.0.5".into()], "web");
        assert!(hosts.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(hosts.ends_with("\n10.42.0.5\tweb\n"), "{hosts}");
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_up_to_five_minutes() {
        let secs: Vec<u64> = (0..8).map(|n| crash_backoff(n).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(crash_backoff(-1).as_secs(), 10);
        assert_eq!(crash_backoff(i32::MAX).as_secs(), 300);
    }

    #[test]
    fn container_ids_round_trip() {
        let id = container_id("6f1c1b1e-0000-4000-8000-000000000001", "web");
        assert_eq!(parse_container_id(&id), Some(("6f1c1b1e-0000-4000-8000-000000000001", "web")));
        assert_eq!(parse_container_id("nounderscore"), None);
    }

    #[test]
    fn volume_mounts_point_into_the_pod_dir_or_the_host_path_and_unsupported_volumes_are_rejected() {
        use k8s_openapi::api::core::v1::{
            ConfigMapVolumeSource, EmptyDirVolumeSource, HostPathVolumeSource, PersistentVolumeClaimVolumeSource,
            VolumeMount,
        };
        let mut p = pod();
        if let Some(spec) = p.spec.as_mut() {
            spec.volumes = Some(vec![
                Volume { name: "data".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() },
                Volume {
                    name: "host".into(),
                    host_path: Some(HostPathVolumeSource { path: "/srv/x".into(), ..Default::default() }),
                    ..Default::default()
                },
                Volume {
                    name: "cfg".into(),
                    config_map: Some(ConfigMapVolumeSource { name: "app".into(), ..Default::default() }),
                    ..Default::default()
                },
                Volume {
                    name: "pvc".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: "c".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]);
        }
        let vm =
            |name: &str, path: &str| VolumeMount { name: name.into(), mount_path: path.into(), ..Default::default() };
        let c = Container {
            volume_mounts: Some(vec![
                vm("data", "/data"),
                VolumeMount { sub_path: Some("logs".into()), ..vm("host", "/logs") },
                vm("cfg", "/etc/app"),
            ]),
            ..Default::default()
        };
        let ms = mounts(&p, &c, Path::new("/pods/u1")).expect("mounts");
        let find = |dest: &str| ms.iter().find(|m| m.destination == Path::new(dest)).expect(dest).clone();
        assert_eq!(find("/data").source, Path::new("/pods/u1/volumes/data"));
        assert!(!find("/data").readonly);
        assert_eq!(find("/logs").source, Path::new("/srv/x/logs"));
        assert_eq!(find("/etc/app").source, Path::new("/pods/u1/volumes/cfg"));
        assert!(find("/etc/app").readonly, "configMap volumes are always read-only");
        assert!(ms.iter().any(|m| m.destination == Path::new("/etc/hosts")));
        let c = Container { volume_mounts: Some(vec![vm("pvc", "/p")]), ..Default::default() };
        let err = mounts(&p, &c, Path::new("/pods/u1")).expect_err("pvc");
        assert!(err.contains("\"pvc\"") && err.contains("unsupported"), "{err}");
        let c = Container {
            volume_mounts: Some(vec![VolumeMount { sub_path: Some("../etc".into()), ..vm("data", "/d") }]),
            ..Default::default()
        };
        assert!(mounts(&p, &c, Path::new("/pods/u1")).is_err());
    }

    fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
            data: Some(data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Default::default()
        }
    }

    fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
            data: Some(
                data.iter().map(|(k, v)| (k.to_string(), k8s_openapi::ByteString(v.as_bytes().to_vec()))).collect(),
            ),
            ..Default::default()
        }
    }

    fn service(ns: &str, name: &str, ip: &str, ports: &[(&str, i32, &str)]) -> Service {
        use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
        Service {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), ..Default::default() },
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, port, proto)| ServicePort {
                            name: (!n.is_empty()).then(|| n.to_string()),
                            port: *port,
                            protocol: (!proto.is_empty()).then(|| proto.to_string()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn key_ref(name: &str, cm: &str, key: &str, optional: bool, is_secret: bool) -> EnvVar {
        use k8s_openapi::api::core::v1::{ConfigMapKeySelector, SecretKeySelector};
        let optional = Some(optional);
        let from = if is_secret {
            EnvVarSource {
                secret_key_ref: Some(SecretKeySelector { name: cm.into(), key: key.into(), optional }),
                ..Default::default()
            }
        } else {
            EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector { name: cm.into(), key: key.into(), optional }),
                ..Default::default()
            }
        };
        EnvVar { name: name.into(), value_from: Some(from), ..Default::default() }
    }

    fn sources() -> EnvSources {
        EnvSources {
            config_maps: [
                ("app".to_string(), Some(config_map("app", &[("mode", "fast"), ("1bad", "x"), ("level", "3")]))),
                ("absent".to_string(), None),
            ]
            .into(),
            secrets: [("creds".to_string(), Some(secret("creds", &[("password", "s3cret")])))].into(),
            services: vec![
                service("prod", "db", "10.43.0.5", &[("", 5432, "")]),
                service("default", "kubernetes", "10.43.0.1", &[("https", 443, "TCP")]),
                service("other", "elsewhere", "10.43.0.9", &[("", 80, "")]),
            ],
            host_ip: Some("192.0.2.1".into()),
            pod_ips: vec!["10.42.0.9".into(), "fd00::9".into()],
            ..Default::default()
        }
    }

    #[test]
    fn env_reads_config_map_and_secret_keys_and_honours_optional() {
        let c = Container {
            env: Some(vec![
                key_ref("MODE", "app", "mode", false, false),
                key_ref("PASS", "creds", "password", false, true),
                key_ref("GONE", "absent", "x", true, false),
                key_ref("NOKEY", "app", "missing", true, false),
                literal("URL", "db://$(DB_SERVICE_HOST):$(DB_SERVICE_PORT)/$(MODE)"),
            ]),
            ..Default::default()
        };
        let env = make_environment(&c, &pod(), &sources()).expect("env");
        let get = |k: &str| env.vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("MODE"), Some("fast"));
        assert_eq!(get("PASS"), Some("s3cret"));
        assert_eq!(get("GONE"), None, "an optional missing ConfigMap sets nothing");
        assert_eq!(get("NOKEY"), None, "an optional missing key sets nothing");
        assert_eq!(get("URL"), Some("db://10.43.0.5:5432/fast"), "expands against service variables too");

        let fails = |var: EnvVar| {
            let c = Container { env: Some(vec![var]), ..Default::default() };
            make_environment(&c, &pod(), &sources()).expect_err("must fail")
        };
        assert_eq!(fails(key_ref("X", "absent", "k", false, false)), "configmap \"absent\" not found");
        assert_eq!(fails(key_ref("X", "nope", "k", false, true)), "secret \"nope\" not found");
        assert_eq!(fails(key_ref("X", "app", "k", false, false)), "couldn't find key k in ConfigMap prod/app");
        assert_eq!(fails(key_ref("X", "creds", "k", false, true)), "couldn't find key k in Secret prod/creds");
    }

    #[test]
    fn env_from_applies_prefixes_skips_invalid_keys_with_a_warning_and_env_wins() {
        use k8s_openapi::api::core::v1::{ConfigMapEnvSource, EnvFromSource, SecretEnvSource};
        let c = Container {
            env_from: Some(vec![
                EnvFromSource {
                    config_map_ref: Some(ConfigMapEnvSource { name: "app".into(), optional: None }),
                    ..Default::default()
                },
                EnvFromSource {
                    prefix: Some("S_".into()),
                    secret_ref: Some(SecretEnvSource { name: "creds".into(), optional: None }),
                    ..Default::default()
                },
                EnvFromSource {
                    config_map_ref: Some(ConfigMapEnvSource { name: "absent".into(), optional: Some(true) }),
                    ..Default::default()
                },
            ]),
            env: Some(vec![literal("level", "override"), literal("DB_SERVICE_HOST", "mine")]),
            ..Default::default()
        };
        let env = make_environment(&c, &pod(), &sources()).expect("env");
        let get = |k: &str| env.vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("mode"), Some("fast"));
        assert_eq!(get("level"), Some("override"), "env replaces envFrom");
        assert_eq!(get("S_password"), Some("s3cret"));
        assert_eq!(get("1bad"), None);
        assert_eq!(get("DB_SERVICE_HOST"), Some("mine"), "user-defined env wins over service links");
        assert_eq!(env.vars.iter().filter(|(n, _)| n == "DB_SERVICE_HOST").count(), 1);
        assert_eq!(
            env.warnings,
            [(
                "InvalidEnvironmentVariableNames".to_string(),
                "Keys [1bad] from the EnvFrom configMap prod/app were skipped since they are considered invalid environment variable names.".to_string()
            )]
        );
        let c = Container {
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource { name: "absent".into(), optional: None }),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(make_environment(&c, &pod(), &sources()).expect_err("missing"), "configmap \"absent\" not found");
    }

    #[test]
    fn service_links_are_named_as_upstream_envvars() {
        let svc =
            service("prod", "my-db", "10.43.0.7", &[("", 5432, ""), ("metrics", 9187, "TCP"), ("dns", 53, "UDP")]);
        let env = service_env(&[&svc]);
        let expected: Vec<(String, String)> = [
            ("MY_DB_SERVICE_HOST", "10.43.0.7"),
            ("MY_DB_SERVICE_PORT", "5432"),
            ("MY_DB_SERVICE_PORT_METRICS", "9187"),
            ("MY_DB_SERVICE_PORT_DNS", "53"),
            ("MY_DB_PORT", "tcp://10.43.0.7:5432"),
            ("MY_DB_PORT_5432_TCP", "tcp://10.43.0.7:5432"),
            ("MY_DB_PORT_5432_TCP_PROTO", "tcp"),
            ("MY_DB_PORT_5432_TCP_PORT", "5432"),
            ("MY_DB_PORT_5432_TCP_ADDR", "10.43.0.7"),
            ("MY_DB_PORT_9187_TCP", "tcp://10.43.0.7:9187"),
            ("MY_DB_PORT_9187_TCP_PROTO", "tcp"),
            ("MY_DB_PORT_9187_TCP_PORT", "9187"),
            ("MY_DB_PORT_9187_TCP_ADDR", "10.43.0.7"),
            ("MY_DB_PORT_53_UDP", "udp://10.43.0.7:53"),
            ("MY_DB_PORT_53_UDP_PROTO", "udp"),
            ("MY_DB_PORT_53_UDP_PORT", "53"),
            ("MY_DB_PORT_53_UDP_ADDR", "10.43.0.7"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(env, expected);

        let headless = service("prod", "headless", "None", &[("", 80, "")]);
        let v6 = service("prod", "v6", "fd00::10", &[("", 80, "")]);
        let env = service_env(&[&headless, &v6]);
        assert!(env.iter().all(|(k, _)| !k.starts_with("HEADLESS")), "{env:?}");
        assert!(env.contains(&("V6_PORT".to_string(), "tcp://[fd00::10]:80".to_string())), "{env:?}");
    }

    #[test]
    fn service_links_cover_the_pod_namespace_and_always_the_kubernetes_service() {
        let all = sources().services;
        let names = |env: Vec<(String, String)>| {
            env.into_iter().filter(|(k, _)| k.ends_with("_SERVICE_HOST")).map(|(k, _)| k).collect::<Vec<_>>()
        };
        assert_eq!(names(service_env_for_pod(&all, "prod", true)), ["DB_SERVICE_HOST", "KUBERNETES_SERVICE_HOST"]);
        assert_eq!(names(service_env_for_pod(&all, "prod", false)), ["KUBERNETES_SERVICE_HOST"]);
        let mut p = pod();
        if let Some(s) = p.spec.as_mut() {
            s.enable_service_links = Some(false);
        }
        let env = make_environment(&Container::default(), &p, &sources()).expect("env");
        assert!(env.vars.iter().any(|(k, _)| k == "KUBERNETES_SERVICE_HOST"));
        assert!(!env.vars.iter().any(|(k, _)| k == "DB_SERVICE_HOST"));
    }

    #[test]
    fn field_refs_cover_pod_ips_host_ip_and_whole_label_maps() {
        let mut p = pod();
        p.metadata.labels =
            Some([("b".to_string(), "two \"q\"".to_string()), ("a".to_string(), "1".to_string())].into());
        let ips = ["10.42.0.9".to_string(), "fd00::9".to_string()];
        let f = |path: &str| field_value(&p, path, &ips, Some("192.0.2.1")).expect(path);
        assert_eq!(f("status.podIP"), "10.42.0.9");
        assert_eq!(f("status.podIPs"), "10.42.0.9,fd00::9");
        assert_eq!(f("status.hostIP"), "192.0.2.1");
        assert_eq!(f("metadata.labels"), "a=\"1\"\nb=\"two \\\"q\\\"\"");
        assert_eq!(f("metadata.annotations['none']"), "");
        assert!(field_value(&p, "spec.bogus", &ips, None).is_err());
    }

    #[test]
    fn resource_field_refs_round_up_in_divisor_units_and_fall_back_to_node_allocatable() {
        use k8s_openapi::api::core::v1::{ResourceFieldSelector, ResourceRequirements};
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;
        let c = Container {
            name: "app".into(),
            resources: Some(ResourceRequirements {
                requests: Some(
                    [("cpu".to_string(), Q("250m".into())), ("memory".to_string(), Q("100Mi".into()))].into(),
                ),
                limits: Some([("cpu".to_string(), Q("1500m".into()))].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let q = |s: &str| Q(s.into());
        let v = |res: &str, div: Option<&str>| resource_field_value(&c, res, div.map(q).as_ref()).expect(res);
        assert_eq!(v("limits.cpu", None), "2", "1.5 cores round up to 2");
        assert_eq!(v("limits.cpu", Some("1m")), "1500");
        assert_eq!(v("requests.cpu", Some("1m")), "250");
        assert_eq!(v("requests.cpu", None), "1");
        assert_eq!(v("requests.memory", None), "104857600");
        assert_eq!(v("requests.memory", Some("1Mi")), "100");
        assert_eq!(v("requests.memory", Some("1G")), "1");
        assert_eq!(v("limits.memory", None), "0", "no limit and no fallback");
        assert!(resource_field_value(&c, "limits.gpu", None).is_err());

        let allocatable = [("cpu".to_string(), q("4")), ("memory".to_string(), q("8Gi"))].into();
        let defaulted = default_limits(&c, &allocatable);
        let v = |res: &str, div: Option<&str>| resource_field_value(&defaulted, res, div.map(q).as_ref()).expect(res);
        assert_eq!(v("limits.memory", Some("1Mi")), "8192", "node allocatable when no limit");
        assert_eq!(v("limits.cpu", Some("1m")), "1500", "an explicit limit stays");

        let env_var = EnvVar {
            name: "MEM".into(),
            value_from: Some(EnvVarSource {
                resource_field_ref: Some(ResourceFieldSelector {
                    resource: "limits.memory".into(),
                    divisor: Some(q("1Mi")),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let c2 = Container { env: Some(vec![env_var]), ..c.clone() };
        assert!(env_needs_allocatable(&c2));
        let s = EnvSources { node_allocatable: allocatable, ..Default::default() };
        let env = make_environment(&c2, &pod(), &s).expect("env");
        assert!(env.vars.contains(&("MEM".to_string(), "8192".to_string())), "{:?}", env.vars);
    }

    #[test]
    fn env_var_names_follow_upstream_rules() {
        for ok in ["A", "a_b", "-x", ".y", "A1", "my.var-2"] {
            assert!(is_env_var_name(ok), "{ok}");
        }
        for bad in ["", "1A", "a b", "a=b", "ü"] {
            assert!(!is_env_var_name(bad), "{bad}");
        }
    }
}
