//! One worker task per pod: sets up the sandbox, runs the init containers in order (sidecars
//! among them keep running), then the app containers (adopting running ones after a kubelet
//! restart), each in its own cgroup with its requests and limits; restarts them per
//! `restartPolicy` with CrashLoopBackOff; runs their probes (readiness drives `ready`, a failing
//! liveness or startup probe restarts the container) and postStart/preStop hooks; reports
//! OOM kills; writes the pod status; and on deletion stops everything (preStop, SIGTERM, grace
//! period, SIGKILL), cleans up and deletes the pod object.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::container::{self, container_id, crash_backoff};
use super::hooks::{self, HookKind};
use super::probe::{self, ProbeEvent, ProbeKind};
use super::status::{self, ContainerRecord, Kind, PodContext, State, Terminated};
use super::{Shared, error_chain};
use super::{cgroup, image_pull, sandbox};
use crate::bundle::{Bundle, ContainerSpec, NetworkNamespace, build_spec};
use crate::runtime::{ContainerIo, ContainerState, Signal};

/// What the watch tells a worker.
#[derive(Clone)]
enum Update {
    Pod(Box<Pod>),
    /// The pod is gone from the API (force-deleted).
    Gone,
}

/// The watch loop's handle on a worker.
pub struct Handle {
    tx: watch::Sender<Update>,
    task: JoinHandle<()>,
}

impl Handle {
    /// Starts the worker of `pod`.
    pub fn spawn(shared: Arc<Shared>, pod: Pod, cancel: CancellationToken) -> Handle {
        let (tx, rx) = watch::channel(Update::Pod(Box::new(pod)));
        let task = tokio::spawn(async move { Worker::new(shared, rx, cancel).run().await });
        Handle { tx, task }
    }

    /// A newer version of the pod.
    pub fn update(&self, pod: Pod) {
        let _ = self.tx.send(Update::Pod(Box::new(pod)));
    }

