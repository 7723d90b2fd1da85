//! Tables for the other API groups: networking.k8s.io, discovery.k8s.io, coordination.k8s.io,
//! storage.k8s.io, scheduling.k8s.io, rbac.authorization.k8s.io, certificates.k8s.io,
//! node.k8s.io and admissionregistration.k8s.io. Roles, ClusterRoles and
//! CustomResourceDefinitions have no printer upstream and get the default table.

use jiff::Timestamp;
use k8s_openapi::api::certificates::v1 as certificates;
use k8s_openapi::api::coordination::v1 as coordination;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::api::networking::v1 as networking;
use k8s_openapi::api::rbac::v1 as rbac;
use k8s_openapi::api::scheduling::v1 as scheduling;
use k8s_openapi::api::storage::v1 as storage;
use serde_json::Value;

use super::core::load_balancer_ingress;
use super::{
    ColumnDefinition, Printer, age, age_column, arr, col, doc, format_label_selector, human_duration, int,
    list_with_more, name, name_column, s, string, wide,
};

pub(crate) static PRINTERS: &[Printer] = &[
    Printer::new("networking.k8s.io", "Ingress", ingress_columns, ingress_row),
    Printer::new("networking.k8s.io", "IngressClass", ingress_class_columns, ingress_class_row),
    Printer::new("networking.k8s.io", "NetworkPolicy", network_policy_columns, network_policy_row),
    Printer::new("discovery.k8s.io", "EndpointSlice", endpoint_slice_columns, endpoint_slice_row),
    Printer::new("coordination.k8s.io", "Lease", lease_columns, lease_row),
    Printer::new("storage.k8s.io", "StorageClass", storage_class_columns, storage_class_row),
    Printer::new("scheduling.k8s.io", "PriorityClass", priority_class_columns, priority_class_row),
    Printer::new("rbac.authorization.k8s.io", "RoleBinding", role_binding_columns, binding_row),
    Printer::new("rbac.authorization.k8s.io", "ClusterRoleBinding", cluster_role_binding_columns, binding_row),
    Printer::new("certificates.k8s.io", "CertificateSigningRequest", csr_columns, csr_row),
    Printer::new("node.k8s.io", "RuntimeClass", runtime_class_columns, runtime_class_row),
    Printer::new("admissionregistration.k8s.io", "MutatingWebhookConfiguration", webhook_columns, webhook_row),
    Printer::new("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", webhook_columns, webhook_row),
];

// --- networking.k8s.io -----------------------------------------------------------------------

fn ingress_columns() -> Vec<ColumnDefinition> {
    vec![
        name_column(),
        col(
            "Class",
            "string",
            "The name of the IngressClass resource that should be used for additional configuration",
        ),
        col("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule"),
        col("Address", "string", "Address is a list containing ingress points for the load-balancer"),
        col("Ports", "string", "Ports of TLS configurations that open"),
        age_column(),
    ]
}

/// `formatHosts`: up to three hosts, `*` when no rule names one.
fn format_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if list.len() == MAX {
            more = true;
        }
        if !more && !s(&rule["host"]).is_empty() {
            list.push(s(&rule["host"]));
        }
    }
    if list.is_empty() {
        return "*".into();
    }
    let ret = list.join(",");
    if more { format!("{ret} + {} more...", rules.len() - MAX) } else { ret }
}

fn ingress_row(ing: &Value, now: Timestamp) -> Vec<Value> {
    let spec = &ing["spec"];
    let class =
        if spec["ingressClassName"].is_string() { s(&spec["ingressClassName"]).to_string() } else { "<none>".into() };
    let ports = if arr(&spec["tls"]).is_empty() { "80" } else { "80, 443" };
    vec![
        name(ing),
        Value::String(class),
        Value::String(format_hosts(arr(&spec["rules"]))),
        Value::String(load_balancer_ingress(&ing["status"]["loadBalancer"]["ingress"])),
        Value::String(ports.into()),
        age(ing, now),
    ]
}

fn ingress_class_columns() -> Vec<ColumnDefinition> {
    vec![
        name_column(),
        col("Controller", "string", "Controller that is responsible for handling this class"),
        col("Parameters", "string", "A reference to a resource with additional parameters"),
        age_column(),
    ]
}

fn ingress_class_row(ic: &Value, now: Timestamp) -> Vec<Value> {
    let p = &ic["spec"]["parameters"];
    let parameters = if p.is_object() {
        let mut out = s(&p["kind"]).to_string();
        if p["apiGroup"].is_string() {
            out = format!("{out}.{}", s(&p["apiGroup"]));
        }
        format!("{out}/{}", s(&p["name"]))
    } else {
        "<none>".into()
    };
    vec![name(ic), string(&ic["spec"]["controller"]), Value::String(parameters), age(ic, now)]
}

