//! Pods and pod templates: containers (ports, command, state, resources, environment, mounts),
//! volumes, QoS class, as kubectl's describePod and DescribePodTemplate print them.

use serde_json::Value;

use super::Related;
use super::writer::*;

pub(super) fn ports_string(ports: &[Value], field: &str) -> String {
    ports
        .iter()
        .map(|p| {
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            format!("{}/{proto}", p.get(field).and_then(Value::as_i64).unwrap_or(0))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn describe_state(w: &mut Writer, title: &str, state: &Value) {
    if let Some(running) = state.get("running") {
        w.w(2, &format!("{title}:\tRunning\n"));
        w.w(3, &format!("Started:\t{}\n", rfc1123z(s(running, "/startedAt"))));
    } else if let Some(term) = state.get("terminated") {
        w.w(2, &format!("{title}:\tTerminated\n"));
        if !s(term, "/reason").is_empty() {
            w.w(3, &format!("Reason:\t{}\n", s(term, "/reason")));
        }
        if !s(term, "/message").is_empty() {
            w.w(3, &format!("Message:\t{}\n", s(term, "/message")));
        }
        w.w(3, &format!("Exit Code:\t{}\n", i(term, "/exitCode")));
        if i(term, "/signal") > 0 {
            w.w(3, &format!("Signal:\t{}\n", i(term, "/signal")));
        }
        w.w(3, &format!("Started:\t{}\n", rfc1123z(s(term, "/startedAt"))));
        w.w(3, &format!("Finished:\t{}\n", rfc1123z(s(term, "/finishedAt"))));
    } else {
        w.w(2, &format!("{title}:\tWaiting\n"));
        if let Some(reason) = state.pointer("/waiting/reason").and_then(Value::as_str) {
            w.w(3, &format!("Reason:\t{reason}\n"));
        }
    }
}

pub(super) fn describe_containers(
    w: &mut Writer,
    label: &str,
    containers: &[Value],
    statuses: &[Value],
    space: &str,
    pod: Option<&Value>,
) {
    w.w(0, &format!("{space}{label}:"));
    if containers.is_empty() {
        w.w(0, " <none>");
    }
    w.w(0, "\n");
    let name_indent = if space.is_empty() { "" } else { " " };
    for c in containers {
        let name = s(c, "/name");
        let status = statuses.iter().find(|st| s(st, "/name") == name);
        w.w(1, &format!("{name_indent}{name}:\n"));
        if let Some(st) = status {
            w.w(2, &format!("Container ID:\t{}\n", s(st, "/containerID")));
        }
        w.w(2, &format!("Image:\t{}\n", s(c, "/image")));
        if let Some(st) = status {
            w.w(2, &format!("Image ID:\t{}\n", s(st, "/imageID")));
        }
        let ports = arr(c, "/ports");
        let port = ports_string(ports, "containerPort");
        let host = ports_string(ports, "hostPort");
        let or_none = |x: String| if x.is_empty() { "<none>".to_string() } else { x };
        if port.contains(',') {
            w.w(2, &format!("Ports:\t{port}\n"));
        } else {
            w.w(2, &format!("Port:\t{}\n", or_none(port)));
        }
        if host.contains(',') {
            w.w(2, &format!("Host Ports:\t{host}\n"));
        } else {
            w.w(2, &format!("Host Port:\t{}\n", or_none(host)));
        }
        for (field, title) in [("command", "Command"), ("args", "Args")] {
            let items = arr(c, &format!("/{field}"));
            if !items.is_empty() {
                w.w(2, &format!("{title}:\n"));
                for item in items {
                    for line in item.as_str().unwrap_or_default().split('\n') {
                        w.w(3, &format!("{line}\n"));
                    }
                }
            }
        }
        if let Some(st) = status {
            describe_state(w, "State", st.get("state").unwrap_or(&Value::Null));
            if st.pointer("/lastState/terminated").is_some() {
                describe_state(w, "Last State", &st["lastState"]);
            }
            let ready = if st.get("ready").and_then(Value::as_bool) == Some(true) { "True" } else { "False" };
            w.w(2, &format!("Ready:\t{ready}\n"));
            w.w(2, &format!("Restart Count:\t{}\n", i(st, "/restartCount")));
        }
        for (field, title) in [("limits", "Limits"), ("requests", "Requests")] {
            if let Some(Value::Object(m)) =
                c.pointer(&format!("/resources/{field}")).filter(|v| v.as_object().is_some_and(|m| !m.is_empty()))
            {
                w.w(2, &format!("{title}:\n"));
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                for k in keys {
                    let v = m[k].as_str().map(str::to_string).unwrap_or_else(|| m[k].to_string());
                    w.w(3, &format!("{k}:\t{v}\n"));
                }
            }
        }
        let env = arr(c, "/env");
        w.w(2, &format!("Environment:{}\n", if env.is_empty() { "\t<none>" } else { "" }));
        for e in env {
            let name = s(e, "/name");
            if let Some(from) = e.get("valueFrom") {
                let optional = |r: &Value| r.get("optional").and_then(Value::as_bool).unwrap_or(false);
                let how = if let Some(r) = from.get("configMapKeyRef") {
                    format!(
                        "<set to the key '{}' of config map '{}'>\tOptional: {}",
                        s(r, "/key"),
                        s(r, "/name"),
                        optional(r)
                    )
                } else if let Some(r) = from.get("secretKeyRef") {
                    format!(
                        "<set to the key '{}' in secret '{}'>\tOptional: {}",
                        s(r, "/key"),
                        s(r, "/name"),
                        optional(r)
                    )
                } else if let Some(r) = from.get("fieldRef") {
                    let path = s(r, "/fieldPath");
                    let resolved = match (pod, path) {
                        (Some(p), "metadata.name") => s(p, "/metadata/name"),
                        (Some(p), "metadata.namespace") => s(p, "/metadata/namespace"),
                        (Some(p), "spec.nodeName") => s(p, "/spec/nodeName"),
                        (Some(p), "spec.serviceAccountName") => s(p, "/spec/serviceAccountName"),
                        (Some(p), "status.podIP") => s(p, "/status/podIP"),
                        (Some(p), "status.hostIP") => s(p, "/status/hostIP"),
                        _ => "",
                    };
                    format!("{resolved} ({}:{path})", s(r, "/apiVersion"))
                } else if let Some(r) = from.get("resourceFieldRef") {
                    format!(" ({})", s(r, "/resource"))
                } else {
                    String::new()
                };
                w.w(3, &format!("{name}:\t{how}\n"));
                continue;
            }
            for (n, line) in s(e, "/value").split('\n').enumerate() {
                if n == 0 {
                    w.w(3, &format!("{name}:\t{line}\n"));
                } else {
                    w.w(3, &format!("\t{line}\n"));
                }
            }
        }
        let mut mounts: Vec<&Value> = arr(c, "/volumeMounts").iter().collect();
        w.w(2, &format!("Mounts:{}\n", if mounts.is_empty() { "\t<none>" } else { "" }));
        mounts.sort_by_key(|m| s(m, "/mountPath").to_string());
        for m in mounts {
            let mut flags =
                vec![if m.get("readOnly").and_then(Value::as_bool) == Some(true) { "ro" } else { "rw" }.to_string()];
            if !s(m, "/subPath").is_empty() {
                flags.push(format!("path={:?}", s(m, "/subPath")));
            }
            w.w(3, &format!("{} from {} ({})\n", s(m, "/mountPath"), s(m, "/name"), flags.join(",")));
        }
    }
}

pub(super) fn describe_volumes(w: &mut Writer, volumes: &[Value], space: &str) {
    if volumes.is_empty() {
        w.w(0, &format!("{space}Volumes:\t<none>\n"));
        return;
    }
    w.w(0, &format!("{space}Volumes:\n"));
    let name_indent = if space.is_empty() { "" } else { " " };
    for v in volumes {
        w.w(1, &format!("{name_indent}{}:\n", s(v, "/name")));
        if let Some(cm) = v.get("configMap") {
            w.w(2, "Type:\tConfigMap (a volume populated by a ConfigMap)\n");
            w.w(2, &format!("Name:\t{}\n", s(cm, "/name")));
            w.w(2, &format!("Optional:\t{}\n", cm.get("optional").and_then(Value::as_bool).unwrap_or(false)));
        } else if let Some(sec) = v.get("secret") {
            w.w(2, "Type:\tSecret (a volume populated by a Secret)\n");
            w.w(2, &format!("SecretName:\t{}\n", s(sec, "/secretName")));
            w.w(2, &format!("Optional:\t{}\n", sec.get("optional").and_then(Value::as_bool).unwrap_or(false)));
        } else if let Some(ed) = v.get("emptyDir") {
            w.w(2, "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n");
            w.w(2, &format!("Medium:\t{}\n", s(ed, "/medium")));
            let limit = ed.get("sizeLimit").and_then(Value::as_str).unwrap_or("<unset>");
            w.w(2, &format!("SizeLimit:\t{limit}\n"));
        } else if let Some(hp) = v.get("hostPath") {
            w.w(2, "Type:\tHostPath (bare host directory volume)\n");
            w.w(2, &format!("Path:\t{}\n", s(hp, "/path")));
            w.w(2, &format!("HostPathType:\t{}\n", s(hp, "/type")));
        } else if let Some(pvc) = v.get("persistentVolumeClaim") {
            w.w(2, "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n");
            w.w(2, &format!("ClaimName:\t{}\n", s(pvc, "/claimName")));
            w.w(2, &format!("ReadOnly:\t{}\n", pvc.get("readOnly").and_then(Value::as_bool).unwrap_or(false)));
        } else if v.get("projected").is_some() {
            w.w(2, "Type:\tProjected (a volume that contains injected data from multiple sources)\n");
        } else {
            w.w(2, "<unknown>\n");
        }
    }
}

pub(super) fn describe_pod_template(w: &mut Writer, template: &Value) {
    w.w(0, "Pod Template:\n");
    labels_multiline(w, "  Labels", template.pointer("/metadata/labels"));
    if template.pointer("/metadata/annotations").and_then(Value::as_object).is_some_and(|m| !m.is_empty()) {
        annotations_multiline(w, "  Annotations", template.pointer("/metadata/annotations"));
    }
    let spec = template.get("spec").unwrap_or(&Value::Null);
    if !s(spec, "/serviceAccountName").is_empty() {
        w.w(1, &format!("Service Account:\t{}\n", s(spec, "/serviceAccountName")));
    }
    if !arr(spec, "/initContainers").is_empty() {
        describe_containers(w, "Init Containers", arr(spec, "/initContainers"), &[], "  ", None);
    }
    describe_containers(w, "Containers", arr(spec, "/containers"), &[], "  ", None);
    describe_volumes(w, arr(spec, "/volumes"), "  ");
    if !s(spec, "/priorityClassName").is_empty() {
        w.w(1, &format!("Priority Class Name:\t{}\n", s(spec, "/priorityClassName")));
    }
    labels_multiline(w, "  Node-Selectors", spec.get("nodeSelector"));
    tolerations_multiline(w, "  Tolerations", arr(spec, "/tolerations"));
}

pub fn describe_pod(pod: &Value, rel: &Related) -> String {
    let mut w = Writer::default();
    w.w(0, &format!("Name:\t{}\n", s(pod, "/metadata/name")));
    w.w(0, &format!("Namespace:\t{}\n", s(pod, "/metadata/namespace")));
    if let Some(p) = pod.pointer("/spec/priority").and_then(Value::as_i64) {
        w.w(0, &format!("Priority:\t{p}\n"));
    }
    if !s(pod, "/spec/priorityClassName").is_empty() {
        w.w(0, &format!("Priority Class Name:\t{}\n", s(pod, "/spec/priorityClassName")));
    }
    if !s(pod, "/spec/serviceAccountName").is_empty() {
        w.w(0, &format!("Service Account:\t{}\n", s(pod, "/spec/serviceAccountName")));
    }
    let node = s(pod, "/spec/nodeName");
    if node.is_empty() {
        w.w(0, "Node:\t<none>\n");
    } else {
        w.w(0, &format!("Node:\t{node}/{}\n", s(pod, "/status/hostIP")));
    }
    if !s(pod, "/status/startTime").is_empty() {
        w.w(0, &format!("Start Time:\t{}\n", rfc1123z(s(pod, "/status/startTime"))));
    }
    labels_multiline(&mut w, "Labels", pod.pointer("/metadata/labels"));
    annotations_multiline(&mut w, "Annotations", pod.pointer("/metadata/annotations"));
    let phase = s(pod, "/status/phase");
    let deletion = s(pod, "/metadata/deletionTimestamp");
    if !deletion.is_empty() && phase != "Failed" && phase != "Succeeded" {
        // kubectl 1.33 prints the time since the deletion timestamp here.
        w.w(0, &format!("Status:\tTerminating (lasts {})\n", since(deletion)));
        w.w(0, &format!("Termination Grace Period:\t{}s\n", i(pod, "/metadata/deletionGracePeriodSeconds")));
    } else {
        w.w(0, &format!("Status:\t{phase}\n"));
    }
    if !s(pod, "/status/reason").is_empty() {
        w.w(0, &format!("Reason:\t{}\n", s(pod, "/status/reason")));
    }
    if !s(pod, "/status/message").is_empty() {
        w.w(0, &format!("Message:\t{}\n", s(pod, "/status/message")));
    }
    w.w(0, &format!("IP:\t{}\n", s(pod, "/status/podIP")));
    let ips = arr(pod, "/status/podIPs");
    if ips.is_empty() {
        w.w(0, "IPs:\t<none>\n");
    } else {
        w.w(0, "IPs:\n");
        for ip in ips {
            w.w(1, &format!("IP:\t{}\n", s(ip, "/ip")));
        }
    }
    if let Some(c) = controller_of(pod) {
        w.w(0, &format!("Controlled By:\t{c}\n"));
    }
    if !arr(pod, "/spec/initContainers").is_empty() {
        describe_containers(
            &mut w,
            "Init Containers",
            arr(pod, "/spec/initContainers"),
            arr(pod, "/status/initContainerStatuses"),
            "",
            Some(pod),
        );
    }
    describe_containers(
        &mut w,
        "Containers",
        arr(pod, "/spec/containers"),
        arr(pod, "/status/containerStatuses"),
        "",
        Some(pod),
    );
    describe_conditions(&mut w, arr(pod, "/status/conditions"), false);
    describe_volumes(&mut w, arr(pod, "/spec/volumes"), "");
    let qos = s(pod, "/status/qosClass");
    w.w(0, &format!("QoS Class:\t{}\n", if qos.is_empty() { qos_class(pod) } else { qos.to_string() }));
    labels_multiline(&mut w, "Node-Selectors", pod.pointer("/spec/nodeSelector"));
    tolerations_multiline(&mut w, "Tolerations", arr(pod, "/spec/tolerations"));
    if let Some(events) = &rel.events {
        describe_events(&mut w, events);
    }
    w.finish()
}

/// The QoS class when the server has not recorded one.
pub(super) fn qos_class(pod: &Value) -> String {
    berth_api::qos::pod_qos(&pod["spec"]).to_string()
}
