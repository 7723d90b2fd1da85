//! Service load balancer (like k3s' ServiceLB, "klipper-lb"): every Service of type LoadBalancer
//! without a `loadBalancerClass` gets `status.loadBalancer.ingress`, either the InternalIPs of the
//! Ready nodes or, with a configured pool (`--servicelb-pool CIDR`), one address of that pool per
//! Service. The proxy makes traffic to those addresses reach the Service; this controller only
//! publishes them, so `kubectl get svc` shows an EXTERNAL-IP. A Service that stops being a
//! LoadBalancer has its ingress cleared.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{TryStreamExt, stream};
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ApplierConfig, ReconcileRequest, applier};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::runtime::{WatchStreamExt, reflector as reflect};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::error::is_status;
use crate::queue::{Backoff, CACHE_WAIT, drive, on_error, store_ready};
use crate::{ControllersConfig, Error};

/// The controller's name in `--controllers` (and `berth server --disable servicelb`).
pub const NAME: &str = "servicelb";

/// An IPv4 address pool: the usable host addresses of a CIDR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    first: u32,
    last: u32,
}

impl Pool {
    /// Parses `a.b.c.d/n`; a /31 or /32 uses every address, larger ranges skip network and broadcast.
    pub fn parse(cidr: &str) -> Option<Pool> {
        let (addr, bits) = cidr.trim().split_once('/')?;
        let bits: u32 = bits.parse().ok().filter(|b| *b <= 32)?;
        let a: Ipv4Addr = addr.parse().ok()?;
        let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
        let base = u32::from(a) & mask;
        let size = 1u64 << (32 - bits);
        let last = (u64::from(base) + size - 1) as u32;
        if bits >= 31 { Some(Pool { first: base, last }) } else { Some(Pool { first: base + 1, last: last - 1 }) }
    }

    /// Whether `ip` is an address of the pool.
    pub fn contains(&self, ip: &str) -> bool {
        ip.parse::<Ipv4Addr>().is_ok_and(|a| (self.first..=self.last).contains(&u32::from(a)))
    }

    /// The lowest pool address not in `used`.
    pub fn next_free(&self, used: &BTreeSet<String>) -> Option<String> {
        (self.first..=self.last).map(|a| Ipv4Addr::from(a).to_string()).find(|a| !used.contains(a))
    }
}

/// Whether this controller serves the Service: type LoadBalancer without a loadBalancerClass.
pub fn is_managed(svc: &Service) -> bool {
    let Some(spec) = svc.spec.as_ref() else { return false };
    spec.type_.as_deref() == Some("LoadBalancer") && spec.load_balancer_class.as_deref().is_none_or(str::is_empty)
}

/// The Service's current ingress IPs.
pub fn ingress_ips(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| i.iter().filter_map(|i| i.ip.clone()).collect())
        .unwrap_or_default()
}

/// The InternalIPs of the Ready nodes, sorted (k3s publishes the addresses of the nodes that run
/// the load balancer; here every Ready node forwards the Service's ports).
pub fn node_ips(nodes: &[Arc<Node>]) -> Vec<String> {
    let mut ips: Vec<String> = nodes
        .iter()
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|n| {
            let addrs = n.status.as_ref()?.addresses.as_ref()?;
            addrs.iter().find(|a| a.type_ == "InternalIP").map(|a| a.address.clone())
        })
        .collect();
    ips.sort_by_key(|ip| ip.parse::<std::net::IpAddr>().ok());
    ips.dedup();
    ips
}

struct Ctx {
    client: kube::Client,
    services: Store<Service>,
    nodes: Store<Node>,
    pool: Option<Pool>,
    /// Pool addresses handed out by this process (the Service cache may lag behind our writes).
    assigned: Mutex<HashMap<ObjectRef<Service>, String>>,
    backoff: Backoff<ObjectRef<Service>>,
    resync: Duration,
}

impl Ctx {
    /// The pool address of `svc`: its current one if still valid and not taken by another
    /// Service, else the next free one. Serialized by the `assigned` lock.
    fn pool_address(&self, pool: &Pool, svc: &Service) -> Option<String> {
        let key = ObjectRef::from_obj(svc);
        let mut assigned = self.assigned.lock().unwrap_or_else(|p| p.into_inner());
        let mut used: BTreeSet<String> = BTreeSet::new();
        for other in self.services.state() {
            let other_key = ObjectRef::from_obj(&*other);
            if other_key != key && is_managed(&other) {
                used.extend(ingress_ips(&other));
            }
        }
        used.extend(assigned.iter().filter(|(k, _)| **k != key).map(|(_, ip)| ip.clone()));
        let mine = assigned.get(&key).cloned().into_iter().chain(ingress_ips(svc));
        let ip =
            mine.into_iter().find(|ip| pool.contains(ip) && !used.contains(ip)).or_else(|| pool.next_free(&used))?;
        assigned.insert(key, ip.clone());
        Some(ip)
    }
}

