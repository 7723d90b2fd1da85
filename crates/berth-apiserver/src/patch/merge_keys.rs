//! Patch metadata of the built-in kinds: which lists merge by key (and by which key), which
//! primitive lists are sets, which structs are atomic. k8s-openapi carries none of this, so it is
//! transcribed here from the upstream `x-kubernetes-patch-merge-key` / `x-kubernetes-patch-strategy`
//! (strategic merge patch) and `x-kubernetes-list-type` / `x-kubernetes-list-map-keys` (server-side
//! apply) of k8s.io/api. Kinds without an entry (custom resources) get the "deduced" schema: maps
//! merge key by key, lists are atomic.

/// How a list field merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListType {
    /// Replaced as a whole (no patch strategy; `x-kubernetes-list-type: atomic`).
    Atomic,
    /// Items are maps merged by key: `patch_merge_key` for strategic merge patch, `keys` (the
    /// list-map keys) for server-side apply.
    Map { patch_merge_key: &'static str, keys: &'static [&'static str] },
    /// A list of scalars merged as a set (`patchStrategy: merge` on a primitive list).
    Set,
}

/// A position in the schema: the Go type name of the value being walked, or unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ty(Option<&'static str>);

/// What the schema says about one field of a struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    /// The type of the field's value (of its items, for lists).
    pub ty: Ty,
    /// How the field merges when its value is a list.
    pub list: ListType,
    /// The field is a struct with `+structType=atomic` (e.g. a LabelSelector): replaced whole.
    pub atomic: bool,
}

const NAME: ListType = ListType::Map { patch_merge_key: "name", keys: &["name"] };
const TYPE: ListType = ListType::Map { patch_merge_key: "type", keys: &["type"] };
const IP: ListType = ListType::Map { patch_merge_key: "ip", keys: &["ip"] };

/// Marker for an atomic struct in the child-type column.
const ATOMIC: &str = "<atomic>";

/// (parent type, field, child type or "" / ATOMIC, list type) for every field whose merge
/// behaviour differs from the default (maps merged by key, lists atomic) or that leads to one.
static FIELDS: &[(&str, &str, &str, ListType)] = &[
    // Object metadata.
    ("ObjectMeta", "finalizers", "", ListType::Set),
    ("ObjectMeta", "ownerReferences", "", ListType::Map { patch_merge_key: "uid", keys: &["uid"] }),
    // Workloads and their templates.
    ("Pod", "spec", "PodSpec", ListType::Atomic),
    ("Pod", "status", "PodStatus", ListType::Atomic),
    ("PodTemplate", "template", "PodTemplateSpec", ListType::Atomic),
    ("PodTemplateSpec", "metadata", "ObjectMeta", ListType::Atomic),
    ("PodTemplateSpec", "spec", "PodSpec", ListType::Atomic),
    ("ReplicationController", "spec", "ReplicationControllerSpec", ListType::Atomic),
    ("ReplicationController", "status", "WorkloadStatus", ListType::Atomic),
    ("ReplicationControllerSpec", "template", "PodTemplateSpec", ListType::Atomic),
    ("Deployment", "spec", "DeploymentSpec", ListType::Atomic),
    ("Deployment", "status", "WorkloadStatus", ListType::Atomic),
    ("DeploymentSpec", "template", "PodTemplateSpec", ListType::Atomic),
    ("DeploymentSpec", "selector", ATOMIC, ListType::Atomic),
    ("ReplicaSet", "spec", "ReplicaSetSpec", ListType::Atomic),
    ("ReplicaSet", "status", "WorkloadStatus", ListType::Atomic),
    ("ReplicaSetSpec", "template", "PodTemplateSpec", ListType::Atomic),
    ("ReplicaSetSpec", "selector", ATOMIC, ListType::Atomic),
    ("StatefulSet", "spec", "StatefulSetSpec", ListType::Atomic),
    ("StatefulSet", "status", "WorkloadStatus", ListType::Atomic),
    ("StatefulSetSpec", "template", "PodTemplateSpec", ListType::Atomic),
    ("StatefulSetSpec", "selector", ATOMIC, ListType::Atomic),
    ("DaemonSet", "spec", "DaemonSetSpec", ListType::Atomic),
    ("DaemonSet", "status", "WorkloadStatus", ListType::Atomic),
    ("DaemonSetSpec", "template", "PodTemplateSpec", ListType::Atomic),
    ("DaemonSetSpec", "selector", ATOMIC, ListType::Atomic),
    ("Job", "spec", "JobSpec", ListType::Atomic),
    ("Job", "status", "WorkloadStatus", ListType::Atomic),
    ("JobSpec", "template", "PodTemplateSpec", ListType::Atomic),
    ("JobSpec", "selector", ATOMIC, ListType::Atomic),
    ("CronJob", "spec", "CronJobSpec", ListType::Atomic),
    ("CronJobSpec", "jobTemplate", "JobTemplateSpec", ListType::Atomic),
    ("JobTemplateSpec", "metadata", "ObjectMeta", ListType::Atomic),
    ("JobTemplateSpec", "spec", "JobSpec", ListType::Atomic),
    ("WorkloadStatus", "conditions", "", TYPE),
    // PodSpec and containers.
    ("PodSpec", "containers", "Container", NAME),
    ("PodSpec", "initContainers", "Container", NAME),
    ("PodSpec", "ephemeralContainers", "Container", NAME),
    ("PodSpec", "volumes", "", NAME),
    ("PodSpec", "imagePullSecrets", "", NAME),
    ("PodSpec", "hostAliases", "", IP),
    ("PodSpec", "resourceClaims", "", NAME),
    ("PodSpec", "schedulingGates", "", NAME),
    (
        "PodSpec",
        "topologySpreadConstraints",
        "",
        ListType::Map { patch_merge_key: "topologyKey", keys: &["topologyKey", "whenUnsatisfiable"] },
    ),
    (
        "Container",
        "ports",
        "",
        ListType::Map { patch_merge_key: "containerPort", keys: &["containerPort", "protocol"] },
    ),
    ("Container", "env", "", NAME),
    ("Container", "volumeMounts", "", ListType::Map { patch_merge_key: "mountPath", keys: &["mountPath"] }),
    ("Container", "volumeDevices", "", ListType::Map { patch_merge_key: "devicePath", keys: &["devicePath"] }),
    ("PodStatus", "conditions", "", TYPE),
    ("PodStatus", "podIPs", "", IP),
    ("PodStatus", "hostIPs", "", IP),
    // Services, nodes and the rest of core/v1.
    ("Service", "spec", "ServiceSpec", ListType::Atomic),
    ("Service", "status", "WorkloadStatus", ListType::Atomic),
    ("ServiceSpec", "ports", "", ListType::Map { patch_merge_key: "port", keys: &["port", "protocol"] }),
    ("Node", "spec", "NodeSpec", ListType::Atomic),
    ("Node", "status", "NodeStatus", ListType::Atomic),
    ("NodeSpec", "podCIDRs", "", ListType::Set),
    ("NodeStatus", "conditions", "", TYPE),
    ("NodeStatus", "addresses", "", TYPE),
    ("Namespace", "status", "WorkloadStatus", ListType::Atomic),
    ("PersistentVolumeClaim", "status", "WorkloadStatus", ListType::Atomic),
    ("ServiceAccount", "secrets", "", NAME),
    ("HorizontalPodAutoscaler", "status", "WorkloadStatus", ListType::Atomic),
];

