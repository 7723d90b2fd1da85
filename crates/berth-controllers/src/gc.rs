//! Garbage collector (k8s `pkg/controller/garbagecollector`): a graph of ownerReferences over every
//! discoverable kind, fed by one watch per resource. Dependents whose owners are all gone are
//! deleted; owners carrying the `orphan` finalizer have their dependents' references removed
//! first; owners carrying `foregroundDeletion` have their dependents deleted (those with
//! blockOwnerDeletion block) before the finalizer is removed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::discovery::{self, Resource, split_api_version};
use crate::error::is_status;
use crate::{ControllersConfig, Error};

/// Finalizer asking the GC to orphan dependents.
pub const ORPHAN: &str = "orphan";
/// Finalizer asking the GC to delete dependents first.
pub const FOREGROUND: &str = "foregroundDeletion";

#[derive(Clone, Debug)]
struct Node {
    res: usize,
    namespace: Option<String>,
    name: String,
    uid: String,
    owners: Vec<OwnerReference>,
    deleting: bool,
    finalizers: Vec<String>,
    resource_version: Option<String>,
}

impl Node {
    fn has(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| f == finalizer)
    }
    fn deleting_dependents(&self) -> bool {
        self.deleting && self.has(FOREGROUND)
    }
}

#[derive(Debug, PartialEq)]
enum OwnerState {
    Solid,
    Dangling,
    Waiting,
}

struct Gc {
    client: kube::Client,
    resources: Vec<Resource>,
    by_group_kind: HashMap<(String, String), usize>,
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
    queue: VecDeque<String>,
    queued: HashSet<String>,
    retries: Vec<(Instant, String)>,
    failures: HashMap<String, u32>,
    synced: HashSet<usize>,
    relist: HashMap<usize, HashSet<String>>,
}

