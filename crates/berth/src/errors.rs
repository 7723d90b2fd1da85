//! Errors from the apiserver, printed as kubectl prints them: `Error from server (NotFound): ...`,
//! and `The Deployment "web" is invalid: ...` with one `* field: message` line per cause.

use std::fmt;

use kube::core::Status;

/// A `metav1.Status` failure returned by the server.
#[derive(Debug)]
pub struct ServerStatusError(pub Box<Status>);

impl std::error::Error for ServerStatusError {}

impl ServerStatusError {
    /// The HTTP code of the failure.
    pub fn code(&self) -> u16 {
        self.0.code
    }

    pub fn reason(&self) -> &str {
        &self.0.reason
    }

    pub fn is_not_found(&self) -> bool {
        self.0.code == 404 || self.0.reason == "NotFound"
    }
}

impl fmt::Display for ServerStatusError {
    /// kubectl's `StandardErrorMessage` and its 422 special case (`checkErr` in cmdutil).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = &self.0;
        if status.reason == "Invalid" || status.code == 422 {
            let (kind, name, causes) = match &status.details {
                Some(d) => (d.kind.as_str(), d.name.as_str(), d.causes.as_slice()),
                None => ("", "", &[][..]),
            };
            let prefix = if !kind.is_empty() || !name.is_empty() {
                format!("The {kind} {name:?} is invalid")
            } else {
                "The request is invalid".to_string()
            };
            let lines: Vec<String> = causes
                .iter()
                .map(|c| if c.field.is_empty() { c.message.clone() } else { format!("{}: {}", c.field, c.message) })
                .collect();
            return match lines.as_slice() {
                [] if status.message.is_empty() => write!(f, "{prefix}"),
                [] => write!(f, "{}", status.message),
                [one] => write!(f, "{prefix}: {one}"),
                many => {
                    write!(f, "{prefix}: ")?;
                    for line in many {
                        write!(f, "\n* {line}")?;
                    }
                    Ok(())
                }
            };
        }
        if status.reason == "Unauthorized" {
            return write!(f, "error: You must be logged in to the server ({})", status.message);
        }
        if status.reason.is_empty() {
            write!(f, "Error from server: {}", status.message)
        } else {
            write!(f, "Error from server ({}): {}", status.reason, status.message)
        }
    }
}

/// A message printed exactly as it is (kubectl's wording without the `error: ` prefix).
#[derive(Debug)]
pub struct PlainError(pub String);

impl std::error::Error for PlainError {}

impl fmt::Display for PlainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// kubectl's message when nothing listens at the server address.
pub fn connection_refused(err: anyhow::Error, cluster_url: &str) -> anyhow::Error {
    let refused = err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
    });
    if !refused {
        return err;
    }
    let host = cluster_url.split("://").nth(1).unwrap_or(cluster_url).trim_end_matches('/');
    anyhow::Error::new(PlainError(format!(
        "The connection to the server {host} was refused - did you specify the right host or port?"
    )))
}

/// Turns a client error into an `anyhow` error, keeping server `Status` failures printable.
pub fn from_kube(err: kube::Error) -> anyhow::Error {
    match err {
        kube::Error::Api(status) => anyhow::Error::new(ServerStatusError(status)),
        other => anyhow::Error::new(other),
    }
}

/// The server `Status` inside an error chain, if any.
pub fn status_of(err: &anyhow::Error) -> Option<&ServerStatusError> {
    err.chain().find_map(|e| e.downcast_ref::<ServerStatusError>())
}

/// Whether the error chain holds a 404 from the server.
pub fn is_not_found(err: &anyhow::Error) -> bool {
    status_of(err).is_some_and(ServerStatusError::is_not_found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(v: serde_json::Value) -> ServerStatusError {
        ServerStatusError(Box::new(serde_json::from_value(v).unwrap()))
    }

    #[test]
    fn not_found_prints_reason_and_message() {
        let e = status(
            json!({"status": "Failure", "code": 404, "reason": "NotFound", "message": "deployments.apps \"x\" not found"}),
        );
        assert_eq!(e.to_string(), "Error from server (NotFound): deployments.apps \"x\" not found");
        assert!(e.is_not_found());
    }

    #[test]
    fn invalid_with_one_cause_is_one_line() {
        let e = status(json!({"status": "Failure", "code": 422, "reason": "Invalid", "message": "ignored",
            "details": {"name": "web", "kind": "Deployment", "causes": [
                {"reason": "FieldValueInvalid", "message": "Invalid value: -1: must be greater than or equal to 0", "field": "spec.replicas"}]}}));
        assert_eq!(
            e.to_string(),
            "The Deployment \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
    }

    #[test]
    fn invalid_with_several_causes_lists_them() {
        let e = status(json!({"status": "Failure", "code": 422, "reason": "Invalid", "message": "",
            "details": {"name": "web", "kind": "Deployment", "causes": [
                {"reason": "FieldValueInvalid", "message": "Invalid value: -1: bad", "field": "spec.replicas"},
                {"reason": "FieldValueRequired", "message": "Required value", "field": "metadata.name"}]}}));
        assert_eq!(
            e.to_string(),
            "The Deployment \"web\" is invalid: \n* spec.replicas: Invalid value: -1: bad\n* metadata.name: Required value"
        );
    }

    #[test]
    fn unauthorized_asks_to_log_in() {
        let e = status(json!({"status": "Failure", "code": 401, "reason": "Unauthorized", "message": "Unauthorized"}));
        assert_eq!(e.to_string(), "error: You must be logged in to the server (Unauthorized)");
    }

    #[test]
    fn connection_refused_names_the_server_as_kubectl_does() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = connection_refused(anyhow::Error::new(io).context("request failed"), "https://127.0.0.1:6443");
        assert_eq!(
            err.to_string(),
            "The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?"
        );
        let other = connection_refused(anyhow::anyhow!("boom"), "https://x");
        assert_eq!(other.to_string(), "boom");
    }
}
