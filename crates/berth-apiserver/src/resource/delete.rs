//! delete and deletecollection: DeleteOptions (body or query), preconditions, finalizers and
//! propagationPolicy, graceful pod deletion, and upstream's choice of returning the object or
//! a Success Status.

use axum::body::Body;
use axum::response::Response;
use berth_store::StoreError;
use http::StatusCode;
use serde_json::{Value, json};

use super::read::{Selectors, list_stored};
use super::{Ctx, json_response};
use crate::body::read_body;
use crate::error::ApiError;
use crate::negotiate::decode_json;
use crate::object::{self, meta_mut, meta_str};

/// The DeleteOptions that matter here.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// From the body when one is sent, else from the query.
    pub fn parse(ctx: &Ctx<'_>, body: &[u8]) -> Result<Self, ApiError> {
        let q = ctx.query;
        let mut opts = DeleteOptions {
            grace_period_seconds: q.int("gracePeriodSeconds")?,
            propagation_policy: q.get("propagationPolicy").filter(|s| !s.is_empty()).map(String::from),
            precondition_uid: None,
            precondition_rv: None,
            dry_run: q.dry_run()?,
        };
        if q.get("orphanDependents") == Some("true") && opts.propagation_policy.is_none() {
            opts.propagation_policy = Some("Orphan".into());
        }
        if !body.iter().all(u8::is_ascii_whitespace) {
            let v = decode_json(body)?;
            if !v.is_object() {
                return Err(ApiError::bad_request("DeleteOptions must be an object"));
            }
            if let Some(g) = v.get("gracePeriodSeconds").filter(|g| !g.is_null()) {
                opts.grace_period_seconds =
                    Some(g.as_i64().ok_or_else(|| ApiError::bad_request("gracePeriodSeconds must be an integer"))?);
            }
            if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
                opts.propagation_policy = Some(p.to_string());
            } else if v.get("orphanDependents") == Some(&json!(true)) {
                opts.propagation_policy = Some("Orphan".into());
            }
            opts.precondition_uid = v["preconditions"]["uid"].as_str().map(String::from);
            opts.precondition_rv = v["preconditions"]["resourceVersion"].as_str().map(String::from);
            if let Some(d) = v.get("dryRun").and_then(Value::as_array) {
                opts.dry_run |= d.iter().any(|x| x == "All");
            }
        }
        if let Some(p) = &opts.propagation_policy
            && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
        {
            return Err(ApiError::bad_request(format!(
                "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
        if opts.grace_period_seconds.is_some_and(|g| g < 0) {
            opts.grace_period_seconds = Some(0);
        }
        Ok(opts)
    }
}

/// What happened to one object.
pub enum Outcome {
    /// Removed from the store; the last state.
    Deleted(Value),
    /// Still there (finalizers or a grace period); the updated object.
    Pending(Value),
}

/// Kinds whose immediate delete returns the object instead of a Success Status.
fn returns_deleted_object(ctx: &Ctx<'_>) -> bool {
    matches!((ctx.rt().group, ctx.rt().plural), ("", "pods") | ("", "services") | ("", "namespaces"))
}

fn set_finalizers(obj: &mut Value, finalizers: &[String]) {
    let meta = meta_mut(obj);
    if finalizers.is_empty() {
        meta.remove("finalizers");
    } else {
        meta.insert("finalizers".into(), json!(finalizers));
    }
}

/// Deletes one object by the rules of `opts`.
pub async fn delete_one(ctx: &Ctx<'_>, name: &str, opts: &DeleteOptions) -> Result<Outcome, ApiError> {
    let rt = ctx.rt();
    if rt.group.is_empty() && rt.plural == "namespaces" && matches!(name, "default" | "kube-system" | "kube-public") {
        // Upstream's NamespaceLifecycle admission keeps these forever.
        let mut e =
            ApiError::forbidden(format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"));
        e.details.name = Some(name.to_string());
        e.details.group = Some(String::new());
        e.details.kind = Some("namespaces".into());
        return Err(e);
    }
    for _ in 0..8 {
        let (old, kv) = ctx.current(name).await?.ok_or_else(|| ApiError::not_found(rt, name))?;
        if let Some(uid) = &opts.precondition_uid {
            let actual = meta_str(&old, "uid").unwrap_or_default();
            if uid != actual {
                return Err(ApiError::conflict_msg(
                    rt,
                    name,
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"),
                ));
            }
        }
        if let Some(rv) = &opts.precondition_rv {
            let actual = kv.mod_revision.to_string();
            if *rv != actual {
                return Err(ApiError::conflict_msg(
                    rt,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
                    ),
                ));
            }
        }
        let mut new = old.clone();
        let mut finalizers = object::finalizers_of(&old);
        match opts.propagation_policy.as_deref() {
            Some("Foreground") => {
                finalizers.retain(|f| f != "orphan");
                if !finalizers.iter().any(|f| f == "foregroundDeletion") {
                    finalizers.push("foregroundDeletion".into());
                }
            }
            Some("Orphan") => {
                finalizers.retain(|f| f != "foregroundDeletion");
                if !finalizers.iter().any(|f| f == "orphan") {
                    finalizers.push("orphan".into());
                }
            }
            Some(_) if meta_str(&old, "deletionTimestamp").is_none() => {
                finalizers.retain(|f| f != "orphan" && f != "foregroundDeletion");
            }
            _ => {}
        }
        set_finalizers(&mut new, &finalizers);
        let already_deleting = meta_str(&old, "deletionTimestamp").is_some();
        let is_pod = rt.group.is_empty() && rt.plural == "pods";
        let is_namespace = rt.group.is_empty() && rt.plural == "namespaces";
        let mut grace = 0;
        if is_pod {
            let unscheduled = old["spec"]["nodeName"].as_str().is_none_or(str::is_empty);
            let terminal = matches!(old["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
            grace = opts
                .grace_period_seconds
                .or_else(|| old["spec"]["terminationGracePeriodSeconds"].as_i64())
                .unwrap_or(30)
                .max(0);
            if unscheduled || terminal {
                grace = 0;
            }
            if already_deleting {
                let current = old["metadata"]["deletionGracePeriodSeconds"].as_i64().unwrap_or(0);
                grace = grace.min(current);
            }
        }
        let ns_finalizing = is_namespace && new["spec"]["finalizers"].as_array().is_some_and(|a| !a.is_empty());
        if grace > 0 || !finalizers.is_empty() || ns_finalizing {
            {
                let meta = meta_mut(&mut new);
                if !already_deleting
                    || (is_pod && grace < old["metadata"]["deletionGracePeriodSeconds"].as_i64().unwrap_or(0))
                {
                    let ts = if grace > 0 { object::rfc3339_in(grace) } else { object::now_rfc3339() };
                    meta.insert("deletionTimestamp".into(), json!(ts));
                    meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
                }
                meta.remove("resourceVersion");
            }
            if is_namespace {
                object::set_path(&mut new, &["status", "phase"], json!("Terminating"));
            }
            let mut old_cmp = old.clone();
            meta_mut(&mut old_cmp).remove("resourceVersion");
            if new == old_cmp || opts.dry_run {
                return Ok(Outcome::Pending(if opts.dry_run { new } else { old }));
            }
            match ctx.state.store.update(&ctx.key(name), object::to_stored(&new), kv.mod_revision).await {
                Ok(kv) => return Ok(Outcome::Pending(object::from_kv(&kv).unwrap_or(new))),
                Err(StoreError::Conflict { .. }) if opts.precondition_rv.is_none() => continue,
                Err(e) => return Err(ApiError::from_store(rt, name, e)),
            }
        }
        if opts.dry_run {
            return Ok(Outcome::Deleted(old));
        }
        match ctx.state.store.delete(&ctx.key(name), Some(kv.mod_revision)).await {
            Ok((_, last)) => {
                return Ok(Outcome::Deleted(object::from_kv(&last).unwrap_or(old)));
            }
            Err(StoreError::Conflict { .. }) if opts.precondition_rv.is_none() => continue,
            Err(e) => return Err(ApiError::from_store(rt, name, e)),
        }
    }
    Err(ApiError::conflict(rt, name))
}

/// `DELETE .../{plural}/{name}`.
pub async fn delete(ctx: &Ctx<'_>, name: &str, body: Body) -> Result<Response, ApiError> {
    let bytes = read_body(body).await?;
    let opts = DeleteOptions::parse(ctx, &bytes)?;
    match delete_one(ctx, name, &opts).await? {
        Outcome::Pending(obj) => {
            let served = ctx.to_served(obj)?;
            Ok(json_response(StatusCode::OK, &served, "application/json"))
        }
        Outcome::Deleted(obj) if returns_deleted_object(ctx) => {
            let served = ctx.to_served(obj)?;
            Ok(json_response(StatusCode::OK, &served, "application/json"))
        }
        Outcome::Deleted(obj) => {
            let status = json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": name,
                    "group": ctx.rt().group,
                    "kind": ctx.rt().plural,
                    "uid": meta_str(&obj, "uid").unwrap_or_default(),
                },
            });
            Ok(json_response(StatusCode::OK, &status, "application/json"))
        }
    }
}

/// `DELETE .../{plural}` with selectors: deletes every match, answers the list of them.
pub async fn delete_collection(ctx: &Ctx<'_>, body: Body) -> Result<Response, ApiError> {
    let bytes = read_body(body).await?;
    let opts = DeleteOptions::parse(ctx, &bytes)?;
    let sel = Selectors::from_ctx(ctx)?;
    let listed = list_stored(ctx, &sel).await?;
    let mut items = Vec::new();
    for obj in listed.items {
        let name = object::name_of(&obj).to_string();
        let ns = meta_str(&obj, "namespace").map(String::from);
        // A cluster-wide deletecollection of a namespaced kind addresses each object's namespace.
        let rp = crate::request::ResourcePath { namespace: ns.or(ctx.rp.namespace.clone()), ..ctx.rp.clone() };
        let sub = Ctx {
            state: ctx.state,
            rp: &rp,
            query: ctx.query,
            headers: ctx.headers,
            raw_query: None,
            upgrade: Default::default(),
            warnings: Default::default(),
        };
        match delete_one(&sub, &name, &opts).await {
            Ok(Outcome::Deleted(o) | Outcome::Pending(o)) => items.push(ctx.to_served(o)?),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let body = json!({
        "kind": format!("{}List", ctx.rt().kind),
        "apiVersion": ctx.rp.api_version(),
        "metadata": {"resourceVersion": listed.revision.to_string()},
        "items": items,
    });
    Ok(json_response(StatusCode::OK, &body, "application/json"))
}
