//! Services from the command line against a real `berth server` (its controllers running, no
//! agent): `expose` (kubectl's and berth's), the `get svc|endpoints|endpointslices` columns,
//! `describe svc` with endpoints, and the 422s of address and port allocation as kubectl prints
//! them, `--disable servicelb`, and allocations across a kill -9 of the server. The tests play
//! kubelet (pod IPs and readiness) through a kube client. Root tests (ignored by default) run
//! real pods through the cluster fixture: Service environment variables, hairpin traffic, and the
//! proxy's rules surviving a kill -9.
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

/// A Service manifest named `name` with `spec` (YAML lines indented by two).
fn service(name: &str, spec: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

impl Kubectl {
    /// `kubectl create -f -` of a manifest that must succeed.
    fn create(&self, manifest: &str) {
        let out = self.run_with_stdin(&["create", "-f", "-"], manifest);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

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
    k.create(DEPLOYMENT);

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
    k.create(&service("a", "  clusterIP: 10.43.0.50\n  type: NodePort\n  ports: [{port: 80, nodePort: 30080}]\n"));
    let err = k.create_fails(&service("b", "  clusterIP: 10.43.0.50\n  ports: [{port: 80}]\n"));
    assert!(
        err.contains(r#"The Service "b" is invalid: spec.clusterIPs: Invalid value: []string{"10.43.0.50"}: failed to allocate IP 10.43.0.50: provided IP is already allocated"#),
        "{err}"
    );
    let err = k.create_fails(&service("c", "  clusterIP: 172.16.0.1\n  ports: [{port: 80}]\n"));
    assert!(
        err.contains("spec.clusterIPs: Invalid value: []string{\"172.16.0.1\"}")
            && err.contains("is not in the valid range"),
        "{err}"
    );
    let err = k.create_fails(&service("d", "  type: NodePort\n  ports: [{port: 80, nodePort: 30080}]\n"));
    assert!(err.contains(r#"The Service "d" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"#), "{err}");
    let err = k.create_fails(&service("e", "  ports: [{name: x, port: 80}, {name: x, port: 81}]\n"));
    assert!(err.contains(r#"spec.ports[1].name: Duplicate value: "x""#), "{err}");
    let err =
        k.create_fails(&service("f", "  type: ExternalName\n  externalName: example.com\n  selector: {app: x}\n"));
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

/// A ReplicationController and a bare pod to expose (no agent: they are never run).
const RC_AND_POD: &str = r#"
apiVersion: v1
kind: ReplicationController
metadata:
  name: legacy
spec:
  replicas: 1
  selector: {app: legacy}
  template:
    metadata:
      labels: {app: legacy}
    spec:
      containers:
      - name: c
        image: busybox
        ports:
        - {name: http, containerPort: 8080}
---
apiVersion: v1
kind: Pod
metadata:
  name: solo
  labels: {app: solo, tier: web}
spec:
  containers:
  - name: c
    image: busybox
    ports:
    - {containerPort: 9090, protocol: UDP}
"#;

/// `(type, selector, ports)` of a Service, the parts `expose` generates.
fn exposed(k: &Kubectl, name: &str) -> (serde_json::Value, serde_json::Value, serde_json::Value) {
    let svc: serde_json::Value = serde_json::from_str(&k.ok(&["get", "svc", name, "-o", "json"])).expect("svc json");
    let mut ports = svc["spec"]["ports"].clone();
    for p in ports.as_array_mut().into_iter().flatten() {
        if let Some(p) = p.as_object_mut() {
            p.remove("nodePort");
        }
    }
    (svc["spec"]["type"].clone(), svc["spec"]["selector"].clone(), ports)
}

#[test]
fn expose_a_replication_controller_and_a_pod_as_kubectl_does() {
    let server = TestServer::start();
    let Some(k) = Kubectl::new(&server.kubeconfig) else { return };
    k.create(RC_AND_POD);

    // ReplicationController: its spec.selector; --port/--target-port.
    assert_eq!(
        k.ok(&["expose", "rc", "legacy", "--port", "80", "--target-port", "8080"]).trim(),
        "service/legacy exposed"
    );
    assert_eq!(
        ok(&server, &["expose", "rc", "legacy", "--port", "80", "--target-port", "8080", "--name", "legacy-b"]).trim(),
        "service/legacy-b exposed"
    );
    let theirs = exposed(&k, "legacy");
    assert_eq!(theirs.1, json!({"app": "legacy"}));
    assert_eq!(theirs.2, json!([{"port": 80, "protocol": "TCP", "targetPort": 8080}]));
    assert_eq!(exposed(&k, "legacy-b"), theirs, "berth expose rc generates what kubectl does");

    // Pod: its labels are the selector, its container port (and protocol) the port.
    assert_eq!(k.ok(&["expose", "pod", "solo", "--name", "solo-k"]).trim(), "service/solo-k exposed");
    assert_eq!(ok(&server, &["expose", "pod/solo", "--name", "solo-b"]).trim(), "service/solo-b exposed");
    let theirs = exposed(&k, "solo-k");
    assert_eq!(theirs.1, json!({"app": "solo", "tier": "web"}));
    assert_eq!(theirs.2, json!([{"port": 9090, "protocol": "UDP", "targetPort": 9090}]));
    assert_eq!(exposed(&k, "solo-b"), theirs, "berth expose pod generates what kubectl does");

    // --type and --name on a pod, kubectl's and berth's alike.
    k.ok(&[
        "expose",
        "pod",
        "solo",
        "--port",
        "81",
        "--target-port",
        "9090",
        "--type",
        "NodePort",
        "--name",
        "solo-np",
    ]);
    ok(
        &server,
        &["expose", "pod", "solo", "--port", "81", "--target-port", "9090", "--type", "NodePort", "--name", "solo-npb"],
    );
    let theirs = exposed(&k, "solo-np");
    assert_eq!(theirs.0, "NodePort");
    assert_eq!(exposed(&k, "solo-npb"), theirs);
    let (_, row) = table(&k.ok(&["get", "svc", "solo-npb"]), "solo-npb");
    // Port 81 is none of the pod's, so kubectl does not carry the pod's UDP over to it.
    assert!(row[4].starts_with("81:3") && row[4].ends_with("/TCP"), "{row:?}");
}

#[test]
fn disabling_servicelb_leaves_load_balancers_pending() {
    let server = TestServer::start_with(&["--disable", "servicelb"]);
    let Some(k) = Kubectl::new(&server.kubeconfig) else { return };
    let kube = Kube::new(&server.kubeconfig);
    kube.ready_node("lb-node", "192.0.2.31");
    k.create(&service("lb", "  type: LoadBalancer\n  selector: {app: lb}\n  ports: [{port: 80}]\n"));
    // The other controllers run: the Service's EndpointSlice appears. By then ServiceLB (were it
    // on) would have long since published the node's address, as in the test above.
    assert!(
        wait_until(REACT, || !k
            .ok(&["get", "endpointslices", "-l", "kubernetes.io/service-name=lb", "-o", "name"])
            .trim()
            .is_empty()),
        "no EndpointSlice for lb"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        let svcs = k.ok(&["get", "svc", "lb"]);
        let (_, row) = table(&svcs, "lb");
        assert_eq!((row[1].as_str(), row[3].as_str()), ("LoadBalancer", "<pending>"), "{svcs}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let status = k.ok(&["get", "svc", "lb", "-o", "jsonpath={.status.loadBalancer}"]);
    assert_eq!(status.trim(), "{}", "no ingress with servicelb disabled");
    // berth's table says the same.
    assert_eq!(table(&ok(&server, &["get", "svc", "lb"]), "lb").1[3], "<pending>");
}

/// The `NAME=value` lines of a container log (the CRI log format's message part) that start
/// with `prefix`, sorted.
fn env_lines(log: &str, prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = log
        .lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3))
        .filter(|m| m.starts_with(prefix))
        .map(String::from)
        .collect();
    out.sort();
    out
}

/// A pod that prints its environment, then `done`, then idles.
fn env_pod(name: &str, links: bool) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  \
         enableServiceLinks: {links}\n  containers:\n  - name: main\n    image: busybox\n    \
         command: [\"sh\", \"-c\", \"env; echo done; exec sleep 3600\"]\n"
    )
}

#[test]
#[ignore = "needs root: runc, netns, CNI"]
fn pods_get_variables_of_the_services_that_existed_when_they_started() {
    if !common::cluster::prerequisites("pods_get_variables_of_the_services_that_existed_when_they_started") {
        return;
    }
    let c = common::cluster::Cluster::start(1);
    let svc = |ns: &str, name: &str, ip: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  clusterIP: {ip}\n  \
             selector: {{app: x}}\n  ports:\n  - {{name: http, port: 8081, targetPort: 80}}\n  - {{name: metrics, port: 9100, protocol: UDP}}\n"
        )
    };
    c.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: elsewhere}\n");
    c.apply(&svc("default", "before-svc", "10.43.0.71"));
    c.apply(&svc("elsewhere", "other-svc", "10.43.0.72"));
    c.apply(&env_pod("early", true));
    let early = c.wait_log("early", "main", "done");
    c.apply(&svc("default", "after-svc", "10.43.0.73"));
    c.apply(&env_pod("late", true));
    c.apply(&env_pod("unlinked", false));
    let late = c.wait_log("late", "main", "done");
    let unlinked = c.wait_log("unlinked", "main", "done");

    let before: Vec<String> = [
        "BEFORE_SVC_PORT=tcp://10.43.0.71:8081",
        "BEFORE_SVC_PORT_8081_TCP=tcp://10.43.0.71:8081",
        "BEFORE_SVC_PORT_8081_TCP_ADDR=10.43.0.71",
        "BEFORE_SVC_PORT_8081_TCP_PORT=8081",
        "BEFORE_SVC_PORT_8081_TCP_PROTO=tcp",
        "BEFORE_SVC_PORT_9100_UDP=udp://10.43.0.71:9100",
        "BEFORE_SVC_PORT_9100_UDP_ADDR=10.43.0.71",
        "BEFORE_SVC_PORT_9100_UDP_PORT=9100",
        "BEFORE_SVC_PORT_9100_UDP_PROTO=udp",
        "BEFORE_SVC_SERVICE_HOST=10.43.0.71",
        "BEFORE_SVC_SERVICE_PORT=8081",
        "BEFORE_SVC_SERVICE_PORT_HTTP=8081",
        "BEFORE_SVC_SERVICE_PORT_METRICS=9100",
    ]
    .map(String::from)
    .to_vec();
    // Only Services of its namespace that existed when it started, and always `kubernetes`.
    assert_eq!(env_lines(&early, "BEFORE_SVC_"), before, "{early}");
    assert!(env_lines(&early, "AFTER_SVC_").is_empty(), "created after the pod: {early}");
    assert!(env_lines(&early, "OTHER_SVC_").is_empty(), "another namespace's: {early}");
    assert_eq!(env_lines(&early, "KUBERNETES_SERVICE_HOST="), ["KUBERNETES_SERVICE_HOST=10.43.0.1"], "{early}");
    // A pod started after it gets it.
    assert_eq!(env_lines(&late, "BEFORE_SVC_"), before, "{late}");
    assert_eq!(env_lines(&late, "AFTER_SVC_SERVICE_HOST="), ["AFTER_SVC_SERVICE_HOST=10.43.0.73"], "{late}");
    // enableServiceLinks: false: only the kubernetes Service's.
    assert!(env_lines(&unlinked, "BEFORE_SVC_").is_empty() && env_lines(&unlinked, "AFTER_SVC_").is_empty());
    assert_eq!(env_lines(&unlinked, "KUBERNETES_SERVICE_HOST="), ["KUBERNETES_SERVICE_HOST=10.43.0.1"], "{unlinked}");
}

#[test]
#[ignore = "needs root: runc, netns, CNI, nftables"]
fn a_killed_server_leaves_the_proxy_rules_and_traffic_keeps_flowing() {
    if !common::cluster::prerequisites("a_killed_server_leaves_the_proxy_rules_and_traffic_keeps_flowing") {
        return;
    }
    let mut c = common::cluster::Cluster::start_with_proxy(0, &|_| Vec::new());
    let (cidr, table) = {
        let proxy = c.proxy.as_ref().expect("proxy setup");
        (proxy.service_cidr.clone(), proxy.table.clone())
    };
    let ip = format!("{}100", cidr.trim_end_matches("0/24"));
    c.apply(&common::cluster::web_pods("kept", 1));
    c.apply(&format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: kept}}\nspec:\n  type: NodePort\n  clusterIP: {ip}\n  \
         selector: {{app: kept}}\n  ports:\n  - {{port: 8081, targetPort: 80, nodePort: 32003}}\n"
    ));
    c.wait_pod("kept-0", "became ready", common::cluster::is_ready);
    let addrs: Vec<std::net::SocketAddr> =
        [format!("{ip}:8081"), "127.0.0.1:32003".to_string()].iter().map(|a| a.parse().expect("addr")).collect();
    let answers = |addrs: &[std::net::SocketAddr]| {
        addrs.iter().all(|a| {
            common::cluster::http_get(*a).is_ok_and(|b| b.lines().last().is_some_and(|l| l.trim() == "kept-0"))
        })
    };
    assert!(wait_until(REACT, || answers(&addrs)), "never served; log:\n{}", c.log());

    // kill -9: no shutdown path runs, so the table, the blackhole route and the rule stay.
    let server = c.server.as_mut().expect("server");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(server.pid() as i32), nix::sys::signal::Signal::SIGKILL)
        .expect("kill -9 the server");
    let status = server.stop().expect("server exit status");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "{status:?}");
    let listed = std::process::Command::new("nft").args(["list", "table", "inet", &table]).output().expect("nft");
    assert!(listed.status.success(), "table {table} gone after kill -9");
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&ip), "the Service's rules are kept");
    let routes = common::cluster::ip(&["route", "show", "table", common::cluster::PROXY_ROUTE_TABLE]);
    assert!(routes.contains(&format!("blackhole {cidr}")), "{routes}");
    // The pod outlives its agent: the ClusterIP and the NodePort keep answering.
    assert!(answers(&addrs), "traffic stopped with the proxy");
}

