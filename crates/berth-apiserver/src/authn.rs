//! Authentication: who is making a request. Sources, in kube-apiserver's order: the verified TLS
//! client certificate (CN = user, O = groups; put on the request by `tls::serve_tls` as
//! [`ConnInfo`](crate::tls::ConnInfo)), then a static bearer token from the `--token-auth-file`
//! CSV. Reads request headers and extensions only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The group every authenticated user is in.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// An authenticated user, as upstream's `user.Info`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    /// A user with `name` and `groups` and no uid.
    pub fn new(name: impl Into<String>, groups: impl IntoIterator<Item = impl Into<String>>) -> Self {
        UserInfo { name: name.into(), uid: String::new(), groups: groups.into_iter().map(Into::into).collect() }
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    fn with_authenticated_group(mut self) -> Self {
        if !self.in_group(AUTHENTICATED_GROUP) {
            self.groups.push(AUTHENTICATED_GROUP.to_string());
        }
        self
    }
}

/// Why a request is not authenticated (answered with 401 Unauthorized).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthnError {
    #[error("Unauthorized")]
    Unauthorized,
}

impl AuthnError {
    /// The HTTP status for this error (401).
    pub fn status_code(&self) -> http::StatusCode {
        http::StatusCode::UNAUTHORIZED
    }
}

/// Why the token file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("failed to read token file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: line {line}: {reason}")]
    Malformed { path: PathBuf, line: usize, reason: String },
}

/// Authenticates requests from client certificates and static bearer tokens.
#[derive(Clone, Debug, Default)]
pub struct Authenticator {
    tokens: HashMap<String, UserInfo>,
}

impl Authenticator {
    /// An authenticator with no tokens (client certificates only).
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads `path` when given (kube-apiserver `--token-auth-file` format).
    pub fn from_token_file(path: Option<&Path>) -> Result<Self, TokenFileError> {
        let mut authn = Self::new();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path)
                .map_err(|source| TokenFileError::Read { path: path.to_path_buf(), source })?;
            for (token, user) in parse_token_csv(&text).map_err(|(line, reason)| TokenFileError::Malformed {
                path: path.to_path_buf(),
                line,
                reason,
            })? {
                authn.add_token(token, user);
            }
        }
        Ok(authn)
    }

    /// Adds (or replaces) a static bearer token.
    pub fn add_token(&mut self, token: impl Into<String>, user: UserInfo) {
        self.tokens.insert(token.into(), user);
    }

    /// Who sent this request: the client-certificate user first, else the bearer token. Every
    /// authenticated user also gets the group `system:authenticated`.
    ///
    /// # Errors
    /// [`AuthnError::Unauthorized`] when neither identifies a user (an unknown token included).
    pub fn authenticate(&self, parts: &http::request::Parts) -> Result<UserInfo, AuthnError> {
        if let Some(user) = parts.extensions.get::<crate::tls::ConnInfo>().and_then(|c| c.client_cert_user.clone()) {
            return Ok(user.with_authenticated_group());
        }
        if let Some(token) = bearer_token(&parts.headers) {
            return self
                .tokens
                .get(token)
                .cloned()
                .map(UserInfo::with_authenticated_group)
                .ok_or(AuthnError::Unauthorized);
        }
        Err(AuthnError::Unauthorized)
    }
}

/// The token from `Authorization: Bearer <token>` (scheme case-insensitive, as upstream).
fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Parses kube-apiserver's token CSV: `token,user,uid[,"group1,group2"]`, with `#` comments and
/// blank lines skipped. Errors carry the 1-based line number.
pub fn parse_token_csv(text: &str) -> Result<Vec<(String, UserInfo)>, (usize, String)> {
    let mut out = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        let line_no = idx + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields = split_csv_line(trimmed).map_err(|reason| (line_no, reason))?;
        if fields.len() < 3 {
            return Err((line_no, format!("expected at least 3 fields (token,user,uid), got {}", fields.len())));
        }
        let token = fields[0].trim().to_string();
        let name = fields[1].trim().to_string();
        if token.is_empty() {
            return Err((line_no, "empty token".to_string()));
        }
        if name.is_empty() {
            return Err((line_no, "empty user name".to_string()));
        }
        let groups = fields
            .get(3)
            .map(|g| g.split(',').map(str::trim).filter(|g| !g.is_empty()).map(String::from).collect())
            .unwrap_or_default();
        out.push((token, UserInfo { name, uid: fields[2].trim().to_string(), groups }));
    }
    Ok(out)
}

