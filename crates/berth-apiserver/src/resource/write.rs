//! create, update (PUT) and patch: body checks, namespace rules, defaulting, validation,
//! managedFields and the compare-and-swap write, retried internally when the client sent no
//! resourceVersion.

use axum::body::Body;
use axum::response::Response;
use berth_api::{FieldError, ResourceType, Subresource};
use berth_store::{Revision, StoreError};
use http::{StatusCode, header};
use serde_json::{Value, json};

use super::{Ctx, json_response, to_storage};
use crate::body::read_body;
use crate::error::{ApiError, Cause};
use crate::field_validation::{self, Directive, PatchBody, Verb};
use crate::negotiate::mime_of;
use crate::object::{self, meta_mut, meta_str};
use crate::patch::{self, PatchError, PatchType};

/// How many times a write without a client resourceVersion is retried on a store conflict.
const MAX_RETRIES: usize = 8;

/// Kinds whose `metadata.generation` tracks spec changes (set to 1 on create).
fn tracks_generation(rt: &ResourceType) -> bool {
    matches!(
        rt.plural,
        "deployments"
            | "replicasets"
            | "statefulsets"
            | "daemonsets"
            | "replicationcontrollers"
            | "jobs"
            | "cronjobs"
            | "horizontalpodautoscalers"
            | "poddisruptionbudgets"
            | "networkpolicies"
            | "ingresses"
            | "customresourcedefinitions"
    )
}

fn is_service(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.plural == "services"
}

/// Kinds a PUT may create (AllowCreateOnUpdate upstream).
fn allows_create_on_update(rt: &ResourceType) -> bool {
    matches!(
        (rt.group, rt.plural),
        ("", "endpoints")
            | ("", "events")
            | ("events.k8s.io", "events")
            | ("coordination.k8s.io", "leases")
            | ("", "limitranges")
    )
}

/// Checks and fills `apiVersion`/`kind` of a request body against the path.
pub fn check_type(ctx: &Ctx<'_>, obj: &mut Value) -> Result<(), ApiError> {
    let want = ctx.rp.api_version();
    let rt = ctx.rt();
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str).filter(|s| !s.is_empty())
        && av != want
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({want})"
        )));
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str).filter(|s| !s.is_empty())
        && k != rt.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            rt.kind
        )));
    }
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(want));
        m.insert("kind".into(), Value::String(rt.kind.to_string()));
    }
    Ok(())
}

/// Applies the namespace rules: path namespace fills or must equal the body's; cluster-scoped
/// objects carry none.
fn check_namespace(ctx: &Ctx<'_>, obj: &mut Value) -> Result<(), ApiError> {
    let rt = ctx.rt();
    if !rt.namespaced {
        meta_mut(obj).remove("namespace");
        return Ok(());
    }
    let Some(ns) = ctx.ns() else {
        return Err(ApiError::bad_request("the namespace of the object must be set in the request path"));
    };
    match meta_str(obj, "namespace").filter(|s| !s.is_empty()) {
        Some(body_ns) if body_ns != ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            meta_mut(obj).insert("namespace".into(), json!(ns));
            Ok(())
        }
    }
}

/// 404 when the namespace does not exist, 403 when it is being terminated.
async fn check_namespace_exists(ctx: &Ctx<'_>, name: &str) -> Result<(), ApiError> {
    let rt = ctx.rt();
    let Some(ns) = ctx.ns() else { return Ok(()) };
    let Some(ns_rt) = ctx.state.registry.get().by_resource("", "v1", "namespaces") else { return Ok(()) };
    let kv = ctx.state.store.get(&ns_rt.key(None, ns)).await.map_err(|e| ApiError::from_store(ns_rt, ns, e))?;
    let Some(obj) = kv.and_then(|kv| object::from_kv(&kv)) else {
        return Err(ApiError::not_found_named("namespaces", "", ns));
    };
    let terminating = meta_str(&obj, "deletionTimestamp").is_some() || obj["status"]["phase"] == "Terminating";
    if terminating {
        let mut e = ApiError::forbidden(format!(
            "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            rt.qualified_plural()
        ));
        e.details.name = Some(name.to_string());
        e.details.group = Some(rt.group.to_string());
        e.details.kind = Some(rt.plural.to_string());
        e.details.causes = vec![Cause {
            reason: "NamespaceTerminating".into(),
            message: format!("namespace {ns} is being terminated"),
            field: "metadata.namespace".into(),
        }];
        return Err(e);
    }
    Ok(())
}

