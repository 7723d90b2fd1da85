//! EndpointSlice controller (k8s `pkg/controller/endpointslice`): for every Service with a
//! selector, keeps discovery.k8s.io/v1 EndpointSlices (label `kubernetes.io/service-name`, managed
//! by `endpointslice-controller.k8s.io`, owned by the Service) listing the selected pods' addresses
//! with their ready/serving/terminating conditions, node, zone and target ports, at most
//! [`MAX_ENDPOINTS_PER_SLICE`] per slice. Services without a selector are user-managed and left
//! alone. The pod/service plumbing here is shared with the Endpoints controller.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Config as ApplierConfig, ReconcileRequest, applier};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector as reflect};
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::error::is_status;
use crate::queue::{Backoff, CACHE_WAIT, drive, on_error, store_ready};
use crate::util::{is_pod_ready, new_controller_ref};
use crate::{ControllersConfig, Error};

/// The controller's name in `--controllers`.
pub const NAME: &str = "endpointslice";
/// Label naming the Service a slice belongs to.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Label naming the slice's manager.
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// Label upstream puts on the endpoints of headless Services.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// Upstream's default `--max-endpoints-per-slice`.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// Node label holding the zone.
const LABEL_ZONE: &str = "topology.kubernetes.io/zone";

/// The informer caches the Service endpoint controllers share.
#[derive(Clone)]
pub(crate) struct Caches {
    pub services: Store<Service>,
    pub pods: Store<Pod>,
    pub nodes: Store<Node>,
}

impl Caches {
    /// Whether every cache has completed its first list.
    pub fn ready(&self) -> bool {
        store_ready(&self.services) && store_ready(&self.pods) && store_ready(&self.nodes)
    }

    /// The cached pods of `ns` the selector matches.
    pub fn selected_pods(&self, ns: &str, selector: &BTreeMap<String, String>) -> Vec<Arc<Pod>> {
        self.pods
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns) && labels_match(selector, p.labels()))
            .collect()
    }

    /// The zone label of node `name`, if the node is known and labelled.
    pub fn zone_of(&self, name: &str) -> Option<String> {
        let node = self.nodes.get(&ObjectRef::new(name))?;
        node.labels().get(LABEL_ZONE).cloned()
    }
}

/// The selector of a Service whose endpoints a controller manages: `None` for Services without a
/// selector (or an empty one) and ExternalName Services.
pub fn service_selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref().filter(|s| !s.is_empty())
}

fn labels_match(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The Services of the pod's namespace whose selector matches its labels.
pub(crate) fn services_for_pod(services: &Store<Service>, pod: &Pod) -> Vec<ObjectRef<Service>> {
    let ns = pod.metadata.namespace.as_deref();
    services
        .state()
        .into_iter()
        .filter(|s| s.metadata.namespace.as_deref() == ns)
        .filter(|s| service_selector(s).is_some_and(|sel| labels_match(sel, pod.labels())))
        .map(|s| ObjectRef::from_obj(&*s))
        .collect()
}

/// The Services a pod watch event concerns: those selecting the pod now and those that selected
/// its previous version (a label change moves it out of a Service). Call before applying the event.
pub(crate) fn pod_triggers(caches: &Caches, ev: &Event<Pod>) -> Vec<ObjectRef<Service>> {
    let mut out = Vec::new();
    match ev {
        Event::Apply(pod) | Event::InitApply(pod) => {
            out.extend(services_for_pod(&caches.services, pod));
            if let Some(old) = caches.pods.get(&ObjectRef::from_obj(pod))
                && old.labels() != pod.labels()
            {
                out.extend(services_for_pod(&caches.services, &old));
            }
        }
        Event::Delete(pod) => out.extend(services_for_pod(&caches.services, pod)),
        Event::Init | Event::InitDone => {}
    }
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out.dedup();
    out
}

/// A stream of reconcile requests for Services.
pub(crate) type Requests = futures::stream::BoxStream<'static, Result<ReconcileRequest<Service>, watcher::Error>>;

/// Builds the shared caches and their watch streams: `(caches, pod requests, node requests, the
/// Service cache's writer)`. The pod stream updates the pod cache before emitting its requests.
pub(crate) fn watch_streams(client: &kube::Client) -> (Caches, Requests, Requests, reflector::store::Writer<Service>) {
    let (services, service_writer) = reflector::store::<Service>();
    let (pods, mut pod_writer) = reflector::store::<Pod>();
    let (nodes, node_writer) = reflector::store::<Node>();
    let caches = Caches { services, pods, nodes };
    let trig = caches.clone();
    let pod_stream = watcher::watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .map_ok(move |ev| {
            let refs = pod_triggers(&trig, &ev);
            pod_writer.apply_watcher_event(&ev);
            stream::iter(refs.into_iter().map(|r| Ok::<_, watcher::Error>(ReconcileRequest::from(r))))
        })
        .try_flatten();
    // A node's zone label change concerns the Services of pods on that node.
    let trig = caches.clone();
    let node_stream =
        reflect(node_writer, watcher::watcher(Api::<Node>::all(client.clone()), watcher::Config::default()))
            .default_backoff()
            .touched_objects()
            .map_ok(move |node: Node| {
                let name = node.name_any();
                let mut refs: Vec<ObjectRef<Service>> = trig
                    .pods
                    .state()
                    .iter()
                    .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str()))
                    .flat_map(|p| services_for_pod(&trig.services, p))
                    .collect();
                refs.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
                refs.dedup();
                stream::iter(refs.into_iter().map(|r| Ok::<_, watcher::Error>(ReconcileRequest::from(r))))
            })
            .try_flatten();
    (caches, pod_stream.boxed(), node_stream.boxed(), service_writer)
}

