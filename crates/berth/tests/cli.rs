//! End-to-end tests of the `berth` binary: `berth server` started on a free loopback port, then
//! the CLI verbs against it, with kubectl's output formats and error wording.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{TestServer, fails, ok, run};

fn manifest(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("manifests").join(name)
}

#[test]
fn server_ready_line_names_url_and_kubeconfig() {
    let server = TestServer::start();
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.url);
    assert_ne!(server.port(), 0);
    assert_eq!(server.kubeconfig, server.data_dir.path().join("kubeconfig.yaml"));
    assert!(server.kubeconfig.exists());
}

#[test]
fn get_namespaces_prints_kubectl_table() {
    let server = TestServer::start();
    let out = ok(&server, &["get", "ns"]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("NAME              STATUS   AGE"), "{out}");
    let rows: Vec<&str> = lines.collect();
    for ns in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        let row =
            rows.iter().find(|r| r.split_whitespace().next() == Some(ns)).unwrap_or_else(|| panic!("{ns} in {out}"));
        // NAME is padded to the longest name (15) plus 3 spaces.
        assert!(row.starts_with(&format!("{ns:<18}Active   ")), "{row:?}");
    }
}

#[test]
fn apply_twice_is_unchanged_and_a_change_is_configured() {
    let server = TestServer::start();
    let file = manifest("deployment.yaml");
    let file = file.to_str().unwrap();
    assert_eq!(ok(&server, &["apply", "-f", file]), "deployment.apps/web created\n");
    assert_eq!(ok(&server, &["apply", "-f", file]), "deployment.apps/web unchanged\n");

    let changed = server.data_dir.path().join("web-3.yaml");
    let text = std::fs::read_to_string(file).unwrap().replace("replicas: 2", "replicas: 3");
    std::fs::write(&changed, text).unwrap();
    let changed = changed.to_str().unwrap();
    assert_eq!(ok(&server, &["apply", "-f", changed]), "deployment.apps/web configured\n");
    assert_eq!(ok(&server, &["apply", "-f", changed]), "deployment.apps/web unchanged\n");

    let json: serde_json::Value = serde_json::from_str(&ok(&server, &["get", "deploy", "web", "-o", "json"])).unwrap();
    assert_eq!(json["spec"]["replicas"], 3);
    let last = json["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].as_str().unwrap();
    assert!(last.contains("\"replicas\":3"), "{last}");
    assert!(json["metadata"].get("managedFields").is_none(), "managedFields hidden as kubectl does");
}

#[test]
fn apply_get_describe_delete_a_deployment() {
    let server = TestServer::start();
    ok(&server, &["apply", "-f", manifest("deployment.yaml").to_str().unwrap()]);

    let table = ok(&server, &["get", "deployments"]);
    assert!(table.starts_with("NAME   READY   UP-TO-DATE   AVAILABLE   AGE\nweb    "), "{table}");
    let wide = ok(&server, &["get", "deploy/web", "-o", "wide"]);
    assert!(wide.lines().next().unwrap().contains("CONTAINERS   IMAGES"), "{wide}");
    assert_eq!(ok(&server, &["get", "deploy", "-o", "name"]), "deployment.apps/web\n");
    let yaml = ok(&server, &["get", "deploy", "web", "-o", "yaml"]);
    assert!(yaml.starts_with("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n"), "{yaml}");
    assert!(yaml.contains("\n  replicas: 2\n"), "{yaml}");

    let described = ok(&server, &["describe", "deployment", "web"]);
    assert!(described.starts_with("Name:                   web\nNamespace:              default\n"), "{described}");
    assert!(described.contains("\nReplicas:               2 desired | "), "{described}");
    assert!(described.contains("\nPod Template:\n  Labels:  app=web\n  Containers:\n   web:\n"), "{described}");

    assert_eq!(ok(&server, &["delete", "deployment", "web"]), "deployment.apps \"web\" deleted\n");
    let err = fails(&server, &["get", "deployment", "web"]);
    assert_eq!(err, "Error from server (NotFound): deployments.apps \"web\" not found\n");
}

#[test]
fn services_of_each_type_pod_and_configmap() {
    let server = TestServer::start();
    let out = ok(
        &server,
        &[
            "apply",
            "-f",
            manifest("services.yaml").to_str().unwrap(),
            "-f",
            manifest("pod.yaml").to_str().unwrap(),
            "-f",
            manifest("configmap.yaml").to_str().unwrap(),
        ],
    );
    assert_eq!(
        out,
        "service/web-clusterip created\nservice/web-nodeport created\nservice/web-lb created\n\
         service/web-headless created\nservice/web-external created\npod/sleeper created\nconfigmap/settings created\n"
    );

    let svcs = ok(&server, &["get", "svc"]);
    let header = svcs.lines().next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    );
    for (name, ty) in [
        ("web-clusterip", "ClusterIP"),
        ("web-nodeport", "NodePort"),
        ("web-lb", "LoadBalancer"),
        ("web-headless", "ClusterIP"),
        ("web-external", "ExternalName"),
    ] {
        let row = svcs.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name}: {svcs}"));
        assert_eq!(row.split_whitespace().nth(1), Some(ty), "{row}");
    }
    let headless = svcs.lines().find(|l| l.starts_with("web-headless ")).unwrap();
    assert_eq!(headless.split_whitespace().nth(2), Some("None"), "{headless}");

    let nodeport = ok(&server, &["describe", "svc", "web-nodeport"]);
    assert!(nodeport.contains("\nType:                     NodePort\n"), "{nodeport}");
    assert!(nodeport.contains("\nPort:                     http  80/TCP\n"), "{nodeport}");
    let external = ok(&server, &["describe", "service/web-external"]);
    assert!(external.contains("External Name:") && external.contains("example.invalid"), "{external}");

    let pod = ok(&server, &["describe", "pod", "sleeper"]);
    let head: Vec<Vec<&str>> = pod.lines().take(2).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(head, [vec!["Name:", "sleeper"], vec!["Namespace:", "default"]], "{pod}");
    assert!(pod.contains("\nContainers:\n  sleep:\n    Image:      busybox:stable\n"), "{pod}");
    assert!(pod.contains("GREETING:  hello"), "{pod}");

    let cm = ok(&server, &["get", "configmap", "settings", "-o", "yaml"]);
    assert!(cm.starts_with("apiVersion: v1\ndata:\n  mode: fast\n  retries: \"3\"\nkind: ConfigMap\n"), "{cm}");
    let described = ok(&server, &["describe", "cm", "settings"]);
    assert!(
        described.contains("\nData\n====\nmode:\n----\nfast\n\nretries:\n----\n3\n\n\nBinaryData\n====\n\n"),
        "{described}"
    );

    let all = ok(&server, &["get", "all"]);
    assert!(all.contains("\npod/sleeper "), "{all}");
    assert!(all.contains("service/web-lb "), "{all}");
    assert!(all.contains("\n\nNAME "), "tables of different types are separated by a blank line: {all}");

    let out = ok(&server, &["delete", "-f", manifest("services.yaml").to_str().unwrap()]);
    assert_eq!(out.lines().count(), 5, "{out}");
    assert!(out.starts_with("service \"web-clusterip\" deleted\n"), "{out}");
}