fn name_errors(name: &str) -> Vec<FieldError> {
    if name.contains('/') {
        vec![FieldError::invalid("metadata.name", format!("{name:?}"), "may not contain '/'")]
    } else if name.contains('%') {
        vec![FieldError::invalid("metadata.name", format!("{name:?}"), "may not contain '%'")]
    } else if name == "." || name == ".." {
        vec![FieldError::invalid("metadata.name", format!("{name:?}"), format!("may not be '{name}'"))]
    } else {
        Vec::new()
    }
}

/// Creates `obj` (storage version, namespace already set): generateName, uid, timestamps,
/// defaulting, validation, the store write. Returns the stored object with its resourceVersion.
pub async fn finish_create(ctx: &Ctx<'_>, mut obj: Value, dry_run: bool) -> Result<Value, ApiError> {
    let rt = ctx.rt();
    {
        let meta = meta_mut(&mut obj);
        let name = meta.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        if name.is_empty() {
            let gen_name = meta.get("generateName").and_then(Value::as_str).unwrap_or_default().to_string();
            if gen_name.is_empty() {
                return Err(ApiError::invalid(
                    rt,
                    "",
                    &[FieldError::required("metadata.name", "name or generateName is required")],
                ));
            }
            meta.insert("name".into(), json!(format!("{gen_name}{}", object::random_suffix())));
        }
        meta.remove("resourceVersion");
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(object::now_rfc3339()));
        if tracks_generation(rt) {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
    }
    let name = object::name_of(&obj).to_string();
    check_namespace_exists(ctx, &name).await?;
    super::prepare::prepare_for_create(rt, &mut obj);
    patch::track_update(rt.group, rt.kind, None, &mut obj, &ctx.field_manager());
    rt.strategy.default(&mut obj);
    if is_service(rt) && !dry_run {
        crate::allocator::allocate(ctx.state.store.as_ref(), &ctx.state.service_cidr, &mut obj, None).await?;
    }
    if rt.group.is_empty() && rt.plural == "nodes" && !dry_run {
        let prefix = rt.key_prefix(None);
        crate::allocator::allocate_pod_cidr(ctx.state.store.as_ref(), &prefix, &ctx.state.cluster_cidr, &mut obj)
            .await?;
    }
    let mut errs = name_errors(&name);
    errs.extend(rt.validate_create(&obj));
    if !errs.is_empty() {
        return Err(ApiError::invalid(rt, &name, &errs));
    }
    if dry_run {
        return Ok(obj);
    }
    let kv = ctx
        .state
        .store
        .create(&ctx.key(&name), object::to_stored(&obj))
        .await
        .map_err(|e| ApiError::from_store(rt, &name, e))?;
    object::from_kv(&kv).ok_or_else(|| ApiError::internal("stored object is not JSON"))
}

/// Whether an update leaves an object that must be removed: deletion pending, no finalizers
/// left and no grace period running (upstream `shouldDeleteDuringUpdate`).
fn should_remove(obj: &Value) -> bool {
    let meta = &obj["metadata"];
    let no_spec_finalizers = obj["spec"]["finalizers"].as_array().is_none_or(|a| a.is_empty());
    meta.get("deletionTimestamp").is_some_and(|v| !v.is_null())
        && object::finalizers_of(obj).is_empty()
        && meta["deletionGracePeriodSeconds"].as_i64().unwrap_or(0) == 0
        && (obj["kind"] != "Namespace" || no_spec_finalizers)
}

/// Writes `new` (storage version) over `old` (stored, with resourceVersion `old_rev`):
/// immutable metadata kept, generation bumped on spec changes, managedFields tracked when
/// `manager` is given, defaulting and validation, the CAS write (409 Conflict if `old_rev` is
/// stale). Removes the object when deletion is pending and no finalizers remain.
pub async fn finish_update(
    ctx: &Ctx<'_>,
    old: &Value,
    old_rev: Revision,
    new: Value,
    manager: Option<&str>,
    dry_run: bool,
) -> Result<Value, ApiError> {
    write_update(ctx, old, old_rev, new, manager, dry_run, true).await
}

