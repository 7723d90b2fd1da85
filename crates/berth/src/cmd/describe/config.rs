//! Namespaces, ConfigMaps and Secrets (kubectl's NamespaceDescriber, ConfigMapDescriber and
//! SecretDescriber).

use serde_json::Value;

use super::Related;
use super::writer::*;

/// `quotas`/`limit_ranges`: None when they could not be listed (kubectl then omits the section).
pub fn describe_namespace(ns: &Value, quotas: Option<&[Value]>, limit_ranges: Option<&[Value]>) -> String {
    let mut w = Writer::default();
    w.w(0, &format!("Name:\t{}\n", s(ns, "/metadata/name")));
    labels_multiline(&mut w, "Labels", ns.pointer("/metadata/labels"));
    annotations_multiline(&mut w, "Annotations", ns.pointer("/metadata/annotations"));
    w.w(0, &format!("Status:\t{}\n", s(ns, "/status/phase")));
    if let Some(quotas) = quotas {
        w.w(0, "\n");
        if quotas.is_empty() {
            w.w(0, "No resource quota.\n");
        } else {
            for q in quotas {
                w.w(0, &format!("Resource Quotas\n  Name:\t{}\n", s(q, "/metadata/name")));
                w.w(1, "Resource\tUsed\tHard\n");
                w.w(1, "--------\t---\t---\n");
                if let Some(Value::Object(hard)) = q.pointer("/status/hard").or_else(|| q.pointer("/spec/hard")) {
                    let mut keys: Vec<&String> = hard.keys().collect();
                    keys.sort();
                    for k in keys {
                        let used = q
                            .pointer("/status/used")
                            .and_then(|u| u.get(k.as_str()))
                            .and_then(Value::as_str)
                            .unwrap_or("0");
                        w.w(1, &format!("{k}\t{used}\t{}\n", hard[k].as_str().unwrap_or_default()));
                    }
                }
            }
        }
    }
    if let Some(limit_ranges) = limit_ranges {
        w.w(0, "\n");
        if limit_ranges.is_empty() {
            w.w(0, "No LimitRange resource.\n");
        } else {
            for lr in limit_ranges {
                w.w(0, &format!("Resource Limits\n  Name:\t{}\n", s(lr, "/metadata/name")));
            }
        }
    }
    w.finish()
}

pub fn describe_config_map(cm: &Value, rel: &Related) -> String {
    let mut w = Writer::default();
    w.w(0, &format!("Name:\t{}\n", s(cm, "/metadata/name")));
    w.w(0, &format!("Namespace:\t{}\n", s(cm, "/metadata/namespace")));
    labels_multiline(&mut w, "Labels", cm.pointer("/metadata/labels"));
    annotations_multiline(&mut w, "Annotations", cm.pointer("/metadata/annotations"));
    w.w(0, "\nData\n====\n");
    if let Some(Value::Object(data)) = cm.get("data") {
        let mut keys: Vec<&String> = data.keys().collect();
        keys.sort();
        for k in keys {
            w.w(0, &format!("{k}:\n----\n"));
            w.w(0, &format!("{}\n", data[k].as_str().unwrap_or_default()));
            w.w(0, "\n");
        }
    }
    w.w(0, "\nBinaryData\n====\n");
    if let Some(Value::Object(data)) = cm.get("binaryData") {
        let mut keys: Vec<&String> = data.keys().collect();
        keys.sort();
        for k in keys {
            // base64 length -> decoded length
            w.w(0, &format!("{k}: {} bytes\n", base64_len(data[k].as_str().unwrap_or_default())));
        }
    }
    w.w(0, "\n");
    if let Some(events) = &rel.events {
        describe_events(&mut w, events);
    }
    w.finish()
}

/// Decoded length of a base64 value.
pub(super) fn base64_len(b64: &str) -> usize {
    let trimmed = b64.trim_end_matches('=');
    trimmed.len() * 3 / 4
}

pub fn describe_secret(secret: &Value) -> String {
    let mut w = Writer::default();
    w.w(0, &format!("Name:\t{}\n", s(secret, "/metadata/name")));
    w.w(0, &format!("Namespace:\t{}\n", s(secret, "/metadata/namespace")));
    labels_multiline(&mut w, "Labels", secret.pointer("/metadata/labels"));
    annotations_multiline(&mut w, "Annotations", secret.pointer("/metadata/annotations"));
    let ty = s(secret, "/type");
    w.w(0, &format!("\nType:\t{ty}\n"));
    w.w(0, "\nData\n====\n");
    if let Some(Value::Object(data)) = secret.get("data") {
        let mut keys: Vec<&String> = data.keys().collect();
        keys.sort();
        for k in keys {
            let b64 = data[k].as_str().unwrap_or_default();
            if k == "token" && ty == "kubernetes.io/service-account-token" {
                use base64::Engine;
                let token = base64::engine::general_purpose::STANDARD.decode(b64).unwrap_or_default();
                w.w(0, &format!("{k}:\t{}\n", String::from_utf8_lossy(&token)));
            } else {
                w.w(0, &format!("{k}:\t{} bytes\n", base64_len(b64)));
            }
        }
    }
    w.finish()
}