/// Splits one CSV record (RFC 4180 quoting: `"a,b"`, `""` for a literal quote).
fn split_csv_line(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut in_quotes = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (in_quotes, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => in_quotes = false,
            (true, c) => field.push(c),
            (false, '"') if field.trim().is_empty() && !was_quoted => {
                field.clear();
                in_quotes = true;
                was_quoted = true;
            }
            (false, '"') => return Err("bare \" in non-quoted field".to_string()),
            (false, ',') => {
                fields.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (false, c) if was_quoted && !c.is_whitespace() => {
                return Err("extraneous text after closing quote".to_string());
            }
            (false, c) => {
                if !was_quoted {
                    field.push(c);
                }
            }
        }
    }
    if in_quotes {
        return Err("unterminated quoted field".to_string());
    }
    fields.push(field);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(auth: Option<&str>, cert_user: Option<UserInfo>) -> http::request::Parts {
        let mut req = http::Request::builder().uri("/api");
        if let Some(a) = auth {
            req = req.header(http::header::AUTHORIZATION, a);
        }
        let (mut parts, ()) = req.body(()).expect("valid request").into_parts();
        if let Some(user) = cert_user {
            parts.extensions.insert(crate::tls::ConnInfo {
                remote_addr: "127.0.0.1:1".parse().expect("addr"),
                client_cert_user: Some(user),
            });
        }
        parts
    }

    #[test]
    fn token_csv_parses_quoted_groups_comments_and_blank_lines() {
        let text = "# comment\n\nabc,alice,1001,\"dev,ops\"\n  def , bob , 1002\nghi,carol,1003,single\n";
        let got = parse_token_csv(text).expect("parses");
        assert_eq!(
            got,
            vec![
                (
                    "abc".into(),
                    UserInfo { name: "alice".into(), uid: "1001".into(), groups: vec!["dev".into(), "ops".into()] }
                ),
                ("def".into(), UserInfo { name: "bob".into(), uid: "1002".into(), groups: vec![] }),
                ("ghi".into(), UserInfo { name: "carol".into(), uid: "1003".into(), groups: vec!["single".into()] }),
            ]
        );
    }

    #[test]
    fn token_csv_malformed_lines_report_their_line_number() {
        let cases = [
            ("too few fields", "ok,u,1\n\nbad,line\n", 3),
            ("unterminated quote", "# c\nt,u,1,\"g1,g2\n", 2),
            ("empty token", ",u,1\n", 1),
            ("empty user", "t,,1\n", 1),
            ("text after quote", "t,u,1,\"g\"x\n", 1),
        ];
        for (name, text, line) in cases {
            let err = parse_token_csv(text).expect_err(name);
            assert_eq!(err.0, line, "{name}: {err:?}");
        }
    }

    #[test]
    fn token_file_error_names_path_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens.csv");
        std::fs::write(&path, "good,u,1\nbad\n").expect("write");
        let err = Authenticator::from_token_file(Some(&path)).expect_err("malformed");
        let msg = err.to_string();
        assert!(msg.contains("line 2"), "{msg}");
        assert!(msg.contains("tokens.csv"), "{msg}");
    }

    #[test]
    fn bearer_token_authenticates_and_adds_authenticated_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens.csv");
        std::fs::write(&path, "s3cret,bob,42,\"devs\"\n").expect("write");
        let authn = Authenticator::from_token_file(Some(&path)).expect("loads");
        let user = authn.authenticate(&parts(Some("Bearer s3cret"), None)).expect("authenticated");
        assert_eq!(user.name, "bob");
        assert_eq!(user.uid, "42");
        assert_eq!(user.groups, vec!["devs".to_string(), AUTHENTICATED_GROUP.to_string()]);
        assert_eq!(authn.authenticate(&parts(Some("bearer s3cret"), None)).map(|u| u.name), Ok("bob".to_string()));
    }

    #[test]
    fn unknown_or_missing_credentials_are_unauthorized() {
        let mut authn = Authenticator::new();
        authn.add_token("t", UserInfo::new("x", ["g"]));
        assert_eq!(authn.authenticate(&parts(None, None)), Err(AuthnError::Unauthorized));
        assert_eq!(authn.authenticate(&parts(Some("Bearer nope"), None)), Err(AuthnError::Unauthorized));
        assert_eq!(authn.authenticate(&parts(Some("Basic dDp0"), None)), Err(AuthnError::Unauthorized));
        assert_eq!(AuthnError::Unauthorized.status_code(), http::StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn client_certificate_user_wins_over_bearer_token() {
        let mut authn = Authenticator::new();
        authn.add_token("t", UserInfo::new("token-user", Vec::<String>::new()));
        let cert_user = UserInfo::new("system:admin", ["system:masters"]);
        let user = authn.authenticate(&parts(Some("Bearer t"), Some(cert_user))).expect("authenticated");
        assert_eq!(user.name, "system:admin");
        assert_eq!(user.groups, vec!["system:masters".to_string(), AUTHENTICATED_GROUP.to_string()]);
    }
}