#[test]
fn invalid_manifest_prints_the_is_invalid_lines() {
    let server = TestServer::start();
    let err = fails(&server, &["apply", "-f", manifest("invalid-deployment.yaml").to_str().unwrap()]);
    assert!(err.starts_with("The Deployment \"broken\" is invalid: "), "{err}");
    assert!(err.contains("spec.replicas: Invalid value: -1"), "{err}");
}

#[test]
fn malformed_yaml_names_the_file_and_line() {
    let server = TestServer::start();
    let file = manifest("malformed.yaml");
    let err = fails(&server, &["apply", "-f", file.to_str().unwrap()]);
    let want = format!("error: error parsing {}: line 7 column", file.display());
    assert!(err.starts_with(&want), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn unknown_types_and_missing_objects_fail_like_kubectl() {
    let server = TestServer::start();
    assert_eq!(
        fails(&server, &["get", "nosuchthing"]),
        "error: the server doesn't have a resource type \"nosuchthing\"\n"
    );
    assert_eq!(fails(&server, &["get", "pod", "nope"]), "Error from server (NotFound): pods \"nope\" not found\n");
    let (success, stdout, stderr) = run(&server, &["get", "pods"]);
    assert!(success);
    assert_eq!(stdout, "");
    assert_eq!(stderr, "No resources found in default namespace.\n");
}

#[test]
fn server_side_apply_and_create_by_name() {
    let server = TestServer::start();
    let out = ok(&server, &["apply", "--server-side", "-f", manifest("configmap.yaml").to_str().unwrap()]);
    assert_eq!(out, "configmap/settings serverside-applied\n");
    assert_eq!(ok(&server, &["create", "namespace", "team-a"]), "namespace/team-a created\n");
    let err = fails(&server, &["create", "namespace", "team-a"]);
    assert_eq!(err, "Error from server (AlreadyExists): namespaces \"team-a\" already exists\n");
    let out = ok(
        &server,
        &["-n", "team-a", "create", "deployment", "api", "--image=nginx:1.25", "--replicas", "2", "--port", "80"],
    );
    assert_eq!(out, "deployment.apps/api created\n");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&server, &["-n", "team-a", "get", "deploy", "api", "-o", "json"])).unwrap();
    assert_eq!(json["spec"]["replicas"], 2);
    assert_eq!(json["spec"]["template"]["spec"]["containers"][0]["name"], "nginx");
    assert_eq!(json["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"], 80);
    let all = ok(&server, &["get", "deploy", "-A"]);
    assert!(all.starts_with("NAMESPACE   NAME   READY"), "{all}");
    assert!(all.contains("\nteam-a      api    "), "{all}");
}