/// Runs the service load balancer until cancelled.
pub async fn run(client: kube::Client, config: ControllersConfig, cancel: CancellationToken) -> Result<(), Error> {
    let pool = config.servicelb_pool.clone();
    let (services, service_writer) = reflector::store::<Service>();
    let (nodes, node_writer) = reflector::store::<Node>();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        services: services.clone(),
        nodes: nodes.clone(),
        pool,
        assigned: Mutex::new(HashMap::new()),
        backoff: Backoff::default(),
        resync: config.resync,
    });
    let forget = ctx.clone();
    let service_stream =
        reflect(service_writer, watcher::watcher(Api::<Service>::all(client.clone()), watcher::Config::default()))
            .default_backoff()
            .map_ok(move |ev| {
                let refs: Vec<ObjectRef<Service>> = match ev {
                    watcher::Event::Apply(svc) | watcher::Event::InitApply(svc) => vec![ObjectRef::from_obj(&svc)],
                    watcher::Event::Delete(svc) => {
                        // A deleted Service frees its pool address for those still pending.
                        forget.assigned.lock().unwrap_or_else(|p| p.into_inner()).remove(&ObjectRef::from_obj(&svc));
                        forget
                            .services
                            .state()
                            .iter()
                            .filter(|s| is_managed(s) && ingress_ips(s).is_empty())
                            .map(|s| ObjectRef::from_obj(&**s))
                            .collect()
                    }
                    watcher::Event::Init | watcher::Event::InitDone => Vec::new(),
                };
                stream::iter(refs.into_iter().map(|r| Ok::<_, watcher::Error>(ReconcileRequest::from(r))))
            })
            .try_flatten();
    // Any node change may change the published node addresses of every LoadBalancer Service.
    let svc_cache = services.clone();
    let node_stream =
        reflect(node_writer, watcher::watcher(Api::<Node>::all(client.clone()), watcher::Config::default()))
            .default_backoff()
            .touched_objects()
            .map_ok(move |_node: Node| {
                let refs: Vec<_> =
                    svc_cache.state().iter().filter(|s| is_managed(s)).map(|s| ObjectRef::from_obj(&**s)).collect();
                stream::iter(refs.into_iter().map(|r| Ok::<_, watcher::Error>(ReconcileRequest::from(r))))
            })
            .try_flatten();
    let queue = stream::select(service_stream, node_stream);
    let err_ctx = ctx.clone();
    let applier = applier(
        |svc: Arc<Service>, ctx: Arc<Ctx>| Box::pin(async move { sync_service(&ctx, &svc).await }),
        move |svc: Arc<Service>, err: &Error, _| on_error(&err_ctx.backoff, ObjectRef::from_obj(&*svc), err),
        ctx,
        services,
        queue,
        ApplierConfig::default().concurrency(config.concurrency),
    );
    drive(NAME, applier, cancel).await;
    Ok(())
}

async fn sync_service(ctx: &Ctx, svc: &Service) -> Result<Action, Error> {
    if !store_ready(&ctx.services) || !store_ready(&ctx.nodes) {
        return Ok(Action::requeue(CACHE_WAIT));
    }
    let current = ingress_ips(svc);
    let want: Vec<String> = if !is_managed(svc) || svc.metadata.deletion_timestamp.is_some() {
        // Only clear what this controller would have published (a LoadBalancer turned ClusterIP).
        let was_ours = svc.spec.as_ref().is_some_and(|s| s.type_.as_deref() != Some("LoadBalancer"));
        if current.is_empty() || !was_ours {
            return Ok(Action::await_change());
        }
        Vec::new()
    } else {
        match &ctx.pool {
            Some(pool) => ctx.pool_address(pool, svc).into_iter().collect(),
            None => node_ips(&ctx.nodes.state()),
        }
    };
    if want != current {
        let ns = svc.namespace().unwrap_or_default();
        let name = svc.name_any();
        let ingress: Vec<_> = want.iter().map(|ip| json!({"ip": ip, "ipMode": "VIP"})).collect();
        // A merge patch removes a field only when it is null.
        let lb = if ingress.is_empty() { json!({"ingress": null}) } else { json!({"ingress": ingress}) };
        let patch = json!({"status": {"loadBalancer": lb}});
        let api: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
        match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => return Ok(Action::await_change()),
            Err(e) => return Err(Error::api(format!("update load balancer status of service {ns}/{name}"), e)),
        }
    }
    ctx.backoff.forget(&ObjectRef::from_obj(svc));
    Ok(Action::requeue(ctx.resync))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_hand_out_host_addresses_in_order() {
        let p = Pool::parse("192.0.2.0/30").expect("pool");
        let mut used = BTreeSet::new();
        assert_eq!(p.next_free(&used).as_deref(), Some("192.0.2.1"));
        used.insert("192.0.2.1".to_string());
        assert_eq!(p.next_free(&used).as_deref(), Some("192.0.2.2"));
        used.insert("192.0.2.2".to_string());
        assert_eq!(p.next_free(&used), None);
        assert!(p.contains("192.0.2.2") && !p.contains("192.0.2.3") && !p.contains("nonsense"));
        assert_eq!(
            Pool::parse("198.51.100.7/32").and_then(|p| p.next_free(&BTreeSet::new())).as_deref(),
            Some("198.51.100.7")
        );
        assert!(Pool::parse("fd00::/64").is_none() && Pool::parse("10.0.0.0/33").is_none());
    }
}
