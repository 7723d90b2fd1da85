//! `berth drain`: cordons a node, then evicts its pods through `pods/eviction` (honouring
//! PodDisruptionBudgets: a 429 is retried every 5 s with kubectl's message) and waits for each to
//! be gone, with kubectl's filters (DaemonSet-managed, mirror, emptyDir and unmanaged pods), flags
//! and output (`evicting pod ns/x`, `pod/x evicted`, `node/n drained`).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};

use super::Ctx;
use super::cordon::{nodes, set_unschedulable};
use super::label::Target;
use crate::api::query;
use crate::errors::{PlainError, is_not_found, status_of};

/// kubectl's wait between evictions refused by a disruption budget.
const EVICTION_RETRY: Duration = Duration::from_secs(5);
/// kubectl's poll interval while waiting for an evicted pod to be gone.
const DELETE_POLL: Duration = Duration::from_secs(1);

/// `berth drain`.
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// Node names.
    #[arg(value_name = "NODE")]
    pub nodes: Vec<String>,
    /// Label selector of the nodes.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Label selector to filter pods on the node.
    #[arg(long)]
    pub pod_selector: Option<String>,
    /// Ignore DaemonSet-managed pods.
    #[arg(long)]
    pub ignore_daemonsets: bool,
    /// Continue even if there are pods using emptyDir (local data that will be deleted).
    #[arg(long)]
    pub delete_emptydir_data: bool,
    /// Continue even if there are pods that do not declare a controller.
    #[arg(long)]
    pub force: bool,
    /// Seconds given to each pod to terminate gracefully (-1: the pod's own value).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// How long to wait before giving up (0: forever).
    #[arg(long, value_parser = crate::cli::parse_duration, default_value = "0")]
    pub timeout: Duration,
}

/// What the filters decided for one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Delete,
    Skip,
    /// Deleted (true) or not, with a warning.
    Warn(bool, String),
    Fatal(String),
}

impl Verdict {
    fn deletes(&self) -> bool {
        matches!(self, Verdict::Delete | Verdict::Warn(true, _))
    }
}

/// The drain flags the filters read.
#[derive(Clone, Copy, Debug, Default)]
pub struct FilterFlags {
    pub ignore_daemonsets: bool,
    pub delete_emptydir_data: bool,
    pub force: bool,
}

fn finished(pod: &Value) -> bool {
    matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"))
}

fn controller_of(pod: &Value) -> Option<&Value> {
    pod.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
}

/// kubectl's filter chain (daemonSet, mirror, localStorage, unreplicated); as there, the last
/// filter that ran decides, and the chain stops at the first that does not delete.
/// `daemon_set_exists` answers whether the controlling DaemonSet exists (Err: its lookup error).
pub fn filter_pod(pod: &Value, flags: FilterFlags, daemon_set_exists: Result<bool, String>) -> Verdict {
    let filters: [&dyn Fn() -> Verdict; 4] = [
        &|| {
            let Some(c) = controller_of(pod).filter(|c| c.get("kind").and_then(Value::as_str) == Some("DaemonSet"))
            else {
                return Verdict::Delete;
            };
            if finished(pod) {
                return Verdict::Delete;
            }
            match &daemon_set_exists {
                Ok(true) => {}
                Ok(false) => {
                    let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                    let msg = format!("daemonsets.apps {name:?} not found");
                    return if flags.force { Verdict::Warn(true, msg) } else { Verdict::Fatal(msg) };
                }
                Err(e) => return Verdict::Fatal(e.clone()),
            }
            if !flags.ignore_daemonsets {
                return Verdict::Fatal("DaemonSet-managed Pods (use --ignore-daemonsets to ignore)".into());
            }
            Verdict::Warn(false, "ignoring DaemonSet-managed Pods".into())
        },
        &|| {
            let mirror = pod.pointer("/metadata/annotations").and_then(|a| a.get("kubernetes.io/config.mirror"));
            if mirror.is_some() { Verdict::Skip } else { Verdict::Delete }
        },
        &|| {
            let empty_dir = pod
                .pointer("/spec/volumes")
                .and_then(Value::as_array)
                .is_some_and(|vs| vs.iter().any(|v| v.get("emptyDir").is_some()));
            if !empty_dir || finished(pod) {
                return Verdict::Delete;
            }
            if !flags.delete_emptydir_data {
                return Verdict::Fatal("Pods with local storage (use --delete-emptydir-data to override)".into());
            }
            Verdict::Warn(true, "deleting Pods with local storage".into())
        },
        &|| {
            if finished(pod) || controller_of(pod).is_some() {
                return Verdict::Delete;
            }
            if flags.force {
                Verdict::Warn(true, "deleting Pods that declare no controller".into())
            } else {
                Verdict::Fatal("cannot delete Pods that declare no controller (use --force to override)".into())
            }
        },
    ];
    let mut verdict = Verdict::Delete;
    for f in filters {
        verdict = f();
        if !verdict.deletes() {
            break;
        }
    }
    verdict
}