/// (group, kind) of the kinds with a schema above; every other kind only knows `metadata`.
static KINDS: &[(&str, &str)] = &[
    ("", "Pod"),
    ("", "PodTemplate"),
    ("", "ReplicationController"),
    ("", "Service"),
    ("", "Node"),
    ("", "Namespace"),
    ("", "PersistentVolumeClaim"),
    ("", "ServiceAccount"),
    ("apps", "Deployment"),
    ("apps", "ReplicaSet"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("autoscaling", "HorizontalPodAutoscaler"),
];

/// The default of a list-map key that an applied configuration may omit (ports' `protocol`).
pub(crate) fn key_default(key: &str) -> Option<&'static str> {
    (key == "protocol").then_some("TCP")
}

impl Ty {
    /// No schema: maps merge per key, lists are atomic.
    pub(crate) const UNKNOWN: Ty = Ty(None);

    /// The root type of objects of `group`/`kind`.
    pub(crate) fn root(group: &str, kind: &str) -> Ty {
        match KINDS.iter().find(|(g, k)| *g == group && *k == kind) {
            Some((_, k)) => Ty(Some(k)),
            None => Ty(Some("Object")),
        }
    }

    /// Whether this is the root of an object (where `metadata` is ObjectMeta).
    fn is_root(self) -> bool {
        matches!(self.0, Some("Object")) || KINDS.iter().any(|(_, k)| Some(*k) == self.0)
    }

    /// What the schema says about field `name` of this type.
    pub(crate) fn field(self, name: &str) -> Field {
        let mut field = Field { ty: Ty::UNKNOWN, list: ListType::Atomic, atomic: false };
        let Some(parent) = self.0 else { return field };
        if name == "metadata" && self.is_root() {
            field.ty = Ty(Some("ObjectMeta"));
            return field;
        }
        if let Some((_, _, child, list)) = FIELDS.iter().find(|(p, f, _, _)| *p == parent && *f == name) {
            field.list = *list;
            match *child {
                "" => {}
                ATOMIC => field.atomic = true,
                child => field.ty = Ty(Some(child)),
            }
        }
        field
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_containers_merge_by_name_through_the_pod_template() {
        let spec = Ty::root("apps", "Deployment").field("spec").ty;
        let pod_spec = spec.field("template").ty.field("spec").ty;
        let containers = pod_spec.field("containers");
        assert_eq!(containers.list, NAME);
        assert_eq!(
            containers.ty.field("ports").list,
            ListType::Map { patch_merge_key: "containerPort", keys: &["containerPort", "protocol"] }
        );
        assert!(spec.field("selector").atomic);
    }

    #[test]
    fn cronjob_pod_template_is_found_through_the_job_template() {
        let pod_spec = Ty::root("batch", "CronJob")
            .field("spec")
            .ty
            .field("jobTemplate")
            .ty
            .field("spec")
            .ty
            .field("template")
            .ty
            .field("spec")
            .ty;
        assert_eq!(pod_spec.field("volumes").list, NAME);
        assert_eq!(pod_spec.field("tolerations").list, ListType::Atomic);
    }

    #[test]
    fn unknown_kinds_know_only_object_meta() {
        let root = Ty::root("example.com", "Widget");
        assert_eq!(root.field("metadata").ty.field("finalizers").list, ListType::Set);
        assert_eq!(root.field("spec").ty, Ty::UNKNOWN);
        assert_eq!(root.field("spec").ty.field("items").list, ListType::Atomic);
    }
}