/// Runs the garbage collector until cancelled.
pub async fn run(client: kube::Client, config: ControllersConfig, cancel: CancellationToken) -> Result<(), Error> {
    // The apiserver may still be starting: retry discovery until it answers.
    let resources = loop {
        match discovery::resources(&client).await {
            Ok(r) => break r,
            Err(e) => {
                tracing::warn!(error = %e, "garbage collector: discovery failed; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    let (tx, mut rx) = mpsc::channel::<(usize, Event<DynamicObject>)>(1024);
    for (i, r) in resources.iter().enumerate() {
        spawn_watch(&client, i, r, tx.clone(), cancel.clone());
    }
    let by_group_kind =
        resources.iter().enumerate().map(|(i, r)| ((r.ar.group.clone(), r.ar.kind.clone()), i)).collect();
    let mut gc = Gc {
        client,
        resources,
        by_group_kind,
        nodes: HashMap::new(),
        dependents: HashMap::new(),
        queue: VecDeque::new(),
        queued: HashSet::new(),
        retries: Vec::new(),
        failures: HashMap::new(),
        synced: HashSet::new(),
        relist: HashMap::new(),
    };
    // Kinds added later (CustomResourceDefinitions) are picked up by periodic rediscovery.
    let mut rediscover = tokio::time::interval_at(Instant::now() + config.resync, config.resync);
    loop {
        let next_retry = gc.retries.iter().map(|(t, _)| *t).min();
        let ready = gc.synced.len() == gc.resources.len() && !gc.queue.is_empty();
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Ok(()),
            ev = rx.recv() => match ev {
                Some((res, ev)) => gc.on_event(res, ev),
                None => return Ok(()),
            },
            _ = rediscover.tick() => {
                match discovery::resources(&gc.client).await {
                    Ok(found) => {
                        for r in found {
                            let key = (r.ar.group.clone(), r.ar.kind.clone());
                            if gc.by_group_kind.contains_key(&key) {
                                continue;
                            }
                            let i = gc.resources.len();
                            spawn_watch(&gc.client, i, &r, tx.clone(), cancel.clone());
                            gc.by_group_kind.insert(key, i);
                            gc.resources.push(r);
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "garbage collector: rediscovery failed"),
                }
            }
            _ = tokio::time::sleep_until(next_retry.unwrap_or_else(Instant::now)), if next_retry.is_some() => {
                let now = Instant::now();
                let (due, later): (Vec<_>, Vec<_>) = gc.retries.drain(..).partition(|(t, _)| *t <= now);
                gc.retries = later;
                for (_, uid) in due {
                    gc.enqueue(&uid);
                }
            }
            _ = std::future::ready(()), if ready => {
                if let Some(uid) = gc.queue.pop_front() {
                    gc.queued.remove(&uid);
                    match gc.attempt(&uid).await {
                        Ok(()) => {
                            gc.failures.remove(&uid);
                        }
                        Err(e) => {
                            tracing::debug!(uid = %uid, error = %e, "garbage collection failed; retrying");
                            let n = gc.failures.entry(uid.clone()).or_insert(0);
                            *n = n.saturating_add(1);
                            let delay = Duration::from_millis(50).saturating_mul(1 << (*n - 1).min(10)).min(Duration::from_secs(30));
                            gc.retries.push((Instant::now() + delay, uid));
                        }
                    }
                }
            }
        }
    }
}

/// Forwards one resource's watch events into the graph builder's channel until cancelled.
fn spawn_watch(
    client: &kube::Client,
    i: usize,
    r: &Resource,
    tx: mpsc::Sender<(usize, Event<DynamicObject>)>,
    cancel: CancellationToken,
) {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &r.ar);
    let plural = r.ar.plural.clone();
    tokio::spawn(async move {
        let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        loop {
            let item = tokio::select! {
                _ = cancel.cancelled() => return,
                item = stream.next() => item,
            };
            match item {
                None => return,
                Some(Ok(ev)) => {
                    if tx.send((i, ev)).await.is_err() {
                        return;
                    }
                }
                Some(Err(e)) => tracing::debug!(resource = %plural, error = %e, "gc watch error"),
            }
        }
    });
}

impl Gc {
    fn enqueue(&mut self, uid: &str) {
        if self.queued.insert(uid.to_string()) {
            self.queue.push_back(uid.to_string());
        }
    }

    fn on_event(&mut self, res: usize, ev: Event<DynamicObject>) {
        match ev {
            Event::Init => {
                self.relist.insert(res, HashSet::new());
            }
            Event::InitApply(obj) => {
                if let Some(uid) = obj.metadata.uid.clone() {
                    self.relist.entry(res).or_default().insert(uid);
                }
                self.upsert(res, obj);
            }
            Event::InitDone => {
                let seen = self.relist.remove(&res).unwrap_or_default();
                let gone: Vec<String> = self
                    .nodes
                    .values()
                    .filter(|n| n.res == res && !seen.contains(&n.uid))
                    .map(|n| n.uid.clone())
                    .collect();
                for uid in gone {
                    self.remove(&uid);
                }
                self.synced.insert(res);
            }
            Event::Apply(obj) => self.upsert(res, obj),
            Event::Delete(obj) => {
                if let Some(uid) = obj.metadata.uid.as_deref() {
                    self.remove(uid);
                }
            }
        }
    }

    fn upsert(&mut self, res: usize, obj: DynamicObject) {
        let Some(uid) = obj.metadata.uid.clone() else { return };
        let node = Node {
            res,
            namespace: obj.metadata.namespace.clone(),
            name: obj.name_any(),
            uid: uid.clone(),
            owners: obj.metadata.owner_references.clone().unwrap_or_default(),
            deleting: obj.metadata.deletion_timestamp.is_some(),
            finalizers: obj.metadata.finalizers.clone().unwrap_or_default(),
            resource_version: obj.metadata.resource_version.clone(),
        };
        let old = self.nodes.insert(uid.clone(), node.clone());
        if let Some(old) = &old {
            for r in &old.owners {
                if let Some(d) = self.dependents.get_mut(&r.uid) {
                    d.remove(&uid);
                }
            }
        }
        for r in &node.owners {
            self.dependents.entry(r.uid.clone()).or_default().insert(uid.clone());
        }
        let owners_changed = old.as_ref().is_none_or(|o| o.owners != node.owners);
        if owners_changed && !node.owners.is_empty() {
            self.enqueue(&uid);
        }
        if node.deleting && (node.has(ORPHAN) || node.has(FOREGROUND)) {
            self.enqueue(&uid);
            if node.has(FOREGROUND) && old.as_ref().is_none_or(|o| !o.deleting_dependents()) {
                let deps: Vec<String> = self.dependents.get(&uid).into_iter().flatten().cloned().collect();
                for d in deps {
                    self.enqueue(&d);
                }
            }
        }
    }

    fn remove(&mut self, uid: &str) {
        let Some(node) = self.nodes.remove(uid) else { return };
        for r in &node.owners {
            if let Some(d) = self.dependents.get_mut(&r.uid) {
                d.remove(uid);
            }
            if self.nodes.get(&r.uid).is_some_and(Node::deleting_dependents) {
                self.enqueue(&r.uid.clone());
            }
        }
        let deps: Vec<String> = self.dependents.get(uid).into_iter().flatten().cloned().collect();
        for d in deps {
            self.enqueue(&d);
        }
        if self.dependents.get(uid).is_some_and(HashSet::is_empty) {
            self.dependents.remove(uid);
        }
    }

    fn api(&self, res: usize, ns: Option<&str>) -> Api<DynamicObject> {
        let r = &self.resources[res];
        match ns {
            Some(ns) if r.namespaced => Api::namespaced_with(self.client.clone(), ns, &r.ar),
            _ => Api::all_with(self.client.clone(), &r.ar),
        }
    }

    fn describe(&self, n: &Node) -> String {
        let kind = &self.resources[n.res].ar.kind;
        match &n.namespace {
            Some(ns) => format!("{kind} {ns}/{}", n.name),
            None => format!("{kind} {}", n.name),
        }
    }

    /// Processes one graph node (upstream `attemptToDeleteItem` / `processDeletingDependentsItem`
    /// / `attemptToOrphan`).
    async fn attempt(&mut self, uid: &str) -> Result<(), Error> {
        let Some(node) = self.nodes.get(uid).cloned() else { return Ok(()) };
        let deps: Vec<Node> =
            self.dependents.get(uid).into_iter().flatten().filter_map(|d| self.nodes.get(d).cloned()).collect();
        if node.deleting {
            if node.has(ORPHAN) {
                for dep in &deps {
                    self.remove_owner_refs(dep, &[uid.to_string()]).await?;
                }
                return self.remove_finalizer(&node, ORPHAN).await;
            }
            if node.has(FOREGROUND) {
                let blocking =
                    deps.iter().any(|d| d.owners.iter().any(|r| r.uid == uid && r.block_owner_deletion == Some(true)));
                if !blocking {
                    return self.remove_finalizer(&node, FOREGROUND).await;
                }
                for d in deps.iter().filter(|d| !d.deleting) {
                    self.enqueue(&d.uid);
                }
            }
            return Ok(());
        }
        if node.owners.is_empty() {
            return Ok(());
        }
        let mut solid = Vec::new();
        let mut dangling = Vec::new();
        let mut waiting = Vec::new();
        for r in &node.owners {
            match self.owner_state(&node, r).await? {
                OwnerState::Solid => solid.push(r.uid.clone()),
                OwnerState::Dangling => dangling.push(r.uid.clone()),
                OwnerState::Waiting => waiting.push(r.uid.clone()),
            }
        }
        if !solid.is_empty() {
            if !dangling.is_empty() || !waiting.is_empty() {
                let remove: Vec<String> = dangling.into_iter().chain(waiting).collect();
                self.remove_owner_refs(&node, &remove).await?;
            }
            return Ok(());
        }
        let policy = if !waiting.is_empty() && !deps.is_empty() {
            PropagationPolicy::Foreground
        } else if node.has(ORPHAN) {
            PropagationPolicy::Orphan
        } else if node.has(FOREGROUND) {
            PropagationPolicy::Foreground
        } else {
            PropagationPolicy::Background
        };
        tracing::debug!(object = %self.describe(&node), ?policy, "deleting dependent whose owners are gone");
        let dp = DeleteParams {
            propagation_policy: Some(policy),
            preconditions: Some(Preconditions { uid: Some(node.uid.clone()), resource_version: None }),
            ..Default::default()
        };
        match self.api(node.res, node.namespace.as_deref()).delete(&node.name, &dp).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
            Err(e) => Err(Error::api(format!("delete {}", self.describe(&node)), e)),
        }
    }

    async fn owner_state(&self, dep: &Node, r: &OwnerReference) -> Result<OwnerState, Error> {
        if let Some(o) = self.nodes.get(&r.uid) {
            return Ok(if o.deleting_dependents() { OwnerState::Waiting } else { OwnerState::Solid });
        }
        let (group, _) = split_api_version(&r.api_version);
        let Some(&res) = self.by_group_kind.get(&(group.to_string(), r.kind.clone())) else {
            // A kind we cannot look up: never delete on a guess.
            return Ok(OwnerState::Solid);
        };
        if self.resources[res].namespaced && dep.namespace.is_none() {
            // A cluster-scoped dependent cannot have a namespaced owner: the reference is
            // unresolvable and, as upstream, never makes the dependent garbage.
            return Ok(OwnerState::Solid);
        }
        let api = self.api(res, dep.namespace.as_deref());
        let live = api.get_opt(&r.name).await.map_err(|e| Error::api(format!("get owner {} {}", r.kind, r.name), e))?;
        Ok(match live {
            Some(o) if o.metadata.uid.as_deref() == Some(&r.uid) => {
                let fg = o.metadata.finalizers.iter().flatten().any(|f| f == FOREGROUND);
                if o.metadata.deletion_timestamp.is_some() && fg { OwnerState::Waiting } else { OwnerState::Solid }
            }
            _ => OwnerState::Dangling,
        })
    }

    async fn remove_owner_refs(&self, node: &Node, uids: &[String]) -> Result<(), Error> {
        let refs: Vec<&OwnerReference> = node.owners.iter().filter(|r| !uids.contains(&r.uid)).collect();
        if refs.len() == node.owners.len() {
            return Ok(());
        }
        let refs = if refs.is_empty() { serde_json::Value::Null } else { serde_json::json!(refs) };
        let patch = serde_json::json!({"metadata": {
            "ownerReferences": refs,
            "uid": node.uid,
            "resourceVersion": node.resource_version,
        }});
        self.patch_metadata(node, &patch, "remove ownerReferences from").await
    }

    async fn remove_finalizer(&self, node: &Node, finalizer: &str) -> Result<(), Error> {
        let rest: Vec<&String> = node.finalizers.iter().filter(|f| *f != finalizer).collect();
        let rest = if rest.is_empty() { serde_json::Value::Null } else { serde_json::json!(rest) };
        let patch = serde_json::json!({"metadata": {"finalizers": rest, "resourceVersion": node.resource_version}});
        self.patch_metadata(node, &patch, &format!("remove finalizer {finalizer} from")).await
    }

    /// Merge-patches `node`'s object; an object already gone counts as done. `step` names the
    /// change in the error ("remove finalizer orphan from").
    async fn patch_metadata(&self, node: &Node, patch: &serde_json::Value, step: &str) -> Result<(), Error> {
        match self
            .api(node.res, node.namespace.as_deref())
            .patch(&node.name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) => Ok(()),
            Err(e) => Err(Error::api(format!("{step} {}", self.describe(node)), e)),
        }
    }
}
