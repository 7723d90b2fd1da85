//! Pod status calculation: from what the worker knows about each container (init containers,
//! sidecars, app containers) to the `status` the kubelet writes (phase, conditions,
//! initContainerStatuses, containerStatuses, qosClass), as upstream's
//! `generateAPIPodStatus`/`getPhase` do. Pure.

use k8s_openapi::api::core::v1::{
    ContainerState as K8sState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    /// `Completed` (exit 0) or `Error`, or e.g. `StartError`.
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    pub container_id: Option<String>,
}

impl Terminated {
    /// The record of a process exit now. An unknown exit code (`None`: the process exited while
    /// no agent watched) is reported as 255 with reason Error.
    pub fn exited(exit_code: Option<i32>, started_at: Option<Timestamp>, container_id: Option<String>) -> Self {
        let exit_code = exit_code.unwrap_or(255);
        let reason = if exit_code == 0 { "Completed" } else { "Error" }.to_string();
        Terminated { exit_code, reason, message: None, started_at, finished_at: Timestamp::now(), container_id }
    }
}

/// A container's current state as the worker tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Waiting { reason: String, message: Option<String> },
    Running { started_at: Timestamp },
    Terminated(Terminated),
}

/// Which list of the pod spec a container comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// `spec.initContainers` entry that runs to completion before the next.
    Init,
    /// `spec.initContainers` entry with `restartPolicy: Always`: keeps running beside the app.
    Sidecar,
    /// `spec.containers` entry.
    #[default]
    App,
}

/// What the worker knows about one container of the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRecord {
    pub name: String,
    pub image: String,
    pub image_id: String,
    /// `runc://<id>` of the current (or last) container.
    pub container_id: Option<String>,
    pub state: State,
    pub last_terminated: Option<Terminated>,
    pub restart_count: i32,
    pub kind: Kind,
    /// The readiness probe's verdict; `None`: ready whenever started (no readiness probe).
    pub ready: Option<bool>,
    /// The startup probe's verdict; `None`: started whenever running (no startup probe).
    pub started: Option<bool>,
}

impl ContainerRecord {
    /// A container not started yet.
    pub fn new(name: &str, image: &str) -> Self {
        ContainerRecord {
            name: name.to_string(),
            image: image.to_string(),
            image_id: String::new(),
            container_id: None,
            state: State::Waiting { reason: "ContainerCreating".into(), message: None },
            last_terminated: None,
            restart_count: 0,
            kind: Kind::App,
            ready: None,
            started: None,
        }
    }

    /// The same record for a container of another kind.
    pub fn with_kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    /// Running and past its startup probe (the `started` field).
    pub fn is_started(&self) -> bool {
        self.is_running() && self.started.unwrap_or(true)
    }

    /// The `ready` field: started and passing its readiness probe; a regular init container
    /// is ready once it completed.
    pub fn is_ready(&self) -> bool {
        match self.kind {
            Kind::Init => self.succeeded(),
            _ => self.is_started() && self.ready.unwrap_or(true),
        }
    }

    /// Terminated with exit code 0.
    pub fn succeeded(&self) -> bool {
        matches!(&self.state, State::Terminated(t) if t.exit_code == 0)
    }

    /// Has run at least once (running, or terminated now or before).
    pub fn has_run(&self) -> bool {
        !matches!(self.state, State::Waiting { .. }) || self.last_terminated.is_some()
    }
}

fn to_k8s_terminated(t: &Terminated) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        reason: Some(t.reason.clone()),
        message: t.message.clone(),
        started_at: t.started_at.map(Time),
        finished_at: Some(Time(t.finished_at)),
        container_id: t.container_id.clone(),
        signal: None,
    }
}

fn to_k8s_state(state: &State) -> K8sState {
    match state {
        State::Waiting { reason, message } => K8sState {
            waiting: Some(ContainerStateWaiting { reason: Some(reason.clone()), message: message.clone() }),
            ..Default::default()
        },
        State::Running { started_at } => K8sState {
            running: Some(ContainerStateRunning { started_at: Some(Time(*started_at)) }),
            ..Default::default()
        },
        State::Terminated(t) => K8sState { terminated: Some(to_k8s_terminated(t)), ..Default::default() },
    }
}

