//! OCI runtime bundles: turns a container description (what the kubelet knows from the pod spec)
//! plus the image config into an oci-spec [`Spec`] and writes it as `config.json`. The spec
//! follows what containerd's CRI plugin generates for Kubernetes: its default mounts,
//! capabilities, masked and read-only paths. Pure except for [`Bundle::write`] and the
//! `/etc/passwd` lookup of named users inside the rootfs.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::OciSpecError;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimitBuilder,
    PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::image::ImageConfig;

/// The `PATH` a container gets when neither the image nor the pod sets one (containerd's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The CFS period the kubelet uses (100ms), in microseconds.
pub const CPU_PERIOD_US: u64 = 100_000;
const MIN_CPU_SHARES: u64 = 2;
const MAX_CPU_SHARES: u64 = 262_144;
const MIN_CPU_QUOTA_US: i64 = 1_000;

/// Errors of bundle generation.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("container has no command: neither the pod nor the image sets one")]
    NoCommand,
    #[error("invalid environment entry {entry:?} in the image config")]
    InvalidEnv { entry: String },
    #[error("cannot resolve user {user:?}: {reason}")]
    User { user: String, reason: String },
    #[error("mount destination {destination:?} must be an absolute path")]
    RelativeMount { destination: PathBuf },
    #[error("failed to build the runtime spec")]
    Spec(#[source] OciSpecError),
    #[error("failed to write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl From<OciSpecError> for BundleError {
    fn from(e: OciSpecError) -> Self {
        BundleError::Spec(e)
    }
}

/// A numeric user and group for the container process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// A bind mount from the host (volumes, `/etc/hosts`, `/etc/resolv.conf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    pub destination: PathBuf,
    pub readonly: bool,
}

/// The container's network namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NetworkNamespace {
    /// A new, empty namespace (loopback only).
    #[default]
    New,
    /// Join an existing namespace, e.g. the pod's at `/run/netns/<pod>`.
    Path(PathBuf),
    /// The host's namespace (`hostNetwork: true`).
    Host,
}

/// Resource requests and limits, in Kubernetes units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_request_millis: Option<u64>,
    pub cpu_limit_millis: Option<u64>,
    pub memory_limit_bytes: Option<i64>,
}

/// A container as the kubelet describes it; empty fields fall back to the image config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Kubernetes `command`: replaces the image's Entrypoint (and drops its Cmd).
    pub command: Vec<String>,
    /// Kubernetes `args`: replaces the image's Cmd.
    pub args: Vec<String>,
    /// Environment on top of the image's, in order; later entries win.
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    /// `runAsUser`/`runAsGroup`; `None` uses the image's `User` (numeric or resolved in the rootfs).
    pub user: Option<User>,
    pub hostname: Option<String>,
    pub readonly_rootfs: bool,
    pub mounts: Vec<BindMount>,
    pub network: NetworkNamespace,
    /// Cgroup path handed to the runtime (cgroupfs style, e.g. `/berth/pod-uid/container`).
    pub cgroups_path: Option<PathBuf>,
    pub resources: Resources,
}

/// The process arguments as Kubernetes combines pod and image: `command` overrides Entrypoint
/// (and then the image Cmd is ignored), `args` override Cmd. Pure.
pub fn process_args(container: &ContainerSpec, image: &ImageConfig) -> Result<Vec<String>, BundleError> {
    let args = match (container.command.is_empty(), container.args.is_empty()) {
        (false, _) => container.command.iter().chain(&container.args).cloned().collect::<Vec<_>>(),
        (true, false) => image.entrypoint.iter().chain(&container.args).cloned().collect(),
        (true, true) => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
    };
    if args.is_empty() {
        return Err(BundleError::NoCommand);
    }
    Ok(args)
}

