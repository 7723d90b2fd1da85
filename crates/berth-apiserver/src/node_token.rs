//! The join token agents use, in k3s's format `K10<sha256 of the CA certificate, hex>::server:<secret>`.
//! The server writes it to DATA_DIR/server/token on first start and keeps it across restarts. The
//! secret is a bearer token for the bootstrap node identity (group `system:nodes`); the CA hash
//! lets an agent check the CA it fetches from the unauthenticated `GET /cacerts` before trusting
//! it, as a k3s agent does. Touches only that file.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::authn::UserInfo;

/// The user a join-token request authenticates as.
pub const NODE_BOOTSTRAP_USER: &str = "system:node-bootstrap:berth";
/// The group of every node identity (upstream's `system:nodes`).
pub const NODES_GROUP: &str = "system:nodes";
/// The path agents fetch the CA certificate from, without credentials (as k3s).
pub const CACERTS_PATH: &str = "/cacerts";

const PREFIX: &str = "K10";
const SEPARATOR: &str = "::server:";

/// A parsed join token.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeToken {
    /// Hex SHA-256 of the CA certificate PEM.
    pub ca_hash: String,
    /// The bearer secret.
    pub secret: String,
}

impl std::fmt::Debug for NodeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeToken").field("ca_hash", &self.ca_hash).field("secret", &"<redacted>").finish()
    }
}

/// Why a token could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
pub enum NodeTokenError {
    #[error("invalid join token: {0} (expected K10<ca sha256>::server:<secret>)")]
    Malformed(&'static str),
    #[error("failed to read the join token {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write the join token {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Hex SHA-256 of the CA certificate as served by `/cacerts` (k3s hashes the response body).
pub fn ca_hash(ca_pem: &str) -> String {
    hex::encode(Sha256::digest(ca_pem.as_bytes()))
}

impl NodeToken {
    /// A new token for `ca_pem` with a random 128-bit secret.
    pub fn generate(ca_pem: &str) -> NodeToken {
        let secret: [u8; 16] = rand::random();
        NodeToken { ca_hash: ca_hash(ca_pem), secret: hex::encode(secret) }
    }

    /// Parses `K10<hash>::server:<secret>`.
    ///
    /// # Errors
    /// [`NodeTokenError::Malformed`] naming what is wrong.
    pub fn parse(text: &str) -> Result<NodeToken, NodeTokenError> {
        let rest = text.trim().strip_prefix(PREFIX).ok_or(NodeTokenError::Malformed("no K10 prefix"))?;
        let (hash, secret) = rest.split_once(SEPARATOR).ok_or(NodeTokenError::Malformed("no ::server: part"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NodeTokenError::Malformed("the CA hash is not 64 hex digits"));
        }
        if secret.is_empty() || secret.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(NodeTokenError::Malformed("the secret is empty or has spaces"));
        }
        Ok(NodeToken { ca_hash: hash.to_ascii_lowercase(), secret: secret.to_string() })
    }

    /// Whether `ca_pem` is the CA this token was issued for.
    pub fn matches_ca(&self, ca_pem: &str) -> bool {
        ca_hash(ca_pem) == self.ca_hash
    }

    /// The identity the secret authenticates as.
    pub fn user() -> UserInfo {
        UserInfo::new(NODE_BOOTSTRAP_USER, [NODES_GROUP])
    }
}

impl std::fmt::Display for NodeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PREFIX}{}{SEPARATOR}{}", self.ca_hash, self.secret)
    }
}

/// DATA_DIR/server/token.
pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("server").join("token")
}

/// Loads the token at `path`, or creates it (mode 0600). A token whose CA hash no longer matches
/// (the CA was recreated) keeps its secret and gets the new hash.
///
/// # Errors
/// I/O errors naming the file; a malformed existing file.
pub fn ensure(path: &Path, ca_pem: &str) -> Result<NodeToken, NodeTokenError> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(NodeToken::parse(&text)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(NodeTokenError::Read { path: path.to_path_buf(), source }),
    };
    let token = match existing {
        Some(t) if t.matches_ca(ca_pem) => return Ok(t),
        Some(t) => NodeToken { ca_hash: ca_hash(ca_pem), secret: t.secret },
        None => NodeToken::generate(ca_pem),
    };
    write(path, &token).map_err(|source| NodeTokenError::Write { path: path.to_path_buf(), source })?;
    Ok(token)
}

fn write(path: &Path, token: &NodeToken) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    writeln!(file, "{token}")?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// `GET /cacerts`: the CA certificate, PEM, for anyone (it is public; agents verify it against
/// the hash in their token).
pub fn routes(ca_pem: String) -> axum::Router {
    axum::Router::new().route(
        CACERTS_PATH,
        axum::routing::get(move || {
            let pem = ca_pem.clone();
            async move { ([(http::header::CONTENT_TYPE, "application/x-pem-file")], pem) }
        }),
    )
}

