//! Strategic-merge-patch metadata that k8s-openapi's schemas lack: which list fields merge (and
//! by which key) rather than being replaced. Upstream carries these as Go struct tags
//! (`patchStrategy:"merge" patchMergeKey:"name"`) and publishes them in its OpenAPI documents
//! as `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key`.
//!
//! `kubectl apply` computes its three-way patch from these extensions in `/openapi/v3`; without
//! them it would replace whole lists (so a container removed from a manifest would survive the
//! server's merge). The apiserver's strategic merge patch can read the same table.

/// One field's patch metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchMeta {
    /// The schema (definition) name, e.g. `io.k8s.api.core.v1.PodSpec`.
    pub schema: &'static str,
    /// The property, e.g. `containers`.
    pub field: &'static str,
    /// `merge`, `retainKeys` or `merge,retainKeys`.
    pub strategy: &'static str,
    /// The key identifying list items, for lists of objects.
    pub merge_key: Option<&'static str>,
}

const fn m(schema: &'static str, field: &'static str, strategy: &'static str, key: &'static str) -> PatchMeta {
    PatchMeta { schema, field, strategy, merge_key: if key.is_empty() { None } else { Some(key) } }
}

macro_rules! core {
    ($t:literal) => {
        concat!("io.k8s.api.core.v1.", $t)
    };
}

/// The patch strategies of the served built-in kinds' fields.
pub static PATCH_META: &[PatchMeta] = &[
    m("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers", "merge", ""),
    m("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences", "merge", "uid"),
    m(core!("PodSpec"), "containers", "merge", "name"),
    m(core!("PodSpec"), "initContainers", "merge", "name"),
    m(core!("PodSpec"), "ephemeralContainers", "merge", "name"),
    m(core!("PodSpec"), "volumes", "merge,retainKeys", "name"),
    m(core!("PodSpec"), "imagePullSecrets", "merge", "name"),
    m(core!("PodSpec"), "hostAliases", "merge", "ip"),
    m(core!("PodSpec"), "topologySpreadConstraints", "merge", "topologyKey"),
    m(core!("PodSpec"), "resourceClaims", "merge,retainKeys", "name"),
    m(core!("PodSpec"), "schedulingGates", "merge", "name"),
    m(core!("Container"), "env", "merge", "name"),
    m(core!("Container"), "ports", "merge", "containerPort"),
    m(core!("Container"), "volumeMounts", "merge", "mountPath"),
    m(core!("Container"), "volumeDevices", "merge", "devicePath"),
    m(core!("EphemeralContainer"), "env", "merge", "name"),
    m(core!("EphemeralContainer"), "ports", "merge", "containerPort"),
    m(core!("EphemeralContainer"), "volumeMounts", "merge", "mountPath"),
    m(core!("EphemeralContainer"), "volumeDevices", "merge", "devicePath"),
    m(core!("PodStatus"), "conditions", "merge", "type"),
    m(core!("PodStatus"), "podIPs", "merge", "ip"),
    m(core!("PodStatus"), "hostIPs", "merge", "ip"),
    m(core!("PodStatus"), "resourceClaimStatuses", "merge,retainKeys", "name"),
    m(core!("ServiceSpec"), "ports", "merge", "port"),
    m(core!("ServiceStatus"), "conditions", "merge", "type"),
    m(core!("ServiceAccount"), "secrets", "merge", "name"),
    m(core!("NodeSpec"), "podCIDRs", "merge", ""),
    m(core!("NodeStatus"), "conditions", "merge", "type"),
    m(core!("NodeStatus"), "addresses", "merge", "type"),
    m(core!("NamespaceStatus"), "conditions", "merge", "type"),
    m(core!("PersistentVolumeClaimStatus"), "conditions", "merge", "type"),
    m(core!("ReplicationControllerStatus"), "conditions", "merge", "type"),
    m("io.k8s.api.apps.v1.DeploymentSpec", "strategy", "retainKeys", ""),
    m("io.k8s.api.apps.v1.DeploymentStatus", "conditions", "merge", "type"),
    m("io.k8s.api.apps.v1.ReplicaSetStatus", "conditions", "merge", "type"),
    m("io.k8s.api.apps.v1.DaemonSetStatus", "conditions", "merge", "type"),
    m("io.k8s.api.apps.v1.StatefulSetStatus", "conditions", "merge", "type"),
    m("io.k8s.api.batch.v1.JobStatus", "conditions", "merge", "type"),
    m("io.k8s.api.policy.v1.PodDisruptionBudgetStatus", "conditions", "merge", "type"),
    m("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus", "conditions", "merge", "type"),
];

/// The patch metadata of `schema`'s `field`, if it merges.
pub fn lookup(schema: &str, field: &str) -> Option<&'static PatchMeta> {
    PATCH_META.iter().find(|p| p.schema == schema && p.field == field)
}

/// Adds the extensions to the generated definitions that hold the fields.
pub(crate) fn annotate(defs: &mut serde_json::Map<String, serde_json::Value>) {
    for p in PATCH_META {
        let Some(prop) =
            defs.get_mut(p.schema).and_then(|s| s.get_mut("properties")).and_then(|ps| ps.get_mut(p.field))
        else {
            continue;
        };
        if let Some(obj) = prop.as_object_mut() {
            obj.insert("x-kubernetes-patch-strategy".into(), p.strategy.into());
            if let Some(key) = p.merge_key {
                obj.insert("x-kubernetes-patch-merge-key".into(), key.into());
            }
        }
    }
}