/// Upstream `ShouldPodBeInEndpoints`: the pod has an IP, is not terminal for its restart policy,
/// and is not being deleted unless `include_terminating`.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let status = pod.status.as_ref();
    let has_ip = status.is_some_and(|s| {
        s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty()) || s.pod_ips.as_ref().is_some_and(|ips| !ips.is_empty())
    });
    if !has_ip {
        return false;
    }
    if !include_terminating && pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
    match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
        Some("Never") => phase != "Failed" && phase != "Succeeded",
        Some("OnFailure") => phase != "Succeeded",
        _ => true,
    }
}

/// Upstream `podutil.FindPort`: the pod port a Service port targets. A number (or an unset
/// targetPort) is used as is; a name is looked up among the containers' ports of the same protocol.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match &port.target_port {
        None | Some(IntOrString::Int(0)) => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let spec = pod.spec.as_ref()?;
            spec.containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str()) && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// Upstream `ShouldSetHostname`.
pub fn should_set_hostname(pod: &Pod, svc: &Service) -> bool {
    let Some(spec) = pod.spec.as_ref() else { return false };
    spec.hostname.as_deref().is_some_and(|h| !h.is_empty())
        && spec.subdomain.as_deref() == svc.metadata.name.as_deref()
        && pod.metadata.namespace == svc.metadata.namespace
}

/// The service's address families (`spec.ipFamilies`, IPv4 when unset) as EndpointSlice address types.
fn address_types(svc: &Service) -> Vec<String> {
    let fams = svc.spec.as_ref().and_then(|s| s.ip_families.clone()).unwrap_or_default();
    if fams.is_empty() { vec!["IPv4".to_string()] } else { fams }
}

/// The pod's IPs of one address family.
pub(crate) fn pod_addresses(pod: &Pod, address_type: &str) -> Vec<String> {
    let Some(status) = pod.status.as_ref() else { return Vec::new() };
    let mut ips: Vec<String> = status.pod_ips.iter().flatten().map(|p| p.ip.clone()).collect();
    if ips.is_empty()
        && let Some(ip) = status.pod_ip.clone()
    {
        ips.push(ip);
    }
    let want_v6 = address_type == "IPv6";
    ips.into_iter().filter(|ip| ip.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_ipv6() == want_v6)).take(1).collect()
}

/// The ports of one pod's endpoint: every Service port whose target the pod resolves.
fn endpoint_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref());
    let mut out: Vec<EndpointPort> = ports
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            let port = find_port(pod, sp)?;
            Some(EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(port),
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Upstream `podToEndpoint`.
fn pod_to_endpoint(pod: &Pod, svc: &Service, addresses: Vec<String>, zone: Option<String>) -> Endpoint {
    let serving = is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    // A terminating pod is never "ready", unless the Service publishes not-ready addresses.
    let publish = svc.spec.as_ref().and_then(|s| s.publish_not_ready_addresses).unwrap_or(false);
    let ready = publish || (serving && !terminating);
    let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty());
    Endpoint {
        addresses,
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: pod_hostname(pod, svc),
        node_name,
        target_ref: Some(pod_reference(pod)),
        zone,
        ..Default::default()
    }
}

