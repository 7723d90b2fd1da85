//! Authorization: may this user do this? Until RBAC exists, a fixed policy: `system:masters` may do
//! anything; every other authenticated user may read the non-resource discovery, version, health
//! and OpenAPI paths (upstream's `system:discovery` and `system:public-info-viewer` roles) and
//! create self-reviews (`system:basic-user`). Pure: no I/O.
//!
//! Denials carry upstream's exact wording (apiserver `responsewriters.forbiddenMessage` wrapped by
//! `apierrors.NewForbidden`).

use crate::authn::UserInfo;

/// The group allowed everything.
pub const MASTERS_GROUP: &str = "system:masters";

/// What a request wants to do, as upstream's `authorizer.Attributes`. A request with an empty
/// `resource` is a non-resource request on `path`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestAttributes {
    /// Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection (resource
    /// requests), or the lower-case HTTP method (non-resource requests).
    pub verb: String,
    /// API group, `""` for core.
    pub group: String,
    /// API version (`v1`); empty for non-resource requests.
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// The request path; used for non-resource requests.
    pub path: String,
}

impl RequestAttributes {
    /// A resource request.
    pub fn resource(
        verb: impl Into<String>,
        group: impl Into<String>,
        resource: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        RequestAttributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    /// A non-resource request (`/version`, `/healthz`, `/api`, ...); `verb` from the HTTP method.
    pub fn non_resource(method: &http::Method, path: impl Into<String>) -> Self {
        RequestAttributes { verb: method.as_str().to_ascii_lowercase(), path: path.into(), ..Default::default() }
    }

    /// Derives the attributes from a request line, as upstream's `RequestInfoFactory`: `/api/V/...`
    /// and `/apis/G/V/...` are resource requests when they name a resource; everything else (and
    /// discovery such as `/api/v1`) is a non-resource request on the path. Verbs: GET is `get`,
    /// `list` or `watch` (`?watch=true|1`, or a `fieldSelector` on `metadata.name` with watch),
    /// POST `create`, PUT `update`, PATCH `patch`, DELETE `delete` or `deletecollection`.
    pub fn from_request(method: &http::Method, uri: &http::Uri) -> Self {
        let path = uri.path();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (group, api_version, rest) = match segments.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return Self::non_resource(method, path),
        };
        let mut namespace = "";
        let mut rest = rest;
        if let ["namespaces", ns, tail @ ..] = rest {
            namespace = ns;
            // `namespaces/NS/status` and `/finalize` are subresources of the namespace itself; as
            // upstream, a Namespace's own requests carry its name as their namespace too.
            if !tail.is_empty() && !matches!(tail[0], "status" | "finalize") {
                rest = tail;
            }
        }
        let (resource, name, subresource) = match rest {
            [] => return Self::non_resource(method, path),
            [resource] => (*resource, "", ""),
            [resource, name] => (*resource, *name, ""),
            [resource, name, sub, ..] => (*resource, *name, *sub),
        };
        let watch = uri.query().unwrap_or("").split('&').any(|kv| matches!(kv, "watch=true" | "watch=1" | "watch"));
        let verb = match *method {
            http::Method::GET | http::Method::HEAD if watch => "watch",
            http::Method::GET | http::Method::HEAD if name.is_empty() => "list",
            http::Method::GET | http::Method::HEAD => "get",
            http::Method::POST => "create",
            http::Method::PUT => "update",
            http::Method::PATCH => "patch",
            http::Method::DELETE if name.is_empty() => "deletecollection",
            http::Method::DELETE => "delete",
            _ => return Self::non_resource(method, path),
        };
        RequestAttributes {
            verb: verb.to_string(),
            group: group.to_string(),
            api_version: api_version.to_string(),
            resource: resource.to_string(),
            subresource: subresource.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            path: path.to_string(),
        }
    }

    /// Sets the subresource (`status`, `scale`, `log`, `exec`, ...).
    pub fn with_subresource(mut self, subresource: impl Into<String>) -> Self {
        self.subresource = subresource.into();
        self
    }

    pub fn is_resource_request(&self) -> bool {
        !self.resource.is_empty()
    }
}

/// A denial (HTTP 403, reason `Forbidden`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Forbidden {
    /// The full `Status.message`, e.g. `pods is forbidden: User "bob" cannot list resource "pods"
    /// in API group "" in the namespace "default"`.
    pub message: String,
    /// `Status.details.group`.
    pub group: String,
    /// `Status.details.kind` (upstream puts the resource here).
    pub kind: String,
    /// `Status.details.name`.
    pub name: String,
}

