//! `berth apply -f`: client-side apply (GET; create with the last-applied annotation, or a
//! three-way merge patch; `created|configured|unchanged`) and `--server-side` apply patches
//! (field manager `berth`, `serverside-applied`).

use std::process::ExitCode;

use serde_json::Value;

use super::Ctx;
use crate::api::{path, query};
use crate::cli::{ApplyArgs, OutputFormat};
use crate::discovery::{DiscoveryError, ResourceInfo};
use crate::errors::{ServerStatusError, is_not_found, status_of};
use crate::manifest::{Manifest, read_all};
use crate::threeway::{last_applied_on, three_way_merge_patch, with_last_applied};

/// The field manager for server-side apply.
pub const FIELD_MANAGER: &str = "berth";
/// Attempts when a patch hits a 409 Conflict (someone else wrote in between).
const CONFLICT_RETRIES: usize = 5;

/// The resource, namespace and name a manifest addresses.
pub struct Target {
    pub res: ResourceInfo,
    pub namespace: Option<String>,
    pub name: String,
}

/// Maps a manifest to its resource through discovery.
pub async fn target_of(ctx: &Ctx, m: &Manifest) -> anyhow::Result<Target> {
    let obj = &m.object;
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    let obj_ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).filter(|s| !s.is_empty());
    let Some(res) = ctx.discovery().await?.for_kind(api_version, kind) else {
        return Err(DiscoveryError::UnknownKind {
            name,
            namespace: obj_ns.unwrap_or_default().to_string(),
            source_name: m.source.clone(),
            kind: kind.to_string(),
            api_version: api_version.to_string(),
        }
        .into());
    };
    if name.is_empty() {
        anyhow::bail!(
            "error when retrieving current configuration of {kind} from {:?}: resource name may not be empty",
            m.source
        );
    }
    if let Some(ns) = obj_ns.filter(|ns| res.namespaced && ctx.explicit_namespace && *ns != ctx.namespace) {
        anyhow::bail!(
            "the namespace from the provided object {ns:?} does not match the namespace {:?}. You must pass '--namespace={ns}' to perform this operation.",
            ctx.namespace
        );
    }
    let namespace = res.namespaced.then(|| obj_ns.unwrap_or(&ctx.namespace).to_string());
    Ok(Target { res, namespace, name })
}

/// kubectl's `AddSourceToErr`: server messages name the file the object came from.
pub fn add_source(err: anyhow::Error, verb: &str, source: &str) -> anyhow::Error {
    let Some(status) = status_of(&err) else { return err };
    if status.reason() == "Invalid" || status.code() == 422 {
        return err;
    }
    let mut s = status.0.clone();
    s.message = format!("error when {verb} {source:?}: {}", s.message);
    anyhow::Error::new(ServerStatusError(s))
}

/// Prints a per-object failure and continues (the exit code reports it).
pub fn print_failure(err: &anyhow::Error) {
    match status_of(err) {
        Some(status) => eprintln!("{status}"),
        None => eprintln!("error: {err:#}"),
    }
}

pub async fn run(ctx: &Ctx, args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let manifests = read_all(&args.filenames)?;
    let mut failed = false;
    for m in &manifests {
        let result = match target_of(ctx, m).await {
            Ok(t) if args.server_side => server_side(ctx, &t, m, args.force_conflicts).await,
            Ok(t) => client_side(ctx, &t, m).await,
            Err(e) => Err(e),
        };
        match result {
            Ok((t, verb)) => {
                if args.output == Some(OutputFormat::Name) {
                    println!("{}/{}", t.res.kind_group(), t.name);
                } else {
                    println!("{}/{} {verb}", t.res.kind_group(), t.name);
                }
            }
            Err(err) => {
                failed = true;
                print_failure(&err);
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

async fn server_side(ctx: &Ctx, t: &Target, m: &Manifest, force: bool) -> anyhow::Result<(Target, &'static str)> {
    let q = query(&[("fieldManager", Some(FIELD_MANAGER)), ("force", force.then_some("true"))]);
    let url = format!("{}{q}", path(&t.res, t.namespace.as_deref(), Some(&t.name)));
    ctx.api
        .patch(&url, "application/apply-patch+yaml", &m.object)
        .await
        .map_err(|e| add_source(e, "applying", &m.source))?;
    Ok((Target { res: t.res.clone(), namespace: t.namespace.clone(), name: t.name.clone() }, "serverside-applied"))
}

async fn client_side(ctx: &Ctx, t: &Target, m: &Manifest) -> anyhow::Result<(Target, &'static str)> {
    let done = |verb| Ok((Target { res: t.res.clone(), namespace: t.namespace.clone(), name: t.name.clone() }, verb));
    let object_path = path(&t.res, t.namespace.as_deref(), Some(&t.name));
    // kubectl records the namespace it applied to in the configuration.
    let mut config = m.object.clone();
    if let (Some(ns), Some(meta)) = (&t.namespace, config.get_mut("metadata").and_then(Value::as_object_mut)) {
        meta.entry("namespace").or_insert_with(|| Value::String(ns.clone()));
    }
    let modified = with_last_applied(&config);
    for attempt in 0..CONFLICT_RETRIES {
        let current = match ctx.api.get_json(&object_path).await {
            Ok(current) => current,
            Err(err) if is_not_found(&err) => {
                let collection = path(&t.res, t.namespace.as_deref(), None);
                let body = modified.clone();
                let url = format!("{collection}{}", query(&[("fieldManager", Some("kubectl-client-side-apply"))]));
                ctx.api.post(&url, &body).await.map_err(|e| add_source(e, "creating", &m.source))?;
                return done("created");
            }
            Err(err) => return Err(add_source(err, "retrieving current configuration of", &m.source)),
        };
        let original = last_applied_on(&current);
        let patch = three_way_merge_patch(original.as_ref(), &modified, &current);
        if patch.as_object().is_some_and(|p| p.is_empty()) {
            return done("unchanged");
        }
        let url = format!("{object_path}{}", query(&[("fieldManager", Some("kubectl-client-side-apply"))]));
        match ctx.api.patch(&url, "application/merge-patch+json", &patch).await {
            Ok(_) => return done("configured"),
            Err(err) if status_of(&err).is_some_and(|s| s.code() == 409) && attempt + 1 < CONFLICT_RETRIES => continue,
            Err(err) => return Err(err),
        }
    }
    unreachable!("the last attempt returns")
}