#[test]
fn api_resources_version_and_cluster_info() {
    let server = TestServer::start();
    let out = ok(&server, &["api-resources"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]);
    let deploy = out.lines().find(|l| l.starts_with("deployments ")).expect("deployments listed");
    assert_eq!(
        deploy.split_whitespace().collect::<Vec<_>>(),
        ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    );
    // Core group first, then groups in order.
    let lines: Vec<&str> = out.lines().collect();
    let first_apps = lines.iter().position(|l| l.contains(" apps/v1 ")).unwrap();
    let last_core = lines.iter().rposition(|l| l.split_whitespace().any(|c| c == "v1")).unwrap();
    assert!(last_core < first_apps, "{out}");

    let version = ok(&server, &["version"]);
    let lines: Vec<&str> = version.lines().collect();
    assert!(lines[0].starts_with("Client Version: v"), "{version}");
    assert!(lines[1].starts_with("Server Version: v1."), "{version}");

    let info = ok(&server, &["cluster-info"]);
    assert!(info.starts_with(&format!("Kubernetes control plane is running at {}\n", server.url)), "{info}");
}

#[test]
fn get_watch_prints_rows_as_they_come() {
    let server = TestServer::start();
    let mut child = Command::new(common::berth_bin())
        .args(["--kubeconfig", server.kubeconfig.to_str().unwrap(), "get", "configmaps", "-w", "--output-watch-events"])
        .env_remove("KUBECONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn get -w");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Whether the watch lists it first or sees it created, the row reads ADDED.
    ok(&server, &["create", "-f", manifest("configmap.yaml").to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let done = line.starts_with("ADDED ") && line.contains(" settings ");
                seen.push(line);
                if done {
                    break;
                }
            }
            Err(_) => continue,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.iter().any(|l| l.starts_with("ADDED      settings ")), "{seen:?}");
}

#[test]
fn write_kubeconfig_copies_the_admin_kubeconfig_with_mode() {
    let out_dir = tempfile::tempdir().unwrap();
    let target = out_dir.path().join("nested").join("admin.yaml");
    let server =
        TestServer::start_with(&["--write-kubeconfig", target.to_str().unwrap(), "--write-kubeconfig-mode", "0640"]);
    assert_eq!(std::fs::read(&target).unwrap(), std::fs::read(&server.kubeconfig).unwrap());
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o640);
    let out = Command::new(common::berth_bin())
        .args(["--kubeconfig", target.to_str().unwrap(), "get", "ns", "default", "-o", "name"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "namespace/default\n");
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let mut server = TestServer::start();
    let status = server.stop().expect("server exited");
    assert!(status.success(), "{status:?}\n{}", server.log());
}