/// The `containerStatuses` entry of a record.
pub fn container_status(record: &ContainerRecord) -> ContainerStatus {
    ContainerStatus {
        name: record.name.clone(),
        image: record.image.clone(),
        image_id: record.image_id.clone(),
        container_id: record.container_id.clone(),
        state: Some(to_k8s_state(&record.state)),
        last_state: Some(
            record
                .last_terminated
                .as_ref()
                .map(|t| K8sState { terminated: Some(to_k8s_terminated(t)), ..Default::default() })
                .unwrap_or_default(),
        ),
        restart_count: record.restart_count,
        ready: record.is_ready(),
        started: Some(record.is_started()),
        ..Default::default()
    }
}

/// The pod phase (upstream `getPhase`): Pending while regular init containers run or app
/// containers wait for their first start; Failed once an init container failed under
/// `restartPolicy: Never`; then from the app containers' states (sidecars count only while
/// running).
pub fn phase(restart_policy: &str, records: &[ContainerRecord]) -> &'static str {
    let (mut pending_init, mut failed_init, mut pending_sidecars) = (0, 0, 0);
    let (mut apps, mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for r in records {
        match (r.kind, &r.state) {
            (Kind::Init, State::Running { .. }) => pending_init += 1,
            (Kind::Init, State::Terminated(t)) => failed_init += usize::from(t.exit_code != 0),
            (Kind::Init, State::Waiting { .. }) => match &r.last_terminated {
                Some(t) => failed_init += usize::from(t.exit_code != 0),
                None => pending_init += 1,
            },
            (Kind::Sidecar, State::Running { .. }) => {
                pending_sidecars += usize::from(!r.is_started());
                running += 1;
            }
            (Kind::Sidecar, State::Waiting { .. }) if r.last_terminated.is_none() => {
                pending_sidecars += 1;
                waiting += 1;
            }
            (Kind::Sidecar, _) => {}
            (Kind::App, state) => {
                apps += 1;
                match state {
                    State::Running { .. } => running += 1,
                    State::Terminated(t) => {
                        stopped += 1;
                        if t.exit_code == 0 {
                            succeeded += 1;
                        }
                    }
                    State::Waiting { .. } if r.last_terminated.is_some() => {
                        stopped += 1;
                        if r.last_terminated.as_ref().is_some_and(|t| t.exit_code == 0) {
                            succeeded += 1;
                        }
                    }
                    State::Waiting { .. } => waiting += 1,
                }
            }
        }
    }
    if failed_init > 0 && restart_policy == "Never" {
        return "Failed";
    }
    let app_started = records.iter().any(|r| r.kind == Kind::App && r.has_run());
    if apps == 0 || pending_init > 0 || (pending_sidecars > 0 && !app_started) || waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        if restart_policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if restart_policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

/// Whether the pod is initialized (upstream `GeneratePodInitializedCondition`): an app
/// container has run, or every regular init container completed and every sidecar started.
pub fn initialized(records: &[ContainerRecord]) -> bool {
    records.iter().any(|r| r.kind == Kind::App && r.has_run()) || incomplete_init(records).is_empty()
}

fn incomplete_init(records: &[ContainerRecord]) -> Vec<&str> {
    records
        .iter()
        .filter(|r| match r.kind {
            Kind::Init => !r.succeeded(),
            Kind::Sidecar => !r.is_started(),
            Kind::App => false,
        })
        .map(|r| r.name.as_str())
        .collect()
}

fn condition(type_: &str, ok: bool, reason: Option<&str>, previous: Option<&PodStatus>) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    // Keep the transition time while the status stays the same.
    let last_transition_time = previous
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_ && c.status == status))
        .and_then(|c| c.last_transition_time.clone())
        .or_else(|| Some(Time(Timestamp::now())));
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.map(String::from),
        last_transition_time,
        ..Default::default()
    }
}