/// What a node identity may do (a subset of upstream's `system:node` ClusterRole: its own kinds,
/// and reading what pods refer to). Namespaces are read-only; `kube-node-lease` exists from
/// bootstrap on.
const NODE_RULES: &[(&str, &[&str], &[&str])] = &[
    ("", &["nodes"], &["get", "list", "watch", "create", "update", "patch", "delete"]),
    ("", &["nodes/status"], &["get", "update", "patch"]),
    ("", &["pods"], &["get", "list", "watch", "create", "delete"]),
    ("", &["pods/status"], &["get", "update", "patch"]),
    ("", &["pods/eviction"], &["create"]),
    ("", &["events"], &["create", "update", "patch"]),
    ("events.k8s.io", &["events"], &["create", "update", "patch"]),
    ("coordination.k8s.io", &["leases"], &["get", "list", "watch", "create", "update", "patch", "delete"]),
    (
        "",
        &[
            "configmaps",
            "secrets",
            "services",
            "endpoints",
            "namespaces",
            "persistentvolumeclaims",
            "persistentvolumes",
        ],
        &["get", "list", "watch"],
    ),
    ("", &["serviceaccounts/token"], &["create"]),
    ("discovery.k8s.io", &["endpointslices"], &["get", "list", "watch"]),
];

/// Whether a node identity may make this resource request.
pub fn node_may(attrs: &crate::authz::RequestAttributes) -> bool {
    if !attrs.is_resource_request() {
        return false;
    }
    let resource = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    NODE_RULES.iter().any(|(group, resources, verbs)| {
        *group == attrs.group && resources.contains(&resource.as_str()) && verbs.contains(&attrs.verb.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn a_token_round_trips_through_its_k3s_text_form() {
        let token = NodeToken::generate(CA);
        let text = token.to_string();
        assert!(text.starts_with("K10"), "{text}");
        assert!(text.contains("::server:"), "{text}");
        assert_eq!(NodeToken::parse(&text).expect("parses"), token);
        assert!(token.matches_ca(CA));
        assert!(!token.matches_ca("another CA"));
        assert!(!format!("{token:?}").contains(&token.secret), "Debug must not print the secret");
    }

    #[test]
    fn malformed_tokens_are_rejected_with_the_reason() {
        let hash = ca_hash(CA);
        let cases = [
            ("no prefix", format!("K11{hash}::server:abc"), "prefix"),
            ("no server part", format!("K10{hash}:abc"), "::server:"),
            ("short hash", "K10abcd::server:abc".to_string(), "64 hex"),
            ("empty secret", format!("K10{hash}::server:"), "empty"),
        ];
        for (name, text, want) in cases {
            let err = NodeToken::parse(&text).expect_err(name).to_string();
            assert!(err.contains(want), "{name}: {err}");
        }
    }

    #[test]
    fn node_identities_may_do_kubelet_work_only() {
        use crate::authz::RequestAttributes as A;
        let allowed = [
            A::resource("patch", "", "nodes", "", "n1").with_subresource("status"),
            A::resource("watch", "", "pods", "", ""),
            A::resource("patch", "", "pods", "default", "p").with_subresource("status"),
            A::resource("update", "coordination.k8s.io", "leases", "kube-node-lease", "n1"),
            A::resource("create", "", "events", "default", ""),
            A::resource("get", "", "secrets", "default", "s"),
        ];
        for a in &allowed {
            assert!(node_may(a), "{a:?}");
        }
        let denied = [
            A::resource("delete", "", "secrets", "default", "s"),
            A::resource("create", "", "namespaces", "", ""),
            A::resource("update", "", "pods", "default", "p"),
            A::resource("create", "apps", "deployments", "default", ""),
            A::resource("create", "rbac.authorization.k8s.io", "clusterrolebindings", "", ""),
            A::non_resource(&http::Method::GET, "/metrics"),
        ];
        for a in &denied {
            assert!(!node_may(a), "{a:?}");
        }
    }

    #[test]
    fn the_token_file_is_created_once_kept_and_rehashed_for_a_new_ca() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = token_path(dir.path());
        let first = ensure(&path, CA).expect("created");
        assert_eq!(std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777, 0o600);
        assert_eq!(ensure(&path, CA).expect("loaded"), first);
        let other = ensure(&path, "new CA").expect("rehashed");
        assert_eq!(other.secret, first.secret);
        assert!(other.matches_ca("new CA"));
        assert_eq!(NodeToken::parse(&std::fs::read_to_string(&path).expect("read")).expect("parses"), other);
    }
}
