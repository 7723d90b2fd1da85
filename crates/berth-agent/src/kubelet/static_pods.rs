//! Static pods: Pod manifests (YAML or JSON, one Pod per file) in `--pod-manifest-path`, run by
//! this kubelet without the API, as upstream's file source does. The directory is polled every
//! [`POLL_INTERVAL`]. Each pod is named `NAME-NODENAME` and gets a uid derived from the node, the
//! file and its content (upstream's `config.hash`), so the same file maps to the same worker (and
//! adopts its running containers) after a restart, and an edited file is a new pod.
//!
//! For each static pod a *mirror pod* is kept in the API: same name, namespace and spec, the
//! annotations `kubernetes.io/config.mirror`, `config.source=file`, `config.hash`, and an
//! ownerReference to the Node. The worker writes the pod's status by name, so it lands on the
//! mirror; a watch of the node's pods follows the mirrors. Deleting the mirror through the API
//! does not stop the pod: the mirror is recreated at once, with the last status it had. Removing the file stops the pod and deletes the mirror. The pod
//! watch in [`super`] never starts a worker for a mirror pod ([`is_mirror`]).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::{KubeletConfig, Shared, error_chain, pod_worker};

/// Marks a mirror pod; its value is the static pod's hash.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// Where a pod came from (`file` for static pods; `api` otherwise).
pub const SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
/// The static pod's hash (also its uid on this node).
pub const HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
/// When the kubelet first saw the manifest.
pub const SEEN_ANNOTATION: &str = "kubernetes.io/config.seen";
/// How often the manifest directory is read (upstream `fileCheckFrequency` is 20 s).
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Why a manifest was not turned into a pod.
#[derive(Debug, thiserror::Error)]
pub enum StaticPodError {
    #[error("failed to read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{}: expected one Pod, found kind {kind:?}", path.display())]
    NotAPod { path: PathBuf, kind: String },
    #[error("{}: the pod has no metadata.name", path.display())]
    NoName { path: PathBuf },
}

/// Whether `pod` is a mirror pod (the API's view of a static pod).
pub fn is_mirror(pod: &Pod) -> bool {
    pod.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(MIRROR_ANNOTATION))
}

/// A pod read from a manifest file, ready to run.
#[derive(Debug, Clone)]
pub struct StaticPod {
    pub path: PathBuf,
    /// Named `NAME-NODENAME`, bound to the node, with uid = hash and the config annotations.
    pub pod: Pod,
    pub hash: String,
}

impl StaticPod {
    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }
}

/// Whether a directory entry is a manifest (upstream skips hidden files).
fn is_manifest(path: &Path) -> bool {
    let hidden = path.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.'));
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
    !hidden && matches!(ext, "yaml" | "yml" | "json")
}

