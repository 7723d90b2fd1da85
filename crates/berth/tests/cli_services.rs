//! Services from the command line against a real `berth server` (its controllers running, no
//! agent): `expose` (kubectl's and berth's), the `get svc|endpoints|endpointslices` columns,
//! `describe svc` with endpoints, and the 422s of address and port allocation as kubectl prints
//! them. The tests play kubelet (pod IPs and readiness) through a kube client.
//!
//! kubectl is /usr/bin/kubectl (or `BERTH_KUBECTL`); without it the kubectl tests skip, except
//! under `CI=true`, where they fail.

mod common;

use std::time::Duration;

use common::kubectl::{Kube, Kubectl};
use common::{TestServer, ok, wait_until};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

/// How long controllers get to react.
const REACT: Duration = Duration::from_secs(30);

impl Kubectl {
    /// `kubectl create -f -` of a manifest that must fail; returns stderr.
    fn create_fails(&self, manifest: &str) -> String {
        let out = self.run_with_stdin(&["create", "-f", "-"], manifest);
        assert!(!out.status.success(), "create should fail: {}", String::from_utf8_lossy(&out.stdout));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

impl Kube {
    /// Registers a Ready node with an InternalIP, as a kubelet would.
    fn ready_node(&self, name: &str, ip: &str) {
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(self.client.clone());
        let node = serde_json::from_value(json!({"metadata": {"name": name}})).expect("node");
        self.rt.block_on(nodes.create(&kube::api::PostParams::default(), &node)).expect("create node");
        let status = json!({"status": {
            "addresses": [{"type": "InternalIP", "address": ip}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        }});
        self.rt
            .block_on(nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)))
            .expect("node status");
    }

    /// Gives every pod matching `sel` an IP (10.42.0.N in name order) and the Ready condition.
    fn pods_ready(&self, sel: &str, n: usize) -> Vec<String> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), "default");
        let mut names = Vec::new();
        assert!(
            wait_until(REACT, || {
                names = self
                    .rt
                    .block_on(api.list(&ListParams::default().labels(sel)))
                    .map_or(Vec::new(), |l| l.items.iter().map(|p| p.name_any()).collect());
                names.len() == n
            }),
            "{n} pods of {sel}: {names:?}"
        );
        names.sort();
        let mut ips = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let ip = format!("10.42.0.{}", i + 10);
            let patch = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": "True"}]}});
            self.rt
                .block_on(api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)))
                .expect("pod status");
            ips.push(ip);
        }
        ips
    }
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: busybox
        ports:
        - {name: http, containerPort: 8080}
"#;