/// The environment: image entries first, then the container's, a later key replacing an earlier
/// one in place; `PATH` added if missing. Pure.
pub fn merge_env(image_env: &[String], container_env: &[(String, String)]) -> Result<Vec<String>, BundleError> {
    let mut merged: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match merged.iter_mut().find(|(key, _)| key == k) {
        Some(slot) => slot.1 = v.to_string(),
        None => merged.push((k.to_string(), v.to_string())),
    };
    for entry in image_env {
        match entry.split_once('=') {
            Some((k, v)) if !k.is_empty() => set(k, v),
            _ => return Err(BundleError::InvalidEnv { entry: entry.clone() }),
        }
    }
    for (k, v) in container_env {
        set(k, v);
    }
    if !merged.iter().any(|(k, _)| k == "PATH") {
        merged.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
    }
    Ok(merged.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

/// Resolves an image `User` (`uid`, `uid:gid`, `name`, `name:group`) to numbers; names are looked
/// up in the rootfs's `/etc/passwd` and `/etc/group`. A uid without a group gets the user's
/// primary group from `/etc/passwd`, or 0.
pub fn resolve_user(user: &str, rootfs: &Path) -> Result<User, BundleError> {
    let err = |reason: &str| BundleError::User { user: user.to_string(), reason: reason.to_string() };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let passwd_entry = |pred: &dyn Fn(&[&str]) -> bool| -> Option<(u32, u32)> {
        passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .filter(|f| f.len() >= 4)
            .find(|f| pred(f))
            .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
    };
    let (uid, primary_gid) = match u.parse::<u32>() {
        Ok(uid) => (uid, passwd_entry(&|f| f[2] == u).map_or(0, |(_, g)| g)),
        Err(_) => passwd_entry(&|f| f[0] == u).ok_or_else(|| err("no such user in /etc/passwd"))?,
    };
    let gid = match g {
        None => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => fs::read_to_string(rootfs.join("etc/group"))
                .unwrap_or_default()
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| err("no such group in /etc/group"))?,
        },
    };
    Ok(User { uid, gid, additional_gids: Vec::new() })
}

/// CPU shares from millicores, as the kubelet's `MilliCPUToShares`. Pure.
pub fn cpu_shares(millis: u64) -> u64 {
    if millis == 0 {
        return MIN_CPU_SHARES;
    }
    (millis * 1024 / 1000).clamp(MIN_CPU_SHARES, MAX_CPU_SHARES)
}

/// CFS quota for a CPU limit, as the kubelet's `MilliCPUToQuota`; `None` for no limit. Pure.
pub fn cpu_quota(limit_millis: u64, period_us: u64) -> Option<i64> {
    if limit_millis == 0 {
        return None;
    }
    let quota = i64::try_from(limit_millis.saturating_mul(period_us) / 1000).unwrap_or(i64::MAX);
    Some(quota.max(MIN_CPU_QUOTA_US))
}

/// The capabilities containerd grants a container by default (`oci.defaultUnixCaps`).
pub fn default_capabilities() -> HashSet<Capability> {
    [
        Capability::Chown,
        Capability::DacOverride,
        Capability::Fsetid,
        Capability::Fowner,
        Capability::Mknod,
        Capability::NetRaw,
        Capability::Setgid,
        Capability::Setuid,
        Capability::Setfcap,
        Capability::Setpcap,
        Capability::NetBindService,
        Capability::SysChroot,
        Capability::Kill,
        Capability::AuditWrite,
    ]
    .into_iter()
    .collect()
}

/// Paths masked in every container (containerd's `defaultMaskedPaths`).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths read-only in every container (containerd's `defaultReadonlyPaths`).
pub const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, BundleError> {
    Ok(MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()?)
}

/// The kernel filesystems every container gets, as containerd mounts them.
fn default_mounts() -> Result<Vec<Mount>, BundleError> {
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"])?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        )?,
        mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"])?,
        mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"])?,
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"])?,
        mount("/sys/fs/cgroup", "cgroup", "cgroup", &["nosuid", "noexec", "nodev", "relatime", "ro"])?,
    ])
}

