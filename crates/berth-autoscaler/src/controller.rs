//! The autoscaler loop: every scan interval it lists Nodes and Pods, asks [`crate::plan`] what to
//! do, grows a group through its provider, or drains (cordon, evictions honouring PDBs) and
//! removes one unneeded node, and reports in the ConfigMap `kube-system/cluster-autoscaler-status`
//! and in Events (TriggeredScaleUp, NotTriggerScaleUp, ScaleDown) as upstream does.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use berth_controllers::events::{EventType, Recorder};
use berth_scheduler::plugins::default_plugins;
use berth_scheduler::{Framework, NodeInfo, PodInfo, SchedulerConfig};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{DeleteParams, EvictParams, ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{AutoscalerConfig, NODE_GROUP_LABEL, NodeGroupConfig, ProviderKind};
use crate::plan::{self, GroupState, stays_with_node};
use crate::provider::NodeProvider;

/// The taint a node being removed carries (upstream's name).
pub const TO_BE_DELETED_TAINT: &str = "ToBeDeletedByClusterAutoscaler";
/// The status ConfigMap's name in kube-system.
pub const STATUS_CONFIGMAP: &str = "cluster-autoscaler-status";
/// How long the pods of a node being removed get to go.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);

/// Errors of one autoscaler pass; the loop logs them and tries again next interval.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to {what}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Provider(#[from] crate::provider::ProviderError),
    #[error("no provider for node group {0}")]
    NoProvider(String),
}

fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Api { what, source }
}

/// A node asked of a provider that has not registered yet.
struct Upcoming {
    group: String,
    since: Instant,
}

/// What the loop remembers between passes.
pub struct Autoscaler {
    client: kube::Client,
    config: AutoscalerConfig,
    providers: HashMap<ProviderKind, Arc<dyn NodeProvider>>,
    framework: Framework,
    events: Recorder,
    upcoming: HashMap<String, Upcoming>,
    unneeded_since: HashMap<String, Instant>,
    last_scale_up: Option<Instant>,
    /// Last pass's summary, for the status ConfigMap.
    last_activity: String,
}

/// The cluster as one pass sees it.
struct Observed {
    nodes: Vec<NodeInfo>,
    pending: Vec<Arc<PodInfo>>,
    /// Registered nodes of each group.
    members: BTreeMap<String, Vec<String>>,
}

impl Autoscaler {
    pub fn new(
        client: kube::Client,
        config: AutoscalerConfig,
        providers: HashMap<ProviderKind, Arc<dyn NodeProvider>>,
    ) -> Self {
        Autoscaler {
            events: Recorder::new(client.clone(), "cluster-autoscaler"),
            framework: Framework::new(default_plugins(&SchedulerConfig::default()), 100),
            client,
            config,
            providers,
            upcoming: HashMap::new(),
            unneeded_since: HashMap::new(),
            last_scale_up: None,
            last_activity: "NoActivity".into(),
        }
    }

    fn provider(&self, group: &NodeGroupConfig) -> Result<Arc<dyn NodeProvider>, Error> {
        self.providers.get(&group.provider).cloned().ok_or_else(|| Error::NoProvider(group.name.clone()))
    }

    async fn observe(&mut self) -> Result<Observed, Error> {
        let nodes =
            Api::<Node>::all(self.client.clone()).list(&ListParams::default()).await.map_err(api_err("list nodes"))?;
        let pods =
            Api::<Pod>::all(self.client.clone()).list(&ListParams::default()).await.map_err(api_err("list pods"))?;
        let mut infos: BTreeMap<String, NodeInfo> = BTreeMap::new();
        let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for node in nodes.items {
            let name = node.name_any();
            self.upcoming.remove(&name);
            if let Some(group) = node.labels().get(NODE_GROUP_LABEL) {
                members.entry(group.clone()).or_default().push(name.clone());
            }
            infos.insert(name, NodeInfo::new(node));
        }
        let provision = self.config.max_node_provision_time;
        self.upcoming.retain(|name, u| {
            let keep = u.since.elapsed() < provision;
            if !keep {
                tracing::warn!(node = %name, group = %u.group, "node never registered; giving up on it");
            }
            keep
        });
        let mut pending = Vec::new();
        for pod in pods.items {
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            if matches!(phase, Some("Succeeded" | "Failed")) {
                continue;
            }
            let info = Arc::new(PodInfo::new(pod));
            match info.node_name().map(str::to_string) {
                Some(node) => {
                    if let Some(n) = infos.get_mut(&node) {
                        n.add_pod(info);
                    }
                }
                None if is_unschedulable(&info.pod) && !info.is_terminating() => pending.push(info),
                None => {}
            }
        }
        Ok(Observed { nodes: infos.into_values().collect(), pending, members })
    }

    fn group_states(&self, members: &BTreeMap<String, Vec<String>>) -> Vec<GroupState> {
        self.config
            .node_groups
            .iter()
            .map(|g| {
                let registered = members.get(&g.name).map_or(0, Vec::len);
                let upcoming = self.upcoming.values().filter(|u| u.group == g.name).count();
                GroupState { config: g.clone(), size: registered + upcoming }
            })
            .collect()
    }

