//! Services, Endpoints and EndpointSlices (kubectl's ServiceDescriber, EndpointsDescriber and
//! EndpointSliceDescriber).

use serde_json::Value;

use super::Related;
use super::writer::*;
use crate::printer::format_labels;

/// Endpoints of a service port from its EndpointSlices: `ip:port,...` (three at most, then
/// ` + N more...`), `<none>` without any.
pub(super) fn endpoints_for(slices: &[Value], port_name: &str) -> String {
    let mut list = Vec::new();
    for slice in slices {
        let port = arr(slice, "/ports")
            .iter()
            .find(|p| s(p, "/name") == port_name)
            .and_then(|p| p.get("port"))
            .and_then(Value::as_i64);
        let Some(port) = port else { continue };
        for ep in arr(slice, "/endpoints") {
            if ep.pointer("/conditions/ready").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            for addr in arr(ep, "/addresses").iter().filter_map(Value::as_str) {
                list.push(format!("{addr}:{port}"));
            }
        }
    }
    if list.is_empty() {
        return "<none>".to_string();
    }
    let extra = list.len().saturating_sub(3);
    let mut out = list.into_iter().take(3).collect::<Vec<_>>().join(",");
    if extra > 0 {
        out.push_str(&format!(" + {extra} more..."));
    }
    out
}

pub fn describe_service(svc: &Value, rel: &Related) -> String {
    let mut w = Writer::default();
    w.w(0, &format!("Name:\t{}\n", s(svc, "/metadata/name")));
    w.w(0, &format!("Namespace:\t{}\n", s(svc, "/metadata/namespace")));
    labels_multiline(&mut w, "Labels", svc.pointer("/metadata/labels"));
    annotations_multiline(&mut w, "Annotations", svc.pointer("/metadata/annotations"));
    w.w(0, &format!("Selector:\t{}\n", format_labels(svc.pointer("/spec/selector"))));
    let ty = s(svc, "/spec/type");
    w.w(0, &format!("Type:\t{ty}\n"));
    if !s(svc, "/spec/ipFamilyPolicy").is_empty() {
        w.w(0, &format!("IP Family Policy:\t{}\n", s(svc, "/spec/ipFamilyPolicy")));
    }
    let families: Vec<&str> = arr(svc, "/spec/ipFamilies").iter().filter_map(Value::as_str).collect();
    w.w(0, &format!("IP Families:\t{}\n", if families.is_empty() { "<none>".to_string() } else { families.join(",") }));
    w.w(0, &format!("IP:\t{}\n", s(svc, "/spec/clusterIP")));
    let ips: Vec<&str> = arr(svc, "/spec/clusterIPs").iter().filter_map(Value::as_str).collect();
    w.w(0, &format!("IPs:\t{}\n", if ips.is_empty() { "<none>".to_string() } else { ips.join(",") }));
    let external: Vec<&str> = arr(svc, "/spec/externalIPs").iter().filter_map(Value::as_str).collect();
    if !external.is_empty() {
        w.w(0, &format!("External IPs:\t{}\n", external.join(",")));
    }
    if !s(svc, "/spec/loadBalancerIP").is_empty() {
        w.w(0, &format!("IP:\t{}\n", s(svc, "/spec/loadBalancerIP")));
    }
    // kubectl's buildIngressString: the IP (else hostname), then ` (ipMode)` when set.
    let ingress: Vec<String> = arr(svc, "/status/loadBalancer/ingress")
        .iter()
        .map(|i| {
            let addr = if s(i, "/ip").is_empty() { s(i, "/hostname") } else { s(i, "/ip") };
            match s(i, "/ipMode") {
                "" => addr.to_string(),
                mode => format!("{addr} ({mode})"),
            }
        })
        .collect();
    if !ingress.is_empty() {
        w.w(0, &format!("LoadBalancer Ingress:\t{}\n", ingress.join(", ")));
    }
    if ty == "ExternalName" {
        w.w(0, &format!("External Name:\t{}\n", s(svc, "/spec/externalName")));
    }
    for p in arr(svc, "/spec/ports") {
        let name = if s(p, "/name").is_empty() { "<unset>" } else { s(p, "/name") };
        let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        w.w(0, &format!("Port:\t{name}\t{}/{proto}\n", i(p, "/port")));
        match p.get("targetPort") {
            Some(Value::String(t)) => w.w(0, &format!("TargetPort:\t{t}/{proto}\n")),
            Some(Value::Number(t)) => w.w(0, &format!("TargetPort:\t{t}/{proto}\n")),
            _ => w.w(0, &format!("TargetPort:\t{}/{proto}\n", i(p, "/port"))),
        }
        if i(p, "/nodePort") != 0 {
            w.w(0, &format!("NodePort:\t{name}\t{}/{proto}\n", i(p, "/nodePort")));
        }
        if ty != "ExternalName" {
            w.w(0, &format!("Endpoints:\t{}\n", endpoints_for(&rel.endpoint_slices, s(p, "/name"))));
        }
    }
    w.w(0, &format!("Session Affinity:\t{}\n", s(svc, "/spec/sessionAffinity")));
    if !s(svc, "/spec/externalTrafficPolicy").is_empty() {
        w.w(0, &format!("External Traffic Policy:\t{}\n", s(svc, "/spec/externalTrafficPolicy")));
    }
    if !s(svc, "/spec/internalTrafficPolicy").is_empty() {
        w.w(0, &format!("Internal Traffic Policy:\t{}\n", s(svc, "/spec/internalTrafficPolicy")));
    }
    if i(svc, "/spec/healthCheckNodePort") != 0 {
        w.w(0, &format!("HealthCheck NodePort:\t{}\n", i(svc, "/spec/healthCheckNodePort")));
    }
    if let Some(events) = &rel.events {
        describe_events(&mut w, events);
    }
    w.finish()
}