/// Builds the runtime spec for `container` over `image`, with the rootfs at `rootfs` (absolute).
pub fn build_spec(container: &ContainerSpec, image: &ImageConfig, rootfs: &Path) -> Result<Spec, BundleError> {
    let args = process_args(container, image)?;
    let mut env = merge_env(&image.env, &container.env)?;
    if let Some(hostname) = &container.hostname
        && !env.iter().any(|e| e.starts_with("HOSTNAME="))
    {
        env.push(format!("HOSTNAME={hostname}"));
    }
    let user = match (&container.user, &image.user) {
        (Some(u), _) => u.clone(),
        (None, Some(u)) => resolve_user(u, rootfs)?,
        (None, None) => User::default(),
    };
    let cwd = container.working_dir.clone().or_else(|| image.working_dir.clone()).unwrap_or_else(|| "/".into());
    let caps = default_capabilities();
    let process = ProcessBuilder::default()
        .terminal(false)
        .args(args)
        .env(env)
        .cwd(cwd)
        .user(UserBuilder::default().uid(user.uid).gid(user.gid).additional_gids(user.additional_gids.clone()).build()?)
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(caps.clone())
                .effective(caps.clone())
                .permitted(caps)
                .inheritable(HashSet::new())
                .ambient(HashSet::new())
                .build()?,
        )
        .rlimits(vec![
            PosixRlimitBuilder::default().typ(PosixRlimitType::RlimitNofile).hard(1024u64).soft(1024u64).build()?,
        ])
        .no_new_privileges(true)
        .build()?;

    let mut mounts = default_mounts()?;
    for m in &container.mounts {
        if !m.destination.is_absolute() {
            return Err(BundleError::RelativeMount { destination: m.destination.clone() });
        }
        let options =
            vec!["rbind".to_string(), "rprivate".to_string(), if m.readonly { "ro" } else { "rw" }.to_string()];
        mounts.push(
            MountBuilder::default()
                .destination(m.destination.clone())
                .typ("bind")
                .source(m.source.clone())
                .options(options)
                .build()?,
        );
    }

    let mut namespaces = Vec::new();
    for typ in [LinuxNamespaceType::Pid, LinuxNamespaceType::Ipc, LinuxNamespaceType::Uts, LinuxNamespaceType::Mount] {
        namespaces.push(LinuxNamespaceBuilder::default().typ(typ).build()?);
    }
    match &container.network {
        NetworkNamespace::New => {
            namespaces.push(LinuxNamespaceBuilder::default().typ(LinuxNamespaceType::Network).build()?)
        }
        NetworkNamespace::Path(path) => namespaces
            .push(LinuxNamespaceBuilder::default().typ(LinuxNamespaceType::Network).path(path.clone()).build()?),
        NetworkNamespace::Host => {}
    }

    let r = &container.resources;
    let mut cpu = LinuxCpuBuilder::default();
    if let Some(millis) = r.cpu_request_millis.or(r.cpu_limit_millis) {
        cpu = cpu.shares(cpu_shares(millis));
    }
    if let Some(quota) = r.cpu_limit_millis.and_then(|l| cpu_quota(l, CPU_PERIOD_US)) {
        cpu = cpu.quota(quota).period(CPU_PERIOD_US);
    }
    let mut resources = LinuxResourcesBuilder::default()
        // Deny all devices; runc then allows its default set (null, zero, full, tty, urandom...).
        .devices(vec![LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build()?])
        .cpu(cpu.build()?);
    if let Some(limit) = r.memory_limit_bytes {
        resources = resources.memory(LinuxMemoryBuilder::default().limit(limit).build()?);
    }

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build()?)
        .masked_paths(MASKED_PATHS.iter().map(|p| p.to_string()).collect::<Vec<_>>())
        .readonly_paths(READONLY_PATHS.iter().map(|p| p.to_string()).collect::<Vec<_>>());
    if let Some(path) = &container.cgroups_path {
        linux = linux.cgroups_path(path.clone());
    }

    let mut spec = SpecBuilder::default()
        .version("1.0.2-dev")
        .root(RootBuilder::default().path(rootfs).readonly(container.readonly_rootfs).build()?)
        .process(process)
        .mounts(mounts)
        .linux(linux.build()?)
        .annotations(std::collections::HashMap::new());
    if let Some(hostname) = &container.hostname {
        spec = spec.hostname(hostname.clone());
    }
    let mut spec = spec.build()?;
    if container.hostname.is_none() {
        // The builder's default hostname is "youki"; without one the container keeps the host's.
        spec.set_hostname(None);
    }
    Ok(spec)
}

/// An OCI runtime bundle directory holding `config.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    dir: PathBuf,
}