/// The pod of one manifest: parsed, defaulted as the apiserver would, named and hashed.
pub fn parse_manifest(path: &Path, text: &str, node_name: &str) -> Result<StaticPod, StaticPodError> {
    let options = serde_saphyr::options! { legacy_octal_numbers: true };
    let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|e| StaticPodError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
    let mut docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
    if docs.len() != 1 {
        return Err(StaticPodError::Parse {
            path: path.to_path_buf(),
            message: format!("expected one document, found {}", docs.len()),
        });
    }
    let mut obj = docs.remove(0);
    let kind = obj["kind"].as_str().unwrap_or("Pod").to_string();
    if kind != "Pod" || !obj.is_object() {
        return Err(StaticPodError::NotAPod { path: path.to_path_buf(), kind });
    }
    let name = obj["metadata"]["name"].as_str().filter(|n| !n.is_empty()).map(String::from);
    let name = name.ok_or_else(|| StaticPodError::NoName { path: path.to_path_buf() })?;
    // The hash covers the node, the file and the content: the same file on the same node is the
    // same pod across restarts, any edit makes a new one (upstream hashes the decoded pod).
    let mut hasher = Sha256::new();
    hasher.update(format!("host:{node_name}\nfile:{}\n", path.display()).as_bytes());
    hasher.update(text.as_bytes());
    let hash = hex::encode(&hasher.finalize()[..16]);

    obj["apiVersion"] = json!("v1");
    obj["kind"] = json!("Pod");
    let meta = &mut obj["metadata"];
    meta["name"] = json!(format!("{name}-{node_name}"));
    if meta["namespace"].as_str().is_none_or(str::is_empty) {
        meta["namespace"] = json!("default");
    }
    meta["uid"] = json!(hash);
    if !meta["annotations"].is_object() {
        meta["annotations"] = json!({});
    }
    meta["annotations"][SOURCE_ANNOTATION] = json!("file");
    meta["annotations"][HASH_ANNOTATION] = json!(hash);
    if !obj["spec"].is_object() {
        obj["spec"] = json!({});
    }
    obj["spec"]["nodeName"] = json!(node_name);
    berth_api::defaults::pod::default_pod(&mut obj);
    obj.as_object_mut().map(|o| o.remove("status"));
    let pod: Pod = serde_json::from_value(obj)
        .map_err(|e| StaticPodError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
    Ok(StaticPod { path: path.to_path_buf(), pod, hash })
}

/// Every valid manifest in `dir`, sorted by path; bad files are logged and skipped.
pub fn read_manifests(dir: &Path, node_name: &str) -> Vec<StaticPod> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut paths: Vec<PathBuf> =
        entries.flatten().map(|e| e.path()).filter(|p| p.is_file() && is_manifest(p)).collect();
    paths.sort();
    let mut pods = Vec::new();
    let mut names = HashSet::new();
    for path in paths {
        let parsed = std::fs::read_to_string(&path)
            .map_err(|source| StaticPodError::Read { path: path.clone(), source })
            .and_then(|text| parse_manifest(&path, &text, node_name));
        match parsed {
            Ok(p) => {
                if names.insert((p.namespace().to_string(), p.name().to_string())) {
                    pods.push(p);
                } else {
                    tracing::warn!(path = %path.display(), pod = %p.name(), "a static pod of this name exists already; file ignored");
                }
            }
            Err(e) => tracing::warn!(error = %error_chain(&e), "invalid static pod manifest"),
        }
    }
    pods
}

/// The uids of the static pods configured now (so orphan cleanup leaves their containers alone).
pub fn manifest_uids(config: &KubeletConfig) -> HashSet<String> {
    let Some(dir) = &config.pod_manifest_path else { return HashSet::new() };
    read_manifests(dir, &config.node_name).into_iter().map(|p| p.hash).collect()
}

/// The mirror pod of `sp`: the static pod without its uid, marked, owned by the Node.
pub fn mirror_pod(sp: &StaticPod, node: &Node) -> Pod {
    let mut pod = sp.pod.clone();
    pod.metadata.uid = None;
    pod.metadata.resource_version = None;
    pod.metadata.annotations.get_or_insert_with(Default::default).insert(MIRROR_ANNOTATION.into(), sp.hash.clone());
    if let (Some(name), Some(uid)) = (node.metadata.name.clone(), node.metadata.uid.clone()) {
        pod.metadata.owner_references = Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name,
            uid,
            controller: Some(true),
            ..Default::default()
        }]);
    }
    pod.status = None;
    pod
}

fn mirror_hash(pod: &Pod) -> Option<&str> {
    pod.metadata.annotations.as_ref()?.get(MIRROR_ANNOTATION).map(String::as_str)
}

/// One running static pod.
struct Entry {
    sp: StaticPod,
    worker: pod_worker::Handle,
    /// The status the mirror last had, to give a recreated mirror at once.
    last_status: Option<Value>,
}

type PodKey = (String, String);

fn key_of(pod: &Pod) -> PodKey {
    (pod.metadata.namespace.clone().unwrap_or_default(), pod.metadata.name.clone().unwrap_or_default())
}

