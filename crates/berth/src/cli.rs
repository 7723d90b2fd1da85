//! Command-line flags of every `berth` verb (clap derive). Flag names follow k3s for `berth server`
//! and kubectl for the client verbs; no behaviour lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Berth: a Kubernetes-compatible container orchestrator in one binary.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every client verb understands (as kubectl's global flags).
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (else KUBECONFIG, ~/.kube/config, then the local server's
    /// admin kubeconfig).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The namespace scope for this request.
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// List or act on the requested objects across all namespaces.
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
    /// How long to wait for a single server request (e.g. 1s, 2m; 0: no limit). A watch ends
    /// quietly when it runs out.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration, default_value = "0")]
    pub request_timeout: std::time::Duration,
    /// Log level: error, warn, info, debug, trace, or a number (0-10, as kubectl's -v).
    #[arg(short = 'v', long = "log-level", global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
}

/// Parses kubectl durations: `0`, a number of seconds, or `1h2m3s`, `500ms`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    let mut total = std::time::Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let n = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let value: f64 = rest[..n].parse().map_err(|_| format!("invalid duration {text:?}"))?;
        rest = &rest[n..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return Err(format!("invalid duration {text:?}: units are h, m, s, ms")),
        };
        total += std::time::Duration::from_secs_f64(value * scale);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Maps `-v` to a tracing filter: names pass through, kubectl numbers map to levels.
pub fn log_filter(level: &str) -> String {
    match level.parse::<u32>() {
        Ok(0) => "warn".to_string(),
        Ok(1..=3) => "info".to_string(),
        Ok(4..=6) => "debug".to_string(),
        Ok(_) => "trace".to_string(),
        Err(_) => level.to_string(),
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Berth server (apiserver and, later, the control plane).
    Server(Box<ServerArgs>),
    /// Run a node agent (kubelet, or --sim-nodes fake nodes) that joins a server.
    Agent(Box<crate::cmd::agent::AgentArgs>),
    /// Display one or many resources.
    Get(GetArgs),
    /// Show details of a specific resource or group of resources.
    Describe(DescribeArgs),
    /// Apply a configuration to a resource by file name or stdin.
    Apply(ApplyArgs),
    /// Create a resource from a file or from stdin, or a deployment or namespace by name.
    Create(CreateArgs),
    /// Delete resources by file names, stdin, resources and names, or by label selector.
    Delete(DeleteArgs),
    /// Print the supported API resources on the server.
    ApiResources(ApiResourcesArgs),
    /// Print the client and server version information.
    Version(VersionArgs),
    /// Display the address of the control plane and cluster services.
    ClusterInfo,
    /// Set a new size for a deployment, replica set, replication controller, or stateful set.
    Scale(crate::cmd::scale::ScaleArgs),
    /// Take a replication controller, service, deployment or pod and expose it as a new Service.
    Expose(crate::cmd::expose::ExposeArgs),
    /// Manage the rollout of a resource.
    Rollout(crate::cmd::rollout::RolloutArgs),
    /// Set specific features on objects (set image).
    Set(crate::cmd::set_image::SetArgs),
    /// Mark node as unschedulable.
    Cordon(crate::cmd::cordon::CordonArgs),
    /// Mark node as schedulable.
    Uncordon(crate::cmd::cordon::CordonArgs),
    /// Drain node in preparation for maintenance.
    Drain(crate::cmd::drain::DrainArgs),
    /// Update the taints on one or more nodes.
    Taint(crate::cmd::taint::TaintArgs),
    /// Update the labels on a resource.
    Label(crate::cmd::label::LabelArgs),
    /// Update the annotations on a resource.
    Annotate(crate::cmd::annotate::AnnotateArgs),
    /// Auto-scale a deployment, replica set, stateful set, or replication controller.
    Autoscale(crate::cmd::autoscale::AutoscaleArgs),
    /// Display resource (CPU/memory) usage of pods or nodes.
    Top(crate::cmd::top::TopArgs),
    /// Print the logs for a container in a pod.
    Logs(crate::cmd::logs::LogsArgs),
    /// Execute a command in a container.
    Exec(crate::cmd::exec::ExecArgs),
    /// Forward one or more local ports to a pod.
    PortForward(crate::cmd::port_forward::PortForwardArgs),
    /// Manage the node's image store (DATA_DIR/agent/images).
    #[command(subcommand)]
    Image(ImageCommand),
}

/// `berth image`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Import images from an OCI archive or a `docker save` tar.
    Import(ImageImportArgs),
    /// Pull an image from an OCI registry (plain HTTP for registries on loopback).
    Pull(ImagePullArgs),
    /// List the images in the store.
    #[command(alias = "list")]
    Ls(ImageDataDirArgs),
    /// Remove an image by reference.
    Rm(ImageRmArgs),
}