/// The header cells and the row of `name` of a kubectl table.
fn table(out: &str, name: &str) -> (Vec<String>, Vec<String>) {
    let mut lines = out.lines();
    let header = lines.next().unwrap_or_default().split_whitespace().map(String::from).collect();
    let row = lines
        .find(|l| l.split_whitespace().next() == Some(name))
        .map(|l| l.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    (header, row)
}

#[test]
fn kubectl_expose_get_and_describe_services() {
    let server = TestServer::start();
    let Some(k) = Kubectl::new(&server.kubeconfig) else { return };
    let kube = Kube::new(&server.kubeconfig);
    let out = k.run_with_stdin(&["apply", "-f", "-"], DEPLOYMENT);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    assert_eq!(
        k.ok(&["expose", "deployment", "web", "--port", "80", "--target-port", "http"]).trim(),
        "service/web exposed"
    );
    assert_eq!(
        k.ok(&["expose", "deployment/web", "--port", "80", "--type", "NodePort", "--name", "web-np"]).trim(),
        "service/web-np exposed"
    );
    assert_eq!(
        k.ok(&["expose", "deployment", "web", "--port", "443", "--type", "LoadBalancer", "--name", "web-lb"]).trim(),
        "service/web-lb exposed"
    );

    let svcs = k.ok(&["get", "svc"]);
    let (header, web) = table(&svcs, "web");
    assert_eq!(header, ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]);
    assert_eq!(&web[1..5], ["ClusterIP", &web[2], "<none>", "80/TCP"], "{svcs}");
    assert!(web[2].starts_with("10.43."), "{svcs}");
    let (_, np) = table(&svcs, "web-np");
    assert!(np[4].starts_with("80:3") && np[4].ends_with("/TCP"), "{svcs}");
    // No node is registered (no agent), so ServiceLB has no address to publish yet.
    let (_, lb) = table(&svcs, "web-lb");
    assert_eq!((lb[1].as_str(), lb[3].as_str()), ("LoadBalancer", "<pending>"), "{svcs}");
    let (_, kubernetes) = table(&svcs, "kubernetes");
    assert_eq!(&kubernetes[1..5], ["ClusterIP", "10.43.0.1", "<none>", "443/TCP"], "{svcs}");

    let ips = kube.pods_ready("app=web", 2);
    let eps = k.ok(&["get", "endpoints", "web"]);
    assert!(
        wait_until(REACT, || {
            let out = k.ok(&["get", "endpoints", "web"]);
            table(&out, "web").1.get(1).is_some_and(|e| e == &format!("{}:8080,{}:8080", ips[0], ips[1]))
        }),
        "endpoints of web: {eps}"
    );
    assert_eq!(table(&k.ok(&["get", "endpoints", "web"]), "web").0, ["NAME", "ENDPOINTS", "AGE"]);
    let slices = k.ok(&["get", "endpointslices", "-l", "kubernetes.io/service-name=web"]);
    let mut lines = slices.lines();
    assert_eq!(
        lines.next().unwrap_or_default().split_whitespace().collect::<Vec<_>>(),
        ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    );
    let row: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
    assert!(row[0].starts_with("web-"), "{slices}");
    assert_eq!(&row[1..4], ["IPv4", "8080", &format!("{},{}", ips[0], ips[1])], "{slices}");

    let d = k.ok(&["describe", "svc", "web"]);
    for want in [
        "Name:                     web".to_string(),
        "Namespace:                default".to_string(),
        "Labels:                   app=web".to_string(),
        "Selector:                 app=web".to_string(),
        "Type:                     ClusterIP".to_string(),
        "IP Family Policy:         SingleStack".to_string(),
        "IP Families:              IPv4".to_string(),
        format!("IP:                       {}", web[2]),
        format!("IPs:                      {}", web[2]),
        "Port:                     <unset>  80/TCP".to_string(),
        "TargetPort:               http/TCP".to_string(),
        format!("Endpoints:                {}:8080,{}:8080", ips[0], ips[1]),
        "Session Affinity:         None".to_string(),
        "Events:                   <none>".to_string(),
    ] {
        assert!(d.lines().any(|l| l.trim_end() == want), "missing {want:?} in:\n{d}");
    }
    // kubectl get events has no default order (kubernetes#29838); --sort-by sorts client-side,
    // from the objects the server includes in its Table rows.
    let events = k.ok(&["get", "events"]);
    assert_eq!(table(&events, "").0, ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], "{events}");
    let times = k.ok(&[
        "get",
        "events",
        "--sort-by=.metadata.creationTimestamp",
        "-o",
        "custom-columns=T:.metadata.creationTimestamp,R:.reason",
        "--no-headers",
    ]);
    let stamps: Vec<&str> = times.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(stamps.len() >= 2 && stamps.is_sorted(), "{times}");
    let sorted = k.ok(&["get", "events", "--sort-by=.lastTimestamp"]);
    assert_eq!(sorted.lines().count(), events.lines().count(), "{sorted}");

    // berth's tables are kubectl's (AGE may tick between the two calls: compared without it).
    let no_age = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| {
                l.split_whitespace().filter(|c| !c.ends_with('s') || c.contains('/')).collect::<Vec<_>>().join(" ")
            })
            .collect()
    };
    for what in ["svc", "endpoints", "endpointslices"] {
        let theirs = k.ok(&["get", what]);
        let ours = ok(&server, &["get", what]);
        assert_eq!(ours.lines().next(), theirs.lines().next(), "header of get {what}");
        assert_eq!(no_age(&ours), no_age(&theirs), "berth get {what}:\n{ours}\nkubectl:\n{theirs}");
    }

    // berth's describe prints what kubectl prints.
    for name in ["web", "web-np", "web-lb", "kubernetes"] {
        let theirs = k.ok(&["describe", "svc", name]);
        let ours = ok(&server, &["describe", "svc", name]);
        assert_eq!(ours, theirs, "berth describe svc {name}");
    }

    // A Ready node with an InternalIP: ServiceLB publishes it as the LoadBalancer's address.
    kube.ready_node("lb-node", "192.0.2.21");
    assert!(
        wait_until(REACT, || table(&k.ok(&["get", "svc", "web-lb"]), "web-lb")
            .1
            .get(3)
            .is_some_and(|e| e == "192.0.2.21")),
        "EXTERNAL-IP of web-lb: {}",
        k.ok(&["get", "svc", "web-lb", "-o", "yaml"])
    );
    let theirs = k.ok(&["describe", "svc", "web-lb"]);
    assert!(theirs.contains("LoadBalancer Ingress:     192.0.2.21"), "{theirs}");
    assert_eq!(ok(&server, &["describe", "svc", "web-lb"]), theirs, "berth describe svc web-lb");

    let d = k.ok(&["describe", "svc", "web-np"]);
    assert!(d.lines().any(|l| l.starts_with("NodePort:") && l.contains("<unset>  3") && l.ends_with("/TCP")), "{d}");
}