/// Runs the static pods of `shared.config.pod_manifest_path` until `cancel` fires. Workers stop
/// with `cancel` and leave their containers running for the next start to adopt.
///
/// The directory is read every [`POLL_INTERVAL`]; the mirror pods are followed through a watch of
/// this node's pods, so every status the worker writes is seen (and kept for a recreated mirror)
/// and a deleted mirror is replaced at once.
pub async fn run(shared: Arc<Shared>, cancel: CancellationToken) {
    let Some(dir) = shared.config.pod_manifest_path.clone() else { return };
    tracing::info!(dir = %dir.display(), "watching static pod manifests");
    let node_name = shared.config.node_name.clone();
    let nodes: Api<Node> = Api::all(shared.client.clone());
    let mut node: Option<Node> = None;
    let mut entries: HashMap<String, Entry> = HashMap::new();
    let mut mirrors: HashMap<PodKey, Pod> = HashMap::new();
    let pods: Api<Pod> = Api::all(shared.client.clone());
    let selector = format!("spec.nodeName={node_name}");
    let stream = watcher::watcher(pods, watcher::Config::default().fields(&selector)).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    // The first read waits for the mirrors (their status lets workers adopt running containers
    // after a restart), but not longer than this: static pods also run without an apiserver.
    let started = tokio::time::Instant::now();
    let mut synced = false;
    loop {
        let mut read_dir = false;
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => read_dir = true,
            event = stream.next() => match event {
                None => break,
                Some(Err(e)) => tracing::warn!(error = %error_chain(&e), "static pod mirror watch failed; retrying"),
                Some(Ok(Event::Init)) => mirrors.clear(),
                Some(Ok(Event::InitDone)) => synced = true,
                Some(Ok(Event::Apply(pod) | Event::InitApply(pod))) => {
                    if is_mirror(&pod) {
                        mirrors.insert(key_of(&pod), pod);
                    }
                }
                Some(Ok(Event::Delete(pod))) => {
                    if let Some(m) = mirrors.get(&key_of(&pod))
                        && m.metadata.uid == pod.metadata.uid
                    {
                        mirrors.remove(&key_of(&pod));
                    }
                }
            },
        }
        if read_dir && (synced || started.elapsed() > 5 * POLL_INTERVAL) {
            if node.as_ref().and_then(|n| n.metadata.uid.as_ref()).is_none() {
                node = nodes.get_opt(&node_name).await.ok().flatten();
            }
            reconcile_files(&shared, &dir, &mut entries, &mirrors, &cancel).await;
            delete_orphaned_mirrors(&shared.client, &entries, &mirrors).await;
        }
        if let Some(node) = &node {
            for entry in entries.values_mut() {
                sync_mirror(&shared.client, node, entry, &mirrors).await;
            }
        }
    }
    for (_, entry) in entries {
        entry.worker.join().await;
    }
}

/// Starts the pods of new manifests and stops those whose manifest is gone.
async fn reconcile_files(
    shared: &Arc<Shared>,
    dir: &Path,
    entries: &mut HashMap<String, Entry>,
    mirrors: &HashMap<PodKey, Pod>,
    cancel: &CancellationToken,
) {
    let desired: HashMap<String, StaticPod> =
        read_manifests(dir, &shared.config.node_name).into_iter().map(|p| (p.hash.clone(), p)).collect();
    let removed: Vec<String> = entries.keys().filter(|h| !desired.contains_key(*h)).cloned().collect();
    for hash in removed {
        let Some(entry) = entries.remove(&hash) else { continue };
        tracing::info!(pod = %entry.sp.name(), path = %entry.sp.path.display(), "static pod manifest removed; stopping the pod");
        entry.worker.gone();
        let key = (entry.sp.namespace().to_string(), entry.sp.name().to_string());
        if let Some(uid) =
            mirrors.get(&key).filter(|m| mirror_hash(m) == Some(&hash)).and_then(|m| m.metadata.uid.clone())
        {
            delete_mirror(&shared.client, &entry.sp, uid).await;
        }
    }
    for (hash, sp) in desired {
        if entries.contains_key(&hash) {
            continue;
        }
        let mut pod = sp.pod.clone();
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        pod.metadata.annotations.get_or_insert_with(Default::default).insert(SEEN_ANNOTATION.into(), now);
        // After a restart the mirror holds the status (restart counts, start times) to adopt.
        let key = (sp.namespace().to_string(), sp.name().to_string());
        let mirror = mirrors.get(&key).filter(|m| mirror_hash(m) == Some(&hash));
        pod.status = mirror.and_then(|m| m.status.clone());
        let last_status = running_status(mirror);
        tracing::info!(pod = %sp.name(), uid = %hash, path = %sp.path.display(), "starting static pod");
        let worker = pod_worker::Handle::spawn(shared.clone(), pod, cancel.child_token());
        entries.insert(hash, Entry { sp, worker, last_status });
    }
}