fn network_policy_columns() -> Vec<ColumnDefinition> {
    vec![
        name_column(),
        col("Pod-Selector", "string", doc::<networking::NetworkPolicySpec>("podSelector")),
        age_column(),
    ]
}

fn network_policy_row(np: &Value, now: Timestamp) -> Vec<Value> {
    // podSelector is a value, not a pointer, upstream: absent means `{}` (everything): `<none>`.
    let sel =
        if np["spec"]["podSelector"].is_null() { serde_json::json!({}) } else { np["spec"]["podSelector"].clone() };
    vec![name(np), Value::String(format_label_selector(&sel)), age(np, now)]
}

// --- discovery.k8s.io ------------------------------------------------------------------------

fn endpoint_slice_columns() -> Vec<ColumnDefinition> {
    vec![
        name_column(),
        col("AddressType", "string", doc::<discovery::EndpointSlice>("addressType")),
        col("Ports", "string", doc::<discovery::EndpointSlice>("ports")),
        col("Endpoints", "string", doc::<discovery::EndpointSlice>("endpoints")),
        age_column(),
    ]
}

fn endpoint_slice_row(es: &Value, now: Timestamp) -> Vec<Value> {
    const MAX: usize = 3;
    let ports = arr(&es["ports"]);
    let port_list: Vec<String> = ports
        .iter()
        .take(MAX)
        .map(|p| match p["port"].as_i64() {
            Some(n) => n.to_string(),
            None if p["name"].is_string() => s(&p["name"]).to_string(),
            None => "*".into(),
        })
        .collect();
    let addresses: Vec<&Value> = arr(&es["endpoints"]).iter().flat_map(|e| arr(&e["addresses"])).collect();
    let address_list: Vec<String> = addresses.iter().take(MAX).map(|a| s(a).to_string()).collect();
    vec![
        name(es),
        string(&es["addressType"]),
        Value::String(list_with_more(&port_list, ports.len(), MAX)),
        Value::String(list_with_more(&address_list, addresses.len(), MAX)),
        age(es, now),
    ]
}

// --- coordination.k8s.io, scheduling.k8s.io, node.k8s.io --------------------------------------

fn lease_columns() -> Vec<ColumnDefinition> {
    vec![name_column(), col("Holder", "string", doc::<coordination::LeaseSpec>("holderIdentity")), age_column()]
}

fn lease_row(lease: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(lease), string(&lease["spec"]["holderIdentity"]), age(lease, now)]
}

fn priority_class_columns() -> Vec<ColumnDefinition> {
    vec![
        name_column(),
        col("Value", "integer", doc::<scheduling::PriorityClass>("value")),
        col("Global-Default", "boolean", doc::<scheduling::PriorityClass>("globalDefault")),
        age_column(),
        col("PreemptionPolicy", "string", doc::<scheduling::PriorityClass>("preemptionPolicy")),
    ]
}

fn priority_class_row(pc: &Value, now: Timestamp) -> Vec<Value> {
    let policy = if pc["preemptionPolicy"].is_string() { s(&pc["preemptionPolicy"]) } else { "PreemptLowerPriority" };
    vec![
        name(pc),
        Value::from(int(&pc["value"])),
        Value::Bool(pc["globalDefault"].as_bool().unwrap_or(false)),
        age(pc, now),
        Value::String(policy.into()),
    ]
}

fn runtime_class_columns() -> Vec<ColumnDefinition> {
    vec![
        name_column(),
        col("Handler", "string", doc::<k8s_openapi::api::node::v1::RuntimeClass>("handler")),
        age_column(),
    ]
}

fn runtime_class_row(rc: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(rc), string(&rc["handler"]), age(rc, now)]
}

// --- storage.k8s.io --------------------------------------------------------------------------

fn storage_class_columns() -> Vec<ColumnDefinition> {
    vec![
        name_column(),
        col("Provisioner", "string", doc::<storage::StorageClass>("provisioner")),
        col("ReclaimPolicy", "string", doc::<storage::StorageClass>("reclaimPolicy")),
        col("VolumeBindingMode", "string", doc::<storage::StorageClass>("volumeBindingMode")),
        col("AllowVolumeExpansion", "string", doc::<storage::StorageClass>("allowVolumeExpansion")),
        age_column(),
    ]
}