/// [`finish_update`], optionally without the kind's update validation (bindings assign
/// `spec.nodeName`, which pod updates may not change).
pub async fn write_update(
    ctx: &Ctx<'_>,
    old: &Value,
    old_rev: Revision,
    mut new: Value,
    manager: Option<&str>,
    dry_run: bool,
    validate: bool,
) -> Result<Value, ApiError> {
    let rt = ctx.rt();
    let name = object::name_of(old).to_string();
    {
        let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
        let meta = meta_mut(&mut new);
        for k in ["name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"] {
            match old_meta.get(k) {
                Some(v) => meta.insert(k.into(), v.clone()),
                None => meta.remove(k),
            };
        }
        meta.remove("resourceVersion");
        match old_meta.get("generation").and_then(Value::as_i64) {
            Some(g) => {
                let bumped = if object::spec_part(&new) != object::spec_part(old) { g + 1 } else { g };
                meta_mut(&mut new).insert("generation".into(), json!(bumped));
            }
            None => {
                meta.remove("generation");
            }
        }
    }
    if let Some(m) = manager {
        patch::track_update(rt.group, rt.kind, Some(old), &mut new, m);
    }
    rt.strategy.default(&mut new);
    if is_service(rt) {
        crate::allocator::allocate(ctx.state.store.as_ref(), &ctx.state.service_cidr, &mut new, Some(old)).await?;
    }
    let errs = if validate { rt.validate_update(&new, old) } else { Vec::new() };
    if !errs.is_empty() {
        return Err(ApiError::invalid(rt, &name, &errs));
    }
    let mut old_cmp = old.clone();
    meta_mut(&mut old_cmp).remove("resourceVersion");
    if dry_run {
        meta_mut(&mut new).insert("resourceVersion".into(), json!(old_rev.to_string()));
        return Ok(new);
    }
    let key = ctx.key(&name);
    if should_remove(&new) {
        let (rev, _) =
            ctx.state.store.delete(&key, Some(old_rev)).await.map_err(|e| ApiError::from_store(rt, &name, e))?;
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rev.to_string()));
        return Ok(new);
    }
    if new == old_cmp {
        return Ok(old.clone());
    }
    let kv = ctx.state.store.update(&key, object::to_stored(&new), old_rev).await.map_err(|e| match e {
        StoreError::Conflict { .. } => ApiError::conflict(rt, &name),
        other => ApiError::from_store(rt, &name, other),
    })?;
    object::from_kv(&kv).ok_or_else(|| ApiError::internal("stored object is not JSON"))
}

/// The `metadata.resourceVersion` a body carries, if any (400 when malformed).
pub fn body_revision(obj: &Value) -> Result<Option<Revision>, ApiError> {
    match meta_str(obj, "resourceVersion").filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s.parse::<Revision>().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "metadata.resourceVersion: Invalid value: {s:?}: must be a valid resource version"
            ))
        }),
    }
}

/// 409 when the body names a different object (its uid differs from the stored one's).
fn check_uid(rt: &ResourceType, name: &str, new: &Value, old: &Value) -> Result<(), ApiError> {
    match (meta_str(new, "uid").filter(|u| !u.is_empty()), meta_str(old, "uid")) {
        (Some(want), Some(have)) if want != have => Err(ApiError::conflict_msg(
            rt,
            name,
            &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {have}"),
        )),
        _ => Ok(()),
    }
}

/// Returns a written object to the client in the requested version.
pub fn respond(ctx: &Ctx<'_>, code: StatusCode, stored: Value) -> Result<Response, ApiError> {
    let served = ctx.to_served(stored)?;
    Ok(json_response(code, &served, "application/json"))
}

/// Replaces `target.status` with `source.status` (or removes it).
pub fn copy_status(target: &mut Value, source: &Value) {
    if let Some(m) = target.as_object_mut() {
        match source.get("status") {
            Some(s) => m.insert("status".into(), s.clone()),
            None => m.remove("status"),
        };
    }
}

/// Decodes a create or update body of `gvk` (`(group, version, kind)`, a subresource's body
/// kind), dropping the fields the kind does not declare and reporting them per the request's
/// `fieldValidation`.
pub fn decode_body(ctx: &Ctx<'_>, bytes: &[u8], gvk: (&str, &str, &str), verb: Verb) -> Result<Value, ApiError> {
    let schema = berth_api::field_validation::kind_schema(gvk.0, gvk.1, gvk.2);
    decode_checked(ctx, bytes, schema, (gvk.1, gvk.2), verb)
}