    /// The pod is gone from the API: stop and clean up.
    pub fn gone(&self) {
        let _ = self.tx.send(Update::Gone);
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// How long a postStart hook may run (upstream has no limit; one stuck hook must not stall the
/// pod worker forever).
const POST_START_TIMEOUT: Duration = Duration::from_secs(120);
/// After a preStop hook used up the grace period, the container still gets this long after
/// SIGTERM (upstream `minimumGracePeriodInSeconds`).
const MIN_GRACE_AFTER_PRE_STOP: Duration = Duration::from_secs(2);
/// The default `terminationGracePeriodSeconds`.
const DEFAULT_GRACE_SECONDS: i64 = 30;

/// A container's process exit, as its exit watcher reports it.
struct Exit {
    name: String,
    id: String,
    code: Option<i32>,
    /// The kernel OOM-killed a process in the container's cgroup.
    oom: bool,
}

struct Worker {
    shared: Arc<Shared>,
    rx: watch::Receiver<Update>,
    cancel: CancellationToken,
    last: Option<Pod>,
    records: Vec<ContainerRecord>,
    /// When a container waiting in back-off may be started again.
    retry_at: HashMap<String, Instant>,
    sandbox: Option<(Option<PathBuf>, Vec<String>)>,
    start_time: Option<Timestamp>,
    exits_tx: mpsc::UnboundedSender<Exit>,
    exits_rx: mpsc::UnboundedReceiver<Exit>,
    probe_tx: mpsc::UnboundedSender<ProbeEvent>,
    probe_rx: mpsc::UnboundedReceiver<ProbeEvent>,
    /// The prober task of each running container with probes, with its run's instance number.
    probers: HashMap<String, (u64, tokio::task::AbortHandle)>,
    /// Counts container runs, so that a late probe result of an earlier run is ignored.
    instances: u64,
    /// Sidecars being stopped because the app containers are done.
    stopping: HashSet<String>,
    /// This kubelet's cgroup subtree.
    cgroup_root: PathBuf,
    last_status: Option<serde_json::Value>,
    adopted: bool,
    /// A finished pod's sandbox and containers are gone.
    released: bool,
}

fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn containers(pod: &Pod) -> Vec<Container> {
    pod.spec.as_ref().map(|s| s.containers.clone()).unwrap_or_default()
}

/// Every container of the pod with its kind: the init containers in order (those with
/// `restartPolicy: Always` are sidecars), then the app containers.
fn all_containers(pod: &Pod) -> Vec<(Container, Kind)> {
    let init = pod.spec.as_ref().and_then(|s| s.init_containers.clone()).unwrap_or_default();
    let init = init.into_iter().map(|c| {
        let kind = if c.restart_policy.as_deref() == Some("Always") { Kind::Sidecar } else { Kind::Init };
        (c, kind)
    });
    init.chain(containers(pod).into_iter().map(|c| (c, Kind::App))).collect()
}

fn grace_period(pod: &Pod) -> i64 {
    pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(DEFAULT_GRACE_SECONDS)
}

fn seconds(secs: i64) -> Duration {
    Duration::from_secs(u64::try_from(secs.clamp(0, 3600)).unwrap_or(0))
}

/// No container of the pod runs.
fn all_stopped(records: &[ContainerRecord]) -> bool {
    records.iter().all(|r| !r.is_running())
}

/// The app containers are done for good (so sidecars are stopped): every one terminated and
/// `restartPolicy` restarts none of them.
fn apps_done(policy: &str, records: &[ContainerRecord]) -> bool {
    let mut apps = records.iter().filter(|r| r.kind == Kind::App).peekable();
    policy != "Always"
        && apps.peek().is_some()
        && apps.all(|r| match &r.state {
            State::Terminated(t) => policy == "Never" || t.exit_code == 0,
            _ => false,
        })
}

impl Worker {
    fn new(shared: Arc<Shared>, rx: watch::Receiver<Update>, cancel: CancellationToken) -> Self {
        let (exits_tx, exits_rx) = mpsc::unbounded_channel();
        let (probe_tx, probe_rx) = mpsc::unbounded_channel();
        let cgroup_root = cgroup::kubelet_cgroup(&shared.config.node_name);
        Worker {
            shared,
            rx,
            cancel,
            last: None,
            records: Vec::new(),
            retry_at: HashMap::new(),
            sandbox: None,
            start_time: None,
            exits_tx,
            exits_rx,
            probe_tx,
            probe_rx,
            probers: HashMap::new(),
            instances: 0,
            stopping: HashSet::new(),
            cgroup_root,
            last_status: None,
            adopted: false,
            released: false,
        }
    }

    async fn run(mut self) {
        loop {
            let update = self.rx.borrow_and_update().clone();
            match update {
                Update::Gone => {
                    self.terminate(None).await;
                    return;
                }
                Update::Pod(pod) => {
                    if pod.metadata.deletion_timestamp.is_some() {
                        self.terminate(Some(&pod)).await;
                        return;
                    }
                    self.sync(&pod).await;
                    if self.last.is_none() {
                        tracing::info!(pod = %pod.metadata.name.as_deref().unwrap_or_default(), uid = %uid_of(&pod), "pod worker started");
                    }
                    self.last = Some(*pod);
                }
            }
            let wake =
                self.retry_at.values().min().copied().unwrap_or_else(|| Instant::now() + Duration::from_secs(60));
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                changed = self.rx.changed() => if changed.is_err() { return },
                Some(exit) = self.exits_rx.recv() => self.on_exit(exit),
                Some(event) = self.probe_rx.recv() => self.on_probe(event).await,
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    fn record_mut(&mut self, name: &str) -> Option<&mut ContainerRecord> {
        self.records.iter_mut().find(|r| r.name == name)
    }

    fn on_exit(&mut self, exit: Exit) {
        if let Some((_, prober)) = self.probers.remove(&exit.name) {
            prober.abort();
        }
        let Some(rec) = self.record_mut(&exit.name) else { return };
        if let State::Running { started_at } = rec.state {
            let id = Some(format!("runc://{}", exit.id));
            let mut t = Terminated::exited(exit.code, Some(started_at), id);
            if exit.oom {
                t.reason = "OOMKilled".into();
            }
            rec.state = State::Terminated(t);
        }
    }

    /// A probe result changed: readiness sets `ready`, a startup success sets `started`, and a
    /// failed liveness or startup probe restarts the container.
    async fn on_probe(&mut self, event: ProbeEvent) {
        if self.probers.get(&event.container).map(|p| p.0) != Some(event.instance) {
            return;
        }
        let Some(pod) = self.last.clone() else { return };
        let Some(rec) = self.record_mut(&event.container) else { return };
        if !rec.is_running() {
            return;
        }
        let kind = rec.kind;
        match (event.kind, event.ok) {
            (ProbeKind::Readiness, ok) => rec.ready = Some(ok),
            (ProbeKind::Startup, true) => rec.started = Some(true),
            (ProbeKind::Liveness | ProbeKind::Startup, false) => {
                rec.ready = rec.ready.map(|_| false);
                let Some((c, _)) = all_containers(&pod).into_iter().find(|(c, _)| c.name == event.container) else {
                    return;
                };
                let probe = if event.kind == ProbeKind::Liveness { &c.liveness_probe } else { &c.startup_probe };
                let grace = probe
                    .as_ref()
                    .and_then(|p| p.termination_grace_period_seconds)
                    .unwrap_or_else(|| grace_period(&pod));
                let what = if event.kind == ProbeKind::Liveness { "liveness" } else { "startup" };
                let message = format!("Container {} failed {what} probe, will be restarted", c.name);
                self.shared.events.pod_event(&pod, Some(field_path(&c, kind)), false, "Killing", message).await;
                if let Some((_, prober)) = self.probers.remove(&c.name) {
                    prober.abort();
                }
                tokio::spawn(stop_container(self.stop_request(&pod, c, kind, seconds(grace))));
            }
            (ProbeKind::Liveness, true) => {}
        }
    }

    /// What [`stop_container`] needs to stop one of this pod's containers.
    fn stop_request(&self, pod: &Pod, container: Container, kind: Kind, grace: Duration) -> StopRequest {
        let id = container_id(&uid_of(pod), &container.name);
        StopRequest { shared: self.shared.clone(), pod: pod.clone(), target: self.target(&id), container, kind, grace }
    }

    /// Where this pod's probes and hooks of container `id` run.
    fn target(&self, id: &str) -> probe::Target {
        probe::Target {
            pod_ip: self.sandbox.as_ref().and_then(|s| s.1.first().cloned()).unwrap_or_default(),
            runtime: self.shared.runtime.clone(),
            container_id: id.to_string(),
        }
    }

    /// Starts the prober task of a container run (if it has probes); `started` skips a startup
    /// probe that already passed (an adopted container).
    fn start_prober(&mut self, pod: &Pod, c: &Container, kind: Kind, id: &str, started: bool) {
        if let Some((_, old)) = self.probers.remove(&c.name) {
            old.abort();
        }
        let probes = match probe::configured(c) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(container = %id, error = %e, "invalid probe; not probing");
                return;
            }
        };
        let probes: Vec<_> = probes.into_iter().filter(|p| !(started && p.kind == ProbeKind::Startup)).collect();
        if probes.is_empty() {
            return;
        }
        self.instances += 1;
        let prober = probe::Prober {
            container: c.name.clone(),
            instance: self.instances,
            target: self.target(id),
            started_at: Instant::now(),
            events: Some(self.shared.events.clone()),
            pod: pod.clone(),
            field_path: field_path(c, kind),
            tx: self.probe_tx.clone(),
        };
        let task = tokio::spawn(prober.run(probes));
        self.probers.insert(c.name.clone(), (self.instances, task.abort_handle()));
    }

    /// Restores records from the runtime and the last written status (after a kubelet restart).
    async fn adopt(&mut self, pod: &Pod) {
        let uid = uid_of(pod);
        let mut statuses = pod.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
        statuses.extend(pod.status.as_ref().and_then(|s| s.init_container_statuses.clone()).unwrap_or_default());
        self.start_time = pod.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0);
        let has_init = pod.spec.as_ref().and_then(|s| s.init_containers.as_ref()).is_some_and(|i| !i.is_empty());
        let mut adopted = Vec::new();
        for (c, kind) in all_containers(pod) {
            let mut rec = ContainerRecord::new(&c.name, c.image.as_deref().unwrap_or_default()).with_kind(kind);
            if has_init {
                rec.state = State::Waiting { reason: "PodInitializing".into(), message: None };
            }
            let prev = statuses.iter().find(|s| s.name == c.name);
            let id = container_id(&uid, &c.name);
            match self.shared.runtime.state(&id).await {
                Ok(ContainerState::Running { .. }) => {
                    rec.restart_count = prev.map_or(0, |s| s.restart_count);
                    rec.image_id = prev.map(|s| s.image_id.clone()).unwrap_or_default();
                    let started = prev
                        .and_then(|s| s.state.as_ref())
                        .and_then(|s| s.running.as_ref())
                        .and_then(|r| r.started_at.as_ref())
                        .map_or_else(Timestamp::now, |t| t.0);
                    rec.state = State::Running { started_at: started };
                    rec.container_id = Some(format!("runc://{id}"));
                    // Probe verdicts carry over; the probes confirm them at their next run.
                    rec.started = c.startup_probe.as_ref().map(|_| prev.and_then(|s| s.started).unwrap_or(false));
                    rec.ready = c.readiness_probe.as_ref().map(|_| prev.is_some_and(|s| s.ready));
                    self.watch_exit(&c.name, &id);
                    adopted.push((c.clone(), kind, id.clone(), rec.started.unwrap_or(true)));
                    tracing::info!(container = %id, "adopted running container");
                }
                Ok(ContainerState::Stopped { exit_code }) => {
                    rec.restart_count = prev.map_or(0, |s| s.restart_count);
                    rec.state = State::Terminated(Terminated::exited(exit_code, None, Some(format!("runc://{id}"))));
                    rec.container_id = Some(format!("runc://{id}"));
                }
                Ok(ContainerState::Created { .. }) => {
                    let _ = self.shared.runtime.delete(&id, true).await;
                }
                Err(_) => {
                    // Gone from the runtime (a finished pod released its containers): what the
                    // status says ended stays ended, so restartPolicy decides as before.
                    let terminated = prev.and_then(|s| {
                        let current = s.state.as_ref().and_then(|st| st.terminated.as_ref());
                        current.or_else(|| s.last_state.as_ref().and_then(|st| st.terminated.as_ref()))
                    });
                    if let (Some(prev), Some(t)) = (prev, terminated) {
                        rec.restart_count = prev.restart_count;
                        rec.image_id = prev.image_id.clone();
                        rec.container_id = t.container_id.clone();
                        rec.state = State::Terminated(Terminated {
                            exit_code: t.exit_code,
                            reason: t.reason.clone().unwrap_or_else(|| "Error".into()),
                            message: t.message.clone(),
                            started_at: t.started_at.as_ref().map(|t| t.0),
                            finished_at: t.finished_at.as_ref().map_or_else(Timestamp::now, |t| t.0),
                            container_id: t.container_id.clone(),
                        });
                    }
                }
            }
            self.records.push(rec);
        }
        if !adopted.is_empty() {
            super::volumes::start_refresh(&self.shared, pod);
        }
        for (c, kind, id, started) in adopted {
            self.start_prober(pod, &c, kind, &id, started);
        }
    }

    fn watch_exit(&self, name: &str, id: &str) {
        let (runtime, tx, name, id) =
            (self.shared.runtime.clone(), self.exits_tx.clone(), name.to_string(), id.to_string());
        let uid = container::parse_container_id(&id).map(|(uid, _)| uid.to_string()).unwrap_or_default();
        let cgroup_path = cgroup::container_cgroup(&self.cgroup_root, &uid, &name);
        tokio::spawn(async move {
            let code = match runtime.wait(&id).await {
                Ok(code) => code,
                Err(e) => {
                    tracing::warn!(container = %id, error = %error_chain(&e), "waiting for container failed");
                    None
                }
            };
            // Before anyone deletes the container: its cgroup (and the OOM count) goes with it.
            let oom = tokio::task::spawn_blocking(move || cgroup::oom_killed(&cgroup_path)).await.unwrap_or(false);
            let _ = tx.send(Exit { name, id, code, oom });
        });
    }

    async fn sync(&mut self, pod: &Pod) {
        if !self.adopted {
            self.adopted = true;
            self.adopt(pod).await;
        }
        if self.start_time.is_none() {
            self.start_time = Some(Timestamp::now());
        }
        let policy = pod.spec.as_ref().and_then(|s| s.restart_policy.clone()).unwrap_or_else(|| "Always".into());
        let finished =
            matches!(status::phase(&policy, &self.records), "Succeeded" | "Failed") && all_stopped(&self.records);
        if self.sandbox.is_none() && !finished {
            match sandbox::setup(&self.shared, pod).await {
                Ok(s) => self.sandbox = Some(s),
                Err(e) => {
                    let msg = error_chain(&e);
                    tracing::warn!(pod = %uid_of(pod), error = %msg, "pod sandbox setup failed");
                    self.shared
                        .events
                        .pod_event(
                            pod,
                            None,
                            true,
                            "FailedCreatePodSandBox",
                            format!("Failed to create pod sandbox: {msg}"),
                        )
                        .await;
                    self.retry_at.insert(String::new(), Instant::now() + Duration::from_secs(5));
                    self.write_status(pod).await;
                    return;
                }
            }
        }
        self.retry_at.remove("");
        let all = all_containers(pod);
        if !status::initialized(&self.records) {
            self.sync_init_containers(pod, &all, &policy).await;
        }
        if status::initialized(&self.records) {
            let done = apps_done(&policy, &self.records);
            for (c, kind) in &all {
                match kind {
                    Kind::Init => {}
                    Kind::Sidecar if done => self.stop_sidecar(pod, c).await,
                    Kind::Sidecar => self.sync_container(pod, c, *kind, "Always").await,
                    Kind::App => self.sync_container(pod, c, *kind, &policy).await,
                }
            }
        }
        self.write_status(pod).await;
        let finished =
            matches!(status::phase(&policy, &self.records), "Succeeded" | "Failed") && all_stopped(&self.records);
        if finished && !self.released {
            self.release(pod).await;
        }
    }

    /// Runs the init containers in order: a regular one must complete (exit 0) before the next
    /// starts and is restarted on failure unless `restartPolicy` is Never; a sidecar must be
    /// started (past its startup probe) before the next starts.
    async fn sync_init_containers(&mut self, pod: &Pod, all: &[(Container, Kind)], policy: &str) {
        let init_policy = if policy == "Never" { "Never" } else { "OnFailure" };
        for (c, kind) in all {
            let Some(rec) = self.records.iter().find(|r| r.name == c.name) else { return };
            match kind {
                Kind::App => return,
                Kind::Init => {
                    if rec.succeeded() {
                        continue;
                    }
                    if !rec.is_running() {
                        self.sync_container(pod, c, *kind, init_policy).await;
                    }
                    return;
                }
                Kind::Sidecar => {
                    if rec.is_started() {
                        continue;
                    }
                    if !rec.is_running() {
                        self.sync_container(pod, c, *kind, "Always").await;
                    }
                    if !self.records.iter().any(|r| r.name == c.name && r.is_started()) {
                        return;
                    }
                }
            }
        }
    }

    /// Stops a running sidecar once the app containers are done (it is not restarted).
    async fn stop_sidecar(&mut self, pod: &Pod, c: &Container) {
        let running = self.records.iter().any(|r| r.name == c.name && r.is_running());
        if !running || !self.stopping.insert(c.name.clone()) {
            return;
        }
        if let Some((_, prober)) = self.probers.remove(&c.name) {
            prober.abort();
        }
        let message = format!("Stopping container {}", c.name);
        self.shared.events.pod_event(pod, Some(field_path(c, Kind::Sidecar)), false, "Killing", message).await;
        tokio::spawn(stop_container(self.stop_request(pod, c.clone(), Kind::Sidecar, seconds(grace_period(pod)))));
    }

    /// A finished pod's containers, filesystems, cgroups and network go; its logs and status stay.
    async fn release(&mut self, pod: &Pod) {
        let uid = uid_of(pod);
        for (c, _) in all_containers(pod) {
            let id = container_id(&uid, &c.name);
            if let Err(e) = self.shared.runtime.delete(&id, true).await {
                tracing::warn!(container = %id, error = %error_chain(&e), "failed to delete finished container");
                return;
            }
        }
        remove_pod_cgroup(&cgroup::pod_cgroup(&self.cgroup_root, &uid));
        match sandbox::release_finished(&self.shared, pod).await {
            Ok(()) => {
                self.released = true;
                self.sandbox = None;
            }
            Err(e) => tracing::warn!(pod = %uid, error = %error_chain(&e), "failed to release a finished pod"),
        }
    }

    async fn sync_container(&mut self, pod: &Pod, c: &Container, kind: Kind, policy: &str) {
        let now = Instant::now();
        let pod_label = format!(
            "{}_{}({})",
            pod.metadata.name.as_deref().unwrap_or(""),
            pod.metadata.namespace.as_deref().unwrap_or(""),
            uid_of(pod)
        );
        let Some(rec) = self.record_mut(&c.name) else { return };
        match rec.state.clone() {
            State::Running { .. } => return,
            State::Terminated(t) => {
                let restart = match policy {
                    "Never" => false,
                    "OnFailure" => t.exit_code != 0,
                    _ => true,
                };
                if !restart {
                    return;
                }
                let delay = crash_backoff(rec.restart_count);
                rec.last_terminated = Some(t);
                rec.state = State::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: Some(format!(
                        "back-off {}s restarting failed container={} pod={pod_label}",
                        delay.as_secs(),
                        c.name
                    )),
                };
                self.retry_at.insert(c.name.clone(), now + delay);
                let msg = "Back-off restarting failed container".to_string();
                self.shared.events.pod_event(pod, Some(field_path(c, kind)), true, "BackOff", msg).await;
                return;
            }
            State::Waiting { .. } => {
                if self.retry_at.get(&c.name).is_some_and(|at| *at > now) {
                    return;
                }
                // A pod that reached a terminal phase never runs anything again.
                let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
                if matches!(phase, Some("Succeeded" | "Failed")) {
                    return;
                }
            }
        }
        self.retry_at.remove(&c.name);
        self.start_container(pod, c, kind).await;
    }

