//! `berth cluster-info`: where the control plane and the kube-system cluster services run, in
//! kubectl's wording.

use std::process::ExitCode;

use serde_json::Value;

use super::Ctx;

/// kubectl's link for one service port: the apiserver proxy path, or the load balancer address.
pub fn service_links(cluster_url: &str, svc: &Value) -> Vec<String> {
    let name = svc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let ingress = svc.pointer("/status/loadBalancer/ingress/0");
    let ports = svc.pointer("/spec/ports").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut links = Vec::new();
    for port in &ports {
        let port_name = port.get("name").and_then(Value::as_str).unwrap_or_default();
        if let Some(ing) = ingress {
            let host = ing.get("ip").or_else(|| ing.get("hostname")).and_then(Value::as_str).unwrap_or_default();
            let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
            let scheme = if port_name == "https" { "https" } else { "http" };
            links.push(format!("{scheme}://{host}:{number}"));
            continue;
        }
        let mut segment = name.to_string();
        if port_name == "https" {
            segment = format!("https:{segment}");
        }
        if !port_name.is_empty() {
            segment = format!("{segment}:{port_name}");
        }
        links.push(format!("{cluster_url}/api/v1/namespaces/kube-system/services/{segment}/proxy"));
    }
    links
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    println!("Kubernetes control plane is running at {}", ctx.cluster_url);
    let list = ctx
        .api
        .get_json("/api/v1/namespaces/kube-system/services?labelSelector=kubernetes.io%2Fcluster-service%3Dtrue")
        .await;
    if let Ok(list) = list {
        for svc in list.get("items").and_then(Value::as_array).into_iter().flatten() {
            let name = svc
                .pointer("/metadata/labels/kubernetes.io~1name")
                .or_else(|| svc.pointer("/metadata/name"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            for link in service_links(&ctx.cluster_url, svc) {
                println!("{name} is running at {link}");
            }
        }
    }
    println!("\nTo further debug and diagnose cluster problems, use 'kubectl cluster-info dump'.");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn proxy_links_name_the_port() {
        let svc = json!({"metadata": {"name": "kube-dns"}, "spec": {"ports": [{"name": "dns", "port": 53}, {"name": "dns-tcp", "port": 53}]}});
        assert_eq!(
            service_links("https://127.0.0.1:6443", &svc),
            [
                "https://127.0.0.1:6443/api/v1/namespaces/kube-system/services/kube-dns:dns/proxy",
                "https://127.0.0.1:6443/api/v1/namespaces/kube-system/services/kube-dns:dns-tcp/proxy"
            ]
        );
    }
}
