//! ServiceAccounts controller and root CA publisher against a real in-process apiserver: a new
//! namespace gets the `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap; both come
//! back when deleted, an edited `ca.crt` is restored, and a terminating namespace gets nothing new.

mod common;

use common::{Env, wait_for};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use berth_controllers::ControllersConfig;
use berth_controllers::root_ca_publisher::{CONFIG_MAP, DESCRIPTION, DESCRIPTION_ANNOTATION};

const CA: &str = "-----BEGIN CERTIFICATE-----\nTEST\n-----END CERTIFICATE-----\n";

async fn start() -> Env {
    let env = Env::start_server().await;
    env.start_controllers_config(ControllersConfig {
        controllers: vec!["serviceaccount".into(), "root-ca-cert-publisher".into()],
        concurrency: 4,
        root_ca_pem: Some(CA.into()),
        ..Default::default()
    });
    env
}

async fn create_ns(client: &Client, name: &str, finalizers: &[&str]) {
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name, "finalizers": finalizers}})).expect("ns");
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("create ns");
}

/// Waits until `ns` holds the default ServiceAccount and an up-to-date root CA ConfigMap.
async fn wait_defaults(client: &Client, ns: &str) -> ConfigMap {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    wait_for(20, "default serviceaccount", || async { sas.get_opt("default").await.ok()? }).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    wait_for(20, "kube-root-ca.crt with the CA", || async {
        let cm = cms.get_opt(CONFIG_MAP).await.ok()??;
        (cm.data.as_ref()?.get("ca.crt")? == CA).then_some(cm)
    })
    .await
}

#[tokio::test]
async fn new_namespace_gets_default_service_account_and_root_ca() {
    let env = start().await;
    // Namespaces that exist at start-up are covered too.
    wait_defaults(&env.client, "default").await;
    create_ns(&env.client, "fresh", &[]).await;
    let cm = wait_defaults(&env.client, "fresh").await;
    let annotation = cm.metadata.annotations.as_ref().and_then(|a| a.get(DESCRIPTION_ANNOTATION));
    assert_eq!(annotation.map(String::as_str), Some(DESCRIPTION));
    assert_eq!(cm.data.as_ref().map(|d| d.len()), Some(1), "only ca.crt: {cm:?}");
}

#[tokio::test]
async fn deleted_objects_come_back_and_edits_are_reverted() {
    let env = start().await;
    let c = &env.client;
    create_ns(c, "heal", &[]).await;
    let first = wait_defaults(c, "heal").await;
    let sas: Api<ServiceAccount> = Api::namespaced(c.clone(), "heal");
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "heal");
    let old_sa = sas.get("default").await.expect("sa").metadata.uid;

    sas.delete("default", &DeleteParams::default()).await.expect("delete sa");
    wait_for(20, "re-created serviceaccount", || async {
        let sa = sas.get_opt("default").await.ok()??;
        (sa.metadata.uid != old_sa).then_some(())
    })
    .await;

    cms.delete(CONFIG_MAP, &DeleteParams::default()).await.expect("delete cm");
    let second = wait_for(20, "re-created configmap", || async {
        let cm = cms.get_opt(CONFIG_MAP).await.ok()??;
        (cm.metadata.uid != first.metadata.uid).then_some(cm)
    })
    .await;
    assert_eq!(second.data.as_ref().and_then(|d| d.get("ca.crt")).map(String::as_str), Some(CA));

    let edit = json!({"data": {"ca.crt": "tampered"}});
    let edited = cms.patch(CONFIG_MAP, &PatchParams::default(), &Patch::Merge(&edit)).await.expect("edit cm");
    let edited_rv = edited.metadata.resource_version;
    wait_for(20, "ca.crt restored", || async {
        let cm = cms.get_opt(CONFIG_MAP).await.ok()??;
        (cm.metadata.resource_version != edited_rv && cm.data.as_ref()?.get("ca.crt")? == CA).then_some(())
    })
    .await;
}

#[tokio::test]
async fn terminating_namespace_gets_nothing_new() {
    let env = Env::start_server().await;
    let c = &env.client;
    // A metadata finalizer nobody removes keeps the namespace Terminating.
    create_ns(c, "ending", &["example.com/hold"]).await;
    let nss: Api<Namespace> = Api::all(c.clone());
    nss.delete("ending", &DeleteParams::default()).await.expect("delete ns");
    wait_for(20, "namespace terminating", || async {
        nss.get("ending").await.ok()?.metadata.deletion_timestamp.map(|_| ())
    })
    .await;
    // Controllers start only now; a live namespace created afterwards proves they have run.
    env.start_controllers_config(ControllersConfig {
        controllers: vec!["serviceaccount".into(), "root-ca-cert-publisher".into()],
        concurrency: 4,
        root_ca_pem: Some(CA.into()),
        ..Default::default()
    });
    create_ns(c, "alive", &[]).await;
    wait_defaults(c, "alive").await;
    // "ending" was in the controllers' initial list, before "alive" existed, so it was reconciled by
    // now. (The apiserver's namespace lifecycle check would also refuse the objects; the
    // controllers' own skip is covered by `serviceaccount::tests`.)
    let sas: Api<ServiceAccount> = Api::namespaced(c.clone(), "ending");
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "ending");
    assert!(sas.get_opt("default").await.expect("get sa").is_none());
    assert!(cms.get_opt(CONFIG_MAP).await.expect("get cm").is_none());
    // Release the namespace so the apiserver can finish with it.
    let release = json!({"metadata": {"finalizers": null}});
    let _ = nss.patch("ending", &PatchParams::default(), &Patch::Merge(&release)).await;
}
