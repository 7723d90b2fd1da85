//! `berth expose`: creates a Service for a Deployment, ReplicaSet, ReplicationController, Pod or
//! Service, as kubectl's `expose` (ServiceGeneratorV2) does: the selector, ports, protocols and
//! labels are taken from the object unless flags give them; the target port is `--target-port`
//! or else each port itself. Prints `service/NAME exposed`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::{Map, Value, json};

use super::Ctx;
use super::label::select;
use crate::api::path;

/// `berth expose`.
#[derive(Debug, Args)]
pub struct ExposeArgs {
    /// TYPE NAME or TYPE/NAME (deployment, replicaset, replicationcontroller, pod, service).
    #[arg(required = true, value_name = "TYPE[/NAME]")]
    pub resources: Vec<String>,
    /// The port the Service serves on (else the object's ports).
    #[arg(long)]
    pub port: Option<String>,
    /// The port (number or name) on the pods the Service sends traffic to (else the port).
    #[arg(long)]
    pub target_port: Option<String>,
    /// Service type: ClusterIP, NodePort, LoadBalancer or ExternalName.
    #[arg(long = "type")]
    pub type_: Option<String>,
    /// The Service's name (else the object's).
    #[arg(long)]
    pub name: Option<String>,
    /// The network protocol: TCP, UDP or SCTP (else the object's, else TCP).
    #[arg(long)]
    pub protocol: Option<String>,
    /// A label selector (key=value,...) to use instead of the object's.
    #[arg(long)]
    pub selector: Option<String>,
    /// Labels of the Service (key=value,...) instead of the object's.
    #[arg(short = 'l', long)]
    pub labels: Option<String>,
    /// The Service's ClusterIP (`None` for a headless Service).
    #[arg(long = "cluster-ip")]
    pub cluster_ip: Option<String>,
    /// An external IP to accept traffic for.
    #[arg(long = "external-ip")]
    pub external_ip: Option<String>,
    /// Session affinity: None or ClientIP.
    #[arg(long)]
    pub session_affinity: Option<String>,
}