    /// Starts (or restarts) one container; failures leave it waiting with a reason.
    async fn start_container(&mut self, pod: &Pod, c: &Container, kind: Kind) {
        let uid = uid_of(pod);
        let image_ref = c.image.clone().unwrap_or_default();
        let id = container_id(&uid, &c.name);
        let fp = field_path(c, kind);
        let image = match image_pull::ensure_image(&self.shared, pod, c, &fp).await {
            Ok(image) => image,
            Err(failure) => {
                let backing_off = matches!(self.record_mut(&c.name),
                    Some(rec) if matches!(&rec.state, State::Waiting { reason, .. } if reason == "ErrImagePull" || reason == "ImagePullBackOff"));
                let (reason, delay) = if backing_off && failure.reason == "ErrImagePull" {
                    ("ImagePullBackOff", crash_backoff(1))
                } else {
                    (failure.reason, Duration::from_secs(2))
                };
                let message = failure.message;
                if let Some(rec) = self.record_mut(&c.name) {
                    rec.state = State::Waiting { reason: reason.into(), message: Some(message.clone()) };
                }
                self.retry_at.insert(c.name.clone(), Instant::now() + delay);
                let (ev_reason, ev_msg) = match reason {
                    "ImagePullBackOff" => ("BackOff", format!("Back-off pulling image {image_ref:?}")),
                    "ErrImageNeverPull" => return,
                    _ => ("Failed", format!("Failed to pull image {image_ref:?}: {message}")),
                };
                self.shared.events.pod_event(pod, Some(fp), true, ev_reason, ev_msg).await;
                return;
            }
        };
        let attempt = self
            .records
            .iter()
            .find(|r| r.name == c.name)
            .map_or(0, |r| if r.last_terminated.is_some() { r.restart_count + 1 } else { r.restart_count });
        match self.create_and_start(pod, c, &id, &image, attempt).await {
            Ok(()) => {
                self.shared
                    .events
                    .pod_event(pod, Some(fp.clone()), false, "Created", format!("Created container: {}", c.name))
                    .await;
                self.shared
                    .events
                    .pod_event(pod, Some(fp.clone()), false, "Started", format!("Started container {}", c.name))
                    .await;
                let image_id = format!("{}@{}", image.name, image.manifest_digest);
                if let Some(rec) = self.record_mut(&c.name) {
                    rec.restart_count = attempt;
                    rec.state = State::Running { started_at: Timestamp::now() };
                    rec.container_id = Some(format!("runc://{id}"));
                    rec.image_id = image_id;
                    rec.started = c.startup_probe.as_ref().map(|_| false);
                    rec.ready = c.readiness_probe.as_ref().map(|_| false);
                }
                self.watch_exit(&c.name, &id);
                if let Some(hook) = hooks::hook(c, HookKind::PostStart) {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    let result = match hook {
                        Ok(hook) => hooks::run(&hook, &self.target(&id), POST_START_TIMEOUT, &c.name, &name).await,
                        Err(e) => Err(e),
                    };
                    if let Err(message) = result {
                        tracing::warn!(container = %id, %message, "postStart hook failed");
                        self.shared.events.pod_event(pod, Some(fp), true, "FailedPostStartHook", message).await;
                        let grace = seconds(grace_period(pod));
                        tokio::spawn(stop_container(self.stop_request(pod, c.clone(), kind, grace)));
                        return;
                    }
                }
                self.start_prober(pod, c, kind, &id, false);
            }
            Err((reason, message)) => {
                tracing::warn!(container = %id, reason, %message, "container start failed");
                self.shared.events.pod_event(pod, Some(fp), true, "Failed", format!("Error: {message}")).await;
                let _ = self.shared.runtime.delete(&id, true).await;
                if let Some(rec) = self.record_mut(&c.name) {
                    if reason == "StartError" {
                        rec.restart_count = attempt;
                        let mut t = Terminated::exited(Some(128), None, Some(format!("runc://{id}")));
                        t.reason = reason.into();
                        t.message = Some(message);
                        rec.state = State::Terminated(t);
                    } else {
                        rec.state = State::Waiting { reason: reason.into(), message: Some(message) };
                    }
                }
                if reason != "StartError" {
                    self.retry_at.insert(c.name.clone(), Instant::now() + Duration::from_secs(10));
                }
            }
        }
    }

