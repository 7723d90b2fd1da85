//! `berth describe`: kubectl's describers for pods, deployments, replicasets, services, endpoints,
//! nodes, namespaces, configmaps and secrets, a generic describer for everything else, and the
//! Events section (events listed by `involvedObject.*` field selectors). Layout follows kubectl's
//! describe.go: a prefix writer (two spaces per level) through Go's tab-writer (padding 2).

mod autoscaling;
mod config;
mod generic;
mod network;
mod node;
mod pod;
mod workloads;
mod writer;

use std::process::ExitCode;

use serde_json::Value;

use super::Ctx;
use super::get::{list_items, name_of};
use crate::api::{path, query};
use crate::cli::DescribeArgs;
use crate::discovery::ResourceInfo;
use crate::errors::{is_not_found, status_of};
use config::{describe_config_map, describe_namespace, describe_secret};
use generic::describe_generic;
use network::{describe_endpoint_slice, describe_endpoints, describe_service};
use node::describe_node;
use pod::describe_pod;
use workloads::{describe_deployment, describe_replica_set};
use writer::{format_selector, s};

/// kubectl's `DescribePodTemplate` through a bare PrefixWriter (tabs not aligned), as
/// `rollout history --revision=N` prints a revision's template.
pub fn pod_template_raw(template: &Value) -> String {
    let mut w = writer::Writer::default();
    pod::describe_pod_template(&mut w, template);
    w.into_raw()
}

/// Everything a describer may need besides the object.
pub struct Related {
    /// None when the events could not be listed (kubectl then prints no Events section).
    pub events: Option<Vec<Value>>,
    pub replica_sets: Vec<Value>,
    pub pods: Vec<Value>,
    pub endpoint_slices: Vec<Value>,
    pub quotas: Option<Vec<Value>>,
    pub limit_ranges: Option<Vec<Value>>,
    /// The node's Lease, or why it could not be read.
    pub lease: Result<Value, String>,
}

