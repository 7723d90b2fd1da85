//! `/livez`, `/readyz` and `/healthz` as kube-apiserver answers them (apiserver
//! `pkg/server/healthz`): plain `ok`, or with `?verbose` one `[+]name ok` / `[-]name failed: reason
//! withheld` line per check and `<endpoint> check passed|failed`; failures answer 500 with the
//! full list; `?exclude=name` skips a check; `/livez/<check>` runs one check. Readiness comes
//! from [`Readiness`], which the server flips when bootstrap is done and again on shutdown.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use http::StatusCode;

/// The readiness check's name (a post-start hook, as upstream names bootstrap steps).
pub const BOOTSTRAP_CHECK: &str = "poststarthook/berth-bootstrap";

/// Whether the apiserver is ready (bootstrap done) and whether it is shutting down. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    ready: Arc<AtomicBool>,
    shutting_down: Arc<AtomicBool>,
}

impl Readiness {
    /// Not ready, not shutting down.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks bootstrap done (`true`) or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// From now on `/readyz` fails its `shutdown` check, so load balancers stop sending traffic.
    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}

type CheckFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Which endpoint is being asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Livez,
    Readyz,
    Healthz,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Livez => "livez",
            Endpoint::Readyz => "readyz",
            Endpoint::Healthz => "healthz",
        }
    }
}

/// The checks behind the three endpoints. `ping` and `log` always pass; added checks (e.g. the
/// datastore as `etcd`) run for all three; bootstrap readiness runs for `/readyz` and `/healthz`;
/// `shutdown` for `/readyz` only.
#[derive(Clone)]
pub struct Health {
    readiness: Readiness,
    checks: Vec<(String, CheckFn)>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.checks.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Health").field("readiness", &self.readiness).field("checks", &names).finish()
    }
}

impl Health {
    pub fn new(readiness: Readiness) -> Self {
        Health { readiness, checks: Vec::new() }
    }

    /// Adds a check run by all three endpoints; an `Err` fails it (the reason is logged, never
    /// sent to the client, as upstream).
    pub fn add_check<F, Fut>(&mut self, name: impl Into<String>, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let check: CheckFn = Arc::new(move || Box::pin(check()));
        self.checks.push((name.into(), check));
    }

    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// The checks of `endpoint`, in the order they are reported.
    fn checks_for(&self, endpoint: Endpoint) -> Vec<(String, CheckFn)> {
        let ok: CheckFn = Arc::new(|| Box::pin(async { Ok(()) }));
        let mut out = vec![("ping".to_string(), ok.clone()), ("log".to_string(), ok)];
        out.extend(self.checks.iter().cloned());
        if endpoint != Endpoint::Livez {
            let readiness = self.readiness.clone();
            let bootstrap: CheckFn = Arc::new(move || {
                let ready = readiness.is_ready();
                Box::pin(async move { if ready { Ok(()) } else { Err("not finished".to_string()) } })
            });
            out.push((BOOTSTRAP_CHECK.to_string(), bootstrap));
        }
        if endpoint == Endpoint::Readyz {
            let readiness = self.readiness.clone();
            let shutdown: CheckFn = Arc::new(move || {
                let down = readiness.is_shutting_down();
                Box::pin(async move { if down { Err("process is shutting down".to_string()) } else { Ok(()) } })
            });
            out.push(("shutdown".to_string(), shutdown));
        }
        out
    }

    /// Answers `/<endpoint>` with the raw query string (for `verbose` and `exclude`).
    pub async fn respond(&self, endpoint: Endpoint, query: Option<&str>) -> Response {
        let (verbose, excluded) = parse_query(query);
        let mut unmatched = excluded.clone();
        let mut listing = String::new();
        let mut failed = false;
        for (name, check) in self.checks_for(endpoint) {
            if excluded.contains(&name) {
                unmatched.remove(&name);
                let _ = writeln!(listing, "[+]{name} excluded: ok");
                continue;
            }
            match check().await {
                Ok(()) => {
                    let _ = writeln!(listing, "[+]{name} ok");
                }
                Err(reason) => {
                    tracing::info!(endpoint = endpoint.name(), check = %name, %reason, "health check failed");
                    let _ = writeln!(listing, "[-]{name} failed: reason withheld");
                    failed = true;
                }
            }
        }
        if !unmatched.is_empty() {
            let names: Vec<String> = unmatched.into_iter().collect();
            let _ =
                writeln!(listing, "warn: some health checks cannot be excluded: no matches for {}", names.join(","));
        }
        if failed {
            // Go's http.Error: the message plus a newline, 500.
            return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{listing}{} check failed\n", endpoint.name()));
        }
        if !verbose {
            return text(StatusCode::OK, "ok".to_string());
        }
        text(StatusCode::OK, format!("{listing}{} check passed\n", endpoint.name()))
    }