    async fn create_and_start(
        &self,
        pod: &Pod,
        c: &Container,
        id: &str,
        image: &crate::image::Image,
        attempt: i32,
    ) -> Result<(), (&'static str, String)> {
        let cfg_err = |m: String| ("CreateContainerConfigError", m);
        let create_err = |m: String| ("CreateContainerError", m);
        let uid = uid_of(pod);
        let (netns, ips) = self.sandbox.clone().unwrap_or_default();
        let pod_dir = sandbox::pod_dir(&self.shared.config.data_dir, &uid);
        let env = container::environment(&self.shared, c, pod, &ips).await.map_err(cfg_err)?;
        let mounts = super::volumes::mounts(&self.shared, pod, c, &pod_dir).await?;
        // A fresh container: remove the previous one and its filesystem.
        self.shared.runtime.delete(id, true).await.map_err(|e| create_err(error_chain(&e)))?;
        let dir = sandbox::container_dir(&pod_dir, &c.name);
        crate::snapshot::cleanup(&dir).map_err(|e| create_err(error_chain(&e)))?;
        let (images, image2, dir2) = (self.shared.images.clone(), image.clone(), dir.clone());
        let rootfs = tokio::task::spawn_blocking(move || crate::snapshot::prepare_rootfs(&images, &image2, &dir2))
            .await
            .map_err(|e| create_err(e.to_string()))?
            .map_err(|e| create_err(error_chain(&e)))?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let spec = ContainerSpec {
            command: container::expand_args(c.command.as_deref().unwrap_or_default(), &env),
            args: container::expand_args(c.args.as_deref().unwrap_or_default(), &env),
            env,
            working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
            hostname: Some(pod.spec.as_ref().and_then(|s| s.hostname.clone()).unwrap_or(name)),
            mounts,
            network: match netns {
                Some(path) => NetworkNamespace::Path(path),
                None => NetworkNamespace::Host,
            },
            cgroups_path: Some(cgroup::container_cgroup(&self.cgroup_root, &uid, &c.name)),
            resources: cgroup::resources(c),
            ..Default::default()
        };
        let oci = build_spec(&spec, &image.config, rootfs.path()).map_err(|e| create_err(error_chain(&e)))?;
        let bundle = Bundle::write(&dir, &oci).map_err(|e| create_err(error_chain(&e)))?;
        let log = sandbox::log_path(&pod_dir, &c.name, attempt);
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent).map_err(|e| create_err(format!("{}: {e}", parent.display())))?;
        }
        let io = ContainerIo { stdout: log.clone(), stderr: log };
        self.shared.runtime.create(id, &bundle, &io).await.map_err(|e| ("StartError", error_chain(&e)))?;
        self.shared.runtime.start(id).await.map_err(|e| ("StartError", error_chain(&e)))?;
        Ok(())
    }

    async fn write_status(&mut self, pod: &Pod) {
        let ctx = PodContext {
            pod_ips: self.sandbox.as_ref().map(|s| s.1.clone()).unwrap_or_default(),
            host_ip: Some(self.shared.config.node_ip.to_string()),
            start_time: self.start_time,
        };
        let status = status::pod_status(pod, &self.records, &ctx);
        let Ok(mut value) = serde_json::to_value(&status) else { return };
        let mut comparable = value.clone();
        for c in comparable["conditions"].as_array_mut().into_iter().flatten() {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastTransitionTime");
            }
        }
        if self.last_status.as_ref() == Some(&comparable) {
            return;
        }
        if pod.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some() && ctx.pod_ips.is_empty() {
            value.as_object_mut().map(|o| o.remove("podIP"));
        }
        let api: Api<Pod> =
            Api::namespaced(self.shared.client.clone(), pod.metadata.namespace.as_deref().unwrap_or("default"));
        let name = pod.metadata.name.clone().unwrap_or_default();
        let patch = serde_json::json!({ "status": value });
        match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => self.last_status = Some(comparable),
            Err(e) => tracing::warn!(pod = %name, error = %error_chain(&e), "pod status update failed"),
        }
    }

    /// Stops the containers (preStop, SIGTERM, grace period, SIGKILL), removes them, their
    /// cgroups and the sandbox, and deletes the pod object (when `pod` is given).
    async fn terminate(&mut self, pod: Option<&Pod>) {
        let known = pod.cloned().or_else(|| self.last.clone());
        let Some(known) = known else { return };
        let uid = uid_of(&known);
        let grace = pod.and_then(|p| p.metadata.deletion_grace_period_seconds).unwrap_or_else(|| grace_period(&known));
        for (_, (_, prober)) in self.probers.drain() {
            prober.abort();
        }
        let all = all_containers(&known);
        let mut stops = Vec::new();
        for (c, kind) in &all {
            let id = container_id(&uid, &c.name);
            if let Ok(ContainerState::Running { .. }) = self.shared.runtime.state(&id).await {
                let message = format!("Stopping container {}", c.name);
                self.shared.events.pod_event(&known, Some(field_path(c, *kind)), false, "Killing", message).await;
                stops.push(stop_container(self.stop_request(&known, c.clone(), *kind, seconds(grace))));
            }
        }
        futures::future::join_all(stops).await;
        for (c, _) in &all {
            let id = container_id(&uid, &c.name);
            if let Err(e) = self.shared.runtime.delete(&id, true).await {
                tracing::warn!(container = %id, error = %error_chain(&e), "failed to delete container");
            }
        }
        let ns = known.metadata.namespace.clone().unwrap_or_default();
        let name = known.metadata.name.clone().unwrap_or_default();
        if let Err(e) = sandbox::teardown(&self.shared, &uid, &ns, &name).await {
            tracing::warn!(pod = %uid, error = %error_chain(&e), "pod cleanup failed");
        }
        if pod.is_some() {
            let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &ns);
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions { uid: Some(uid.clone()), resource_version: None }),
                ..Default::default()
            };
            match api.delete(&name, &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => tracing::warn!(pod = %name, error = %error_chain(&e), "failed to delete pod"),
            }
        }
    }
}