/// What one slice should hold: address type, ports and endpoints.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredSlice {
    /// `IPv4` or `IPv6`.
    pub address_type: String,
    /// The slice's ports (sorted by name).
    pub ports: Vec<EndpointPort>,
    /// At most [`MAX_ENDPOINTS_PER_SLICE`] endpoints, sorted by pod name.
    pub endpoints: Vec<Endpoint>,
}

/// The slices a Service should have given the pods it selects (pure). Endpoints are grouped by
/// their resolved port set (a named targetPort can resolve differently per pod) and chunked by
/// `max_per_slice`. A Service with no endpoints gets one empty placeholder slice per address type,
/// as upstream does.
pub fn desired_slices(
    svc: &Service,
    pods: &[Arc<Pod>],
    zone_of: &dyn Fn(&str) -> Option<String>,
    max_per_slice: usize,
) -> Vec<DesiredSlice> {
    let mut out = Vec::new();
    let mut pods: Vec<&Arc<Pod>> = pods.iter().filter(|p| should_pod_be_in_endpoints(p, true)).collect();
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for address_type in address_types(svc) {
        let mut groups: BTreeMap<String, (Vec<EndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
        for pod in &pods {
            let addresses = pod_addresses(pod, &address_type);
            if addresses.is_empty() {
                continue;
            }
            let ports = endpoint_ports(svc, pod);
            let zone = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).and_then(zone_of);
            let ep = pod_to_endpoint(pod, svc, addresses, zone);
            let key = serde_json::to_string(&ports).unwrap_or_default();
            groups.entry(key).or_insert_with(|| (ports, Vec::new())).1.push(ep);
        }
        if groups.is_empty() {
            out.push(DesiredSlice { address_type: address_type.clone(), ports: Vec::new(), endpoints: Vec::new() });
        }
        for (_, (ports, endpoints)) in groups {
            for chunk in endpoints.chunks(max_per_slice.max(1)) {
                out.push(DesiredSlice {
                    address_type: address_type.clone(),
                    ports: ports.clone(),
                    endpoints: chunk.to_vec(),
                });
            }
        }
    }
    out
}

/// The reference from an endpoint to its pod.
pub(crate) fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// The hostname of a pod's endpoint, where [`should_set_hostname`] allows one.
pub(crate) fn pod_hostname(pod: &Pod, svc: &Service) -> Option<String> {
    should_set_hostname(pod, svc).then(|| pod.spec.as_ref().and_then(|s| s.hostname.clone())).flatten()
}

/// The labels of a Service's slices: the Service's own labels plus the two ownership labels
/// (and the headless marker).
fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.labels().clone();
    labels.insert(LABEL_SERVICE_NAME.into(), svc.name_any());
    labels.insert(LABEL_MANAGED_BY.into(), MANAGED_BY.into());
    mark_headless(&mut labels, svc);
    labels
}

/// Sets [`LABEL_HEADLESS`] on the labels of a headless Service's endpoints and removes it from
/// those of any other Service (the user's own labels may carry a stale one).
pub(crate) fn mark_headless(labels: &mut BTreeMap<String, String>, svc: &Service) {
    if svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    } else {
        labels.remove(LABEL_HEADLESS);
    }
}

fn ports_of(slice: &EndpointSlice) -> &[EndpointPort] {
    slice.ports.as_deref().unwrap_or(&[])
}

/// Whether an existing slice already says what `want` says.
fn slice_matches(slice: &EndpointSlice, want: &DesiredSlice, labels: &BTreeMap<String, String>, svc: &Service) -> bool {
    let owner_ok = slice.metadata.owner_references.as_ref().is_some_and(|refs| {
        refs.iter().any(|r| r.controller == Some(true) && Some(&r.uid) == svc.metadata.uid.as_ref())
    });
    owner_ok
        && slice.labels() == labels
        && ports_of(slice) == want.ports.as_slice()
        && slice.endpoints == want.endpoints
}