impl Forbidden {
    fn new(user: &UserInfo, attrs: &RequestAttributes) -> Self {
        let reason = forbidden_reason(user, attrs);
        let qualified = match (attrs.resource.as_str(), attrs.group.as_str()) {
            ("", _) => String::new(),
            (r, "") => r.to_string(),
            (r, g) => format!("{r}.{g}"),
        };
        let message = if qualified.is_empty() && attrs.group.is_empty() {
            format!("forbidden: {reason}")
        } else if attrs.name.is_empty() {
            format!("{qualified} is forbidden: {reason}")
        } else {
            format!("{qualified} {:?} is forbidden: {reason}", attrs.name)
        };
        Forbidden { message, group: attrs.group.clone(), kind: attrs.resource.clone(), name: attrs.name.clone() }
    }

    /// The HTTP status (403).
    pub fn status_code(&self) -> http::StatusCode {
        http::StatusCode::FORBIDDEN
    }

    /// The `Status` object to send back, as upstream.
    pub fn status(&self) -> serde_json::Value {
        let mut details = serde_json::Map::new();
        if !self.name.is_empty() {
            details.insert("name".into(), self.name.clone().into());
        }
        if !self.group.is_empty() {
            details.insert("group".into(), self.group.clone().into());
        }
        if !self.kind.is_empty() {
            details.insert("kind".into(), self.kind.clone().into());
        }
        serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": "Forbidden",
            "details": details,
            "code": 403,
        })
    }
}

/// Upstream's `forbiddenMessage`.
fn forbidden_reason(user: &UserInfo, attrs: &RequestAttributes) -> String {
    if !attrs.is_resource_request() {
        return format!("User {:?} cannot {} path {:?}", user.name, attrs.verb, attrs.path);
    }
    let mut resource = attrs.resource.clone();
    if !attrs.subresource.is_empty() {
        resource = format!("{resource}/{}", attrs.subresource);
    }
    if attrs.namespace.is_empty() {
        format!(
            "User {:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
            user.name, attrs.verb, attrs.group
        )
    } else {
        format!(
            "User {:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
            user.name, attrs.verb, attrs.group, attrs.namespace
        )
    }
}