#[test]
fn kubectl_prints_the_allocation_422s() {
    let server = TestServer::start();
    let Some(k) = Kubectl::new(&server.kubeconfig) else { return };
    let svc =
        |name: &str, spec: &str| format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n{spec}");
    let out = k.run_with_stdin(
        &["create", "-f", "-"],
        &svc("a", "  clusterIP: 10.43.0.50\n  type: NodePort\n  ports: [{port: 80, nodePort: 30080}]\n"),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = k.create_fails(&svc("b", "  clusterIP: 10.43.0.50\n  ports: [{port: 80}]\n"));
    assert!(
        err.contains(r#"The Service "b" is invalid: spec.clusterIPs: Invalid value: []string{"10.43.0.50"}: failed to allocate IP 10.43.0.50: provided IP is already allocated"#),
        "{err}"
    );
    let err = k.create_fails(&svc("c", "  clusterIP: 172.16.0.1\n  ports: [{port: 80}]\n"));
    assert!(
        err.contains("spec.clusterIPs: Invalid value: []string{\"172.16.0.1\"}")
            && err.contains("is not in the valid range"),
        "{err}"
    );
    let err = k.create_fails(&svc("d", "  type: NodePort\n  ports: [{port: 80, nodePort: 30080}]\n"));
    assert!(err.contains(r#"The Service "d" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"#), "{err}");
    let err = k.create_fails(&svc("e", "  ports: [{name: x, port: 80}, {name: x, port: 81}]\n"));
    assert!(err.contains(r#"spec.ports[1].name: Duplicate value: "x""#), "{err}");
    let err = k.create_fails(&svc("f", "  type: ExternalName\n  externalName: example.com\n  selector: {app: x}\n"));
    assert!(err.contains("spec.selector: Forbidden: may not be set for ExternalName services"), "{err}");
    let out = k.run(&["patch", "svc", "a", "-p", r#"{"spec":{"clusterIP":"10.43.0.51"}}"#]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("spec.clusterIP: Invalid value: \"10.43.0.51\": field is immutable")
    );
}

#[test]
fn berth_expose_and_get_services() {
    let server = TestServer::start();
    let (success, _, stderr) = {
        let mut cmd = server.berth();
        cmd.args(["apply", "-f", "-"]).write_stdin(DEPLOYMENT);
        let out = cmd.output().expect("berth apply");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert!(success, "{stderr}");
    assert_eq!(
        ok(&server, &["expose", "deployment", "web", "--port", "80", "--target-port", "8080"]).trim(),
        "service/web exposed"
    );
    assert_eq!(
        ok(&server, &["expose", "service", "web", "--port", "81", "--type", "NodePort", "--name", "web2"]).trim(),
        "service/web2 exposed"
    );
    let svcs = ok(&server, &["get", "svc"]);
    let (header, web2) = table(&svcs, "web2");
    assert_eq!(header, ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]);
    assert_eq!(web2[1], "NodePort", "{svcs}");
    assert!(web2[4].starts_with("81:3") && web2[4].ends_with("/TCP"), "{svcs}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&server, &["get", "svc", "web2", "-o", "json"])).expect("json");
    assert_eq!(json["spec"]["selector"], json!({"app": "web"}), "selector taken from the exposed Service");
    let (_, stdout, stderr) = common::run(&server, &["expose", "pod", "nope", "--port", "80"]);
    assert!(stdout.is_empty() && stderr.contains("not found"), "{stderr}");
}