    /// Answers `/<endpoint>/<check>`: `ok`, a 500 `internal server error: ...`, or 404.
    pub async fn respond_single(&self, endpoint: Endpoint, name: &str) -> Response {
        let Some((_, check)) = self.checks_for(endpoint).into_iter().find(|(n, _)| n == name) else {
            return text(StatusCode::NOT_FOUND, "404 page not found\n".to_string());
        };
        match check().await {
            Ok(()) => text(StatusCode::OK, "ok".to_string()),
            Err(reason) => {
                tracing::info!(endpoint = endpoint.name(), check = %name, %reason, "health check failed");
                text(StatusCode::INTERNAL_SERVER_ERROR, "internal server error: reason withheld\n".to_string())
            }
        }
    }
}

/// Routes for `/livez`, `/readyz`, `/healthz` and their per-check paths, mergeable into any router.
pub fn router<S: Clone + Send + Sync + 'static>(health: Health) -> axum::Router<S> {
    async fn all(State(h): State<Health>, endpoint: Endpoint, RawQuery(q): RawQuery) -> Response {
        h.respond(endpoint, q.as_deref()).await
    }
    async fn one(State(h): State<Health>, endpoint: Endpoint, Path(check): Path<String>) -> Response {
        h.respond_single(endpoint, &check).await
    }
    let mut router = axum::Router::new();
    for endpoint in [Endpoint::Livez, Endpoint::Readyz, Endpoint::Healthz] {
        router = router
            .route(&format!("/{}", endpoint.name()), get(move |s: State<Health>, q: RawQuery| all(s, endpoint, q)))
            .route(
                &format!("/{}/{{*check}}", endpoint.name()),
                get(move |s: State<Health>, p: Path<String>| one(s, endpoint, p)),
            );
    }
    router.with_state(health)
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8"), (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff")],
        body,
    )
        .into_response()
}

/// `verbose` present (any value), and the set of `exclude=` names.
fn parse_query(query: Option<&str>) -> (bool, BTreeSet<String>) {
    let mut verbose = false;
    let mut excluded = BTreeSet::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "verbose" => verbose = true,
            "exclude" if !value.is_empty() => {
                excluded.insert(percent_decode(value));
            }
            _ => {}
        }
    }
    (verbose, excluded)
}

/// Minimal `%XX` decoding for check names such as `poststarthook%2Fberth-bootstrap`.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn call(router: &axum::Router, uri: &str) -> (StatusCode, String, String) {
        let req = http::Request::get(uri).body(axum::body::Body::empty()).expect("request");
        let resp = router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let ctype =
            resp.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, ctype, String::from_utf8_lossy(&body).into_owned())
    }

    fn ready_router() -> (Readiness, axum::Router) {
        let readiness = Readiness::new();
        let mut health = Health::new(readiness.clone());
        health.add_check("etcd", || async { Ok(()) });
        (readiness, router(health))
    }

    #[tokio::test]
    async fn livez_answers_plain_ok_and_verbose_listing() {
        let (_, router) = ready_router();
        assert_eq!(call(&router, "/livez").await, (StatusCode::OK, "text/plain; charset=utf-8".into(), "ok".into()));
        let (status, _, body) = call(&router, "/livez?verbose").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "[+]ping ok\n[+]log ok\n[+]etcd ok\nlivez check passed\n");
        assert_eq!(call(&router, "/livez/ping").await.2, "ok");
        assert_eq!(call(&router, "/livez/nope").await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn readyz_fails_until_bootstrap_is_done_and_again_on_shutdown() {
        let (readiness, router) = ready_router();
        let (status, _, body) = call(&router, "/readyz").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            "[+]ping ok\n[+]log ok\n[+]etcd ok\n[-]poststarthook/berth-bootstrap failed: reason withheld\n\
             [+]shutdown ok\nreadyz check failed\n"
        );
        assert_eq!(call(&router, "/livez").await.0, StatusCode::OK, "liveness ignores bootstrap");
        assert_eq!(call(&router, "/readyz/poststarthook/berth-bootstrap").await.0, StatusCode::INTERNAL_SERVER_ERROR);

        readiness.set_ready(true);
        assert_eq!(call(&router, "/readyz").await.2, "ok");
        assert_eq!(call(&router, "/healthz").await.2, "ok");
        assert_eq!(call(&router, "/readyz/poststarthook/berth-bootstrap").await.2, "ok");

        readiness.set_shutting_down();
        let (status, _, body) = call(&router, "/readyz").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains("[-]shutdown failed: reason withheld\n"), "{body}");
        assert_eq!(call(&router, "/healthz").await.0, StatusCode::OK, "healthz has no shutdown check");
    }

    #[tokio::test]
    async fn failing_added_check_fails_every_endpoint_unless_excluded() {
        let readiness = Readiness::new();
        readiness.set_ready(true);
        let mut health = Health::new(readiness);
        health.add_check("etcd", || async { Err("connection refused".to_string()) });
        let router = router(health);
        for ep in ["/livez", "/readyz", "/healthz"] {
            let (status, _, body) = call(&router, ep).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{ep}");
            assert!(body.contains("[-]etcd failed: reason withheld\n"), "{body}");
            assert!(!body.contains("connection refused"), "reason withheld");
        }
        let (status, _, body) = call(&router, "/livez?verbose&exclude=etcd&exclude=bogus").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            "[+]ping ok\n[+]log ok\n[+]etcd excluded: ok\n\
             warn: some health checks cannot be excluded: no matches for bogus\nlivez check passed\n"
        );
    }
}
