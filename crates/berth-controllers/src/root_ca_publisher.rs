//! Root CA certificate publisher (k8s `pkg/controller/certificates/rootcacertpublisher`): every
//! active Namespace gets the ConfigMap `kube-root-ca.crt` holding the cluster CA under `ca.crt`,
//! with the upstream description annotation; it is re-created if deleted and restored if edited.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use tokio_util::sync::CancellationToken;

use crate::error::is_status;
use crate::serviceaccount::{is_forbidden_terminating, run_per_namespace};
use crate::{ControllersConfig, Error};

/// The controller's name in `--controllers`.
pub const NAME: &str = "root-ca-cert-publisher";
/// The published ConfigMap's name.
pub const CONFIG_MAP: &str = "kube-root-ca.crt";
/// The key holding the CA bundle.
pub const DATA_KEY: &str = "ca.crt";
/// The annotation upstream sets on the ConfigMap.
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
/// Upstream's description, verbatim.
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal \
                               endpoints such as the internal service IP or kubernetes.default.svc. No other usage is \
                               guaranteed across distributions of Kubernetes clusters.";

/// Runs the publisher until cancelled; without a CA (`config.root_ca_pem`) it does nothing.
pub async fn run(client: kube::Client, config: ControllersConfig, cancel: CancellationToken) -> Result<(), Error> {
    let Some(ca) = config.root_ca_pem.clone() else {
        tracing::info!("no cluster CA known; the root CA publisher does not run");
        return Ok(());
    };
    run_per_namespace::<ConfigMap, _, _, _>(client, &config, cancel, CONFIG_MAP, ca, |ctx, ns| async move {
        sync_namespace(&ctx.client, &ns, &ctx.state).await
    })
    .await;
    Ok(())
}

/// Upstream's up-to-date check: the data is exactly `{ca.crt: CA}` and the annotation is non-empty.
fn up_to_date(cm: &ConfigMap, data: &BTreeMap<String, String>) -> bool {
    cm.data.as_ref() == Some(data)
        && cm.metadata.annotations.as_ref().and_then(|a| a.get(DESCRIPTION_ANNOTATION)).is_some_and(|d| !d.is_empty())
}

/// Creates or restores `kube-root-ca.crt` in `ns`.
async fn sync_namespace(client: &kube::Client, ns: &str, ca: &str) -> Result<(), Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let what = |verb: &str| format!("{verb} configmap {ns}/{CONFIG_MAP}");
    let data = BTreeMap::from([(DATA_KEY.to_string(), ca.to_string())]);
    let result = match api.get_opt(CONFIG_MAP).await.map_err(|e| Error::api(what("get"), e))? {
        Some(cm) if up_to_date(&cm, &data) => return Ok(()),
        Some(mut cm) => {
            cm.data = Some(data);
            cm.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into());
            api.replace(CONFIG_MAP, &PostParams::default(), &cm).await.map_err(|e| (what("update"), e))
        }
        None => {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(CONFIG_MAP.into()),
                    annotations: Some(BTreeMap::from([(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into())])),
                    ..Default::default()
                },
                data: Some(data),
                ..Default::default()
            };
            api.create(&PostParams::default(), &cm).await.map_err(|e| (what("create"), e))
        }
    };
    match result {
        Ok(_) => Ok(()),
        // A conflict means someone changed it meanwhile: the watch event brings another sync.
        Err((_, e)) if is_status(&e, 409) || is_status(&e, 404) => Ok(()),
        Err((_, e)) if is_status(&e, 403) && is_forbidden_terminating(&e) => Ok(()),
        Err((action, e)) => Err(Error::api(action, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edited_data_or_missing_annotation_is_out_of_date() {
        let data = BTreeMap::from([(DATA_KEY.to_string(), "PEM".to_string())]);
        let mut cm = ConfigMap { data: Some(data.clone()), ..Default::default() };
        assert!(!up_to_date(&cm, &data), "no annotation");
        cm.metadata.annotations = Some(BTreeMap::from([(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into())]));
        assert!(up_to_date(&cm, &data));
        cm.data.as_mut().map(|d| d.insert("extra".into(), "x".into()));
        assert!(!up_to_date(&cm, &data), "extra key");
    }
}
