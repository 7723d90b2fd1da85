//! Service ClusterIP and NodePort allocation, done by the apiserver on Service create (as
//! upstream's service REST storage does): a free address of the service CIDR, a free port of
//! 30000-32767 for NodePort and LoadBalancer ports, and on update the allocated values carried
//! over when a client omits them. User-chosen values are honoured when free (422 otherwise).
//!
//! The set of taken values is read from the stored Services on every allocation, so a deleted
//! Service's values are free at once and a restart (even after a crash) needs no repair pass:
//! there is no separate bitmap that could disagree with the Services. Values chosen but not yet
//! stored are held in a short-lived in-memory reservation so two concurrent creates can never
//! get the same address or port.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_api::FieldError;
use berth_store::{RangeRequest, Store};
use rand::Rng;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::object;

/// The NodePort range.
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<i64> = 30000..=32767;

const SERVICES_PREFIX: &str = "/registry/core/services/";

/// How long a value handed out stays reserved in memory at most. The Service write that follows
/// takes milliseconds; once the stored Service holds the value the reservation is dropped, so the
/// TTL only matters for creates that failed after allocation.
const RESERVATION_TTL: Duration = Duration::from_secs(5);

/// One reserved value: which store (apiserver) it belongs to and what it is (`ip:...`/`port:...`).
type ReservationKey = (usize, String);

/// Values handed out but possibly not stored yet, with the Service (`ns/name`) that got them.
static RESERVATIONS: Mutex<Option<HashMap<ReservationKey, (String, Instant)>>> = Mutex::new(None);

/// Identifies one apiserver's store, so test servers in one process never share reservations.
fn store_id(store: &dyn Store) -> usize {
    (store as *const dyn Store).cast::<()>() as usize
}