fn decode_checked(
    ctx: &Ctx<'_>,
    bytes: &[u8],
    schema: Option<berth_api::field_validation::KindSchema>,
    version_kind: (&str, &str),
    verb: Verb,
) -> Result<Value, ApiError> {
    let directive = Directive::from_query(ctx.query, verb)?;
    let ct = ctx.header(header::CONTENT_TYPE);
    field_validation::decode_body(ct, bytes, schema, version_kind, directive, &ctx.warnings)
}

/// [`decode_body`] for the request's own kind and version (custom resources included).
fn decode_request_object(ctx: &Ctx<'_>, bytes: &[u8], verb: Verb) -> Result<Value, ApiError> {
    let schema = field_validation::schema_for(ctx.rt(), &ctx.rp.version);
    decode_checked(ctx, bytes, schema, (&ctx.rp.version, ctx.rt().kind), verb)
}

/// `POST .../{plural}`.
pub async fn create(ctx: &Ctx<'_>, body: Body) -> Result<Response, ApiError> {
    let bytes = read_body(body).await?;
    let mut obj = decode_request_object(ctx, &bytes, Verb::Create)?;
    check_type(ctx, &mut obj)?;
    check_namespace(ctx, &mut obj)?;
    let obj = to_storage(ctx.rt(), obj)?;
    let stored = finish_create(ctx, obj, ctx.query.dry_run()?).await?;
    respond(ctx, StatusCode::CREATED, stored)
}

/// Which part of the object a PUT or PATCH writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The main resource (status kept when the kind has a status subresource).
    Main,
    /// `/status`: only status changes.
    Status,
}

fn merge_target(rt: &ResourceType, target: Target, old: &Value, mut new: Value) -> Value {
    match target {
        Target::Main => {
            if rt.has_subresource(Subresource::Status) {
                copy_status(&mut new, old);
            }
            rt.prepare_for_update(&mut new, old);
            new
        }
        Target::Status => {
            let mut out = old.clone();
            copy_status(&mut out, &new);
            out
        }
    }
}

/// `PUT .../{plural}/{name}` and `PUT .../{name}/status`.
pub async fn update(ctx: &Ctx<'_>, name: &str, body: Body) -> Result<Response, ApiError> {
    update_target(ctx, name, body, Target::Main).await
}

/// PUT on the main resource or its status.
pub async fn update_target(ctx: &Ctx<'_>, name: &str, body: Body, target: Target) -> Result<Response, ApiError> {
    let rt = ctx.rt();
    let bytes = read_body(body).await?;
    let mut obj = decode_request_object(ctx, &bytes, Verb::Update)?;
    check_type(ctx, &mut obj)?;
    match meta_str(&obj, "name").filter(|s| !s.is_empty()) {
        Some(n) if n != name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        Some(_) => {}
        None => {
            meta_mut(&mut obj).insert("name".into(), json!(name));
        }
    }
    check_namespace(ctx, &mut obj)?;
    let want_rev = body_revision(&obj)?;
    let obj = to_storage(rt, obj)?;
    let dry_run = ctx.query.dry_run()?;
    let manager = ctx.field_manager();
    for _ in 0..MAX_RETRIES {
        let Some((old, kv)) = ctx.current(name).await? else {
            if target == Target::Main && allows_create_on_update(rt) {
                let stored = finish_create(ctx, obj.clone(), dry_run).await?;
                return respond(ctx, StatusCode::CREATED, stored);
            }
            return Err(ApiError::not_found(rt, name));
        };
        if want_rev.is_some_and(|r| r != kv.mod_revision) {
            return Err(ApiError::conflict(rt, name));
        }
        check_uid(rt, name, &obj, &old)?;
        let new = merge_target(rt, target, &old, obj.clone());
        match finish_update(ctx, &old, kv.mod_revision, new, Some(&manager), dry_run).await {
            Ok(stored) => return respond(ctx, StatusCode::OK, stored),
            Err(e) if e.reason == "Conflict" && want_rev.is_none() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(rt, name))
}

/// Maps a patch failure to its Status.
pub fn patch_error(rt: &ResourceType, name: &str, e: PatchError) -> ApiError {
    match e {
        PatchError::BadRequest(m) => ApiError::bad_request(m),
        PatchError::Invalid(m) => {
            let mut err = ApiError::new(422, "Invalid", m);
            err.details.name = Some(name.to_string());
            err.details.group = Some(rt.group.to_string());
            err.details.kind = Some(rt.kind.to_string());
            err
        }
        PatchError::Conflicts(cs) => {
            let mut err = ApiError::conflict_msg(rt, name, "");
            err.message = PatchError::Conflicts(cs.clone()).to_string();
            err.details.causes = cs
                .iter()
                .map(|c| Cause {
                    reason: "FieldManagerConflict".into(),
                    message: format!("conflict with \"{}\"", c.manager),
                    field: c.field.clone(),
                })
                .collect();
            err
        }
    }
}

/// Reads a patch body and its type.
pub async fn read_patch(ctx: &Ctx<'_>, body: Body) -> Result<PatchBody, ApiError> {
    let ct = ctx.header(header::CONTENT_TYPE);
    let patch_type = PatchType::from_content_type(ct.unwrap_or_default()).ok_or_else(|| {
        ApiError::unsupported_media_type(
            &mime_of(ct),
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
                "application/strategic-merge-patch+json",
            ],
        )
    })?;
    let bytes = read_body(body).await?;
    field_validation::decode_patch(patch_type, &bytes)
}

