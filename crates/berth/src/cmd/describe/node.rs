//! Nodes: lease, conditions, capacity, system info, and the non-terminated pods with their
//! requests and limits against allocatable (kubectl's NodeDescriber).

use berth_api::quantity::Quantity;
use serde_json::Value;

use super::Related;
use super::writer::*;

pub(super) fn quantity(v: Option<&Value>) -> Quantity {
    v.and_then(Value::as_str).and_then(|q| Quantity::parse(q).ok()).unwrap_or_else(|| Quantity::from_millis(0))
}

/// A pod's requests or limits of one resource: the sum over its containers, or the largest init
/// container's when that is more (resourcehelper.PodRequests without pod-level resources).
pub(super) fn pod_resource(pod: &Value, kind: &str, resource: &str) -> Quantity {
    let ptr = format!("/resources/{kind}/{resource}");
    let mut sum = Quantity::from_millis(0);
    for c in arr(pod, "/spec/containers") {
        sum = add(sum, &quantity(c.pointer(&ptr)));
    }
    for c in arr(pod, "/spec/initContainers") {
        let q = quantity(c.pointer(&ptr));
        if q > sum {
            sum = q;
        }
    }
    sum
}

/// Go's Quantity.Add: a zero sum takes the format of what is added (so `32Mi` stays binary).
pub(super) fn add(sum: Quantity, q: &Quantity) -> Quantity {
    if sum.is_zero() { *q } else { sum.checked_add(q).unwrap_or(sum) }
}

pub(super) fn percent(part: &Quantity, whole: &Quantity, milli: bool) -> i64 {
    let (p, w) = if milli { (part.as_millis(), whole.as_millis()) } else { (part.value(), whole.value()) };
    if w == 0 { 0 } else { (p as f64 / w as f64 * 100.0) as i64 }
}

