//! One worker task per pod: sets up the sandbox, starts the containers (adopting running ones
//! after a kubelet restart), restarts them per `restartPolicy` with CrashLoopBackOff, writes the
//! pod status, and on deletion stops everything, cleans up and deletes the pod object.

use std::collections::HashMap;
use std::path::PathBuf;
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
use super::sandbox;
use super::status::{self, ContainerRecord, PodContext, State, Terminated};
use super::{Shared, error_chain};
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

const IMAGE_MISSING: &str = "not found in the node's image store; import it with berth image import";

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
    exits_tx: mpsc::UnboundedSender<(String, String, Option<i32>)>,
    exits_rx: mpsc::UnboundedReceiver<(String, String, Option<i32>)>,
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

impl Worker {
    fn new(shared: Arc<Shared>, rx: watch::Receiver<Update>, cancel: CancellationToken) -> Self {
        let (exits_tx, exits_rx) = mpsc::unbounded_channel();
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
                Some((name, id, code)) = self.exits_rx.recv() => self.on_exit(&name, &id, code),
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    fn record_mut(&mut self, name: &str) -> Option<&mut ContainerRecord> {
        self.records.iter_mut().find(|r| r.name == name)
    }

    fn on_exit(&mut self, name: &str, id: &str, code: Option<i32>) {
        let Some(rec) = self.record_mut(name) else { return };
        if let State::Running { started_at } = rec.state {
            rec.state = State::Terminated(Terminated::exited(code, Some(started_at), Some(format!("runc://{id}"))));
        }
    }

    /// Restores records from the runtime and the last written status (after a kubelet restart).
    async fn adopt(&mut self, pod: &Pod) {
        let uid = uid_of(pod);
        let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
        self.start_time = pod.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0);
        for c in containers(pod) {
            let mut rec = ContainerRecord::new(&c.name, c.image.as_deref().unwrap_or_default());
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
                    self.watch_exit(&c.name, &id);
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
    }

    fn watch_exit(&self, name: &str, id: &str) {
        let (runtime, tx, name, id) =
            (self.shared.runtime.clone(), self.exits_tx.clone(), name.to_string(), id.to_string());
        tokio::spawn(async move {
            let code = match runtime.wait(&id).await {
                Ok(code) => code,
                Err(e) => {
                    tracing::warn!(container = %id, error = %error_chain(&e), "waiting for container failed");
                    None
                }
            };
            let _ = tx.send((name, id, code));
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
        let finished = matches!(status::phase(&policy, &self.records), "Succeeded" | "Failed")
            && self.records.iter().all(|r| matches!(r.state, State::Terminated(_)));
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
        for c in containers(pod) {
            self.sync_container(pod, &c, &policy).await;
        }
        self.write_status(pod).await;
        let finished = matches!(status::phase(&policy, &self.records), "Succeeded" | "Failed")
            && self.records.iter().all(|r| matches!(r.state, State::Terminated(_)));
        if finished && !self.released {
            self.release(pod).await;
        }
    }

    /// A finished pod's containers, filesystems and network go; its logs and status stay.
    async fn release(&mut self, pod: &Pod) {
        let uid = uid_of(pod);
        for c in containers(pod) {
            let id = container_id(&uid, &c.name);
            if let Err(e) = self.shared.runtime.delete(&id, true).await {
                tracing::warn!(container = %id, error = %error_chain(&e), "failed to delete finished container");
                return;
            }
        }
        match sandbox::release_finished(&self.shared, pod).await {
            Ok(()) => {
                self.released = true;
                self.sandbox = None;
            }
            Err(e) => tracing::warn!(pod = %uid, error = %error_chain(&e), "failed to release a finished pod"),
        }
    }

    async fn sync_container(&mut self, pod: &Pod, c: &Container, policy: &str) {
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
                self.shared.events.pod_event(pod, Some(field_path(c)), true, "BackOff", msg).await;
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
        self.start_container(pod, c).await;
    }

    /// Starts (or restarts) one container; failures leave it waiting with a reason.
    async fn start_container(&mut self, pod: &Pod, c: &Container) {
        let uid = uid_of(pod);
        let image_ref = c.image.clone().unwrap_or_default();
        let id = container_id(&uid, &c.name);
        let fp = field_path(c);
        let image = match self.shared.images.get(&image_ref) {
            Ok(Some(image)) => image,
            Ok(None) | Err(_) => {
                let (reason, delay) = match self.record_mut(&c.name) {
                    Some(rec) if matches!(&rec.state, State::Waiting { reason, .. } if reason == "ErrImagePull" || reason == "ImagePullBackOff") => {
                        ("ImagePullBackOff", crash_backoff(1))
                    }
                    _ => ("ErrImagePull", Duration::from_secs(2)),
                };
                let message = format!("image {image_ref:?} {IMAGE_MISSING}");
                if let Some(rec) = self.record_mut(&c.name) {
                    rec.state = State::Waiting { reason: reason.into(), message: Some(message.clone()) };
                }
                self.retry_at.insert(c.name.clone(), Instant::now() + delay);
                let (ev_reason, ev_msg) = if reason == "ErrImagePull" {
                    ("Failed", format!("Failed to pull image {image_ref:?}: {message}"))
                } else {
                    ("BackOff", format!("Back-off pulling image {image_ref:?}"))
                };
                self.shared.events.pod_event(pod, Some(fp), true, ev_reason, ev_msg).await;
                return;
            }
        };
        self.shared
            .events
            .pod_event(
                pod,
                Some(fp.clone()),
                false,
                "Pulled",
                format!("Container image {image_ref:?} already present on machine"),
            )
            .await;
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
                    .pod_event(pod, Some(fp), false, "Started", format!("Started container {}", c.name))
                    .await;
                let image_id = format!("{}@{}", image.name, image.manifest_digest);
                if let Some(rec) = self.record_mut(&c.name) {
                    rec.restart_count = attempt;
                    rec.state = State::Running { started_at: Timestamp::now() };
                    rec.container_id = Some(format!("runc://{id}"));
                    rec.image_id = image_id;
                }
                self.watch_exit(&c.name, &id);
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
        let env = container::resolve_env(c, pod, ips.first().map(String::as_str)).map_err(cfg_err)?;
        let mounts = container::mounts(pod, c, &pod_dir).map_err(cfg_err)?;
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

    /// Stops the containers (SIGTERM, grace period, SIGKILL), removes them and the sandbox, and
    /// deletes the pod object (when `pod` is given).
    async fn terminate(&mut self, pod: Option<&Pod>) {
        let known = pod.cloned().or_else(|| self.last.clone());
        let Some(known) = known else { return };
        let uid = uid_of(&known);
        let grace = pod
            .and_then(|p| p.metadata.deletion_grace_period_seconds)
            .or_else(|| known.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30)
            .clamp(0, 3600);
        let ids: Vec<(String, String)> =
            containers(&known).iter().map(|c| (c.name.clone(), container_id(&uid, &c.name))).collect();
        let mut running = Vec::new();
        for (name, id) in &ids {
            if let Ok(ContainerState::Running { .. }) = self.shared.runtime.state(id).await {
                self.shared
                    .events
                    .pod_event(
                        &known,
                        Some(format!("spec.containers{{{name}}}")),
                        false,
                        "Killing",
                        format!("Stopping container {name}"),
                    )
                    .await;
                let _ = self.shared.runtime.kill(id, Signal::SIGTERM).await;
                running.push(id.clone());
            }
        }
        let deadline = Instant::now() + Duration::from_secs(u64::try_from(grace).unwrap_or(0));
        while !running.is_empty() && Instant::now() < deadline {
            let mut still = Vec::new();
            for id in running {
                if let Ok(ContainerState::Running { .. }) = self.shared.runtime.state(&id).await {
                    still.push(id);
                }
            }
            running = still;
            if !running.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        for id in &running {
            let _ = self.shared.runtime.kill(id, Signal::SIGKILL).await;
        }
        for (_, id) in &ids {
            if let Err(e) = self.shared.runtime.delete(id, true).await {
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

fn field_path(c: &Container) -> String {
    format!("spec.containers{{{}}}", c.name)
}