/// The data dir of `berth image` commands (as for `berth server`).
#[derive(Debug, Args)]
pub struct ImageDataDirArgs {
    /// Folder holding state [default: as for berth server].
    #[arg(long, short = 'd', value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `berth image import`.
#[derive(Debug, Args)]
pub struct ImageImportArgs {
    /// The archive to import.
    pub file: PathBuf,
    #[command(flatten)]
    pub dir: ImageDataDirArgs,
}

/// `berth image pull`.
#[derive(Debug, Args)]
pub struct ImagePullArgs {
    /// The image reference (`busybox`, `127.0.0.1:5000/team/app:v1`).
    pub reference: String,
    /// Registry user name (with --password).
    #[arg(long, requires = "password")]
    pub username: Option<String>,
    /// Registry password.
    #[arg(long, env = "BERTH_REGISTRY_PASSWORD", hide_env_values = true, requires = "username")]
    pub password: Option<String>,
    #[command(flatten)]
    pub dir: ImageDataDirArgs,
}

/// `berth image rm`.
#[derive(Debug, Args)]
pub struct ImageRmArgs {
    /// Image references to remove.
    #[arg(required = true)]
    pub references: Vec<String>,
    #[command(flatten)]
    pub dir: ImageDataDirArgs,
}

/// `berth server`.
#[derive(Debug, Args)]
#[command(after_help = "By default the admin kubeconfig is also written to ~/.kube/config when \
that file does not exist yet (as k3s does); pass --no-default-kubeconfig to never touch it.")]
pub struct ServerArgs {
    /// Folder to hold state [default: /var/lib/berth as root, else $XDG_DATA_HOME/berth or
    /// ~/.local/share/berth].
    #[arg(long, short = 'd', value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address the apiserver listens on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_address: std::net::IpAddr,
    /// HTTPS listen port (0 picks a free port).
    #[arg(long, default_value_t = 6443)]
    pub https_listen_port: u16,
    /// Datastore: `etcd://host:port[,host:port...]` or `sqlite:///path/state.db` [default: SQLite
    /// under DATA_DIR/db/].
    #[arg(long, value_name = "ENDPOINT")]
    pub datastore_endpoint: Option<String>,
    /// Static bearer tokens (kube-apiserver CSV format: token,user,uid,"group1,group2").
    #[arg(long, value_name = "PATH")]
    pub token_auth_file: Option<PathBuf>,
    /// Additional hostnames or IPs as subject alternative names in the serving certificate.
    #[arg(long, value_name = "SAN")]
    pub tls_san: Vec<String>,
    /// IPv4 network CIDR to use for service IPs.
    #[arg(long, default_value = "10.43.0.0/16")]
    pub service_cidr: String,
    /// IPv4 network CIDR for pod IPs; each Node gets a /24 of it.
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,
    /// Also write the admin kubeconfig to this path.
    #[arg(long, short = 'o', value_name = "PATH")]
    pub write_kubeconfig: Option<PathBuf>,
    /// File mode (octal, e.g. 0644) of the kubeconfig written by --write-kubeconfig.
    #[arg(long, value_name = "MODE")]
    pub write_kubeconfig_mode: Option<String>,
    /// Do not run the agent alongside the server.
    #[arg(long)]
    pub disable_agent: bool,
    /// Do not run the scheduler.
    #[arg(long)]
    pub disable_scheduler: bool,
    #[command(flatten)]
    pub kubelet: crate::cmd::kubelet_args::KubeletArgs,
    /// Do not run the controller manager (garbage collector, ReplicaSet, Deployment, Namespace).
    #[arg(long)]
    pub disable_controller_manager: bool,
    /// Packaged components not to run, as k3s' `--disable` (repeat or comma-separate): `servicelb`.
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub disable: Vec<String>,
    /// Give LoadBalancer Services addresses from this IPv4 CIDR instead of the nodes' InternalIPs.
    #[arg(long, value_name = "CIDR")]
    pub servicelb_pool: Option<String>,
    /// Do not write the admin kubeconfig to ~/.kube/config, even when that file is absent.
    #[arg(long)]
    pub no_default_kubeconfig: bool,
    /// How often the embedded metrics collector scrapes the kubelets (metrics-server's
    /// --metric-resolution).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "15s")]
    pub metrics_resolution: std::time::Duration,
    /// How often the HorizontalPodAutoscaler controller reconciles each HPA.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "15s")]
    pub horizontal_pod_autoscaler_sync_period: std::time::Duration,
    /// Run the cluster autoscaler with this config file (node groups; see berth-autoscaler).
    #[arg(long, value_name = "PATH")]
    pub cluster_autoscaler_config: Option<PathBuf>,
    #[command(flatten)]
    pub proxy: crate::cmd::proxy::ProxyArgs,
    #[command(flatten)]
    pub dns: crate::cmd::dns::DnsArgs,
    #[command(flatten)]
    pub sim: crate::cmd::agent::SimArgs,
}

/// Output formats shared by get and create.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Wide,
    Yaml,
    Json,
    Name,
}

