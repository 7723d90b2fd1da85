//! Subresources: status (get/put/patch), scale (autoscaling/v1 Scale for the workload kinds),
//! pods/binding, pods/eviction and namespaces/finalize.

use axum::body::Body;
use axum::response::Response;
use berth_api::ResourceType;
use http::{Method, StatusCode, header};
use serde_json::{Value, json};

use super::delete::{DeleteOptions, delete_one};
use super::write::{
    Target, body_revision, finish_update, patch_error, patch_target, read_patch, update_target, write_update,
};
use super::{Ctx, json_response};
use crate::body::read_body;
use crate::error::ApiError;
use crate::negotiate::decode_object;
use crate::object::{meta_mut, meta_str, set_path};
use crate::patch::{self, PatchType};

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
            Err(e) if e.reason == "Conflict" && want.is_none() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(rt, name))
}

async fn put_scale(ctx: &Ctx<'_>, name: &str, body: Body) -> Result<Response, ApiError> {
    let bytes = read_body(body).await?;
    let scale = decode_object(ctx.header(header::CONTENT_TYPE), &bytes)?;
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
    let (patch_type, doc) = read_patch(ctx, body).await?;
    let manager = ctx.field_manager();
    let force = ctx.query.flag("force");
    write_scale(ctx, name, |current| match patch_type {
        PatchType::Apply => patch::server_side_apply("autoscaling", "Scale", Some(current), &doc, &manager, force)
            .map_err(|e| patch_error(rt, name, e)),
        other => patch::apply_patch(other, "autoscaling", "Scale", current, &doc).map_err(|e| patch_error(rt, name, e)),
    })
    .await
}

/// `POST pods/{name}/binding`: assigns the pod to `target.name`.
async fn bind(ctx: &Ctx<'_>, name: &str, body: Body) -> Result<Response, ApiError> {
    let rt = ctx.rt();
    let bytes = read_body(body).await?;
    let binding = decode_object(ctx.header(header::CONTENT_TYPE), &bytes)?;
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

/// `POST pods/{name}/eviction`: a graceful delete (disruption budgets are not checked).
async fn evict(ctx: &Ctx<'_>, name: &str, body: Body) -> Result<Response, ApiError> {
    let bytes = read_body(body).await?;
    let eviction = decode_object(ctx.header(header::CONTENT_TYPE), &bytes)?;
    let opts_bytes = serde_json::to_vec(eviction.get("deleteOptions").unwrap_or(&Value::Null)).unwrap_or_default();
    let opts_bytes = if eviction.get("deleteOptions").is_some_and(|v| v.is_object()) { opts_bytes } else { Vec::new() };
    let opts = DeleteOptions::parse(ctx, &opts_bytes)?;
    delete_one(ctx, name, &opts).await?;
    Ok(success(StatusCode::CREATED))
}

/// `PUT namespaces/{name}/finalize`: replaces `spec.finalizers`.
async fn finalize(ctx: &Ctx<'_>, name: &str, body: Body) -> Result<Response, ApiError> {
    let rt = ctx.rt();
    let bytes = read_body(body).await?;
    let obj = decode_object(ctx.header(header::CONTENT_TYPE), &bytes)?;
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