fn pod_key(pod: &Value) -> String {
    let s = |p: &str| pod.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    format!("{}/{}", s("/metadata/namespace"), s("/metadata/name"))
}

/// Groups `ns/name` by message in first-seen order: `msg: a, b`.
fn grouped(items: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (msg, pod) in items {
        match out.iter_mut().find(|(m, _)| m == msg) {
            Some((_, pods)) => pods.push(pod.clone()),
            None => out.push((msg.clone(), vec![pod.clone()])),
        }
    }
    out.into_iter().map(|(m, pods)| (m, pods.join(", "))).collect()
}

/// kubectl's `GetPodsForDeletion`: the pods to evict, the warning line, and the fatal errors.
pub fn pods_for_deletion(pods: &[Value], verdicts: &[Verdict]) -> (Vec<Value>, Option<String>, Vec<String>) {
    let mut delete = Vec::new();
    let mut warnings = Vec::new();
    let mut fatals = Vec::new();
    for (pod, v) in pods.iter().zip(verdicts) {
        match v {
            Verdict::Delete => delete.push(pod.clone()),
            Verdict::Skip => {}
            Verdict::Warn(d, msg) => {
                if *d {
                    delete.push(pod.clone());
                }
                warnings.push((msg.clone(), pod_key(pod)));
            }
            Verdict::Fatal(msg) => fatals.push((msg.clone(), pod_key(pod))),
        }
    }
    let warning = (!warnings.is_empty())
        .then(|| grouped(&warnings).into_iter().map(|(m, p)| format!("{m}: {p}")).collect::<Vec<_>>().join("; "));
    let errors = grouped(&fatals)
        .into_iter()
        .map(|(m, p)| {
            if m.to_lowercase().starts_with("cannot delete") {
                format!("{m}: {p}")
            } else {
                format!("cannot delete {m}: {p}")
            }
        })
        .collect();
    (delete, warning, errors)
}