    /// One pass: observe, scale up or down, report.
    pub async fn run_once(&mut self) -> Result<(), Error> {
        let observed = self.observe().await?;
        let groups = self.group_states(&observed.members);
        let scaled_up = self.scale_up(&observed, &groups).await?;
        let mut candidates_present = false;
        if !scaled_up && self.config.scale_down_enabled {
            candidates_present = self.scale_down(&observed, &groups).await?;
        }
        self.write_status(&observed, &groups, scaled_up, candidates_present).await;
        Ok(())
    }

    async fn scale_up(&mut self, observed: &Observed, groups: &[GroupState]) -> Result<bool, Error> {
        if observed.pending.is_empty() {
            return Ok(false);
        }
        let plan =
            plan::plan_scale_up(&self.framework, &observed.nodes, &observed.pending, groups, self.config.expander);
        let by_key: HashMap<&str, &Arc<PodInfo>> = observed.pending.iter().map(|p| (p.key.as_str(), p)).collect();
        for (key, why) in &plan.unhelpable {
            if let Some(pod) = by_key.get(key.as_str()) {
                let msg = format!("pod didn't trigger scale-up: {why}");
                self.events.record(pod.pod.as_ref(), EventType::Normal, "NotTriggerScaleUp", &msg).await;
            }
        }
        let Some(chosen) = plan.chosen else { return Ok(false) };
        let Some(state) = groups.iter().find(|g| g.config.name == chosen.group) else { return Ok(false) };
        let group = state.config.clone();
        let provider = self.provider(&group)?;
        let taken: Vec<String> = observed.members.get(&group.name).cloned().unwrap_or_default();
        let mut index = 0;
        let target = state.size + chosen.nodes;
        for _ in 0..chosen.nodes {
            let name = loop {
                let name = format!("{}-{index}", group.name);
                index += 1;
                if !taken.contains(&name) && !self.upcoming.contains_key(&name) {
                    break name;
                }
            };
            tracing::info!(group = %group.name, node = %name, "scaling up");
            provider.create_node(&group, &name, index - 1).await?;
            self.upcoming.insert(name, Upcoming { group: group.name.clone(), since: Instant::now() });
        }
        self.last_scale_up = Some(Instant::now());
        self.unneeded_since.clear();
        let msg = format!(
            "pod triggered scale-up: [{{{} {}->{} (max: {})}}]",
            group.name, state.size, target, group.max_size
        );
        for key in &chosen.pods {
            if let Some(pod) = by_key.get(key.as_str()) {
                self.events.record(pod.pod.as_ref(), EventType::Normal, "TriggeredScaleUp", &msg).await;
            }
        }
        self.last_activity = format!("ScaleUp: {} {}->{}", group.name, state.size, target);
        Ok(true)
    }