/// Deletes mirror pods on this node whose static pod is gone (its file was removed while the
/// kubelet was down), as upstream's pod manager does.
async fn delete_orphaned_mirrors(
    client: &kube::Client,
    entries: &HashMap<String, Entry>,
    mirrors: &HashMap<PodKey, Pod>,
) {
    for ((namespace, name), m) in mirrors {
        let orphaned = mirror_hash(m).is_some_and(|h| !entries.contains_key(h));
        if let (true, Some(uid)) = (orphaned, m.metadata.uid.clone()) {
            tracing::info!(pod = %name, "deleting a mirror pod whose static pod is gone");
            delete_pod(client, namespace, name, uid).await;
        }
    }
}

/// The status of a mirror once the worker has written one (a phase and container statuses).
fn running_status(mirror: Option<&Pod>) -> Option<Value> {
    let status = mirror?.status.as_ref()?;
    status.container_statuses.as_ref()?;
    serde_json::to_value(status).ok()
}

/// Deletes the mirror `uid` of `sp` at once.
async fn delete_mirror(client: &kube::Client, sp: &StaticPod, uid: String) {
    delete_pod(client, sp.namespace(), sp.name(), uid).await;
}

/// Deletes pod `uid` (a mirror) at once.
async fn delete_pod(client: &kube::Client, namespace: &str, name: &str, uid: String) {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions { uid: Some(uid), resource_version: None }),
        ..Default::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => tracing::warn!(pod = %name, error = %error_chain(&e), "failed to delete mirror pod"),
    }
}