/// `berth get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// TYPE[.GROUP][,TYPE...] [NAME...] or TYPE/NAME...
    #[arg(required = true, value_name = "TYPE[/NAME]")]
    pub resources: Vec<String>,
    /// Output format: wide, yaml, json or name.
    #[arg(short = 'o', long)]
    pub output: Option<OutputFormat>,
    /// Label selector (e.g. -l key1=value1,key2=value2).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector (e.g. --field-selector metadata.name=web).
    #[arg(long)]
    pub field_selector: Option<String>,
    /// After listing, watch for changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// With --watch, add an EVENT column (ADDED, MODIFIED, DELETED).
    #[arg(long)]
    pub output_watch_events: bool,
    /// Show all labels as the last column.
    #[arg(long)]
    pub show_labels: bool,
    /// Do not print headers.
    #[arg(long)]
    pub no_headers: bool,
    /// Keep metadata.managedFields in -o json|yaml output.
    #[arg(long)]
    pub show_managed_fields: bool,
}

/// `berth describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// TYPE [NAME_PREFIX...] or TYPE/NAME.
    #[arg(required = true, value_name = "TYPE[/NAME]")]
    pub resources: Vec<String>,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

/// `berth apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Files, directories or `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    pub filenames: Vec<String>,
    /// Apply on the server (server-side apply, field manager `berth`).
    #[arg(long)]
    pub server_side: bool,
    /// With --server-side, take ownership of conflicting fields.
    #[arg(long)]
    pub force_conflicts: bool,
    /// Output format: name.
    #[arg(short = 'o', long)]
    pub output: Option<OutputFormat>,
}

/// `berth create`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CreateArgs {
    /// Files, directories or `-` for stdin.
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<String>,
    #[command(subcommand)]
    pub what: Option<CreateCommand>,
}

#[derive(Debug, Subcommand)]
pub enum CreateCommand {
    /// Create a deployment with the specified name.
    #[command(alias = "deploy")]
    Deployment {
        name: String,
        /// Image name to run.
        #[arg(long, required = true)]
        image: Vec<String>,
        /// Number of replicas.
        #[arg(short = 'r', long, default_value_t = 1)]
        replicas: i32,
        /// The containerPort this deployment exposes.
        #[arg(long)]
        port: Option<i32>,
    },
    /// Create a namespace with the specified name.
    #[command(alias = "ns")]
    Namespace { name: String },
}

/// Propagation of a delete to dependents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Cascade {
    /// Also kubectl's deprecated `--cascade=true`.
    #[value(alias = "true")]
    Background,
    Foreground,
    /// Also kubectl's deprecated `--cascade=false`.
    #[value(alias = "false")]
    Orphan,
}

/// `berth delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// TYPE NAME..., TYPE/NAME..., or TYPE with -l/--all.
    #[arg(value_name = "TYPE[/NAME]")]
    pub resources: Vec<String>,
    /// Files, directories or `-` for stdin.
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<String>,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Delete all resources of the type in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Seconds given to the resource to terminate gracefully (-1: the resource's default).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// With --grace-period=0, remove the object at once without waiting for confirmation.
    #[arg(long)]
    pub force: bool,
    /// How dependents are deleted.
    #[arg(long, value_enum, default_value = "background")]
    pub cascade: Cascade,
    /// Wait until the resources are gone before returning.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
        default_missing_value = "true", require_equals = true)]
    pub wait: bool,
    /// Treat "resource not found" as a successful delete.
    #[arg(long)]
    pub ignore_not_found: bool,
    /// How long --wait waits for the objects to be gone (0: a week, as kubectl).
    #[arg(long, value_parser = parse_duration, default_value = "0")]
    pub timeout: std::time::Duration,
}

/// `berth api-resources`.
#[derive(Debug, Args)]
pub struct ApiResourcesArgs {
    /// Only namespaced (true) or cluster-scoped (false) resources.
    #[arg(long, action = clap::ArgAction::Set)]
    pub namespaced: Option<bool>,
    /// Only resources in this API group ("" for core).
    #[arg(long)]
    pub api_group: Option<String>,
    /// Output format: wide or name.
    #[arg(short = 'o', long)]
    pub output: Option<OutputFormat>,
    /// Do not print headers.
    #[arg(long)]
    pub no_headers: bool,
}

/// `berth version`.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Print the client version only.
    #[arg(long)]
    pub client: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_parse_as_kubectl_writes_them() {
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn flags_parse() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["berth", "delete", "pod", "p", "--wait=false", "--grace-period=0", "--force"])
            .unwrap();
        let Command::Delete(d) = cli.command else { panic!("delete") };
        assert!(!d.wait && d.force && d.grace_period == 0);
    }
}
