//! Builders of Services and EndpointSlices for tests of this crate and of its users.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

/// A ClusterIP Service `namespace/name` at `cluster_ip` with one TCP port `port`→`target_port`
/// named `http`; shape it further through [`ServiceBuilder::spec`].
pub struct ServiceBuilder {
    value: Value,
}

impl ServiceBuilder {
    pub fn new(namespace: &str, name: &str, cluster_ip: &str, port: u16, target_port: u16) -> Self {
        ServiceBuilder {
            value: json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": { "namespace": namespace, "name": name },
                "spec": {
                    "type": "ClusterIP",
                    "clusterIP": cluster_ip,
                    "ports": [{ "name": "http", "protocol": "TCP", "port": port, "targetPort": target_port }],
                },
            }),
        }
    }

    /// Sets `spec.<key>`.
    pub fn spec(mut self, key: &str, value: Value) -> Self {
        self.value["spec"][key] = value;
        self
    }

    /// Makes it a NodePort Service on `node_port`.
    pub fn node_port(self, node_port: u16) -> Self {
        let mut b = self.spec("type", json!("NodePort"));
        b.value["spec"]["ports"][0]["nodePort"] = json!(node_port);
        b
    }

    /// Makes it a LoadBalancer Service whose status has these ingress IPs.
    pub fn load_balancer(self, node_port: u16, ingress: &[&str]) -> Self {
        let mut b = self.node_port(node_port).spec("type", json!("LoadBalancer"));
        let ingress: Vec<Value> = ingress.iter().map(|ip| json!({ "ip": ip })).collect();
        b.value["status"] = json!({ "loadBalancer": { "ingress": ingress } });
        b
    }

    pub fn build(self) -> Service {
        serde_json::from_value(self.value).expect("a valid Service")
    }
}

/// An IPv4 EndpointSlice of Service `namespace/service` with port `http`/TCP `port`.
pub struct SliceBuilder {
    value: Value,
}

impl SliceBuilder {
    pub fn new(namespace: &str, service: &str, slice: &str, port: u16) -> Self {
        SliceBuilder {
            value: json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "namespace": namespace,
                    "name": slice,
                    "labels": { "kubernetes.io/service-name": service },
                },
                "addressType": "IPv4",
                "ports": [{ "name": "http", "protocol": "TCP", "port": port }],
                "endpoints": [],
            }),
        }
    }

    /// Adds an endpoint on `node` with these conditions.
    pub fn endpoint(mut self, ip: &str, node: &str, ready: bool, serving: bool, terminating: bool) -> Self {
        let ep = json!({
            "addresses": [ip],
            "nodeName": node,
            "conditions": { "ready": ready, "serving": serving, "terminating": terminating },
        });
        if let Some(list) = self.value["endpoints"].as_array_mut() {
            list.push(ep);
        }
        self
    }

    /// Adds a ready endpoint on `node`.
    pub fn ready(self, ip: &str, node: &str) -> Self {
        self.endpoint(ip, node, true, true, false)
    }

    pub fn build(self) -> EndpointSlice {
        serde_json::from_value(self.value).expect("a valid EndpointSlice")
    }
}