/// The event `fieldPath` of a container: `spec.initContainers{name}` or `spec.containers{name}`.
fn field_path(c: &Container, kind: Kind) -> String {
    match kind {
        Kind::App => format!("spec.containers{{{}}}", c.name),
        Kind::Init | Kind::Sidecar => format!("spec.initContainers{{{}}}", c.name),
    }
}

/// Removes a pod's cgroup (its containers are deleted); a failure is logged.
fn remove_pod_cgroup(path: &Path) {
    if let Err((dir, e)) = cgroup::remove(path) {
        tracing::warn!(cgroup = %dir.display(), error = %e, "failed to remove pod cgroup");
    }
}

/// One container to stop, with what stopping it needs.
struct StopRequest {
    shared: Arc<Shared>,
    pod: Pod,
    container: Container,
    kind: Kind,
    target: probe::Target,
    grace: Duration,
}

/// Stops a container as upstream's `killContainer`: the preStop hook (within the grace period),
/// then SIGTERM, then SIGKILL once the grace period is over (at least
/// [`MIN_GRACE_AFTER_PRE_STOP`] after a preStop hook). Returns once the process is gone or killed.
async fn stop_container(req: StopRequest) {
    let StopRequest { shared, pod, container, kind, target, grace } = req;
    let id = target.container_id.clone();
    let start = Instant::now();
    let mut deadline = start + grace;
    if let Some(hook) = hooks::hook(&container, HookKind::PreStop) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let result = match hook {
            Ok(hook) => hooks::run(&hook, &target, grace, &container.name, &name).await,
            Err(e) => Err(e),
        };
        if let Err(message) = result {
            tracing::warn!(container = %id, %message, "preStop hook failed");
            let fp = Some(field_path(&container, kind));
            shared.events.pod_event(&pod, fp, true, HookKind::PreStop.failure_reason(), message).await;
        }
        deadline = deadline.max(Instant::now() + MIN_GRACE_AFTER_PRE_STOP);
    }
    if let Err(e) = shared.runtime.kill(&id, Signal::SIGTERM).await {
        tracing::debug!(container = %id, error = %error_chain(&e), "SIGTERM failed");
    }
    while Instant::now() < deadline {
        match shared.runtime.state(&id).await {
            Ok(ContainerState::Running { .. } | ContainerState::Created { .. }) => {}
            _ => return,
        }
        tokio::time::sleep(Duration::from_millis(100).min(deadline.saturating_duration_since(Instant::now()))).await;
    }
    if let Ok(ContainerState::Running { .. }) = shared.runtime.state(&id).await {
        tracing::info!(container = %id, grace_seconds = grace.as_secs(), "grace period over; killing");
        if let Err(e) = shared.runtime.kill(&id, Signal::SIGKILL).await {
            tracing::warn!(container = %id, error = %error_chain(&e), "SIGKILL failed");
        }
    }
}