impl Bundle {
    /// Writes `spec` to `<dir>/config.json` (atomically) and returns the bundle.
    pub fn write(dir: &Path, spec: &Spec) -> Result<Bundle, BundleError> {
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BundleError::Write { path, source }
        };
        fs::create_dir_all(dir).map_err(write_err(dir))?;
        let json = serde_json::to_vec_pretty(spec).map_err(|e| write_err(dir)(io::Error::other(e)))?;
        let tmp = dir.join(".config.json.tmp");
        let path = dir.join("config.json");
        fs::write(&tmp, json).map_err(write_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(write_err(&path))?;
        Ok(Bundle { dir: dir.to_path_buf() })
    }

    /// A bundle already on disk at `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Bundle {
        Bundle { dir: dir.into() }
    }

    /// The bundle directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageConfig {
        ImageConfig {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["default-arg".into()],
            env: vec!["PATH=/bin".into(), "A=image".into(), "B=image".into()],
            working_dir: Some("/srv".into()),
            user: Some("1000:1000".into()),
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn command_overrides_entrypoint_and_args_override_cmd() {
        let img = image();
        let mut c = ContainerSpec::default();
        assert_eq!(process_args(&c, &img).unwrap(), s(&["/entry", "default-arg"]));
        c.args = s(&["x"]);
        assert_eq!(process_args(&c, &img).unwrap(), s(&["/entry", "x"]));
        c.command = s(&["/bin/sh", "-c"]);
        assert_eq!(process_args(&c, &img).unwrap(), s(&["/bin/sh", "-c", "x"]));
        c.args.clear();
        assert_eq!(process_args(&c, &img).unwrap(), s(&["/bin/sh", "-c"]), "command drops the image Cmd");
        assert!(matches!(
            process_args(&ContainerSpec::default(), &ImageConfig::default()),
            Err(BundleError::NoCommand)
        ));
    }

    #[test]
    fn env_merges_with_container_entries_winning_in_place() {
        let env = merge_env(&image().env, &[("B".into(), "pod".into()), ("C".into(), "pod".into())]).unwrap();
        assert_eq!(env, s(&["PATH=/bin", "A=image", "B=pod", "C=pod"]));
        assert_eq!(merge_env(&[], &[]).unwrap(), vec![format!("PATH={DEFAULT_PATH}")]);
        assert!(matches!(merge_env(&s(&["NOEQUALS"]), &[]), Err(BundleError::InvalidEnv { .. })));
    }

    #[test]
    fn users_resolve_from_numbers_and_the_rootfs_passwd() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("etc")).unwrap();
        fs::write(root.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh\nwww:x:33:34::/var/www:/bin/false\n")
            .unwrap();
        fs::write(root.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let user = |u: &str| resolve_user(u, root.path()).map(|u| (u.uid, u.gid));
        assert_eq!(user("1000").unwrap(), (1000, 0));
        assert_eq!(user("33").unwrap(), (33, 34), "uid without group gets the passwd primary group");
        assert_eq!(user("1000:7").unwrap(), (1000, 7));
        assert_eq!(user("www").unwrap(), (33, 34));
        assert_eq!(user("www:staff").unwrap(), (33, 50));
        assert!(user("nobody-here").is_err());
        assert!(user("www:nogroup").is_err());
    }

    #[test]
    fn cpu_conversions_match_the_kubelet() {
        assert_eq!(cpu_shares(0), 2);
        assert_eq!(cpu_shares(1), 2);
        assert_eq!(cpu_shares(250), 256);
        assert_eq!(cpu_shares(1000), 1024);
        assert_eq!(cpu_shares(10_000_000), 262_144);
        assert_eq!(cpu_quota(0, CPU_PERIOD_US), None);
        assert_eq!(cpu_quota(500, CPU_PERIOD_US), Some(50_000));
        assert_eq!(cpu_quota(1, CPU_PERIOD_US), Some(1_000), "quota has a 1ms floor");
    }

    #[test]
    fn spec_has_the_kubernetes_shape() {
        let container = ContainerSpec {
            command: s(&["sh", "-c", "echo hi"]),
            env: vec![("A".into(), "pod".into())],
            hostname: Some("web-0".into()),
            readonly_rootfs: true,
            mounts: vec![BindMount {
                source: "/var/lib/berth/pods/x/etc-hosts".into(),
                destination: "/etc/hosts".into(),
                readonly: true,
            }],
            network: NetworkNamespace::Path("/run/netns/pod-x".into()),
            cgroups_path: Some("/berth/pod-x/c".into()),
            resources: Resources {
                cpu_request_millis: Some(250),
                cpu_limit_millis: Some(500),
                memory_limit_bytes: Some(64 << 20),
            },
            ..Default::default()
        };
        let spec = build_spec(&container, &image(), Path::new("/c/rootfs")).unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["process"]["args"], serde_json::json!(["sh", "-c", "echo hi"]));
        assert_eq!(json["process"]["cwd"], "/srv");
        assert_eq!(json["process"]["user"]["uid"], 1000);
        assert_eq!(json["process"]["user"]["gid"], 1000);
        assert_eq!(json["process"]["noNewPrivileges"], true);
        assert!(json["process"]["env"].as_array().unwrap().contains(&"A=pod".into()));
        assert!(json["process"]["env"].as_array().unwrap().contains(&"HOSTNAME=web-0".into()));
        let bounding: Vec<&str> =
            json["process"]["capabilities"]["bounding"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
        assert_eq!(bounding.len(), 14);
        assert!(bounding.contains(&"CAP_NET_BIND_SERVICE") && !bounding.contains(&"CAP_SYS_ADMIN"));
        assert_eq!(json["hostname"], "web-0");
        assert_eq!(json["root"], serde_json::json!({"path": "/c/rootfs", "readonly": true}));
        let ns = json["linux"]["namespaces"].as_array().unwrap();
        assert_eq!(ns.len(), 5);
        assert!(ns.contains(&serde_json::json!({"type": "network", "path": "/run/netns/pod-x"})));
        assert!(!ns.iter().any(|n| n["type"] == "user" || n["type"] == "cgroup"));
        assert_eq!(json["linux"]["cgroupsPath"], "/berth/pod-x/c");
        assert_eq!(json["linux"]["resources"]["cpu"]["shares"], 256);
        assert_eq!(json["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(json["linux"]["resources"]["cpu"]["period"], 100_000);
        assert_eq!(json["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert!(json["linux"]["maskedPaths"].as_array().unwrap().contains(&"/proc/kcore".into()));
        assert!(json["linux"]["readonlyPaths"].as_array().unwrap().contains(&"/proc/sys".into()));
        let mounts = json["mounts"].as_array().unwrap();
        let dests: Vec<&str> = mounts.iter().filter_map(|m| m["destination"].as_str()).collect();
        for d in ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/etc/hosts"] {
            assert!(dests.contains(&d), "missing mount {d}");
        }
        let sys = mounts.iter().find(|m| m["destination"] == "/sys").unwrap();
        assert!(sys["options"].as_array().unwrap().contains(&"ro".into()));
        let hosts = mounts.iter().find(|m| m["destination"] == "/etc/hosts").unwrap();
        assert_eq!(hosts["type"], "bind");
        assert!(hosts["options"].as_array().unwrap().contains(&"ro".into()));
    }

    #[test]
    fn host_network_adds_no_network_namespace_and_relative_mounts_are_rejected() {
        let mut c = ContainerSpec { command: s(&["true"]), network: NetworkNamespace::Host, ..Default::default() };
        let spec = build_spec(&c, &ImageConfig::default(), Path::new("/r")).unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert!(!json["linux"]["namespaces"].as_array().unwrap().iter().any(|n| n["type"] == "network"));
        assert!(json["linux"]["resources"].get("memory").is_none());
        c.mounts.push(BindMount { source: "/x".into(), destination: "rel".into(), readonly: false });
        assert!(matches!(
            build_spec(&c, &ImageConfig::default(), Path::new("/r")),
            Err(BundleError::RelativeMount { .. })
        ));
    }

    #[test]
    fn bundle_writes_config_json() {
        let dir = tempfile::tempdir().unwrap();
        let c = ContainerSpec { command: s(&["true"]), ..Default::default() };
        let spec = build_spec(&c, &ImageConfig::default(), &dir.path().join("rootfs")).unwrap();
        let bundle = Bundle::write(dir.path(), &spec).unwrap();
        let back = Spec::load(bundle.path().join("config.json")).unwrap();
        assert_eq!(back.process().as_ref().unwrap().args().as_ref().unwrap(), &s(&["true"]));
    }
}
