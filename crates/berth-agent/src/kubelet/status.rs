//! Pod status calculation: from what the worker knows about each container to the
//! `status` the kubelet writes (phase, conditions, containerStatuses), as upstream's
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
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state, State::Running { .. })
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
    let running = record.is_running();
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
        // No probes yet: a running container is ready.
        ready: running,
        started: Some(running),
        ..Default::default()
    }
}

/// The pod phase (upstream `getPhase`, without init containers).
pub fn phase(restart_policy: &str, records: &[ContainerRecord]) -> &'static str {
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for r in records {
        match &r.state {
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
    if records.is_empty() || waiting > 0 {
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
/// (qosClass, condition transition times).
pub fn pod_status(pod: &Pod, records: &[ContainerRecord], ctx: &PodContext) -> PodStatus {
    let previous = pod.status.as_ref();
    let policy = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always");
    let phase = phase(policy, records);
    let all_ready = !records.is_empty() && records.iter().all(ContainerRecord::is_running);
    let finished = matches!(phase, "Succeeded" | "Failed");
    let not_ready = if finished { Some("PodCompleted") } else { Some("ContainersNotReady") };
    let ready_reason = if all_ready { None } else { not_ready };
    let conditions = vec![
        condition("PodReadyToStartContainers", !ctx.pod_ips.is_empty() || finished, None, previous),
        condition("Initialized", true, None, previous),
        condition("Ready", all_ready, ready_reason, previous),
        condition("ContainersReady", all_ready, ready_reason, previous),
        condition("PodScheduled", true, None, previous),
    ];
    let message = if all_ready || finished {
        None
    } else {
        let names: Vec<&str> = records.iter().filter(|r| !r.is_running()).map(|r| r.name.as_str()).collect();
        Some(format!("containers with unready status: [{}]", names.join(" ")))
    };
    let mut conditions = conditions;
    for c in &mut conditions {
        if (c.type_ == "Ready" || c.type_ == "ContainersReady") && c.status == "False" {
            c.message = message.clone();
        }
    }
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        container_statuses: Some(records.iter().map(container_status).collect()),
        pod_ip: ctx.pod_ips.first().cloned(),
        pod_ips: (!ctx.pod_ips.is_empty()).then(|| ctx.pod_ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect()),
        host_ip: ctx.host_ip.clone(),
        host_ips: ctx.host_ip.as_ref().map(|ip| vec![k8s_openapi::api::core::v1::HostIP { ip: ip.clone() }]),
        start_time: ctx.start_time.map(Time),
        qos_class: previous.and_then(|s| s.qos_class.clone()),
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
}