pub fn describe_endpoints(ep: &Value, rel: &Related) -> String {
    let mut w = Writer::default();
    w.w(0, &format!("Name:\t{}\n", s(ep, "/metadata/name")));
    w.w(0, &format!("Namespace:\t{}\n", s(ep, "/metadata/namespace")));
    labels_multiline(&mut w, "Labels", ep.pointer("/metadata/labels"));
    annotations_multiline(&mut w, "Annotations", ep.pointer("/metadata/annotations"));
    w.w(0, "Subsets:\n");
    for subset in arr(ep, "/subsets") {
        let ips = |field: &str| {
            let list: Vec<&str> = arr(subset, field).iter().map(|a| s(a, "/ip")).collect();
            if list.is_empty() { "<none>".to_string() } else { list.join(",") }
        };
        w.w(1, &format!("Addresses:\t{}\n", ips("/addresses")));
        w.w(1, &format!("NotReadyAddresses:\t{}\n", ips("/notReadyAddresses")));
        let ports = arr(subset, "/ports");
        if !ports.is_empty() {
            w.w(1, "Ports:\n");
            w.w(2, "Name\tPort\tProtocol\n");
            w.w(2, "----\t----\t--------\n");
            for p in ports {
                let name = if s(p, "/name").is_empty() { "<unset>" } else { s(p, "/name") };
                let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                w.w(2, &format!("{name}\t{}\t{proto}\n", i(p, "/port")));
            }
        }
        w.w(0, "\n");
    }
    if let Some(events) = &rel.events {
        describe_events(&mut w, events);
    }
    w.finish()
}

pub fn describe_endpoint_slice(eps: &Value, rel: &Related) -> String {
    let mut w = Writer::default();
    w.w(0, &format!("Name:\t{}\n", s(eps, "/metadata/name")));
    w.w(0, &format!("Namespace:\t{}\n", s(eps, "/metadata/namespace")));
    labels_multiline(&mut w, "Labels", eps.pointer("/metadata/labels"));
    annotations_multiline(&mut w, "Annotations", eps.pointer("/metadata/annotations"));
    w.w(0, &format!("AddressType:\t{}\n", s(eps, "/addressType")));
    let ports = arr(eps, "/ports");
    if ports.is_empty() {
        w.w(0, "Ports: <unset>\n");
    } else {
        w.w(0, "Ports:\n");
        w.w(1, "Name\tPort\tProtocol\n");
        w.w(1, "----\t----\t--------\n");
        for p in ports {
            let name = if s(p, "/name").is_empty() { "<unset>" } else { s(p, "/name") };
            let port = p.get("port").and_then(Value::as_i64).map(|n| n.to_string()).unwrap_or_else(|| "<unset>".into());
            w.w(1, &format!("{name}\t{port}\t{}\n", s(p, "/protocol")));
        }
    }
    let endpoints = arr(eps, "/endpoints");
    if endpoints.is_empty() {
        w.w(0, "Endpoints: <none>\n");
    } else {
        w.w(0, "Endpoints:\n");
        for ep in endpoints {
            let addrs: Vec<&str> = arr(ep, "/addresses").iter().filter_map(Value::as_str).collect();
            let addrs = if addrs.is_empty() { "<none>".to_string() } else { addrs.join(", ") };
            w.w(1, &format!("- Addresses:\t{addrs}\n"));
            w.w(2, "Conditions:\n");
            let ready = ep.pointer("/conditions/ready").and_then(Value::as_bool).map(|b| b.to_string());
            w.w(3, &format!("Ready:\t{}\n", ready.unwrap_or_else(|| "<unset>".into())));
            let text = |f: &str| ep.get(f).and_then(Value::as_str).unwrap_or("<unset>").to_string();
            w.w(2, &format!("Hostname:\t{}\n", text("hostname")));
            if let Some(t) = ep.get("targetRef") {
                w.w(2, &format!("TargetRef:\t{}/{}\n", s(t, "/kind"), s(t, "/name")));
            }
            w.w(2, &format!("NodeName:\t{}\n", text("nodeName")));
            w.w(2, &format!("Zone:\t{}\n", text("zone")));
        }
    }
    if let Some(events) = &rel.events {
        describe_events(&mut w, events);
    }
    w.finish()
}