/// What the reconcilers of the Service endpoint controllers (this one and Endpoints) share.
pub(crate) struct Ctx {
    pub client: kube::Client,
    pub caches: Caches,
    pub backoff: Backoff<ObjectRef<Service>>,
    pub resync: Duration,
}

/// The reconciler of a Service endpoint controller, given the pods the Service selects.
pub(crate) type SyncFn = for<'a> fn(&'a Ctx, &'a Service, Vec<Arc<Pod>>) -> BoxFuture<'a, Result<Action, Error>>;

/// Runs a Service endpoint controller until cancelled: one reconcile of `sync` per Service,
/// queued by changes to Services, their pods, nodes and the controller's own objects (`owned`).
/// `on_service` sees each Service watch event before it is queued.
pub(crate) async fn run_service_controller(
    name: &'static str,
    client: kube::Client,
    config: ControllersConfig,
    cancel: CancellationToken,
    owned: Requests,
    on_service: impl Fn(&Event<Service>) + Send + 'static,
    sync: SyncFn,
) {
    let (caches, pod_stream, node_stream, service_writer) = watch_streams(&client);
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        caches: caches.clone(),
        backoff: Backoff::default(),
        resync: config.resync,
    });
    let service_stream =
        reflect(service_writer, watcher::watcher(Api::<Service>::all(client.clone()), watcher::Config::default()))
            .default_backoff()
            .inspect_ok(on_service)
            .touched_objects()
            .map_ok(|s| ReconcileRequest::from(ObjectRef::from_obj(&s)));
    let queue = stream::select(stream::select(service_stream, pod_stream), stream::select(node_stream, owned));
    let err_ctx = ctx.clone();
    let applier = applier(
        move |svc: Arc<Service>, ctx: Arc<Ctx>| {
            Box::pin(async move {
                match service_pods(&ctx.caches, &svc) {
                    Ok(pods) => sync(&ctx, &svc, pods).await,
                    Err(action) => Ok(action),
                }
            })
        },
        move |svc: Arc<Service>, err: &Error, _| on_error(&err_ctx.backoff, ObjectRef::from_obj(&*svc), err),
        ctx,
        caches.services,
        queue,
        ApplierConfig::default().concurrency(config.concurrency),
    );
    drive(name, applier, cancel).await;
}

/// The cached pods a Service selects, or what to do instead of reconciling it: wait for the
/// caches, or nothing for a Service without a selector or being deleted.
fn service_pods(caches: &Caches, svc: &Service) -> Result<Vec<Arc<Pod>>, Action> {
    if !caches.ready() {
        return Err(Action::requeue(CACHE_WAIT));
    }
    let Some(selector) = service_selector(svc) else { return Err(Action::await_change()) };
    if svc.metadata.deletion_timestamp.is_some() {
        return Err(Action::await_change());
    }
    Ok(caches.selected_pods(&svc.namespace().unwrap_or_default(), selector))
}

/// Runs the EndpointSlice controller until cancelled.
pub async fn run(client: kube::Client, config: ControllersConfig, cancel: CancellationToken) -> Result<(), Error> {
    // Changes to our slices by anyone (a deleted slice, a hand edit) bring the owner back in line.
    let owned = watcher::watcher(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}")),
    )
    .default_backoff()
    .touched_objects()
    .try_filter_map(|slice: EndpointSlice| async move {
        let name = slice.labels().get(LABEL_SERVICE_NAME).cloned();
        Ok(name.map(|n| {
            ReconcileRequest::from(ObjectRef::<Service>::new(&n).within(&slice.namespace().unwrap_or_default()))
        }))
    })
    .boxed();
    run_service_controller(
        NAME,
        client,
        config,
        cancel,
        owned,
        |_| {},
        |ctx, svc, pods| Box::pin(sync_service(ctx, svc, pods)),
    )
    .await;
    Ok(())
}