/// Everything besides the containers that goes into the status.
#[derive(Debug, Clone, Default)]
pub struct PodContext {
    pub pod_ips: Vec<String>,
    pub host_ip: Option<String>,
    pub start_time: Option<Timestamp>,
}

/// The full pod status from the container records; `pod.status` supplies what the kubelet keeps
/// (condition transition times), and qosClass is kept or computed.
pub fn pod_status(pod: &Pod, records: &[ContainerRecord], ctx: &PodContext) -> PodStatus {
    let previous = pod.status.as_ref();
    let policy = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always");
    let phase = phase(policy, records);
    let finished = matches!(phase, "Succeeded" | "Failed");
    let is_initialized = initialized(records);
    let unready: Vec<&str> =
        records.iter().filter(|r| r.kind != Kind::Init && !r.is_ready()).map(|r| r.name.as_str()).collect();
    let all_ready = records.iter().any(|r| r.kind == Kind::App) && unready.is_empty();
    let ready_reason = if all_ready {
        None
    } else if finished {
        Some("PodCompleted")
    } else {
        Some("ContainersNotReady")
    };
    let ready_message =
        (!all_ready && !finished).then(|| format!("containers with unready status: [{}]", unready.join(" ")));
    let mut initialized_condition = if is_initialized {
        condition("Initialized", true, (phase == "Succeeded").then_some("PodCompleted"), previous)
    } else {
        condition("Initialized", false, Some("ContainersNotInitialized"), previous)
    };
    if !is_initialized {
        initialized_condition.message =
            Some(format!("containers with incomplete status: [{}]", incomplete_init(records).join(" ")));
    }
    let mut conditions = vec![
        condition("PodReadyToStartContainers", !ctx.pod_ips.is_empty() || finished, None, previous),
        initialized_condition,
        condition("Ready", all_ready, ready_reason, previous),
        condition("ContainersReady", all_ready, ready_reason, previous),
        condition("PodScheduled", true, None, previous),
    ];
    for c in &mut conditions {
        if (c.type_ == "Ready" || c.type_ == "ContainersReady") && c.status == "False" {
            c.message = ready_message.clone();
        }
    }
    let statuses = |pred: fn(&ContainerRecord) -> bool| -> Vec<ContainerStatus> {
        records.iter().filter(|r| pred(r)).map(container_status).collect()
    };
    let init_statuses = statuses(|r| r.kind != Kind::App);
    let qos = previous
        .and_then(|s| s.qos_class.clone())
        .or_else(|| pod.spec.as_ref().map(|s| super::cgroup::qos_class(s).to_string()));
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        container_statuses: Some(statuses(|r| r.kind == Kind::App)),
        pod_ip: ctx.pod_ips.first().cloned(),
        pod_ips: (!ctx.pod_ips.is_empty()).then(|| ctx.pod_ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect()),
        host_ip: ctx.host_ip.clone(),
        host_ips: ctx.host_ip.as_ref().map(|ip| vec![k8s_openapi::api::core::v1::HostIP { ip: ip.clone() }]),
        start_time: ctx.start_time.map(Time),
        qos_class: qos,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(name: &str) -> ContainerRecord {
        ContainerRecord {
            state: State::Running { started_at: Timestamp::now() },
            ..ContainerRecord::new(name, "busybox")
        }
    }

    fn exited(name: &str, code: i32) -> ContainerRecord {
        ContainerRecord {
            state: State::Terminated(Terminated::exited(Some(code), None, None)),
            ..ContainerRecord::new(name, "busybox")
        }
    }

    #[test]
    fn phase_follows_the_container_states_and_restart_policy() {
        assert_eq!(phase("Always", &[ContainerRecord::new("a", "x")]), "Pending");
        assert_eq!(phase("Always", &[running("a"), ContainerRecord::new("b", "x")]), "Pending");
        assert_eq!(phase("Always", &[running("a"), exited("b", 1)]), "Running");
        assert_eq!(phase("Never", &[exited("a", 0), exited("b", 0)]), "Succeeded");
        assert_eq!(phase("Never", &[exited("a", 0), exited("b", 1)]), "Failed");
        assert_eq!(phase("OnFailure", &[exited("a", 1)]), "Running");
        assert_eq!(phase("OnFailure", &[exited("a", 0)]), "Succeeded");
        assert_eq!(phase("Always", &[exited("a", 0)]), "Running");
        let backing_off = ContainerRecord {
            state: State::Waiting { reason: "CrashLoopBackOff".into(), message: None },
            last_terminated: Some(Terminated::exited(Some(1), None, None)),
            restart_count: 2,
            ..ContainerRecord::new("a", "x")
        };
        assert_eq!(phase("Always", &[backing_off]), "Running");
    }

    #[test]
    fn exit_codes_map_to_completed_and_error() {
        assert_eq!(Terminated::exited(Some(0), None, None).reason, "Completed");
        let t = Terminated::exited(Some(1), None, None);
        assert_eq!((t.reason.as_str(), t.exit_code), ("Error", 1));
    }

    #[test]
    fn status_of_a_running_pod_is_ready_with_ips_and_keeps_qos() {
        let pod = Pod {
            status: Some(PodStatus { qos_class: Some("BestEffort".into()), ..Default::default() }),
            ..Default::default()
        };
        let ctx = PodContext {
            pod_ips: vec!["10.42.0.5".into()],
            host_ip: Some("192.0.2.1".into()),
            start_time: Some(Timestamp::now()),
        };
        let mut rec = running("web");
        rec.container_id = Some("runc://abc".into());
        let status = pod_status(&pod, &[rec], &ctx);
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("10.42.0.5"));
        assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
        let conds = status.conditions.unwrap_or_default();
        for t in ["Ready", "ContainersReady", "Initialized", "PodScheduled"] {
            assert!(conds.iter().any(|c| c.type_ == t && c.status == "True"), "{t}: {conds:?}");
        }
        let cs = &status.container_statuses.unwrap_or_default()[0];
        assert!(cs.ready);
        assert_eq!(cs.container_id.as_deref(), Some("runc://abc"));
        assert!(cs.state.as_ref().and_then(|s| s.running.as_ref()).is_some());
    }

    #[test]
    fn a_failed_pod_is_not_ready_with_reason_pod_completed() {
        let pod = Pod {
            spec: Some(k8s_openapi::api::core::v1::PodSpec {
                restart_policy: Some("Never".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let status = pod_status(&pod, &[exited("a", 1)], &PodContext::default());
        let ready = status.conditions.unwrap_or_default().into_iter().find(|c| c.type_ == "Ready");
        let ready = ready.expect("Ready condition");
        assert_eq!((ready.status.as_str(), ready.reason.as_deref()), ("False", Some("PodCompleted")));
        let cs = &status.container_statuses.unwrap_or_default()[0];
        let term = cs.state.as_ref().and_then(|s| s.terminated.clone()).expect("terminated");
        assert_eq!((term.exit_code, term.reason.as_deref()), (1, Some("Error")));
    }

    fn waiting(name: &str, reason: &str) -> ContainerRecord {
        ContainerRecord {
            state: State::Waiting { reason: reason.into(), message: None },
            ..ContainerRecord::new(name, "busybox")
        }
    }

    fn cond<'a>(status: &'a PodStatus, t: &str) -> &'a PodCondition {
        status.conditions.as_ref().and_then(|cs| cs.iter().find(|c| c.type_ == t)).expect("condition")
    }

    fn pod_with_policy(policy: &str) -> Pod {
        Pod {
            spec: Some(k8s_openapi::api::core::v1::PodSpec {
                restart_policy: Some(policy.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_pod_is_pending_and_not_initialized_while_init_containers_run() {
        let records = [
            exited("init1", 0).with_kind(Kind::Init),
            running("init2").with_kind(Kind::Init),
            waiting("app", "PodInitializing"),
        ];
        assert_eq!(phase("Always", &records), "Pending");
        assert!(!initialized(&records));
        let status = pod_status(&pod_with_policy("Always"), &records, &PodContext::default());
        let init = cond(&status, "Initialized");
        assert_eq!((init.status.as_str(), init.reason.as_deref()), ("False", Some("ContainersNotInitialized")));
        assert_eq!(init.message.as_deref(), Some("containers with incomplete status: [init2]"));
        let inits = status.init_container_statuses.expect("initContainerStatuses");
        assert_eq!(inits.len(), 2);
        assert!(inits[0].ready, "a completed init container is ready");
        assert!(!inits[1].ready);
        let apps = status.container_statuses.expect("containerStatuses");
        assert_eq!(apps.len(), 1, "init containers are not in containerStatuses");
        assert_eq!(apps[0].name, "app");
    }

    #[test]
    fn a_failed_init_container_fails_the_pod_only_under_restart_policy_never() {
        let records = [exited("init", 1).with_kind(Kind::Init), waiting("app", "PodInitializing")];
        assert_eq!(phase("Never", &records), "Failed");
        assert_eq!(phase("OnFailure", &records), "Pending");
        assert_eq!(phase("Always", &records), "Pending");
    }

    #[test]
    fn completed_init_containers_and_a_started_sidecar_initialize_the_pod() {
        let mut sidecar = running("proxy").with_kind(Kind::Sidecar);
        let records = [exited("init", 0).with_kind(Kind::Init), sidecar.clone(), running("app")];
        assert!(initialized(&records));
        assert_eq!(phase("Always", &records), "Running");
        let status = pod_status(&pod_with_policy("Always"), &records, &PodContext::default());
        assert_eq!(cond(&status, "Initialized").status, "True");
        assert_eq!(cond(&status, "Ready").status, "True");

        // A sidecar still in its startup probe keeps the pod initializing.
        sidecar.started = Some(false);
        let records = [exited("init", 0).with_kind(Kind::Init), sidecar.clone(), waiting("app", "PodInitializing")];
        assert!(!initialized(&records));
        assert_eq!(phase("Always", &records), "Pending");

        // An unready sidecar makes the pod unready once it runs.
        sidecar.started = None;
        sidecar.ready = Some(false);
        let records = [sidecar.clone(), running("app")];
        let status = pod_status(&pod_with_policy("Always"), &records, &PodContext::default());
        let ready = cond(&status, "ContainersReady");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.message.as_deref(), Some("containers with unready status: [proxy]"));
    }

    #[test]
    fn a_sidecar_does_not_keep_a_finished_pod_running_once_stopped() {
        let records = [exited("proxy", 137).with_kind(Kind::Sidecar), exited("app", 0)];
        assert_eq!(phase("Never", &records), "Succeeded");
        let records = [running("proxy").with_kind(Kind::Sidecar), exited("app", 0)];
        assert_eq!(phase("Never", &records), "Running", "until the sidecar is stopped");
    }

    #[test]
    fn readiness_and_startup_verdicts_drive_ready_and_started() {
        let mut rec = running("app");
        rec.ready = Some(false);
        let cs = container_status(&rec);
        assert_eq!((cs.ready, cs.started), (false, Some(true)));
        rec.ready = Some(true);
        rec.started = Some(false);
        let cs = container_status(&rec);
        assert_eq!((cs.ready, cs.started), (false, Some(false)), "not started means not ready");
        let status = pod_status(&Pod::default(), &[rec], &PodContext::default());
        assert_eq!(cond(&status, "Ready").status, "False");
    }

    #[test]
    fn qos_class_is_computed_when_the_pod_has_none() {
        let status = pod_status(&pod_with_policy("Always"), &[running("a")], &PodContext::default());
        assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    }
}