#[test]
fn server_writes_home_kubeconfig_only_when_absent() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join(".kube").join("config");
    {
        let server = TestServer::start_opts(&[], &[("HOME", home.path())], false);
        assert_eq!(std::fs::read(&config).unwrap(), std::fs::read(&server.kubeconfig).unwrap());
        assert_eq!(std::fs::metadata(&config).unwrap().permissions().mode() & 0o777, 0o600);
    }
    std::fs::write(&config, "# mine\n").unwrap();
    let _server = TestServer::start_opts(&[], &[("HOME", home.path())], false);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "# mine\n", "an existing ~/.kube/config is kept");
}

#[test]
fn kubeconfig_env_skips_missing_files_and_context_flag_selects() {
    let server = TestServer::start();
    let missing = server.data_dir.path().join("missing.yaml");
    let env = std::env::join_paths([missing.as_path(), server.kubeconfig.as_path()]).unwrap();
    let out = Command::new(common::berth_bin())
        .args(["get", "ns", "kube-system", "-o", "name"])
        .env("KUBECONFIG", &env)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "namespace/kube-system\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = Command::new(common::berth_bin())
        .args(["--context", "no-such-context", "get", "ns"])
        .env("KUBECONFIG", &env)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: ") && err.contains("no-such-context"), "{err}");
}

#[test]
fn apply_from_stdin_then_delete_by_label_and_all() {
    let server = TestServer::start();
    let docs = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\n  labels: {tier: a}\n---\n\
                apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: two\n  labels: {tier: b}\n";
    let out = server.berth().args(["apply", "-f", "-"]).write_stdin(docs).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "configmap/one created\nconfigmap/two created\n");

    assert_eq!(ok(&server, &["delete", "cm", "-l", "tier=a"]), "configmap \"one\" deleted\n");
    assert_eq!(ok(&server, &["get", "cm", "-l", "tier", "-o", "name"]), "configmap/two\n");
    assert_eq!(fails(&server, &["delete", "cm"]), "error: resource(s) were provided, but no name was specified\n");
    let out = ok(&server, &["delete", "cm", "--all", "--cascade=background"]);
    assert!(out.contains("configmap \"two\" deleted\n"), "{out}");
    assert_eq!(ok(&server, &["get", "cm", "-l", "tier", "-o", "name"]), "");
    assert_eq!(ok(&server, &["delete", "cm", "gone", "--ignore-not-found"]), "");
    assert_eq!(
        fails(&server, &["delete", "cm", "gone"]),
        "Error from server (NotFound): configmaps \"gone\" not found\n"
    );
}

#[test]
fn delete_wait_gives_up_after_timeout_when_a_finalizer_holds_the_object() {
    let server = TestServer::start();
    let file = server.data_dir.path().join("held.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\n",
    )
    .unwrap();
    ok(&server, &["apply", "-f", file.to_str().unwrap()]);
    let (success, stdout, stderr) = run(&server, &["delete", "cm", "held", "--timeout=1s"]);
    assert!(!success);
    assert_eq!(stdout, "configmap \"held\" deleted\n");
    assert_eq!(stderr, "error: timed out waiting for the condition on configmaps/held\n");
    assert_eq!(ok(&server, &["delete", "cm", "held", "--wait=false"]), "configmap \"held\" deleted\n");
}

#[test]
fn namespace_flag_must_match_the_manifest() {
    let server = TestServer::start();
    let file = server.data_dir.path().join("other-ns.yaml");
    std::fs::write(&file, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: kube-public\n").unwrap();
    let err = fails(&server, &["-n", "default", "apply", "-f", file.to_str().unwrap()]);
    assert_eq!(
        err,
        "error: the namespace from the provided object \"kube-public\" does not match the namespace \"default\". \
         You must pass '--namespace=kube-public' to perform this operation.\n"
    );
    assert_eq!(ok(&server, &["apply", "-f", file.to_str().unwrap()]), "configmap/x created\n");
    assert_eq!(ok(&server, &["-n", "kube-public", "get", "cm", "x", "-o", "name"]), "configmap/x\n");
}
