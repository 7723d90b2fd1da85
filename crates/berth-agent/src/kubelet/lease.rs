//! The node's heartbeat Lease in `kube-node-lease` (upstream: renewed every 10 s, duration 40 s),
//! owned by the Node so it goes away with it.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

use super::KubeletError;

/// The namespace node leases live in.
pub const NAMESPACE: &str = "kube-node-lease";
/// How long a lease is valid without renewal.
pub const DURATION_SECONDS: i32 = 40;

/// Creates or renews the lease of `node`.
pub async fn renew(client: &kube::Client, node: &Node) -> Result<(), KubeletError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let now = MicroTime(Timestamp::now());
    let err = |what: &'static str| {
        let name = name.clone();
        move |source| KubeletError::Api { what, name, source }
    };
    let patch = serde_json::json!({ "spec": { "renewTime": now, "holderIdentity": name } });
    match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => return Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(err("renew lease")(e)),
    }
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let ns =
        Namespace { metadata: ObjectMeta { name: Some(NAMESPACE.into()), ..Default::default() }, ..Default::default() };
    match ns_api.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        // 403: a node identity (join token) may not create namespaces; the apiserver's bootstrap
        // made this one.
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 => {}
        Err(e) => return Err(err("create namespace kube-node-lease")(e)),
    }
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(NAMESPACE.into()),
            owner_references: node.metadata.uid.clone().map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: name.clone(),
                    uid,
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.clone()),
            lease_duration_seconds: Some(DURATION_SECONDS),
            renew_time: Some(now),
            ..Default::default()
        }),
    };
    match api.create(&PostParams::default(), &lease).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(err("create lease")(e)),
    }
}
