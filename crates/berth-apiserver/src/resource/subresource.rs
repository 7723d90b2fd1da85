//! Subresources: status (get/put/patch), scale (autoscaling/v1 Scale for the workload kinds),
//! pods/binding, pods/eviction and namespaces/finalize.

use axum::body::Body;
use axum::response::Response;
use berth_api::ResourceType;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::delete::{DeleteOptions, delete_one};
use super::write::{
    Target, body_revision, decode_body, finish_update, patch_error, patch_target, read_patch, update_target,
    write_update,
};
use super::{Ctx, json_response};
use crate::body::read_body;
use crate::error::ApiError;
use crate::field_validation::{self, Directive, Verb};
use crate::object::{meta_mut, meta_str, set_path};
use crate::patch::{self, PatchType};

/// The `autoscaling/v1` Scale a scale subresource reads and writes.
const SCALE: (&str, &str, &str) = ("autoscaling", "v1", "Scale");

/// Dispatches `.../{name}/{sub}`.
pub async fn handle(ctx: &Ctx<'_>, method: &Method, name: &str, sub: &str, body: Body) -> Result<Response, ApiError> {
    match (sub, method.as_str()) {
        ("status", "GET") => super::read::get(ctx, name).await,
        ("status", "PUT") => update_target(ctx, name, body, Target::Status).await,
        ("status", "PATCH") => patch_target(ctx, name, body, Target::Status).await,
        ("scale", "GET") => get_scale(ctx, name).await,
        ("scale", "PUT") => put_scale(ctx, name, body).await,
        ("scale", "PATCH") => patch_scale(ctx, name, body).await,
        ("binding", "POST") => bind(ctx, name, body).await,
        ("eviction", "POST") => evict(ctx, name, body).await,
        ("finalize", "PUT") => finalize(ctx, name, body).await,
        ("log", "GET") if ctx.rt().group.is_empty() && ctx.rt().plural == "pods" => {
            crate::kubelet::pod_log(ctx, name, ctx.raw_query.as_deref()).await
        }
        ("exec" | "attach" | "portforward", "GET" | "POST")
            if ctx.rt().group.is_empty() && ctx.rt().plural == "pods" =>
        {
            crate::kubelet::pod_stream(ctx, name, sub, method, ctx.raw_query.as_deref()).await
        }
        ("status" | "scale" | "binding" | "eviction" | "finalize", _) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::path_not_found()),
    }
}

fn success(code: StatusCode) -> Response {
    json_response(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code.as_u16()}),
        "application/json",
    )
}

/// The label selector of a workload as a string (`app=web,tier in (a,b)`), keys sorted.
pub fn selector_string(selector: &Value) -> String {
    let mut reqs: Vec<(String, String)> = Vec::new();
    let plain_map =
        selector.as_object().is_some_and(|m| !m.contains_key("matchLabels") && !m.contains_key("matchExpressions"));
    let labels = if plain_map { Some(selector) } else { selector.get("matchLabels") };
    if let Some(m) = labels.and_then(Value::as_object) {
        for (k, v) in m {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or_default())));
        }
    }
    for e in selector.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default();
        let mut values: Vec<&str> = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        values.sort_unstable();
        let text = match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        };
        reqs.push((key.to_string(), text));
    }
    reqs.sort();
    reqs.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join(",")
}

fn scale_of(rt: &ResourceType, obj: &Value) -> Value {
    let _ = rt;
    let meta = &obj["metadata"];
    let mut m = serde_json::Map::new();
    for k in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
        if let Some(v) = meta.get(k) {
            m.insert(k.into(), v.clone());
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": m,
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {
            "replicas": obj["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector_string(&obj["spec"]["selector"]),
        },
    })
}

async fn get_scale(ctx: &Ctx<'_>, name: &str) -> Result<Response, ApiError> {
    let (obj, _) = ctx.current(name).await?.ok_or_else(|| ApiError::not_found(ctx.rt(), name))?;
    Ok(json_response(StatusCode::OK, &scale_of(ctx.rt(), &obj), "application/json"))
}

