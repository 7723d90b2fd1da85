//! Event recorder against a real apiserver: de-duplication into count/lastTimestamp.

mod common;

use berth_controllers::events::{EventType, Recorder};
use common::Env;
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

#[tokio::test]
async fn repeated_events_are_counted_not_duplicated() {
    let env = Env::start(&[]).await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "subject"}})).expect("cm");
    let cm = cms.create(&PostParams::default(), &cm).await.expect("create");
    let rec = Recorder::new(env.client.clone(), "test-controller");
    rec.record(&cm, EventType::Normal, "Poked", "poked once").await;
    rec.record(&cm, EventType::Normal, "Poked", "poked once").await;
    rec.record(&cm, EventType::Normal, "Poked", "poked once").await;
    rec.record(&cm, EventType::Warning, "Poked", "poked differently").await;
    let events: Api<Event> = Api::namespaced(env.client.clone(), "default");
    let list = events.list(&ListParams::default()).await.expect("list");
    let ours: Vec<&Event> =
        list.items.iter().filter(|e| e.involved_object.name.as_deref() == Some("subject")).collect();
    assert_eq!(ours.len(), 2, "{:?}", ours.iter().map(|e| e.name_any()).collect::<Vec<_>>());
    let once = ours.iter().find(|e| e.message.as_deref() == Some("poked once")).expect("first");
    assert_eq!(once.count, Some(3));
    assert_eq!(once.type_.as_deref(), Some("Normal"));
    assert_eq!(once.source.as_ref().and_then(|s| s.component.as_deref()), Some("test-controller"));
    assert_eq!(once.involved_object.kind.as_deref(), Some("ConfigMap"));
    assert_eq!(once.involved_object.uid, cm.uid());
    assert!(once.last_timestamp >= once.first_timestamp);
    assert!(once.name_any().starts_with("subject."));
    let other = ours.iter().find(|e| e.message.as_deref() == Some("poked differently")).expect("second");
    assert_eq!((other.count, other.type_.as_deref()), (Some(1), Some("Warning")));
}