pub fn describe_node(node: &Value, rel: &Related) -> String {
    let mut w = Writer::default();
    w.w(0, &format!("Name:\t{}\n", s(node, "/metadata/name")));
    let mut roles: Vec<String> = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
                    Some(role) if !role.is_empty() => Some(role.to_string()),
                    _ if k == "kubernetes.io/role" => v.as_str().filter(|v| !v.is_empty()).map(str::to_string),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    roles.dedup();
    w.w(0, &format!("Roles:\t{}\n", if roles.is_empty() { "<none>".to_string() } else { roles.join(",") }));
    labels_multiline(&mut w, "Labels", node.pointer("/metadata/labels"));
    annotations_multiline(&mut w, "Annotations", node.pointer("/metadata/annotations"));
    w.w(0, &format!("CreationTimestamp:\t{}\n", rfc1123z(s(node, "/metadata/creationTimestamp"))));
    let mut taints: Vec<&Value> = arr(node, "/spec/taints").iter().collect();
    taints.sort_by_key(|t| format!("{},{}", s(t, "/effect"), s(t, "/key")));
    w.w(0, "Taints:\t");
    if taints.is_empty() {
        w.w(0, "<none>\n");
    }
    for (n, t) in taints.iter().enumerate() {
        if n > 0 {
            w.w(0, "\t");
        }
        let value = if s(t, "/value").is_empty() { String::new() } else { format!("={}", s(t, "/value")) };
        w.w(0, &format!("{}{value}:{}\n", s(t, "/key"), s(t, "/effect")));
    }
    let unschedulable = node.pointer("/spec/unschedulable").and_then(Value::as_bool).unwrap_or(false);
    w.w(0, &format!("Unschedulable:\t{unschedulable}\n"));
    match &rel.lease {
        Ok(lease) => {
            let or_unset = |v: &str, time: bool| match (v.is_empty(), time) {
                (true, _) => "<unset>".to_string(),
                (false, true) => rfc1123z(v),
                (false, false) => v.to_string(),
            };
            w.w(0, "Lease:\n");
            w.w(1, &format!("HolderIdentity:\t{}\n", or_unset(s(lease, "/spec/holderIdentity"), false)));
            w.w(1, &format!("AcquireTime:\t{}\n", or_unset(s(lease, "/spec/acquireTime"), true)));
            w.w(1, &format!("RenewTime:\t{}\n", or_unset(s(lease, "/spec/renewTime"), true)));
        }
        Err(message) => w.w(0, &format!("Lease:\tFailed to get lease: {message}\n")),
    }
    let conditions = arr(node, "/status/conditions");
    if !conditions.is_empty() {
        w.w(0, "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n");
        w.w(1, "----\t------\t-----------------\t------------------\t------\t-------\n");
        for c in conditions {
            w.w(
                1,
                &format!(
                    "{} \t{} \t{} \t{} \t{} \t{}\n",
                    s(c, "/type"),
                    s(c, "/status"),
                    rfc1123z(s(c, "/lastHeartbeatTime")),
                    rfc1123z(s(c, "/lastTransitionTime")),
                    s(c, "/reason"),
                    s(c, "/message")
                ),
            );
        }
    }
    w.w(0, "Addresses:\n");
    for a in arr(node, "/status/addresses") {
        w.w(1, &format!("{}:\t{}\n", s(a, "/type"), s(a, "/address")));
    }
    for (field, title) in [("capacity", "Capacity"), ("allocatable", "Allocatable")] {
        if let Some(Value::Object(m)) =
            node.pointer(&format!("/status/{field}")).filter(|v| v.as_object().is_some_and(|m| !m.is_empty()))
        {
            w.w(0, &format!("{title}:\n"));
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for k in keys {
                w.w(0, &format!("  {k}:\t{}\n", m[k].as_str().unwrap_or_default()));
            }
        }
    }
    let info = node.pointer("/status/nodeInfo").unwrap_or(&Value::Null);
    w.w(0, "System Info:\n");
    for (key, title) in [
        ("machineID", "Machine ID"),
        ("systemUUID", "System UUID"),
        ("bootID", "Boot ID"),
        ("kernelVersion", "Kernel Version"),
        ("osImage", "OS Image"),
        ("operatingSystem", "Operating System"),
        ("architecture", "Architecture"),
        ("containerRuntimeVersion", "Container Runtime Version"),
        ("kubeletVersion", "Kubelet Version"),
        ("kubeProxyVersion", "Kube-Proxy Version"),
    ] {
        w.w(0, &format!("  {title}:\t{}\n", s(info, &format!("/{key}"))));
    }
    if !s(node, "/spec/podCIDR").is_empty() {
        w.w(0, &format!("PodCIDR:\t{}\n", s(node, "/spec/podCIDR")));
    }
    let cidrs: Vec<&str> = arr(node, "/spec/podCIDRs").iter().filter_map(Value::as_str).collect();
    if !cidrs.is_empty() {
        w.w(0, &format!("PodCIDRs:\t{}\n", cidrs.join(",")));
    }
    if !s(node, "/spec/providerID").is_empty() {
        w.w(0, &format!("ProviderID:\t{}\n", s(node, "/spec/providerID")));
    }
    let pods: Vec<&Value> =
        rel.pods.iter().filter(|p| !matches!(s(p, "/status/phase"), "Succeeded" | "Failed")).collect();
    let allocatable = node
        .pointer("/status/allocatable")
        .filter(|v| v.as_object().is_some_and(|m| !m.is_empty()))
        .or_else(|| node.pointer("/status/capacity"))
        .unwrap_or(&Value::Null);
    let alloc = |r: &str| quantity(allocatable.get(r));
    w.w(0, &format!("Non-terminated Pods:\t({} in total)\n", pods.len()));
    w.w(1, "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n");
    w.w(1, "---------\t----\t\t------------\t----------\t---------------\t-------------\t---\n");
    let zero = Quantity::from_millis(0);
    let mut totals = [zero, zero, zero, zero, zero, zero];
    let keys = [
        ("requests", "cpu"),
        ("limits", "cpu"),
        ("requests", "memory"),
        ("limits", "memory"),
        ("requests", "ephemeral-storage"),
        ("limits", "ephemeral-storage"),
    ];
    for p in &pods {
        let q: Vec<Quantity> = keys.iter().map(|(k, r)| pod_resource(p, k, r)).collect();
        for (t, v) in totals.iter_mut().zip(&q) {
            *t = add(*t, v);
        }
        w.w(
            1,
            &format!(
                "{}\t{}\t\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{}\n",
                s(p, "/metadata/namespace"),
                s(p, "/metadata/name"),
                q[0],
                percent(&q[0], &alloc("cpu"), true),
                q[1],
                percent(&q[1], &alloc("cpu"), true),
                q[2],
                percent(&q[2], &alloc("memory"), false),
                q[3],
                percent(&q[3], &alloc("memory"), false),
                since(s(p, "/metadata/creationTimestamp"))
            ),
        );
    }
    w.w(0, "Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n");
    w.w(1, "Resource\tRequests\tLimits\n");
    w.w(1, "--------\t--------\t------\n");
    for (n, (resource, milli)) in [("cpu", true), ("memory", false), ("ephemeral-storage", false)].iter().enumerate() {
        let (req, lim) = (&totals[n * 2], &totals[n * 2 + 1]);
        let a = alloc(resource);
        w.w(1, &format!("{resource}\t{req} ({}%)\t{lim} ({}%)\n", percent(req, &a, *milli), percent(lim, &a, *milli)));
    }
    if let Some(events) = &rel.events {
        describe_events(&mut w, events);
    }
    w.finish()
}