pub async fn run(ctx: &Ctx, args: ExposeArgs) -> anyhow::Result<ExitCode> {
    let targets = select(ctx, &args.resources, None, false).await?;
    let [target] = targets.as_slice() else {
        anyhow::bail!("expose takes exactly one object, as TYPE NAME or TYPE/NAME");
    };
    let obj = ctx.api.get_json(&target.path()).await?;
    let svc = build_service(&obj, &args)?;
    let ns = target.namespace.clone().unwrap_or_else(|| ctx.namespace.clone());
    let disc = ctx.discovery().await?;
    let res = disc.for_kind("v1", "Service").context("the server has no services resource")?;
    let created = ctx.api.post(&path(&res, Some(&ns), None), &svc).await?;
    println!("service/{} exposed", created["metadata"]["name"].as_str().unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

/// Parses `k=v,k2=v2` (kubectl's `ParseLabels`).
fn parse_map(text: &str, what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            anyhow::bail!("invalid {what} spec: {pair:?} (expected key=value)");
        };
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

/// kubectl's `MapBasedSelectorForObject`.
fn selector_of(obj: &Value) -> anyhow::Result<Value> {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let sel = match kind {
        "Pod" => obj["metadata"]["labels"].clone(),
        "Service" | "ReplicationController" => obj["spec"]["selector"].clone(),
        "Deployment" | "ReplicaSet" => {
            if obj["spec"]["selector"]["matchExpressions"].as_array().is_some_and(|a| !a.is_empty()) {
                anyhow::bail!(
                    "couldn't convert expressions - \"{}\" to map-based selector format",
                    obj["spec"]["selector"]["matchExpressions"]
                );
            }
            obj["spec"]["selector"]["matchLabels"].clone()
        }
        other => anyhow::bail!("cannot extract pod selector from {other}"),
    };
    if sel.as_object().is_none_or(Map::is_empty) {
        anyhow::bail!("couldn't retrieve selectors via --selector flag or introspection: the {} has no selector", kind);
    }
    Ok(sel)
}

/// kubectl's `portsForObject` and `protocolsForObject`: `(port, protocol)` of the object.
fn ports_of(obj: &Value) -> Vec<(i64, String)> {
    let containers = match obj["kind"].as_str().unwrap_or_default() {
        "Pod" => obj["spec"]["containers"].clone(),
        "Service" => {
            return obj["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some((p["port"].as_i64()?, p["protocol"].as_str().unwrap_or("TCP").to_string())))
                .collect();
        }
        _ => obj["spec"]["template"]["spec"]["containers"].clone(),
    };
    containers
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| Some((p["containerPort"].as_i64()?, p["protocol"].as_str().unwrap_or("TCP").to_string())))
        .collect()
}

/// The Service kubectl's ServiceGeneratorV2 makes for `obj`.
pub fn build_service(obj: &Value, args: &ExposeArgs) -> anyhow::Result<Value> {
    let selector = match &args.selector {
        Some(s) => serde_json::to_value(parse_map(s, "selector")?)?,
        None => selector_of(obj)?,
    };
    let from_object = ports_of(obj);
    let ports: Vec<(i64, Option<String>)> = match &args.port {
        Some(list) => list
            .split(',')
            .map(|p| {
                let n: i64 = p.trim().parse().with_context(|| format!("invalid port {p:?}"))?;
                let proto = from_object.iter().find(|(op, _)| *op == n).map(|(_, pr)| pr.clone());
                Ok((n, proto))
            })
            .collect::<anyhow::Result<_>>()?,
        None => from_object.iter().map(|(p, pr)| (*p, Some(pr.clone()))).collect(),
    };
    let ty = args.type_.as_deref().unwrap_or("");
    if ports.is_empty() && ty != "ExternalName" && args.cluster_ip.as_deref() != Some("None") {
        anyhow::bail!("couldn't find port via --port flag or introspection");
    }
    let target: Option<Value> = args.target_port.as_ref().map(|t| match t.parse::<i64>() {
        Ok(n) => json!(n),
        Err(_) => json!(t),
    });
    let many = ports.len() > 1;
    let ports: Vec<Value> = ports
        .iter()
        .enumerate()
        .map(|(i, (port, proto))| {
            let protocol = args.protocol.clone().or_else(|| proto.clone()).unwrap_or_else(|| "TCP".into());
            let mut p =
                json!({"port": port, "protocol": protocol, "targetPort": target.clone().unwrap_or(json!(port))});
            if many {
                p["name"] = json!(format!("port-{}", i + 1));
            }
            p
        })
        .collect();
    let name = args.name.clone().unwrap_or_else(|| obj["metadata"]["name"].as_str().unwrap_or_default().to_string());
    let labels = match &args.labels {
        Some(l) => serde_json::to_value(parse_map(l, "labels")?)?,
        None => obj["metadata"]["labels"].clone(),
    };
    let mut meta = json!({"name": name});
    if labels.as_object().is_some_and(|l| !l.is_empty()) {
        meta["labels"] = labels;
    }
    let mut spec = json!({"selector": selector, "ports": ports});
    if !ty.is_empty() {
        spec["type"] = json!(ty);
    }
    if let Some(ip) = &args.cluster_ip {
        spec["clusterIP"] = json!(ip);
    }
    if let Some(ip) = &args.external_ip {
        spec["externalIPs"] = json!([ip]);
    }
    if let Some(a) = &args.session_affinity {
        spec["sessionAffinity"] = json!(a);
    }
    Ok(json!({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(port: Option<&str>) -> ExposeArgs {
        ExposeArgs {
            resources: vec![],
            port: port.map(String::from),
            target_port: None,
            type_: None,
            name: None,
            protocol: None,
            selector: None,
            labels: None,
            cluster_ip: None,
            external_ip: None,
            session_affinity: None,
        }
    }

    fn deployment() -> Value {
        json!({
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "fe"}},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [{"name": "c", "ports": [
                    {"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}
                ]}]}},
            },
        })
    }

    #[test]
    fn ports_selector_and_labels_come_from_the_object() {
        let svc = build_service(&deployment(), &args(None)).expect("service");
        assert_eq!(svc["metadata"], json!({"name": "web", "labels": {"app": "web", "tier": "fe"}}));
        assert_eq!(svc["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(
            svc["spec"]["ports"],
            json!([
                {"port": 80, "protocol": "TCP", "targetPort": 80, "name": "port-1"},
                {"port": 53, "protocol": "UDP", "targetPort": 53, "name": "port-2"},
            ])
        );
    }

    #[test]
    fn flags_override_the_object() {
        let mut a = args(Some("8080"));
        a.target_port = Some("http".into());
        a.type_ = Some("NodePort".into());
        a.name = Some("front".into());
        a.selector = Some("app=other".into());
        let svc = build_service(&deployment(), &a).expect("service");
        assert_eq!(svc["metadata"]["name"], "front");
        assert_eq!(svc["spec"]["type"], "NodePort");
        assert_eq!(svc["spec"]["selector"], json!({"app": "other"}));
        assert_eq!(svc["spec"]["ports"], json!([{"port": 8080, "protocol": "TCP", "targetPort": "http"}]));
    }

    #[test]
    fn objects_without_ports_or_selector_are_refused() {
        let pod = json!({"kind": "Pod", "metadata": {"name": "p", "labels": {"run": "p"}}, "spec": {"containers": [{"name": "c"}]}});
        let err = build_service(&pod, &args(None)).expect_err("no port");
        assert!(err.to_string().contains("couldn't find port via --port flag or introspection"));
        let mut pod = pod;
        pod["metadata"]["labels"] = json!({});
        assert!(build_service(&pod, &args(Some("80"))).is_err());
    }
}