async fn list_or_empty(ctx: &Ctx, url: &str) -> Vec<Value> {
    match ctx.api.get_json(url).await {
        Ok(v) => v.get("items").and_then(Value::as_array).cloned().unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

async fn related(ctx: &Ctx, res: &ResourceInfo, obj: &Value) -> Related {
    let ns = s(obj, "/metadata/namespace").to_string();
    let name = s(obj, "/metadata/name").to_string();
    let mut fields = vec![format!("involvedObject.name={name}"), format!("involvedObject.kind={}", res.kind)];
    if !ns.is_empty() {
        fields.push(format!("involvedObject.namespace={ns}"));
    }
    let uid = s(obj, "/metadata/uid");
    if !uid.is_empty() {
        fields.push(format!("involvedObject.uid={uid}"));
    }
    let events_ns = if ns.is_empty() { "default".to_string() } else { ns.clone() };
    let q = query(&[("fieldSelector", Some(fields.join(",").as_str()))]);
    let events = match ctx.api.get_json(&format!("/api/v1/namespaces/{events_ns}/events{q}")).await {
        Ok(v) => Some(v.get("items").and_then(Value::as_array).cloned().unwrap_or_default()),
        Err(_) => None,
    };
    let mut rel = Related {
        events,
        replica_sets: Vec::new(),
        pods: Vec::new(),
        endpoint_slices: Vec::new(),
        quotas: None,
        limit_ranges: None,
        lease: Err(String::new()),
    };
    match (res.group.as_str(), res.kind.as_str()) {
        ("apps", "Deployment") => {
            let sel = selector_query(obj);
            rel.replica_sets = list_or_empty(ctx, &format!("/apis/apps/v1/namespaces/{ns}/replicasets{sel}")).await;
        }
        ("apps", "ReplicaSet") => {
            let sel = selector_query(obj);
            rel.pods = list_or_empty(ctx, &format!("/api/v1/namespaces/{ns}/pods{sel}")).await;
        }
        ("", "Service") => {
            let q = query(&[("labelSelector", Some(format!("kubernetes.io/service-name={name}").as_str()))]);
            rel.endpoint_slices =
                list_or_empty(ctx, &format!("/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices{q}")).await;
        }
        ("", "Namespace") => {
            let items = |v: Value| v.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
            rel.quotas = ctx.api.get_json(&format!("/api/v1/namespaces/{name}/resourcequotas")).await.ok().map(items);
            rel.limit_ranges =
                ctx.api.get_json(&format!("/api/v1/namespaces/{name}/limitranges")).await.ok().map(items);
            // Namespaces show no events in kubectl.
            rel.events = None;
        }
        ("", "Node") => {
            let q = query(&[("fieldSelector", Some(format!("spec.nodeName={name}").as_str()))]);
            rel.pods = list_or_empty(ctx, &format!("/api/v1/pods{q}")).await;
            rel.lease = match ctx
                .api
                .get_json(&format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"))
                .await
            {
                Ok(lease) => Ok(lease),
                Err(err) => Err(match status_of(&err) {
                    Some(status) => status.0.message.clone(),
                    None => format!("{err:#}"),
                }),
            };
        }
        _ => {}
    }
    rel
}

fn selector_query(obj: &Value) -> String {
    let sel = format_selector(obj.pointer("/spec/selector"));
    if sel == "<none>" { String::new() } else { query(&[("labelSelector", Some(sel.as_str()))]) }
}

/// The text kubectl's describer for this kind would print.
pub fn describe(res: &ResourceInfo, obj: &Value, rel: &Related) -> String {
    match (res.group.as_str(), res.kind.as_str()) {
        ("", "Pod") => describe_pod(obj, rel),
        ("apps", "Deployment") => describe_deployment(obj, rel),
        ("apps", "ReplicaSet") => describe_replica_set(obj, rel),
        ("", "Service") => describe_service(obj, rel),
        ("", "Node") => describe_node(obj, rel),
        ("", "Namespace") => describe_namespace(obj, rel.quotas.as_deref(), rel.limit_ranges.as_deref()),
        ("", "ConfigMap") => describe_config_map(obj, rel),
        ("", "Endpoints") => describe_endpoints(obj, rel),
        ("", "Secret") => describe_secret(obj),
        ("discovery.k8s.io", "EndpointSlice") => describe_endpoint_slice(obj, rel),
        ("autoscaling", "HorizontalPodAutoscaler") => autoscaling::describe_hpa(obj, rel),
        _ => describe_generic(obj, rel),
    }
}

pub async fn run(ctx: &Ctx, args: DescribeArgs) -> anyhow::Result<ExitCode> {
    let request = super::get::resolve(ctx, &args.resources).await?;
    // Only `TYPE NAME` looks names up by prefix; `TYPE/NAME` must match exactly.
    let exact = args.resources.iter().any(|a| a.contains('/'));
    let mut failed = false;
    let mut separator = "";
    let mut found_any = false;
    for (res, names) in &request.targets {
        let ns = ctx.scope(res);
        let mut objects = Vec::new();
        if names.is_empty() {
            let q = query(&[("labelSelector", args.selector.as_deref())]);
            let list = ctx.api.get_json(&format!("{}{q}", path(res, ns, None))).await?;
            objects.extend(list_items(&list, res));
        }
        for name in names {
            match ctx.api.get_json(&path(res, ns, Some(name))).await {
                Ok(obj) => objects.push(obj),
                Err(err) if is_not_found(&err) && exact => {
                    failed = true;
                    if let Some(status) = status_of(&err) {
                        eprintln!("{status}");
                    }
                }
                Err(err) if is_not_found(&err) => {
                    // kubectl describe falls back to a name-prefix match.
                    let list = ctx.api.get_json(&path(res, ns, None)).await.unwrap_or(Value::Null);
                    let matches: Vec<Value> =
                        list_items(&list, res).into_iter().filter(|o| name_of(o).starts_with(name.as_str())).collect();
                    if matches.is_empty() {
                        failed = true;
                        if let Some(status) = status_of(&err) {
                            eprintln!("{status}");
                        }
                    }
                    objects.extend(matches);
                }
                Err(err) => return Err(err),
            }
        }
        for obj in objects {
            found_any = true;
            let rel = related(ctx, res, &obj).await;
            print!("{separator}{}", describe(res, &obj, &rel));
            separator = "\n\n";
        }
    }
    if !found_any && !failed {
        // Unlike get, kubectl describe names the namespace even for cluster-scoped types.
        if !ctx.all_namespaces {
            eprintln!("No resources found in {} namespace.", ctx.namespace);
        } else {
            eprintln!("No resources found");
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

#[cfg(test)]
mod tests {
    use super::generic::smart_label;
    use super::writer::*;
    use super::*;
    use crate::threeway::LAST_APPLIED;
    use serde_json::json;

    /// Related objects with no events or objects of any kind (for the describers' tests).
    pub(super) fn no_events() -> Related {
        Related {
            events: Some(vec![]),
            replica_sets: vec![],
            pods: vec![],
            endpoint_slices: vec![],
            quotas: None,
            limit_ranges: None,
            lease: Err(String::new()),
        }
    }

    #[test]
    fn pod_matches_kubectl_byte_for_byte() {
        // Expected text captured from kubectl 1.33 `describe pod` against the same object.
        let pod: Value = serde_json::from_str(include_str!("testdata/golden_pod.json")).unwrap();
        assert_eq!(describe_pod(&pod, &no_events()), include_str!("testdata/golden_pod.txt"));
    }

    #[test]
    fn namespace_matches_kubectl() {
        let ns = json!({"metadata": {"name": "default", "labels": {"kubernetes.io/metadata.name": "default"}}, "status": {"phase": "Active"}});
        let want = "Name:         default\nLabels:       kubernetes.io/metadata.name=default\nAnnotations:  <none>\nStatus:       Active\n\nNo resource quota.\n\nNo LimitRange resource.\n";
        assert_eq!(describe_namespace(&ns, Some(&[]), Some(&[])), want);
        let without = "Name:         default\nLabels:       kubernetes.io/metadata.name=default\nAnnotations:  <none>\nStatus:       Active\n";
        assert_eq!(describe_namespace(&ns, None, None), without);
    }

    #[test]
    fn configmap_matches_kubectl() {
        let cm = json!({"metadata": {"name": "cfg", "namespace": "default"}, "data": {"a": "1"}});
        let want = "Name:         cfg\nNamespace:    default\nLabels:       <none>\nAnnotations:  <none>\n\nData\n====\na:\n----\n1\n\n\nBinaryData\n====\n\nEvents:  <none>\n";
        assert_eq!(describe_config_map(&cm, &no_events()), want);
    }

    #[test]
    fn service_lists_ports_and_endpoints() {
        let svc = json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "ClusterIP", "selector": {"app": "web"}, "clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"],
                     "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                     "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}});
        let rel = Related {
            endpoint_slices: vec![
                json!({"ports": [{"name": "", "port": 8080}], "endpoints": [{"addresses": ["10.42.0.5"], "conditions": {"ready": true}}]}),
            ],
            ..no_events()
        };
        let got = describe_service(&svc, &rel);
        let want = "Name:                     web\nNamespace:                default\nLabels:                   <none>\nAnnotations:              <none>\nSelector:                 app=web\nType:                     ClusterIP\nIP Family Policy:         SingleStack\nIP Families:              IPv4\nIP:                       10.43.0.10\nIPs:                      10.43.0.10\nPort:                     <unset>  80/TCP\nTargetPort:               8080/TCP\nEndpoints:                10.42.0.5:8080\nSession Affinity:         None\nInternal Traffic Policy:  Cluster\nEvents:                   <none>\n";
        assert_eq!(got, want);
    }

    #[test]
    fn labels_and_long_annotations() {
        let mut w = Writer::default();
        labels_multiline(&mut w, "Labels", Some(&json!({"b": "2", "a": "1"})));
        annotations_multiline(&mut w, "Annotations", Some(&json!({LAST_APPLIED: "{}", "x": "y"})));
        assert_eq!(w.finish(), "Labels:       a=1\n              b=2\nAnnotations:  x: y\n");
    }

    #[test]
    fn events_table_is_aligned_on_its_own() {
        let mut w = Writer::default();
        w.w(0, "Name:\tweb\n");
        let now = jiff::Timestamp::now().to_string();
        describe_events(
            &mut w,
            &[
                json!({"type": "Normal", "reason": "ScalingReplicaSet", "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "source": {"component": "deployment-controller"}, "message": "Scaled up replica set web-1 to 2"}),
            ],
        );
        let got = w.finish();
        assert!(got.starts_with("Name:  web\nEvents:\n  Type    Reason             Age"), "{got}");
        assert!(
            got.contains(
                "  Normal  ScalingReplicaSet  0s    deployment-controller  Scaled up replica set web-1 to 2\n"
            ),
            "{got}"
        );
    }

    #[test]
    fn selectors_format_as_kubectl() {
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]});
        assert_eq!(format_selector(Some(&sel)), "app=web,tier in (a,b)");
        assert_eq!(format_selector(None), "<none>");
    }

    #[test]
    fn smart_labels() {
        assert_eq!(smart_label("creationTimestamp"), "Creation Timestamp");
        assert_eq!(smart_label("apiVersion"), "API Version");
        assert_eq!(smart_label("uid"), "UID");
        assert_eq!(smart_label("podCIDR"), "Pod CIDR");
    }
}
