//! Container lifecycle hooks: `postStart` (run right after the container starts; a failure kills
//! it) and `preStop` (run before SIGTERM, within the grace period), with the exec, httpGet and
//! sleep actions (tcpSocket is accepted and ignored, as upstream). The actions themselves are the
//! probes' ([`super::probe::run`]).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler};

use super::probe::{self, Action, Target};

/// What a hook does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    Action(Action),
    Sleep(Duration),
    /// A deprecated tcpSocket handler: upstream does nothing.
    Nothing,
}

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    PostStart,
    PreStop,
}

impl HookKind {
    /// The event reason of a failure.
    pub fn failure_reason(self) -> &'static str {
        match self {
            HookKind::PostStart => "FailedPostStartHook",
            HookKind::PreStop => "FailedPreStopHook",
        }
    }

    fn handler(self, container: &Container) -> Option<&LifecycleHandler> {
        let lifecycle = container.lifecycle.as_ref()?;
        match self {
            HookKind::PostStart => lifecycle.post_start.as_ref(),
            HookKind::PreStop => lifecycle.pre_stop.as_ref(),
        }
    }
}

/// The container's hook of `kind`, if any.
pub fn hook(container: &Container, kind: HookKind) -> Option<Result<Hook, String>> {
    let h = kind.handler(container)?;
    if let Some(sleep) = &h.sleep {
        return Some(Ok(Hook::Sleep(Duration::from_secs(u64::try_from(sleep.seconds).unwrap_or(0)))));
    }
    if h.exec.is_none() && h.http_get.is_none() && h.tcp_socket.is_some() {
        return Some(Ok(Hook::Nothing));
    }
    Some(probe::action(h.exec.as_ref(), h.http_get.as_ref(), None, None, container).map(Hook::Action))
}

/// Runs a hook, at most `timeout`; the error is upstream's event message.
pub async fn run(hook: &Hook, target: &Target, timeout: Duration, container: &str, pod: &str) -> Result<(), String> {
    match hook {
        Hook::Nothing => Ok(()),
        Hook::Sleep(d) => {
            tokio::time::sleep((*d).min(timeout)).await;
            Ok(())
        }
        Hook::Action(action) => {
            let result = probe::run(action, target, timeout).await;
            result.map_err(|e| match action {
                Action::Exec { command } => format!(
                    "Exec lifecycle hook ({command:?}) for Container {container:?} in Pod {pod:?} failed - error: {e}"
                ),
                Action::HttpGet { path, .. } => format!(
                    "HTTP lifecycle hook ({path}) for Container {container:?} in Pod {pod:?} failed - error: {e}"
                ),
                _ => e,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ExecAction, Lifecycle, SleepAction, TCPSocketAction};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    use super::*;

    fn with(post_start: Option<LifecycleHandler>, pre_stop: Option<LifecycleHandler>) -> Container {
        Container {
            name: "c".into(),
            lifecycle: Some(Lifecycle { post_start, pre_stop, ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn hooks_parse_exec_sleep_and_tcp() {
        let exec = LifecycleHandler {
            exec: Some(ExecAction { command: Some(vec!["touch".into(), "/x".into()]) }),
            ..Default::default()
        };
        let sleep = LifecycleHandler { sleep: Some(SleepAction { seconds: 3 }), ..Default::default() };
        let c = with(Some(exec), Some(sleep));
        assert_eq!(
            hook(&c, HookKind::PostStart),
            Some(Ok(Hook::Action(Action::Exec { command: vec!["touch".into(), "/x".into()] })))
        );
        assert_eq!(hook(&c, HookKind::PreStop), Some(Ok(Hook::Sleep(Duration::from_secs(3)))));
        let tcp = LifecycleHandler {
            tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(80), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(hook(&with(None, Some(tcp)), HookKind::PreStop), Some(Ok(Hook::Nothing)));
        assert_eq!(hook(&with(None, None), HookKind::PostStart), None);
        assert_eq!(hook(&Container::default(), HookKind::PreStop), None);
    }

    #[tokio::test]
    async fn a_sleep_hook_is_cut_at_the_timeout() {
        let target = crate::kubelet::probe::tests::target();
        let start = tokio::time::Instant::now();
        let r = run(&Hook::Sleep(Duration::from_secs(30)), &target, Duration::from_millis(300), "c", "p").await;
        assert_eq!(r, Ok(()));
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5), "{elapsed:?}");
    }

    #[tokio::test]
    async fn a_failing_exec_hook_reports_upstreams_message() {
        let target = crate::kubelet::probe::tests::target();
        let hook = Hook::Action(Action::Exec { command: vec!["sh".into(), "-c".into(), "echo boom; exit 1".into()] });
        let err = run(&hook, &target, Duration::from_secs(5), "app", "web").await.expect_err("fails");
        assert!(err.starts_with("Exec lifecycle hook ([\"sh\", \"-c\", \"echo boom; exit 1\"]) for Container \"app\" in Pod \"web\" failed - error: boom"), "{err}");
    }
}