/// Non-resource paths every authenticated user may GET (upstream `system:discovery` and
/// `system:public-info-viewer`); a trailing `*` matches any suffix.
const PUBLIC_PATHS: &[&str] = &[
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/healthz/*",
    "/livez",
    "/livez/*",
    "/readyz",
    "/readyz/*",
    "/version",
    "/version/",
    "/openapi",
    "/openapi/*",
];

/// Resource requests every authenticated user may make (upstream `system:basic-user`).
const SELF_REVIEWS: &[(&str, &str)] = &[
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
    ("authentication.k8s.io", "selfsubjectreviews"),
];

/// Decides whether `user` may do `attrs`.
///
/// # Errors
/// [`Forbidden`] with upstream's message when the policy denies it.
pub fn authorize(user: &UserInfo, attrs: &RequestAttributes) -> Result<(), Forbidden> {
    if user.in_group(MASTERS_GROUP) {
        return Ok(());
    }
    if user.in_group(crate::node_token::NODES_GROUP) && crate::node_token::node_may(attrs) {
        return Ok(());
    }
    let allowed = if attrs.is_resource_request() {
        attrs.verb == "create"
            && attrs.subresource.is_empty()
            && SELF_REVIEWS.iter().any(|(g, r)| *g == attrs.group && *r == attrs.resource)
    } else {
        (attrs.verb == "get" || attrs.verb == "head") && PUBLIC_PATHS.iter().any(|p| path_matches(p, &attrs.path))
    };
    if allowed { Ok(()) } else { Err(Forbidden::new(user, attrs)) }
}

fn path_matches(pattern: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bob() -> UserInfo {
        UserInfo::new("bob", ["system:authenticated"])
    }

    #[test]
    fn forbidden_message_matches_upstream_for_namespaced_list() {
        let err =
            authorize(&bob(), &RequestAttributes::resource("list", "", "pods", "default", "")).expect_err("denied");
        assert_eq!(
            err.message,
            r#"pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the namespace "default""#
        );
        assert_eq!(err.status_code(), http::StatusCode::FORBIDDEN);
        let status = err.status();
        assert_eq!(status["reason"], "Forbidden");
        assert_eq!(status["code"], 403);
        assert_eq!(status["details"], serde_json::json!({"kind": "pods"}));
    }

    #[test]
    fn forbidden_messages_cover_name_group_subresource_cluster_scope_and_paths() {
        let cases = [
            (
                "named, grouped, subresource",
                RequestAttributes::resource("get", "apps", "deployments", "web", "nginx").with_subresource("scale"),
                r#"deployments.apps "nginx" is forbidden: User "bob" cannot get resource "deployments/scale" in API group "apps" in the namespace "web""#,
            ),
            (
                "cluster scope",
                RequestAttributes::resource("list", "", "nodes", "", ""),
                r#"nodes is forbidden: User "bob" cannot list resource "nodes" in API group "" at the cluster scope"#,
            ),
            (
                "non-resource path",
                RequestAttributes::non_resource(&http::Method::POST, "/version"),
                r#"forbidden: User "bob" cannot post path "/version""#,
            ),
        ];
        for (name, attrs, want) in cases {
            assert_eq!(authorize(&bob(), &attrs).expect_err(name).message, want, "{name}");
        }
    }

    #[test]
    fn attributes_from_request_follow_upstream_request_info() {
        let attrs = |m: http::Method, uri: &str| RequestAttributes::from_request(&m, &uri.parse().expect("uri"));
        let cases = [
            ("/api/v1/namespaces/default/pods", http::Method::GET, ("list", "", "v1", "pods", "", "default", "")),
            (
                "/api/v1/namespaces/default/pods?watch=true",
                http::Method::GET,
                ("watch", "", "v1", "pods", "", "default", ""),
            ),
            (
                "/api/v1/namespaces/default/pods/p/log",
                http::Method::GET,
                ("get", "", "v1", "pods", "log", "default", "p"),
            ),
            (
                "/apis/apps/v1/namespaces/web/deployments/d/scale",
                http::Method::PATCH,
                ("patch", "apps", "v1", "deployments", "scale", "web", "d"),
            ),
            ("/apis/apps/v1/deployments", http::Method::GET, ("list", "apps", "v1", "deployments", "", "", "")),
            ("/api/v1/namespaces", http::Method::POST, ("create", "", "v1", "namespaces", "", "", "")),
            (
                "/api/v1/namespaces/kube-system",
                http::Method::DELETE,
                ("delete", "", "v1", "namespaces", "", "kube-system", "kube-system"),
            ),
            (
                "/api/v1/namespaces/ns1/status",
                http::Method::PUT,
                ("update", "", "v1", "namespaces", "status", "ns1", "ns1"),
            ),
            ("/api/v1/nodes", http::Method::DELETE, ("deletecollection", "", "v1", "nodes", "", "", "")),
        ];
        for (uri, method, (verb, group, version, resource, sub, ns, name)) in cases {
            let a = attrs(method, uri);
            assert!(a.is_resource_request(), "{uri}");
            assert_eq!(
                (a.verb.as_str(), a.group.as_str(), a.api_version.as_str(), a.resource.as_str()),
                (verb, group, version, resource),
                "{uri}"
            );
            assert_eq!((a.subresource.as_str(), a.namespace.as_str(), a.name.as_str()), (sub, ns, name), "{uri}");
        }
        for uri in ["/api", "/api/v1", "/apis/apps/v1", "/version", "/healthz", "/openapi/v3/apis/apps/v1"] {
            let a = attrs(http::Method::GET, uri);
            assert!(!a.is_resource_request(), "{uri}");
            assert_eq!((a.verb.as_str(), a.path.as_str()), ("get", uri.split('?').next().unwrap_or(uri)));
        }
    }

    #[test]
    fn masters_may_do_anything() {
        let admin = UserInfo::new("system:admin", ["system:masters", "system:authenticated"]);
        assert_eq!(authorize(&admin, &RequestAttributes::resource("delete", "", "namespaces", "", "default")), Ok(()));
        assert_eq!(authorize(&admin, &RequestAttributes::non_resource(&http::Method::DELETE, "/whatever")), Ok(()));
    }

    #[test]
    fn other_users_may_only_read_discovery_version_health_and_create_self_reviews() {
        let get = |p: &str| RequestAttributes::non_resource(&http::Method::GET, p);
        for path in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps/v1",
            "/version",
            "/healthz",
            "/livez",
            "/readyz?verbose",
            "/openapi/v3",
        ] {
            assert_eq!(authorize(&bob(), &get(path)), Ok(()), "{path}");
        }
        for path in ["/metrics", "/logs", "/versions", "/"] {
            assert!(authorize(&bob(), &get(path)).is_err(), "{path}");
        }
        let review = RequestAttributes::resource("create", "authorization.k8s.io", "selfsubjectaccessreviews", "", "");
        assert_eq!(authorize(&bob(), &review), Ok(()));
        assert!(authorize(&bob(), &RequestAttributes::resource("get", "", "pods", "default", "p")).is_err());
        assert!(authorize(&bob(), &RequestAttributes::resource("create", "", "namespaces", "", "")).is_err());
    }
}
