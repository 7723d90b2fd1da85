//! Watch: `?watch=true` and `/watch/` paths. Synthetic ADDED events for the current state when
//! no resourceVersion (or "0") is given, then live store events filtered by label and field
//! selectors (an object that stops matching is reported DELETED, one that starts matching
//! ADDED), periodic BOOKMARKs, 410 Expired as an ERROR event, one JSON event per line.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use berth_store::{Event, EventType, RangeRequest, Revision, StoreError};
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, StatusCode, header};
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::negotiate::{Representation, representation};
use crate::object;
use crate::output::{IncludeObject, render_object};
use crate::resource::read::Selectors;
use crate::resource::{Ctx, to_version};

/// What one watch needs after the request is gone.
struct Watcher {
    rt: &'static berth_api::ResourceType,
    version: String,
    rep: Representation,
    include: IncludeObject,
    sel: Selectors,
    name: Option<String>,
}

impl Watcher {
    fn matches(&self, obj: &Value) -> bool {
        self.name.as_deref().is_none_or(|n| object::name_of(obj) == n) && self.sel.matches(obj)
    }

    fn line(&self, kind: &str, obj: Value) -> Option<Bytes> {
        let obj = to_version(self.rt, obj, &self.version).ok()?;
        let obj = render_object(&self.rep, self.rt, obj, self.include);
        let mut v = serde_json::to_vec(&json!({"type": kind, "object": obj})).ok()?;
        v.push(b'\n');
        Some(Bytes::from(v))
    }

    fn bookmark(&self, rev: Revision, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rev.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.rt.kind, "apiVersion": self.rt.api_version(&self.version), "metadata": meta});
        let mut v = serde_json::to_vec(&json!({"type": "BOOKMARK", "object": obj})).unwrap_or_default();
        v.push(b'\n');
        Bytes::from(v)
    }

    /// The watch event (type, object) for a store event after selector filtering.
    fn translate(&self, ev: &Event) -> Option<(&'static str, Value)> {
        match ev.kind {
            EventType::Create => {
                let obj = object::from_kv(&ev.kv)?;
                self.matches(&obj).then_some(("ADDED", obj))
            }
            EventType::Update => {
                let obj = object::from_kv(&ev.kv)?;
                let old_matched = ev.prev.as_ref().and_then(object::from_kv).is_some_and(|o| self.matches(&o));
                match (old_matched, self.matches(&obj)) {
                    (true, true) => Some(("MODIFIED", obj)),
                    (false, true) => Some(("ADDED", obj)),
                    (true, false) => Some(("DELETED", obj)),
                    (false, false) => None,
                }
            }
            EventType::Delete => {
                let obj = object::from_stored(&ev.kv.value, ev.revision)?;
                self.matches(&obj).then_some(("DELETED", obj))
            }
        }
    }
}

fn error_line(err: &ApiError) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": "ERROR", "object": err.status_json()})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// Starts a watch; the response streams until timeoutSeconds, shutdown or the client leaves.
pub async fn watch(ctx: &Ctx<'_>, name: Option<&str>) -> Result<Response, ApiError> {
    let rep = representation(ctx.header(header::ACCEPT), false)?;
    let sel = Selectors::from_ctx(ctx)?;
    let q = ctx.query;
    let rv = q.get("resourceVersion").filter(|s| !s.is_empty());
    let after: Option<Revision> = match rv {
        None | Some("0") => None,
        Some(s) => Some(s.parse::<Revision>().map_err(|_| {
            ApiError::bad_request(format!("resourceVersion: Invalid value: {s:?}: must be a valid resource version"))
        })?),
    };
    // `sendInitialEvents=false` without a resourceVersion: only changes from now on.
    let explicit_no_initial = q.get("sendInitialEvents") == Some("false");
    let send_initial = q.flag("sendInitialEvents") || (after.is_none() && !explicit_no_initial);
    let bookmarks = q.flag("allowWatchBookmarks");
    let timeout = match q.int("timeoutSeconds")? {
        Some(t) if t > 0 => Duration::from_secs(t as u64),
        _ => Duration::from_secs(rand::rng().random_range(1800..3600)),
    };
    let watcher = Watcher {
        rt: ctx.rt(),
        version: ctx.rp.version.clone(),
        rep: rep.clone(),
        include: IncludeObject::parse(q.get("includeObject")),
        sel,
        name: name.map(String::from),
    };
    let prefix = ctx.rt().key_prefix(ctx.ns());
    let store = ctx.state.store.clone();

    // The initial state and the starting revision are read before answering, so a bad request
    // still gets a plain error status.
    let mut initial = Vec::new();
    let start = if send_initial {
        let resp = store
            .range(RangeRequest { prefix: prefix.clone(), start_after: None, limit: None, revision: None })
            .await
            .map_err(|e| ApiError::from_store(ctx.rt(), "", e))?;
        for kv in &resp.kvs {
            if let Some(obj) = object::from_kv(kv)
                && watcher.matches(&obj)
                && let Some(line) = watcher.line("ADDED", obj)
            {
                initial.push(line);
            }
        }
        // A sendInitialEvents watch from a given revision still continues from the newest state.
        resp.revision
    } else {
        match after {
            Some(a) => a,
            None => store.current_revision().await.map_err(|e| ApiError::from_store(ctx.rt(), "", e))?,
        }
    };
    let initial_end_bookmark = q.flag("sendInitialEvents") && bookmarks;
    let stream = store.watch(&prefix, start).await;
    let bookmark_interval = ctx.state.bookmark_interval;
    let cancel = ctx.state.cancel.clone();
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        for line in initial {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        if initial_end_bookmark && tx.send(watcher.bookmark(start, true)).await.is_err() {
            return;
        }
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(error_line(&store_error(e))).await;
                return;
            }
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last_rev = start;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + bookmark_interval, bookmark_interval);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tx.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    if tx.send(watcher.bookmark(last_rev, false)).await.is_err() {
                        return;
                    }
                }
                item = stream.next() => match item {
                    None => return,
                    Some(Err(e)) => {
                        let _ = tx.send(error_line(&store_error(e))).await;
                        return;
                    }
                    Some(Ok(ev)) => {
                        last_rev = last_rev.max(ev.revision);
                        if let Some((kind, obj)) = watcher.translate(&ev)
                            && let Some(line) = watcher.line(kind, obj)
                            && tx.send(line).await.is_err()
                        {
                            return;
                        }
                    }
                },
            }
        }
    });
    let body =
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>));
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    let ct = match &rep {
        Representation::Json => "application/json".to_string(),
        other => other.content_type(false),
    };
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&ct).unwrap_or(HeaderValue::from_static("application/json")),
    );
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    Ok(resp)
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Compacted { requested, compacted } => {
            ApiError::expired(format!("too old resource version: {requested} ({compacted})"))
        }
        other => ApiError::internal(crate::error::error_chain(&other)),
    }
}