/// Writes `scale.spec.replicas` into the object (409 on a stale resourceVersion in the Scale).
async fn write_scale(
    ctx: &Ctx<'_>,
    name: &str,
    scale_from: impl Fn(&Value) -> Result<Value, ApiError>,
) -> Result<Response, ApiError> {
    let rt = ctx.rt();
    let dry_run = ctx.query.dry_run()?;
    let manager = ctx.field_manager();
    for _ in 0..8 {
        let (old, kv) = ctx.current(name).await?.ok_or_else(|| ApiError::not_found(rt, name))?;
        let scale = scale_from(&scale_of(rt, &old))?;
        let want = body_revision(&scale)?;
        if want.is_some_and(|r| r != kv.mod_revision) {
            return Err(ApiError::conflict(rt, name));
        }
        let replicas = &scale["spec"]["replicas"];
        let replicas = if replicas.is_null() { json!(0) } else { replicas.clone() };
        if !replicas.is_i64() {
            return Err(ApiError::bad_request("spec.replicas must be an integer"));
        }
        let mut new = old.clone();
        if !set_path(&mut new, &["spec", "replicas"], replicas.clone()) {
            return Err(ApiError::bad_request(format!("{} \"{name}\" has no spec object", rt.kind)));
        }
        if replicas.as_i64().is_some_and(|r| r < 0) {
            let qualified = "Scale.autoscaling";
            let mut e = ApiError::invalid(
                rt,
                name,
                &[berth_api::FieldError::invalid("spec.replicas", replicas, "must be greater than or equal to 0")],
            );
            e.message = e.message.replacen(
                &format!("{}{}", rt.kind, if rt.group.is_empty() { String::new() } else { format!(".{}", rt.group) }),
                qualified,
                1,
            );
            e.details.kind = Some("Scale".into());
            e.details.group = Some("autoscaling".into());
            return Err(e);
        }
        match finish_update(ctx, &old, kv.mod_revision, new, Some(&manager), dry_run).await {
            Ok(stored) => return Ok(json_response(StatusCode::OK, &scale_of(rt, &stored), "application/json")),
            // Someone wrote in between: re-read and re-apply. A client's resourceVersion (a PUT
            // body's, or one a patch sets) is checked again against the fresh object above, so
            // a stale one still ends in 409; a patch without one simply applies to the new object.
            Err(e) if e.reason == "Conflict" => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(rt, name))
}

async fn put_scale(ctx: &Ctx<'_>, name: &str, body: Body) -> Result<Response, ApiError> {
    let bytes = read_body(body).await?;
    let scale = decode_body(ctx, &bytes, SCALE, Verb::Update)?;
    if meta_str(&scale, "name").is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            meta_str(&scale, "name").unwrap_or_default()
        )));
    }
    write_scale(ctx, name, |_| Ok(scale.clone())).await
}

async fn patch_scale(ctx: &Ctx<'_>, name: &str, body: Body) -> Result<Response, ApiError> {
    let rt = ctx.rt();
    let body = read_patch(ctx, body).await?;
    let directive = Directive::from_query(ctx.query, Verb::Patch)?;
    let schema = berth_api::field_validation::kind_schema(SCALE.0, SCALE.1, SCALE.2);
    let manager = ctx.field_manager();
    let force = ctx.query.flag("force");
    let doc = &body.doc;
    if body.patch_type == PatchType::Apply {
        field_validation::check_applied(doc, schema, ("autoscaling", "autoscaling/v1", "Scale"))?;
    }
    write_scale(ctx, name, |current| match body.patch_type {
        PatchType::Apply => patch::server_side_apply("autoscaling", "Scale", Some(current), doc, &manager, force)
            .map_err(|e| patch_error(rt, name, e)),
        other => {
            let mut patched = patch::apply_patch(other, "autoscaling", "Scale", current, doc)
                .map_err(|e| patch_error(rt, name, e))?;
            field_validation::check_patched(&body, &mut patched, schema, directive, &ctx.warnings)?;
            Ok(patched)
        }
    })
    .await
}