    /// Tracks unneeded nodes and removes one that stayed unneeded long enough. Returns whether
    /// there are candidates.
    async fn scale_down(&mut self, observed: &Observed, groups: &[GroupState]) -> Result<bool, Error> {
        if self.last_scale_up.is_some_and(|t| t.elapsed() < self.config.scale_down_delay_after_add)
            || !self.upcoming.is_empty()
        {
            return Ok(false);
        }
        let mut candidates = Vec::new();
        for g in groups {
            let members = observed.members.get(&g.config.name).cloned().unwrap_or_default();
            if members.len() > g.config.min_size {
                candidates.extend(members);
            }
        }
        let (unneeded, _) = plan::unneeded_nodes(
            &self.framework,
            &observed.nodes,
            &candidates,
            self.config.scale_down_utilization_threshold,
        );
        let now = Instant::now();
        self.unneeded_since.retain(|n, _| unneeded.contains(n));
        for n in &unneeded {
            self.unneeded_since.entry(n.clone()).or_insert(now);
        }
        let ripe = unneeded
            .iter()
            .find(|n| self.unneeded_since.get(*n).is_some_and(|t| t.elapsed() >= self.config.scale_down_unneeded_time));
        let Some(name) = ripe.cloned() else { return Ok(!unneeded.is_empty()) };
        let Some(node) = observed.nodes.iter().find(|n| n.name == name) else { return Ok(true) };
        let Some(group) = groups.iter().find(|g| node.labels.get(NODE_GROUP_LABEL) == Some(&g.config.name)) else {
            return Ok(true);
        };
        let group = group.config.clone();
        let provider = self.provider(&group)?;
        tracing::info!(node = %name, group = %group.name, "scaling down an unneeded node");
        self.events
            .record(node.node.as_ref(), EventType::Normal, "ScaleDown", "marked the node as toBeDeleted/unschedulable")
            .await;
        if !self.drain(node).await? {
            self.untaint(&name).await;
            return Ok(true);
        }
        provider.delete_node(&group, &name).await?;
        match Api::<Node>::all(self.client.clone()).delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(api_err(format!("delete node {name}"))(e)),
        }
        self.unneeded_since.remove(&name);
        self.last_activity = format!("ScaleDown: removed {name} from {}", group.name);
        Ok(true)
    }

    /// Taints and cordons `node`, evicts its movable pods, and waits for them to go. Returns false
    /// when an eviction was refused (a PodDisruptionBudget) or the pods did not go in time.
    async fn drain(&self, node: &NodeInfo) -> Result<bool, Error> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let mut taints = node.taints().to_vec();
        if !taints.iter().any(|t| t.key == TO_BE_DELETED_TAINT) {
            taints.push(k8s_openapi::api::core::v1::Taint {
                key: TO_BE_DELETED_TAINT.into(),
                value: Some(jiff::Timestamp::now().as_second().to_string()),
                effect: "NoSchedule".into(),
                time_added: None,
            });
        }
        let patch = json!({"spec": {"unschedulable": true, "taints": taints}});
        nodes
            .patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_err(format!("cordon node {}", node.name)))?;
        let movable: Vec<&Arc<PodInfo>> = node.pods.iter().filter(|p| !stays_with_node(p)).collect();
        for pod in &movable {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
            match api.evict(&pod.name, &EvictParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(kube::Error::Api(e)) if e.code == 429 => {
                    tracing::info!(pod = %pod.key, node = %node.name, "eviction refused by a disruption budget; node stays");
                    return Ok(false);
                }
                Err(e) => return Err(api_err(format!("evict pod {}", pod.key))(e)),
            }
        }
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        let params = ListParams::default().fields(&format!("spec.nodeName={}", node.name));
        loop {
            let left = Api::<Pod>::all(self.client.clone()).list(&params).await.map_err(api_err("list pods"))?;
            if !left.items.iter().any(|p| movable.iter().any(|m| Some(&m.uid) == p.metadata.uid.as_ref())) {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn untaint(&self, name: &str) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let Ok(node) = nodes.get(name).await else { return };
        let taints: Vec<_> = node
            .spec
            .and_then(|s| s.taints)
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.key != TO_BE_DELETED_TAINT)
            .collect();
        let patch = json!({"spec": {"unschedulable": null, "taints": taints}});
        if let Err(e) = nodes.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            tracing::warn!(node = name, error = %e, "failed to uncordon a node that stays");
        }
    }

    async fn write_status(&self, observed: &Observed, groups: &[GroupState], scaled_up: bool, candidates: bool) {
        let text = status_text(observed, groups, &self.upcoming, scaled_up, candidates, &self.last_activity);
        let cm = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": STATUS_CONFIGMAP, "namespace": "kube-system"},
            "data": {"status": text},
        });
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), "kube-system");
        let params = PatchParams::apply("cluster-autoscaler").force();
        if let Err(e) = api.patch(STATUS_CONFIGMAP, &params, &Patch::Apply(&cm)).await {
            tracing::warn!(error = %e, "failed to write the autoscaler status");
        }
    }
}

/// Whether the scheduler gave up on the pod for now (PodScheduled=False, reason Unschedulable).
fn is_unschedulable(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
}

/// The status ConfigMap's text, in upstream's layout.
fn status_text(
    observed: &Observed,
    groups: &[GroupState],
    upcoming: &HashMap<String, Upcoming>,
    scaled_up: bool,
    candidates: bool,
    activity: &str,
) -> String {
    let ready = |n: &NodeInfo| {
        n.node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    };
    let total = observed.nodes.len();
    let ready_count = observed.nodes.iter().filter(|n| ready(n)).count();
    let mut s = format!(
        "Cluster-autoscaler status at {}:\nCluster-wide:\n  Health:      Healthy (ready={ready_count} unready={} notStarted={} registered={total})\n  ScaleUp:     {} (ready={ready_count} registered={total})\n  ScaleDown:   {}\n  LastActivity: {activity}\n\nNodeGroups:\n",
        jiff::Timestamp::now(),
        total - ready_count,
        upcoming.len(),
        if scaled_up || !upcoming.is_empty() { "InProgress" } else { "NoActivity" },
        if candidates { "CandidatesPresent" } else { "NoCandidates" },
    );
    for g in groups {
        let members = observed.members.get(&g.config.name).cloned().unwrap_or_default();
        let ready_members = observed.nodes.iter().filter(|n| members.contains(&n.name) && ready(n)).count();
        s.push_str(&format!(
            "  Name:        {}\n  Health:      Healthy (ready={ready_members} registered={} cloudProviderTarget={} (minSize={}, maxSize={}))\n\n",
            g.config.name,
            members.len(),
            g.size,
            g.config.min_size,
            g.config.max_size
        ));
    }
    s
}

/// Runs the autoscaler until `cancel` fires; each pass's failure is logged and retried.
pub async fn run(
    client: kube::Client,
    config: AutoscalerConfig,
    providers: HashMap<ProviderKind, Arc<dyn NodeProvider>>,
    cancel: CancellationToken,
) {
    let interval = config.scan_interval;
    let mut autoscaler = Autoscaler::new(client, config, providers);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = autoscaler.run_once().await {
            tracing::warn!(error = %berth_agent::kubelet::error_chain(&e), "cluster autoscaler pass failed");
        }
    }
}