fn storage_class_row(sc: &Value, now: Timestamp) -> Vec<Value> {
    let ann = &sc["metadata"]["annotations"];
    let is_default = s(&ann["storageclass.kubernetes.io/is-default-class"]) == "true"
        || s(&ann["storageclass.beta.kubernetes.io/is-default-class"]) == "true";
    let mut n = s(&sc["metadata"]["name"]).to_string();
    if is_default {
        n.push_str(" (default)");
    }
    let or = |v: &Value, d: &str| if v.is_string() { s(v).to_string() } else { d.to_string() };
    vec![
        Value::String(n),
        string(&sc["provisioner"]),
        Value::String(or(&sc["reclaimPolicy"], "Delete")),
        Value::String(or(&sc["volumeBindingMode"], "Immediate")),
        Value::Bool(sc["allowVolumeExpansion"].as_bool().unwrap_or(false)),
        age(sc, now),
    ]
}

// --- rbac.authorization.k8s.io ---------------------------------------------------------------

fn binding_columns(role_doc: &'static str, what: &str) -> Vec<ColumnDefinition> {
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    vec![
        name_column(),
        col("Role", "string", role_doc),
        age_column(),
        wide("Users", "string", leak(format!("Users in the {what}"))),
        wide("Groups", "string", leak(format!("Groups in the {what}"))),
        wide("ServiceAccounts", "string", leak(format!("ServiceAccounts in the {what}"))),
    ]
}

fn role_binding_columns() -> Vec<ColumnDefinition> {
    binding_columns(doc::<rbac::RoleBinding>("roleRef"), "roleBinding")
}

fn cluster_role_binding_columns() -> Vec<ColumnDefinition> {
    binding_columns(doc::<rbac::ClusterRoleBinding>("roleRef"), "clusterRoleBinding")
}

/// `printRoleBinding` / `printClusterRoleBinding` with `SubjectsStrings`.
fn binding_row(b: &Value, now: Timestamp) -> Vec<Value> {
    let role = format!("{}/{}", s(&b["roleRef"]["kind"]), s(&b["roleRef"]["name"]));
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for subject in arr(&b["subjects"]) {
        match s(&subject["kind"]) {
            "ServiceAccount" => sas.push(format!("{}/{}", s(&subject["namespace"]), s(&subject["name"]))),
            "User" => users.push(s(&subject["name"]).to_string()),
            "Group" => groups.push(s(&subject["name"]).to_string()),
            _ => {}
        }
    }
    vec![
        name(b),
        Value::String(role),
        age(b, now),
        Value::String(users.join(", ")),
        Value::String(groups.join(", ")),
        Value::String(sas.join(", ")),
    ]
}

// --- certificates.k8s.io ---------------------------------------------------------------------

fn csr_columns() -> Vec<ColumnDefinition> {
    vec![
        name_column(),
        age_column(),
        col("SignerName", "string", doc::<certificates::CertificateSigningRequestSpec>("signerName")),
        col("Requestor", "string", doc::<certificates::CertificateSigningRequestSpec>("request")),
        col("RequestedDuration", "string", doc::<certificates::CertificateSigningRequestSpec>("expirationSeconds")),
        col("Condition", "string", doc::<certificates::CertificateSigningRequestStatus>("conditions")),
    ]
}

fn csr_row(csr: &Value, now: Timestamp) -> Vec<Value> {
    let conditions = arr(&csr["status"]["conditions"]);
    let has = |t: &str| conditions.iter().any(|c| s(&c["type"]) == t);
    let mut status = if has("Denied") {
        "Denied".to_string()
    } else if has("Approved") {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if has("Failed") {
        status.push_str(",Failed");
    }
    if !s(&csr["status"]["certificate"]).is_empty() {
        status.push_str(",Issued");
    }
    let signer = if s(&csr["spec"]["signerName"]).is_empty() { "<none>" } else { s(&csr["spec"]["signerName"]) };
    let duration = match csr["spec"]["expirationSeconds"].as_i64() {
        Some(secs) => human_duration(jiff::SignedDuration::from_secs(secs)),
        None => "<none>".into(),
    };
    vec![
        name(csr),
        age(csr, now),
        Value::String(signer.into()),
        string(&csr["spec"]["username"]),
        Value::String(duration),
        Value::String(status),
    ]
}

// --- admissionregistration.k8s.io ------------------------------------------------------------

fn webhook_columns() -> Vec<ColumnDefinition> {
    vec![
        name_column(),
        col("Webhooks", "integer", "Webhooks indicates the number of webhooks registered in this configuration"),
        age_column(),
    ]
}

fn webhook_row(w: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(w), Value::from(arr(&w["webhooks"]).len() as i64), age(w, now)]
}
