//! The crate's error type: every failure says what the controller was doing when it happened.

/// Errors from the controllers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error("{action}: {source}")]
    Api {
        /// What was being attempted, e.g. `create pod for replicaset default/web`.
        action: String,
        #[source]
        source: kube::Error,
    },
    /// API discovery failed.
    #[error("discovery: {0}")]
    Discovery(#[source] kube::Error),
    /// An object lacks a field the controller needs.
    #[error("{object}: missing {field}")]
    MissingField {
        /// `kind ns/name` of the object.
        object: String,
        /// The missing field's path.
        field: &'static str,
    },
    /// An object's label selector cannot be parsed.
    #[error("{object}: invalid selector: {message}")]
    InvalidSelector {
        /// `kind ns/name` of the object.
        object: String,
        /// Why it is invalid.
        message: String,
    },
    /// The configuration names a controller that does not exist.
    #[error("unknown controller {0:?}")]
    UnknownController(String),
    /// The reconcile must be retried later (e.g. a hash collision was recorded).
    #[error("{0}")]
    Retry(String),
    /// Several operations failed; the first error is kept.
    #[error("{count} operations failed, first: {first}")]
    Multiple {
        /// How many failed.
        count: usize,
        /// The first failure.
        first: Box<Error>,
    },
}

impl Error {
    /// Wraps a kube error with what was being attempted.
    pub fn api(action: impl Into<String>, source: kube::Error) -> Error {
        Error::Api { action: action.into(), source }
    }

    /// Whether this is an API "NotFound" answer.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Api { source: kube::Error::Api(s), .. } if s.code == 404)
    }
}

/// Whether a kube error is an HTTP status `code` from the apiserver.
pub fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}