/// Keeps the mirror of one static pod: creates it when missing, replaces a stale or deleted one.
async fn sync_mirror(client: &kube::Client, node: &Node, entry: &mut Entry, mirrors: &HashMap<PodKey, Pod>) {
    let name = entry.sp.name().to_string();
    let key = (entry.sp.namespace().to_string(), name.clone());
    if let Some(m) = mirrors.get(&key) {
        let ours = mirror_hash(m) == Some(&entry.sp.hash);
        if ours && m.metadata.deletion_timestamp.is_none() {
            if let Some(status) = running_status(Some(m)) {
                entry.last_status = Some(status);
            }
            return;
        }
        // Deleted through the API, or a mirror of an older manifest: remove it; the watch's delete
        // event brings us back here to create the new one.
        if let Some(uid) = m.metadata.uid.clone() {
            delete_mirror(client, &entry.sp, uid).await;
        }
        return;
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), entry.sp.namespace());
    match api.create(&PostParams::default(), &mirror_pod(&entry.sp, node)).await {
        Ok(_) => tracing::info!(pod = %name, "created mirror pod"),
        // A pod of this name that is no mirror pod is left alone (as upstream); a mirror we have
        // not seen yet comes through the watch.
        Err(kube::Error::Api(e)) if e.code == 409 => return,
        Err(e) => {
            tracing::warn!(pod = %name, error = %error_chain(&e), "failed to create mirror pod");
            return;
        }
    }
    if let Some(status) = &entry.last_status {
        let patch = json!({ "status": status });
        if let Err(e) = api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            tracing::warn!(pod = %name, error = %error_chain(&e), "failed to write the mirror pod status");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  containers:\n  - name: app\n    image: busybox\n    command: [sleep, '3600']\n";

    #[test]
    fn a_manifest_becomes_a_named_hashed_bound_defaulted_pod() {
        let sp = parse_manifest(Path::new("/etc/manifests/web.yaml"), MANIFEST, "node-1").expect("parses");
        assert_eq!(sp.name(), "web-node-1");
        assert_eq!(sp.namespace(), "default");
        assert_eq!(sp.pod.metadata.uid.as_deref(), Some(sp.hash.as_str()));
        assert_eq!(sp.hash.len(), 32);
        let spec = sp.pod.spec.as_ref().expect("spec");
        assert_eq!(spec.node_name.as_deref(), Some("node-1"));
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"), "defaulted as the apiserver does");
        let ann = sp.pod.metadata.annotations.as_ref().expect("annotations");
        assert_eq!(ann.get(SOURCE_ANNOTATION).map(String::as_str), Some("file"));
        assert_eq!(ann.get(HASH_ANNOTATION), Some(&sp.hash));
        assert!(!is_mirror(&sp.pod), "the static pod itself is not a mirror");
    }

    #[test]
    fn the_hash_is_stable_and_changes_with_content_file_and_node() {
        let hash = |path: &str, text: &str, node: &str| parse_manifest(Path::new(path), text, node).expect("ok").hash;
        let base = hash("/m/web.yaml", MANIFEST, "n1");
        assert_eq!(base, hash("/m/web.yaml", MANIFEST, "n1"));
        assert_ne!(base, hash("/m/web.yaml", &MANIFEST.replace("3600", "60"), "n1"));
        assert_ne!(base, hash("/m/other.yaml", MANIFEST, "n1"));
        assert_ne!(base, hash("/m/web.yaml", MANIFEST, "n2"));
    }

    #[test]
    fn json_manifests_parse_and_bad_ones_are_rejected_with_the_file_name() {
        let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j","namespace":"kube-system"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}"#;
        let sp = parse_manifest(Path::new("/m/j.json"), json, "n").expect("json");
        assert_eq!((sp.namespace(), sp.name()), ("kube-system", "j-n"));
        let cases = [
            ("a deployment", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n", "Deployment"),
            ("no name", "kind: Pod\nspec: {containers: []}\n", "no metadata.name"),
            ("two documents", "kind: Pod\nmetadata: {name: a}\n---\nkind: Pod\nmetadata: {name: b}\n", "one document"),
            ("not yaml", "kind: [", "bad.yaml"),
        ];
        for (name, text, want) in cases {
            let err = parse_manifest(Path::new("/m/bad.yaml"), text, "n").expect_err(name).to_string();
            assert!(err.contains(want), "{name}: {err}");
            assert!(err.contains("/m/bad.yaml"), "{name}: {err}");
        }
    }

    #[test]
    fn the_directory_is_read_in_order_skipping_hidden_other_and_duplicate_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.yaml"), MANIFEST).expect("write");
        std::fs::write(dir.path().join("b.yml"), MANIFEST.replace("web", "api")).expect("write");
        std::fs::write(dir.path().join("c.yaml"), MANIFEST).expect("write duplicate name");
        std::fs::write(dir.path().join(".hidden.yaml"), MANIFEST.replace("web", "hidden")).expect("write");
        std::fs::write(dir.path().join("notes.txt"), "hello").expect("write");
        std::fs::write(dir.path().join("broken.yaml"), "kind: [").expect("write");
        let pods = read_manifests(dir.path(), "n");
        let names: Vec<&str> = pods.iter().map(StaticPod::name).collect();
        assert_eq!(names, vec!["web-n", "api-n"]);
        assert!(read_manifests(&dir.path().join("missing"), "n").is_empty());
    }

    #[test]
    fn the_mirror_is_marked_owned_by_the_node_and_has_no_uid() {
        let sp = parse_manifest(Path::new("/m/web.yaml"), MANIFEST, "node-1").expect("parses");
        let node: Node =
            serde_json::from_value(json!({"metadata": {"name": "node-1", "uid": "node-uid"}})).expect("node");
        let mirror = mirror_pod(&sp, &node);
        assert!(is_mirror(&mirror));
        assert_eq!(mirror_hash(&mirror), Some(sp.hash.as_str()));
        assert_eq!(mirror.metadata.uid, None);
        let owner = &mirror.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()), ("Node", "node-1", "node-uid"));
        assert_eq!(mirror.metadata.name.as_deref(), Some("web-node-1"));
    }
}