/// `POST pods/{name}/binding`: assigns the pod to `target.name`.
async fn bind(ctx: &Ctx<'_>, name: &str, body: Body) -> Result<Response, ApiError> {
    let rt = ctx.rt();
    let bytes = read_body(body).await?;
    let binding = decode_body(ctx, &bytes, ("", "v1", "Binding"), Verb::Create)?;
    let node = binding["target"]["name"].as_str().unwrap_or_default().to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(rt, name, &[berth_api::FieldError::required("target.name", "")]));
    }
    let dry_run = ctx.query.dry_run()?;
    for _ in 0..8 {
        let (old, kv) = ctx.current(name).await?.ok_or_else(|| ApiError::not_found(rt, name))?;
        if let Some(uid) = binding["metadata"]["uid"].as_str().filter(|u| !u.is_empty())
            && meta_str(&old, "uid") != Some(uid)
        {
            return Err(ApiError::conflict_msg(rt, name, "the UID in the binding does not match the pod"));
        }
        if meta_str(&old, "deletionTimestamp").is_some() {
            return Err(ApiError::conflict_msg(
                rt,
                name,
                &format!("pod {name} is being deleted, cannot be assigned to a host"),
            ));
        }
        if let Some(current) = old["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            let mut e =
                ApiError::conflict_msg(rt, name, &format!("pod {name} is already assigned to node \"{current}\""));
            e.message = format!(
                "Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{current}\""
            );
            return Err(e);
        }
        let mut new = old.clone();
        if !set_path(&mut new, &["spec", "nodeName"], json!(node)) {
            return Err(ApiError::bad_request(format!("pod \"{name}\" has no spec object")));
        }
        let conditions = new["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let mut conditions: Vec<Value> = conditions.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
        conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": crate::object::now_rfc3339()}));
        set_path(&mut new, &["status", "conditions"], Value::Array(conditions));
        if let Some(ann) = binding["metadata"]["annotations"].as_object() {
            let meta = meta_mut(&mut new);
            let entry = meta.entry("annotations").or_insert_with(|| json!({}));
            if let Some(a) = entry.as_object_mut() {
                for (k, v) in ann {
                    a.insert(k.clone(), v.clone());
                }
            }
        }
        match write_update(ctx, &old, kv.mod_revision, new, None, dry_run, false).await {
            Ok(_) => return Ok(success(StatusCode::CREATED)),
            Err(e) if e.reason == "Conflict" => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(rt, name))
}

/// `POST pods/{name}/eviction`: a graceful delete that honours the pod's PodDisruptionBudget
/// (upstream `registry/core/pod/storage/eviction.go`): with `disruptionsAllowed` 0 the answer is
/// 429 TooManyRequests; otherwise the budget's `disruptionsAllowed` is decremented and the pod
/// recorded in `disruptedPods` before the pod is deleted.
async fn evict(ctx: &Ctx<'_>, name: &str, body: Body) -> Result<Response, ApiError> {
    let bytes = read_body(body).await?;
    let eviction = decode_body(ctx, &bytes, ("policy", "v1", "Eviction"), Verb::Create)?;
    let opts_bytes = serde_json::to_vec(eviction.get("deleteOptions").unwrap_or(&Value::Null)).unwrap_or_default();
    let opts_bytes = if eviction.get("deleteOptions").is_some_and(|v| v.is_object()) { opts_bytes } else { Vec::new() };
    let opts = DeleteOptions::parse(ctx, &opts_bytes)?;
    let (pod, _) = ctx.current(name).await?.ok_or_else(|| ApiError::not_found(ctx.rt(), name))?;
    if !can_ignore_pdb(&pod) {
        check_disruption_budget(ctx, name, &pod, opts.dry_run).await?;
    }
    delete_one(ctx, name, &opts).await?;
    Ok(success(StatusCode::CREATED))
}

/// Pods whose eviction never needs a budget: terminal, pending or already being deleted.
fn can_ignore_pdb(pod: &Value) -> bool {
    meta_str(pod, "deletionTimestamp").is_some()
        || matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed" | "Pending"))
}

/// How many pods `disruptedPods` may hold before evictions are refused (upstream `MaxDisruptedPodSize`).
const MAX_DISRUPTED_POD_SIZE: usize = 2000;

fn too_many_requests(message: String) -> ApiError {
    let mut e =
        ApiError::new(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.");
    e.details.causes.push(crate::error::Cause { reason: "DisruptionBudget".into(), message, field: String::new() });
    e
}

/// Finds the PodDisruptionBudget covering `pod` and takes one disruption from it (upstream
/// `checkAndDecrement`), or refuses the eviction.
async fn check_disruption_budget(ctx: &Ctx<'_>, name: &str, pod: &Value, dry_run: bool) -> Result<(), ApiError> {
    let registry = ctx.state.registry.get();
    let Some(pdb_rt) = registry.by_resource("policy", "v1", "poddisruptionbudgets") else { return Ok(()) };
    let labels = crate::object::labels_of(pod);
    let ns = ctx.ns();
    for _ in 0..8 {
        let range = berth_store::RangeRequest { prefix: pdb_rt.key_prefix(ns), ..Default::default() };
        let list = ctx.state.store.range(range).await.map_err(|e| ApiError::from_store(pdb_rt, name, e))?;
        let mut matching = Vec::new();
        for kv in &list.kvs {
            let Some(pdb) = crate::object::from_kv(kv) else { continue };
            let Ok(sel) = berth_api::selector::LabelSelector::from_label_selector_json(&pdb["spec"]["selector"]) else {
                continue;
            };
            // A nil or empty selector matches nothing here, not everything (as upstream).
            if sel.is_empty() || !sel.matches(&labels) {
                continue;
            }
            matching.push((pdb, kv.mod_revision));
        }
        if matching.len() > 1 {
            return Err(ApiError::internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
        let Some((mut pdb, rev)) = matching.pop() else { return Ok(()) };
        let pdb_name = crate::object::name_of(&pdb).to_string();
        let status = &pdb["status"];
        let generation = pdb["metadata"]["generation"].as_i64().unwrap_or(0);
        if status["observedGeneration"].as_i64().unwrap_or(0) < generation {
            return Err(too_many_requests(format!(
                "The disruption budget {pdb_name} is still being processed by the server."
            )));
        }
        let allowed = status["disruptionsAllowed"].as_i64().unwrap_or(0);
        if allowed < 0 {
            return Err(ApiError::forbidden("pdb disruptions allowed is negative"));
        }
        if status["disruptedPods"].as_object().is_some_and(|m| m.len() > MAX_DISRUPTED_POD_SIZE) {
            return Err(ApiError::forbidden(
                "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
            ));
        }
        // An unready pod may go without taking a disruption while the budget is met
        // (unhealthyPodEvictionPolicy IfHealthyBudget, the default).
        let pod_ready = pod["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
        let policy = pdb["spec"]["unhealthyPodEvictionPolicy"].as_str().unwrap_or("IfHealthyBudget");
        if !pod_ready
            && (policy == "AlwaysAllow"
                || status["currentHealthy"].as_i64().unwrap_or(0) >= status["desiredHealthy"].as_i64().unwrap_or(0))
        {
            return Ok(());
        }
        if allowed == 0 {
            return Err(too_many_requests(format!(
                "The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
                status["desiredHealthy"].as_i64().unwrap_or(0),
                status["currentHealthy"].as_i64().unwrap_or(0)
            )));
        }
        if dry_run {
            return Ok(());
        }
        set_path(&mut pdb, &["status", "disruptionsAllowed"], json!(allowed - 1));
        if allowed - 1 == 0 {
            let conditions = pdb["status"]["conditions"].as_array().cloned().unwrap_or_default();
            let mut conditions: Vec<Value> =
                conditions.into_iter().filter(|c| c["type"] != "DisruptionAllowed").collect();
            conditions.push(json!({"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods",
                "message": "", "observedGeneration": generation, "lastTransitionTime": crate::object::now_rfc3339()}));
            set_path(&mut pdb, &["status", "conditions"], Value::Array(conditions));
        }
        if !pdb["status"]["disruptedPods"].is_object() {
            set_path(&mut pdb, &["status", "disruptedPods"], json!({}));
        }
        set_path(&mut pdb, &["status", "disruptedPods", name], json!(crate::object::now_rfc3339()));
        let key = pdb_rt.key(ns, &pdb_name);
        match ctx.state.store.update(&key, crate::object::to_stored(&pdb), rev).await {
            Ok(_) => return Ok(()),
            Err(berth_store::StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(ApiError::from_store(pdb_rt, &pdb_name, e)),
        }
    }
    Err(ApiError::conflict(ctx.rt(), name))
}

/// `PUT namespaces/{name}/finalize`: replaces `spec.finalizers`.
async fn finalize(ctx: &Ctx<'_>, name: &str, body: Body) -> Result<Response, ApiError> {
    let rt = ctx.rt();
    let bytes = read_body(body).await?;
    let obj = decode_body(ctx, &bytes, ("", "v1", "Namespace"), Verb::Update)?;
    let dry_run = ctx.query.dry_run()?;
    for _ in 0..8 {
        let (old, kv) = ctx.current(name).await?.ok_or_else(|| ApiError::not_found(rt, name))?;
        let mut new = old.clone();
        let finalizers = match &obj["spec"]["finalizers"] {
            Value::Null => json!([]),
            f => f.clone(),
        };
        if !set_path(&mut new, &["spec", "finalizers"], finalizers) {
            return Err(ApiError::bad_request(format!("namespace \"{name}\" has no spec object")));
        }
        match finish_update(ctx, &old, kv.mod_revision, new, None, dry_run).await {
            Ok(stored) => return super::write::respond(ctx, StatusCode::OK, stored),
            Err(e) if e.reason == "Conflict" => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(rt, name))
}