/// Reconciles one Service's slices (upstream `syncService` + `reconciler.reconcile`).
async fn sync_service(ctx: &Ctx, svc: &Service, pods: Vec<Arc<Pod>>) -> Result<Action, Error> {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let desired = desired_slices(svc, &pods, &|n| ctx.caches.zone_of(n), MAX_ENDPOINTS_PER_SLICE);
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    // Read the slices from the apiserver, not a cache: a slice created by the previous sync must be
    // seen, or it would be created twice.
    let existing = api
        .list(&ListParams::default().labels(&format!("{LABEL_SERVICE_NAME}={name},{LABEL_MANAGED_BY}={MANAGED_BY}")))
        .await
        .map_err(|e| Error::api(format!("list endpointslices of service {ns}/{name}"), e))?
        .items;
    reconcile_slices(&api, svc, existing, desired).await?;
    ctx.backoff.forget(&ObjectRef::from_obj(svc));
    Ok(Action::requeue(ctx.resync))
}

/// Writes the difference between `existing` and `desired`: slices whose address type and ports
/// match are reused in order (updated where their endpoints differ), missing ones created, the
/// rest deleted.
async fn reconcile_slices(
    api: &Api<EndpointSlice>,
    svc: &Service,
    existing: Vec<EndpointSlice>,
    desired: Vec<DesiredSlice>,
) -> Result<(), Error> {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let labels = slice_labels(svc);
    let mut pool: HashMap<(String, String), Vec<EndpointSlice>> = HashMap::new();
    for s in existing {
        let key = (s.address_type.clone(), serde_json::to_string(ports_of(&s)).unwrap_or_default());
        pool.entry(key).or_default().push(s);
    }
    for list in pool.values_mut() {
        // Ascending by size: `pop` below reuses the fullest slice first (slices that already
        // match are taken out before that), so fewer endpoints move between slices.
        list.sort_by(|a, b| a.endpoints.len().cmp(&b.endpoints.len()).then(b.metadata.name.cmp(&a.metadata.name)));
    }
    let mut to_create = Vec::new();
    let mut to_update = Vec::new();
    for want in desired {
        let key = (want.address_type.clone(), serde_json::to_string(&want.ports).unwrap_or_default());
        let candidates = pool.entry(key).or_default();
        if let Some(pos) = candidates.iter().position(|s| slice_matches(s, &want, &labels, svc)) {
            candidates.remove(pos);
            continue;
        }
        match candidates.pop() {
            Some(mut s) => {
                s.metadata.labels = Some(labels.clone());
                s.metadata.owner_references = Some(vec![new_controller_ref(svc)]);
                s.endpoints = want.endpoints;
                s.ports = Some(want.ports);
                to_update.push(s);
            }
            None => to_create.push(EndpointSlice {
                metadata: ObjectMeta {
                    generate_name: Some(format!("{}-", truncate_name(&name))),
                    namespace: Some(ns.clone()),
                    labels: Some(labels.clone()),
                    owner_references: Some(vec![new_controller_ref(svc)]),
                    ..Default::default()
                },
                address_type: want.address_type,
                endpoints: want.endpoints,
                ports: Some(want.ports),
            }),
        }
    }
    for s in to_update {
        let slice_name = s.name_any();
        api.replace(&slice_name, &PostParams::default(), &s)
            .await
            .map_err(|e| Error::api(format!("update endpointslice {ns}/{slice_name}"), e))?;
    }
    for s in to_create {
        api.create(&PostParams::default(), &s)
            .await
            .map_err(|e| Error::api(format!("create endpointslice for service {ns}/{name}"), e))?;
    }
    for s in pool.into_values().flatten() {
        let slice_name = s.name_any();
        match api.delete(&slice_name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(Error::api(format!("delete endpointslice {ns}/{slice_name}"), e)),
        }
    }
    Ok(())
}