#[test]
#[ignore = "needs root: runc, netns, CNI, nftables"]
fn a_pod_reaches_itself_through_its_service_hairpin() {
    if !common::cluster::prerequisites("a_pod_reaches_itself_through_its_service_hairpin") {
        return;
    }
    let c = common::cluster::Cluster::start_with_proxy(2, &|_| Vec::new());
    let cidr = c.proxy.as_ref().expect("proxy setup").service_cidr.clone();
    let ip = format!("{}100", cidr.trim_end_matches("0/24"));
    c.apply(&common::cluster::web_pods("hair", 1));
    c.apply(&format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: hair}}\nspec:\n  clusterIP: {ip}\n  \
         selector: {{app: hair}}\n  ports:\n  - {{port: 8081, targetPort: 80}}\n"
    ));
    c.wait_pod("hair-0", "became ready", common::cluster::is_ready);
    // The only endpoint is the client itself: the reply must come back through the bridge
    // (hairpin) with the Service's address, which the masquerade rule makes possible.
    let url = format!("http://{ip}:8081/");
    let mut last = String::new();
    let reached = wait_until(REACT, || {
        let out = c.server().berth().args(["exec", "hair-0", "--", "wget", "-qO-", &url]).output().expect("exec");
        last = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        out.status.success() && last.trim() == "hair-0"
    });
    assert!(reached, "hair-0 through its own Service: {last}\nlog:\n{}", c.log());
}