pub async fn run(ctx: &Ctx, args: DrainArgs) -> anyhow::Result<ExitCode> {
    let targets = nodes(ctx, &args.nodes, args.selector.as_deref(), "drain").await?;
    let deadline = (!args.timeout.is_zero()).then(|| tokio::time::Instant::now() + args.timeout);
    for t in &targets {
        set_unschedulable(ctx, t, true).await?;
    }
    for (i, t) in targets.iter().enumerate() {
        if let Err(err) = drain_node(ctx, t, &args, deadline).await {
            let (first, rest) = match status_of(&err) {
                Some(s) => (s.to_string(), s.to_string()),
                None => {
                    let lines: Vec<String> = format!("{err:#}").lines().map(str::to_string).collect();
                    let first = if lines.len() > 1 { format!("[{}]", lines.join(", ")) } else { lines.join("") };
                    (first, lines.join("\n"))
                }
            };
            eprintln!("error: unable to drain node {:?} due to error: {first}, continuing command...", t.name);
            eprintln!("There are pending nodes to be drained:");
            for pending in &targets[i..] {
                eprintln!(" {}", pending.name);
            }
            return Err(anyhow::Error::new(PlainError(rest)));
        }
        println!("{} drained", t.display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn drain_node(
    ctx: &Ctx,
    node: &Target,
    args: &DrainArgs,
    deadline: Option<tokio::time::Instant>,
) -> anyhow::Result<()> {
    let flags = FilterFlags {
        ignore_daemonsets: args.ignore_daemonsets,
        delete_emptydir_data: args.delete_emptydir_data,
        force: args.force,
    };
    let field = format!("spec.nodeName={}", node.name);
    let q = query(&[("fieldSelector", Some(&field)), ("labelSelector", args.pod_selector.as_deref())]);
    let list = ctx.api.get_json(&format!("/api/v1/pods{q}")).await?;
    let pods: Vec<Value> = list.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut verdicts = Vec::new();
    for pod in &pods {
        let ds = match controller_of(pod).filter(|c| c.get("kind").and_then(Value::as_str) == Some("DaemonSet")) {
            Some(c) => {
                let ns = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default");
                let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                match ctx.api.get_json(&format!("/apis/apps/v1/namespaces/{ns}/daemonsets/{name}")).await {
                    Ok(_) => Ok(true),
                    Err(e) if is_not_found(&e) => Ok(false),
                    Err(e) => Err(format!("{e:#}")),
                }
            }
            None => Ok(true),
        };
        verdicts.push(filter_pod(pod, flags, ds));
    }
    let (to_evict, warning, errors) = pods_for_deletion(&pods, &verdicts);
    if !errors.is_empty() {
        anyhow::bail!("{}", errors.join("\n"));
    }
    if let Some(w) = warning {
        eprintln!("Warning: {w}");
    }
    let evictions = to_evict.iter().map(|pod| async move {
        let work = evict_and_wait(ctx, pod, args.grace_period, deadline, args.timeout);
        match deadline {
            // The global timeout also cuts a request in flight, as kubectl's context does.
            Some(d) => tokio::time::timeout_at(d, work)
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("drain did not complete within {:?}", args.timeout))),
            None => work.await,
        }
    });
    let results = futures::future::join_all(evictions).await;
    let errs: Vec<String> = results.into_iter().filter_map(Result::err).map(|e| format!("{e:#}")).collect();
    if !errs.is_empty() {
        let pending = ctx.api.get_json(&format!("/api/v1/pods{q}")).await.ok();
        let names: Vec<String> = pending
            .as_ref()
            .and_then(|l| l.get("items"))
            .and_then(Value::as_array)
            .map(|items| {
                items.iter().filter_map(|p| p.pointer("/metadata/name")?.as_str().map(str::to_string)).collect()
            })
            .unwrap_or_default();
        if !names.is_empty() {
            eprintln!("There are pending pods in node {:?} when an error occurred: {}", node.name, errs.join("\n"));
            for n in names {
                eprintln!("pod/{n}");
            }
        }
        anyhow::bail!("{}", errs.join("\n"));
    }
    Ok(())
}

/// Evicts one pod (retrying while a disruption budget refuses), then waits until it is gone.
async fn evict_and_wait(
    ctx: &Ctx,
    pod: &Value,
    grace_period: i64,
    deadline: Option<tokio::time::Instant>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let s = |p: &str| pod.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    let (ns, name, uid) = (s("/metadata/namespace"), s("/metadata/name"), s("/metadata/uid"));
    let pod_path = format!("/api/v1/namespaces/{ns}/pods/{name}");
    let mut body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": name, "namespace": ns}});
    if grace_period >= 0 {
        body["deleteOptions"] = json!({"gracePeriodSeconds": grace_period});
    }
    let timed_out = || deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
    loop {
        println!("evicting pod {ns}/{name}");
        if timed_out() {
            anyhow::bail!("error when evicting pods/{name:?} -n {ns:?}: global timeout reached: {timeout:?}");
        }
        match ctx.api.post(&format!("{pod_path}/eviction"), &body).await {
            Ok(_) => break,
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) if status_of(&e).is_some_and(|s| s.code() == 429) => {
                let msg = status_of(&e).map(|s| s.0.message.clone()).unwrap_or_default();
                eprintln!("error when evicting pods/{name:?} -n {ns:?} (will retry after 5s): {msg}");
                tokio::time::sleep(EVICTION_RETRY).await;
            }
            Err(e) => {
                let msg = status_of(&e).map(|s| s.0.message.clone()).unwrap_or_else(|| format!("{e:#}"));
                anyhow::bail!("error when evicting pods/{name:?} -n {ns:?}: {msg}");
            }
        }
    }
    loop {
        match ctx.api.get_json(&pod_path).await {
            Err(e) if is_not_found(&e) => break,
            Err(e) => return Err(e),
            Ok(p) if p.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid.as_str()) => break,
            Ok(_) => {}
        }
        if timed_out() {
            anyhow::bail!("drain did not complete within {timeout:?}");
        }
        // kubectl polls every second for the pod to be gone.
        tokio::time::sleep(DELETE_POLL).await;
    }
    println!("pod/{name} evicted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, owner: Option<&str>, empty_dir: bool) -> Value {
        let mut p =
            json!({"metadata": {"name": name, "namespace": "default"}, "spec": {}, "status": {"phase": "Running"}});
        if let Some(kind) = owner {
            p["metadata"]["ownerReferences"] = json!([{"kind": kind, "name": "o", "controller": true}]);
        }
        if empty_dir {
            p["spec"]["volumes"] = json!([{"name": "v", "emptyDir": {}}]);
        }
        p
    }

    #[test]
    fn filters_refuse_unmanaged_daemonset_and_local_storage_pods() {
        let none = FilterFlags::default();
        assert_eq!(filter_pod(&pod("a", Some("ReplicaSet"), false), none, Ok(true)), Verdict::Delete);
        assert_eq!(
            filter_pod(&pod("b", None, false), none, Ok(true)),
            Verdict::Fatal("cannot delete Pods that declare no controller (use --force to override)".into())
        );
        let force = FilterFlags { force: true, ..none };
        assert_eq!(
            filter_pod(&pod("b", None, false), force, Ok(true)),
            Verdict::Warn(true, "deleting Pods that declare no controller".into())
        );
        assert!(matches!(filter_pod(&pod("c", Some("DaemonSet"), false), none, Ok(true)), Verdict::Fatal(_)));
        let ignore = FilterFlags { ignore_daemonsets: true, ..none };
        assert_eq!(
            filter_pod(&pod("c", Some("DaemonSet"), false), ignore, Ok(true)),
            Verdict::Warn(false, "ignoring DaemonSet-managed Pods".into())
        );
        assert!(matches!(filter_pod(&pod("d", Some("ReplicaSet"), true), none, Ok(true)), Verdict::Fatal(_)));
        // The local-storage warning is dropped by the later filter, as in kubectl.
        let data = FilterFlags { delete_emptydir_data: true, ..none };
        assert_eq!(filter_pod(&pod("d", Some("ReplicaSet"), true), data, Ok(true)), Verdict::Delete);
    }

    #[test]
    fn errors_and_warnings_group_pods_by_message() {
        let pods = vec![pod("a", None, false), pod("b", None, false), pod("c", Some("ReplicaSet"), true)];
        let none = FilterFlags::default();
        let verdicts: Vec<Verdict> = pods.iter().map(|p| filter_pod(p, none, Ok(true))).collect();
        let (delete, warning, errors) = pods_for_deletion(&pods, &verdicts);
        assert!(delete.is_empty() && warning.is_none());
        assert_eq!(
            errors,
            vec![
                "cannot delete Pods that declare no controller (use --force to override): default/a, default/b",
                "cannot delete Pods with local storage (use --delete-emptydir-data to override): default/c",
            ]
        );
        let force = FilterFlags { force: true, ..none };
        let verdicts: Vec<Verdict> = pods[..2].iter().map(|p| filter_pod(p, force, Ok(true))).collect();
        let (delete, warning, _) = pods_for_deletion(&pods[..2], &verdicts);
        assert_eq!(delete.len(), 2);
        assert_eq!(warning.as_deref(), Some("deleting Pods that declare no controller: default/a, default/b"));
    }
}