/// `PATCH .../{plural}/{name}`.
pub async fn patch(ctx: &Ctx<'_>, name: &str, body: Body) -> Result<Response, ApiError> {
    patch_target(ctx, name, body, Target::Main).await
}

/// PATCH on the main resource or its status.
pub async fn patch_target(ctx: &Ctx<'_>, name: &str, body: Body, target: Target) -> Result<Response, ApiError> {
    let rt = ctx.rt();
    let patch_body = read_patch(ctx, body).await?;
    let (patch_type, patch_doc) = (patch_body.patch_type, &patch_body.doc);
    let directive = Directive::from_query(ctx.query, Verb::Patch)?;
    let schema = field_validation::schema_for(rt, &ctx.rp.version);
    let dry_run = ctx.query.dry_run()?;
    let manager = ctx.field_manager();
    if patch_type == PatchType::Apply && ctx.query.get("fieldManager").is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    let force = ctx.query.flag("force");
    if patch_type == PatchType::Apply {
        field_validation::check_applied(patch_doc, schema, (rt.group, &ctx.rp.api_version(), rt.kind))?;
    }
    for _ in 0..MAX_RETRIES {
        let current = ctx.current(name).await?;
        let Some((old, kv)) = current else {
            if patch_type == PatchType::Apply && target == Target::Main {
                let mut obj = patch::server_side_apply(rt.group, rt.kind, None, patch_doc, &manager, force)
                    .map_err(|e| patch_error(rt, name, e))?;
                check_type(ctx, &mut obj)?;
                match meta_str(&obj, "name") {
                    Some(n) if n != name => {
                        return Err(ApiError::bad_request(format!(
                            "the name of the object ({n}) does not match the name on the URL ({name})"
                        )));
                    }
                    _ => {
                        meta_mut(&mut obj).insert("name".into(), json!(name));
                    }
                }
                check_namespace(ctx, &mut obj)?;
                let obj = to_storage(rt, obj)?;
                let stored = finish_create(ctx, obj, dry_run).await?;
                return respond(ctx, StatusCode::CREATED, stored);
            }
            return Err(ApiError::not_found(rt, name));
        };
        let served_old = ctx.to_served(old.clone())?;
        let mut patched = match patch_type {
            PatchType::Apply => {
                patch::server_side_apply(rt.group, rt.kind, Some(&served_old), patch_doc, &manager, force)
            }
            other => patch::apply_patch(other, rt.group, rt.kind, &served_old, patch_doc),
        }
        .map_err(|e| patch_error(rt, name, e))?;
        if !patched.is_object() {
            return Err(ApiError::bad_request("the patch result is not an object"));
        }
        if patch_type != PatchType::Apply {
            field_validation::check_patched(&patch_body, &mut patched, schema, directive, &ctx.warnings)?;
        }
        let want_rev = body_revision(&patched)?;
        if want_rev.is_some_and(|r| r != kv.mod_revision) {
            return Err(ApiError::conflict(rt, name));
        }
        check_type(ctx, &mut patched)?;
        if meta_str(&patched, "name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                object::name_of(&patched)
            )));
        }
        let new = merge_target(rt, target, &old, to_storage(rt, patched)?);
        let track = if patch_type == PatchType::Apply { None } else { Some(manager.as_str()) };
        match finish_update(ctx, &old, kv.mod_revision, new, track, dry_run).await {
            Ok(stored) => return respond(ctx, StatusCode::OK, stored),
            Err(e) if e.reason == "Conflict" => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(rt, name))
}
