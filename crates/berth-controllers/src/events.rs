//! Event recorder: writes core/v1 Events about objects, de-duplicated like client-go's
//! `EventCorrelator`: the same involvedObject + type + reason + message within ten minutes bumps
//! `count` and `lastTimestamp` of the existing Event instead of creating a new one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use tokio::sync::Mutex;

/// How long an Event is updated in place rather than recreated (client-go `maxLruCacheEntries` window).
const DEDUP_WINDOW: Duration = Duration::from_secs(600);
/// Bound on remembered Events.
const MAX_ENTRIES: usize = 4096;

/// `Normal` or `Warning`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Informational.
    Normal,
    /// Something went wrong.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    kind: String,
    namespace: String,
    name: String,
    uid: String,
    type_: EventType,
    reason: String,
    message: String,
}

struct Seen {
    event_name: String,
    count: i32,
    at: Instant,
}

/// Records Events for one source component (e.g. `replicaset-controller`).
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    component: String,
    seen: Arc<Mutex<HashMap<Key, Seen>>>,
}

/// An `ObjectReference` to `obj` for `involvedObject`.
pub fn object_reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: obj.meta().name.clone(),
        namespace: obj.meta().namespace.clone(),
        uid: obj.meta().uid.clone(),
        resource_version: obj.meta().resource_version.clone(),
        field_path: None,
    }
}

impl Recorder {
    /// A recorder whose Events carry `source.component = component`.
    pub fn new(client: kube::Client, component: &str) -> Recorder {
        Recorder { client, component: component.to_string(), seen: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// Records an Event about `obj`. Failures are logged, never returned: events are best effort.
    pub async fn record<K: Resource<DynamicType = ()>>(&self, obj: &K, type_: EventType, reason: &str, message: &str) {
        self.record_ref(object_reference(obj), type_, reason, message).await;
    }

    /// Records an Event about the object `involved`.
    pub async fn record_ref(&self, involved: ObjectReference, type_: EventType, reason: &str, message: &str) {
        let namespace = involved.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".into());
        let key = Key {
            kind: involved.kind.clone().unwrap_or_default(),
            namespace: namespace.clone(),
            name: involved.name.clone().unwrap_or_default(),
            uid: involved.uid.clone().unwrap_or_default(),
            type_,
            reason: reason.to_string(),
            message: message.to_string(),
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let now = jiff::Timestamp::now();
        let mut seen = self.seen.lock().await;
        if let Some(s) = seen.get_mut(&key)
            && s.at.elapsed() < DEDUP_WINDOW
        {
            let count = s.count + 1;
            let patch = serde_json::json!({"count": count, "lastTimestamp": Time(now)});
            match api.patch(&s.event_name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {
                    s.count = count;
                    s.at = Instant::now();
                    return;
                }
                Err(e) => tracing::debug!(error = %e, event = %s.event_name, "event update failed; creating a new one"),
            }
        }
        let name = format!("{}.{:x}", key.name, now.as_nanosecond());
        let event = Event {
            metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(namespace), ..Default::default() },
            involved_object: involved,
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            type_: Some(type_.as_str().to_string()),
            source: Some(EventSource { component: Some(self.component.clone()), host: None }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.component.clone()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(created) => {
                if seen.len() >= MAX_ENTRIES {
                    seen.retain(|_, s| s.at.elapsed() < DEDUP_WINDOW);
                    if seen.len() >= MAX_ENTRIES {
                        seen.clear();
                    }
                }
                seen.insert(key, Seen { event_name: created.name_any(), count: 1, at: Instant::now() });
            }
            Err(e) => tracing::warn!(error = %e, reason, message, "could not record event"),
        }
    }
}