/// The values reserved by Services other than `owner`. Expired entries and those the stored
/// Services now hold (`stored`: `(ns/name, value)`) are dropped.
fn reserved_by_others(
    store: &dyn Store,
    owner: &str,
    stored: &HashSet<(String, String)>,
) -> (HashSet<String>, HashSet<i64>) {
    let id = store_id(store);
    let mut guard = RESERVATIONS.lock().unwrap_or_else(|p| p.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    map.retain(|(sid, value), (who, at)| {
        at.elapsed() < RESERVATION_TTL && !(*sid == id && stored.contains(&(who.clone(), value.clone())))
    });
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    for ((sid, value), (who, _)) in map.iter() {
        if *sid != id || who == owner {
            continue;
        }
        if let Some(ip) = value.strip_prefix("ip:") {
            ips.insert(ip.to_string());
        } else if let Some(p) = value.strip_prefix("port:").and_then(|p| p.parse().ok()) {
            ports.insert(p);
        }
    }
    (ips, ports)
}

/// The ClusterIPs and node ports a Service holds, as reservation values.
fn values_of(svc: &Value) -> HashSet<String> {
    let ips = svc["spec"]["clusterIPs"].as_array().into_iter().flatten().filter_map(Value::as_str);
    let ports = svc["spec"]["ports"].as_array().into_iter().flatten().filter_map(|p| p["nodePort"].as_i64());
    ips.filter(|ip| *ip != "None").map(|ip| format!("ip:{ip}")).chain(ports.map(|p| format!("port:{p}"))).collect()
}

/// Reserves for the Service the values it holds that its stored version (`old`) does not.
fn reserve(store: &dyn Store, owner: &str, svc: &Value, old: Option<&Value>) {
    let id = store_id(store);
    let already = old.map(values_of).unwrap_or_default();
    let mut guard = RESERVATIONS.lock().unwrap_or_else(|p| p.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    let now = Instant::now();
    for value in values_of(svc).into_iter().filter(|v| !already.contains(v)) {
        map.insert((id, value), (owner.to_string(), now));
    }
}

/// Serializes allocations: the check against taken values and the reservation happen as one step.
static ALLOCATION_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the stored Services hold: `(ns/name, "ip:..." | "port:...")` pairs.
type StoredValues = HashSet<(String, String)>;

/// Addresses and node ports already taken by other Services, and every stored value by owner.
async fn used(
    store: &dyn Store,
    except_uid: Option<&str>,
) -> Result<(HashSet<String>, HashSet<i64>, StoredValues), ApiError> {
    let resp = store
        .range(RangeRequest { prefix: SERVICES_PREFIX.into(), ..Default::default() })
        .await
        .map_err(|e| ApiError::internal(crate::error::error_chain(&e)))?;
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    let mut stored = HashSet::new();
    for kv in &resp.kvs {
        let Some(svc) = object::from_kv(kv) else { continue };
        let owner = format!("{}/{}", object::meta_str(&svc, "namespace").unwrap_or_default(), object::name_of(&svc));
        for ip in svc["spec"]["clusterIPs"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            stored.insert((owner.clone(), format!("ip:{ip}")));
        }
        for p in svc["spec"]["ports"].as_array().into_iter().flatten().filter_map(|p| p["nodePort"].as_i64()) {
            stored.insert((owner.clone(), format!("port:{p}")));
        }
        if except_uid.is_some() && object::meta_str(&svc, "uid") == except_uid {
            continue;
        }
        for ip in
            svc["spec"]["clusterIPs"].as_array().into_iter().flatten().chain(std::iter::once(&svc["spec"]["clusterIP"]))
        {
            if let Some(s) = ip.as_str() {
                ips.insert(s.to_string());
            }
        }
        for p in svc["spec"]["ports"].as_array().into_iter().flatten() {
            if let Some(n) = p["nodePort"].as_i64() {
                ports.insert(n);
            }
        }
    }
    Ok((ips, ports, stored))
}

/// `(base, size)` of an IPv4 CIDR or `None`.
fn cidr_range(cidr: &str) -> Option<(u32, u32)> {
    let (addr, bits) = cidr.trim().split_once('/')?;
    let bits: u32 = bits.parse().ok()?;
    let IpAddr::V4(a) = addr.parse::<IpAddr>().ok()? else { return None };
    if !(1..=30).contains(&bits) {
        return None;
    }
    let mask = u32::MAX << (32 - bits);
    Some((u32::from(a) & mask, 1u32 << (32 - bits)))
}

fn in_cidr(cidr: &str, ip: &str) -> bool {
    let (Some((base, size)), Ok(IpAddr::V4(a))) = (cidr_range(cidr), ip.parse::<IpAddr>()) else { return false };
    let a = u32::from(a);
    a > base && a < base + size - 1
}

fn invalid(svc: &Value, field: &str, value: impl std::fmt::Display, detail: &str) -> ApiError {
    let rt_name = object::name_of(svc).to_string();
    let e = FieldError::invalid(field, value.to_string(), detail);
    let mut err = ApiError::new(422, "Invalid", format!("Service \"{rt_name}\" is invalid: {e}"));
    err.details.name = Some(rt_name);
    err.details.group = Some(String::new());
    err.details.kind = Some("Service".into());
    err.details.causes =
        vec![crate::error::Cause { reason: e.kind.reason().into(), message: e.message(), field: field.into() }];
    err
}

/// Fills `spec.clusterIP(s)` and node ports of a Service being created (or updated, with `old`).
pub async fn allocate(
    store: &dyn Store,
    service_cidr: &str,
    svc: &mut Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    if !svc["spec"].is_object() {
        return Ok(());
    }
    if let Some(old) = old {
        // Clients that omit allocated values keep them (upstream patchAllocatedValues).
        let ty = svc["spec"]["type"].as_str().unwrap_or("ClusterIP").to_string();
        if ty != "ExternalName" {
            for f in ["clusterIP", "clusterIPs"] {
                let missing = svc["spec"].get(f).is_none_or(|v| v.is_null() || v == "" || v == &json!([]));
                if missing && !old["spec"][f].is_null() {
                    svc["spec"][f] = old["spec"][f].clone();
                }
            }
        }
        if matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
            let old_ports = old["spec"]["ports"].as_array().cloned().unwrap_or_default();
            if let Some(ports) = svc["spec"]["ports"].as_array_mut() {
                for p in ports.iter_mut().filter(|p| p.is_object() && p["nodePort"].as_i64().unwrap_or(0) == 0) {
                    if let Some(np) = old_ports
                        .iter()
                        .find(|o| o["port"] == p["port"] && o["protocol"] == p["protocol"])
                        .and_then(|o| o["nodePort"].as_i64())
                    {
                        p["nodePort"] = json!(np);
                    }
                }
            }
        }
    }
    let ty = svc["spec"]["type"].as_str().unwrap_or("ClusterIP").to_string();
    if ty == "ExternalName" {
        return Ok(());
    }
    let owner = format!("{}/{}", object::meta_str(svc, "namespace").unwrap_or_default(), object::name_of(svc));
    let _serial = ALLOCATION_LOCK.lock().await;
    let uid = old.and_then(|o| object::meta_str(o, "uid")).map(String::from);
    let (mut used_ips, mut used_ports, stored) = used(store, uid.as_deref()).await?;
    let (reserved_ips, reserved_ports) = reserved_by_others(store, &owner, &stored);
    used_ips.extend(reserved_ips);
    used_ports.extend(reserved_ports);
    assign(service_cidr, svc, old, &used_ips, used_ports)?;
    reserve(store, &owner, svc, old);
    Ok(())
}

/// Picks the ClusterIP and node ports of `svc` given the values other Services hold (pure but for
/// the random choice).
fn assign(
    service_cidr: &str,
    svc: &mut Value,
    old: Option<&Value>,
    used_ips: &HashSet<String>,
    used_ports: HashSet<i64>,
) -> Result<(), ApiError> {
    let ty = svc["spec"]["type"].as_str().unwrap_or("ClusterIP").to_string();
    let requested = svc["spec"]["clusterIP"].as_str().unwrap_or_default().to_string();
    if requested == "None" {
        svc["spec"]["clusterIPs"] = json!(["None"]);
    } else if requested.is_empty() {
        let Some((base, size)) = cidr_range(service_cidr) else {
            return Err(ApiError::internal(format!("invalid service CIDR {service_cidr}")));
        };
        let mut rng = rand::rng();
        let mut chosen = None;
        // Random probes first (upstream allocates randomly), then a scan for a nearly full range.
        for _ in 0..64 {
            let cand = std::net::Ipv4Addr::from(base + rng.random_range(2..size - 1)).to_string();
            if !used_ips.contains(&cand) {
                chosen = Some(cand);
                break;
            }
        }
        if chosen.is_none() {
            chosen =
                (2..size - 1).map(|o| std::net::Ipv4Addr::from(base + o).to_string()).find(|c| !used_ips.contains(c));
        }
        let Some(ip) = chosen else {
            return Err(invalid(svc, "spec.clusterIPs", "[]", "failed to allocate IP: range is full"));
        };
        svc["spec"]["clusterIP"] = json!(ip);
        svc["spec"]["clusterIPs"] = json!([ip]);
    } else if requested.parse::<IpAddr>().is_ok() {
        // (An unparsable address is left for validation to report.)
        // An update may not change a set address at all: validation reports that (immutable).
        let unchanged = old.is_some_and(|o| {
            o["spec"]["clusterIP"] == svc["spec"]["clusterIP"]
                || (o["spec"]["type"] != "ExternalName"
                    && o["spec"]["clusterIP"].as_str().is_some_and(|ip| !ip.is_empty()))
        });
        if !unchanged {
            if !in_cidr(service_cidr, &requested) {
                return Err(invalid(
                    svc,
                    "spec.clusterIPs",
                    format!("[]string{{\"{requested}\"}}"),
                    &format!(
                        "failed to allocate IP {requested}: the provided IP ({requested}) is not in the valid range. The range of valid IPs is {service_cidr}"
                    ),
                ));
            }
            if used_ips.contains(&requested) {
                return Err(invalid(
                    svc,
                    "spec.clusterIPs",
                    format!("[]string{{\"{requested}\"}}"),
                    &format!("failed to allocate IP {requested}: provided IP is already allocated"),
                ));
            }
        }
        if svc["spec"]["clusterIPs"].as_array().is_none_or(|a| a.is_empty()) {
            svc["spec"]["clusterIPs"] = json!([requested]);
        }
    }
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
        // Ports other Services hold: an explicit one among them is a conflict.
        let others = used_ports.clone();
        let mut taken = used_ports;
        let mut rng = rand::rng();
        if let Some(ports) = svc["spec"]["ports"].as_array_mut() {
            let old_ports: HashSet<i64> = old
                .and_then(|o| o["spec"]["ports"].as_array())
                .into_iter()
                .flatten()
                .filter_map(|p| p["nodePort"].as_i64())
                .collect();
            for (i, p) in ports.iter_mut().enumerate().filter(|(_, p)| p.is_object()) {
                match p["nodePort"].as_i64().unwrap_or(0) {
                    0 => {
                        let free = (0..64)
                            .map(|_| rng.random_range(NODE_PORT_RANGE))
                            .find(|n| !taken.contains(n))
                            .or_else(|| NODE_PORT_RANGE.clone().find(|n| !taken.contains(n)));
                        if let Some(n) = free {
                            taken.insert(n);
                            p["nodePort"] = json!(n);
                        }
                    }
                    n if others.contains(&n) && !old_ports.contains(&n) => {
                        return Err(invalid(
                            svc,
                            &format!("spec.ports[{i}].nodePort"),
                            n,
                            "provided port is already allocated",
                        ));
                    }
                    n => {
                        taken.insert(n);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Gives a Node without `spec.podCIDR` the first /24 of `cluster_cidr` no other Node holds (as
/// kube-controller-manager's range allocator does, here at create time). The used set is read from
/// the stored Nodes, so a deleted Node's range is free again and a restart needs no repair.
pub async fn allocate_pod_cidr(
    store: &dyn Store,
    nodes_prefix: &str,
    cluster_cidr: &str,
    node: &mut Value,
) -> Result<(), ApiError> {
    if node["spec"]["podCIDR"].as_str().is_some_and(|c| !c.is_empty()) {
        return Ok(());
    }
    let resp = store
        .range(RangeRequest { prefix: nodes_prefix.into(), ..Default::default() })
        .await
        .map_err(|e| ApiError::internal(crate::error::error_chain(&e)))?;
    let used: HashSet<String> = resp
        .kvs
        .iter()
        .filter_map(object::from_kv)
        .filter_map(|n| n["spec"]["podCIDR"].as_str().map(String::from))
        .collect();
    let Some(cidr) = next_free_subnet(cluster_cidr, &used) else {
        // No range left (or no IPv4 cluster CIDR): the node registers without one, as upstream.
        tracing::warn!(cluster_cidr, node = object::name_of(node), "no free pod CIDR for node");
        return Ok(());
    };
    if !node["spec"].is_object() {
        node["spec"] = json!({});
    }
    node["spec"]["podCIDR"] = json!(cidr);
    node["spec"]["podCIDRs"] = json!([cidr]);
    Ok(())
}

/// The first /24 (or the whole range if it is smaller) of `cluster_cidr` not in `used`. Pure.
fn next_free_subnet(cluster_cidr: &str, used: &HashSet<String>) -> Option<String> {
    let (addr, bits) = cluster_cidr.trim().split_once('/')?;
    let bits: u32 = bits.parse().ok()?;
    let IpAddr::V4(a) = addr.parse::<IpAddr>().ok()? else { return None };
    if bits > 30 {
        return None;
    }
    let base = u32::from(a) & u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    let sub_bits = bits.max(24);
    let count = 1u32 << (sub_bits - bits);
    (0..count)
        .map(|i| format!("{}/{sub_bits}", std::net::Ipv4Addr::from(base + (i << (32 - sub_bits)))))
        .find(|c| !used.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_subnets_are_handed_out_in_order_skipping_used_ones() {
        let mut used = HashSet::new();
        assert_eq!(next_free_subnet("10.42.0.0/16", &used).as_deref(), Some("10.42.0.0/24"));
        used.insert("10.42.0.0/24".to_string());
        used.insert("10.42.1.0/24".to_string());
        assert_eq!(next_free_subnet("10.42.0.0/16", &used).as_deref(), Some("10.42.2.0/24"));
        assert_eq!(next_free_subnet("10.42.7.9/16", &HashSet::new()).as_deref(), Some("10.42.0.0/24"));
        let full: HashSet<String> = ["10.9.9.0/24".to_string()].into();
        assert_eq!(next_free_subnet("10.9.9.0/24", &full), None);
        assert_eq!(next_free_subnet("fd00::/64", &HashSet::new()), None);
    }
}