#[test]
fn allocations_survive_a_kill_9_of_the_server() {
    let server = TestServer::start();
    let Some(k) = Kubectl::new(&server.kubeconfig) else { return };
    k.create(&service("fixed", "  clusterIP: 10.43.0.80\n  type: NodePort\n  ports: [{port: 80, nodePort: 30090}]\n"));
    let mut auto = Vec::new();
    for i in 0..4 {
        let name = format!("auto-{i}");
        k.create(&service(&name, "  type: NodePort\n  ports: [{port: 80}]\n"));
        let ip = k.ok(&["get", "svc", &name, "-o", "jsonpath={.spec.clusterIP}"]);
        let port = k.ok(&["get", "svc", &name, "-o", "jsonpath={.spec.ports[0].nodePort}"]);
        auto.push((ip.trim().to_string(), port.trim().to_string()));
    }

    // kill -9 right after the last create: no shutdown path runs.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(server.pid() as i32), nix::sys::signal::Signal::SIGKILL)
        .expect("kill -9 the server");
    let server = server.restart_with_agent(&["--disable-agent"]);
    let k = Kubectl::new(&server.kubeconfig).expect("kubectl");
    let mut taken = vec![("10.43.0.80".to_string(), "30090".to_string())];
    taken.extend(auto);
    for (i, (ip, port)) in taken.iter().enumerate() {
        let err =
            k.create_fails(&service(&format!("ip-{i}"), &format!("  clusterIP: {ip}\n  ports: [{{port: 80}}]\n")));
        assert!(err.contains("provided IP is already allocated"), "{ip} reused after the crash: {err}");
        let spec = format!("  type: NodePort\n  ports: [{{port: 80, nodePort: {port}}}]\n");
        let err = k.create_fails(&service(&format!("port-{i}"), &spec));
        assert!(err.contains("provided port is already allocated"), "{port} reused after the crash: {err}");
    }
    // Fresh allocations avoid them all.
    k.create(&service("fresh", "  type: NodePort\n  ports: [{port: 80}]\n"));
    let ip = k.ok(&["get", "svc", "fresh", "-o", "jsonpath={.spec.clusterIP}"]);
    let port = k.ok(&["get", "svc", "fresh", "-o", "jsonpath={.spec.ports[0].nodePort}"]);
    assert!(!taken.iter().any(|(i, p)| *i == ip.trim() || *p == port.trim()), "{ip}:{port} in {taken:?}");
    // Deleting still releases.
    k.ok(&["delete", "svc", "fixed"]);
    k.create(&service("again", "  clusterIP: 10.43.0.80\n  type: NodePort\n  ports: [{port: 80, nodePort: 30090}]\n"));
}