/// A generateName prefix that leaves room for the random suffix within 63 characters.
fn truncate_name(name: &str) -> &str {
    let max = 63 - 6;
    if name.len() <= max { name } else { &name[..max] }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodCondition, PodIP, PodSpec, PodStatus, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    /// A Service selecting `app=web` in `default` (fixtures shared with the Endpoints tests).
    pub(crate) fn svc(ports: Vec<ServicePort>, publish: bool) -> Service {
        Service {
            metadata: ObjectMeta { name: Some("web".into()), namespace: Some("default".into()), ..Default::default() },
            spec: Some(ServiceSpec {
                selector: Some(BTreeMap::from([("app".into(), "web".into())])),
                ports: Some(ports),
                publish_not_ready_addresses: Some(publish),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub(crate) fn port(name: &str, port: i32, target: IntOrString) -> ServicePort {
        ServicePort {
            name: Some(name.into()),
            port,
            target_port: Some(target),
            protocol: Some("TCP".into()),
            ..Default::default()
        }
    }

    pub(crate) fn pod(name: &str, ip: &str, ready: bool, http_port: Option<i32>) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: http_port.map(|p| {
                        vec![ContainerPort {
                            name: Some("http".into()),
                            container_port: p,
                            protocol: Some("TCP".into()),
                            ..Default::default()
                        }]
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: Some(ip.into()),
                pod_ips: Some(vec![PodIP { ip: ip.into() }]),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    fn conditions(s: &DesiredSlice) -> Vec<(bool, bool, bool)> {
        s.endpoints
            .iter()
            .map(|e| {
                let c = e.conditions.clone().unwrap_or_default();
                (c.ready.unwrap_or(false), c.serving.unwrap_or(false), c.terminating.unwrap_or(false))
            })
            .collect()
    }

    #[test]
    fn named_target_ports_split_endpoints_by_resolved_port() {
        let s = svc(vec![port("http", 80, IntOrString::String("http".into()))], false);
        let pods = vec![pod("a", "10.42.0.2", true, Some(8080)), pod("b", "10.42.0.3", true, Some(9090))];
        let slices = desired_slices(&s, &pods, &|_| None, 100);
        assert_eq!(slices.len(), 2);
        let ports: Vec<i32> = slices.iter().map(|s| s.ports[0].port.unwrap_or(0)).collect();
        assert_eq!(ports, vec![8080, 9090]);
    }

    #[test]
    fn terminating_pods_stay_not_ready_but_serving_by_readiness() {
        let s = svc(vec![port("", 80, IntOrString::Int(8080))], false);
        let mut term = (*pod("t", "10.42.0.4", true, None)).clone();
        term.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        let pods = vec![pod("a", "10.42.0.2", true, None), pod("b", "10.42.0.3", false, None), Arc::new(term)];
        let slices = desired_slices(&s, &pods, &|_| Some("z1".into()), 100);
        assert_eq!(slices.len(), 1);
        assert_eq!(conditions(&slices[0]), vec![(true, true, false), (false, false, false), (false, true, true)]);
        assert_eq!(slices[0].endpoints[0].zone.as_deref(), Some("z1"));
        assert_eq!(slices[0].endpoints[0].node_name.as_deref(), Some("n1"));
    }

    #[test]
    fn publish_not_ready_addresses_marks_everything_ready() {
        let s = svc(vec![port("", 80, IntOrString::Int(80))], true);
        let pods = vec![pod("b", "10.42.0.3", false, None)];
        let slices = desired_slices(&s, &pods, &|_| None, 100);
        assert_eq!(conditions(&slices[0]), vec![(true, false, false)]);
    }

    #[test]
    fn endpoints_are_chunked_and_an_empty_service_gets_a_placeholder() {
        let s = svc(vec![port("", 80, IntOrString::Int(80))], false);
        let pods: Vec<Arc<Pod>> = (0..250)
            .map(|i| pod(&format!("p{i:03}"), &format!("10.42.{}.{}", i / 200, i % 200 + 1), true, None))
            .collect();
        let sizes: Vec<usize> = desired_slices(&s, &pods, &|_| None, 100).iter().map(|s| s.endpoints.len()).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        let empty = desired_slices(&s, &[], &|_| None, 100);
        assert_eq!(empty.len(), 1);
        assert!(empty[0].endpoints.is_empty() && empty[0].ports.is_empty());
    }

    #[test]
    fn pods_without_ip_or_terminal_are_left_out() {
        let mut no_ip = (*pod("a", "", true, None)).clone();
        if let Some(st) = no_ip.status.as_mut() {
            st.pod_ip = None;
            st.pod_ips = None;
        }
        assert!(!should_pod_be_in_endpoints(&no_ip, true));
        let mut done = (*pod("b", "10.0.0.1", false, None)).clone();
        if let (Some(sp), Some(st)) = (done.spec.as_mut(), done.status.as_mut()) {
            sp.restart_policy = Some("Never".into());
            st.phase = Some("Succeeded".into());
        }
        assert!(!should_pod_be_in_endpoints(&done, true));
    }
}
