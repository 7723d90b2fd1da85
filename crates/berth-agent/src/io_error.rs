//! The one shape of an I/O failure in the agent: the step that failed, the path it failed on and
//! the cause. Each module's error enum wraps it as its `Io` variant (`#[error(transparent)]`, so
//! the message and source chain are this type's), and [`io_err`] builds it in `map_err`.

use std::io;
use std::path::{Path, PathBuf};

/// An I/O step that failed on a path, e.g. "failed to create /var/lib/berth/tmp".
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} {path}")]
pub struct IoError {
    /// What was being done, as a verb phrase ("create", "rename blob into").
    pub action: &'static str,
    /// The path it was done to.
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// For `map_err`: wraps an [`io::Error`] with the step and path; `?` then converts the
/// [`IoError`] into the module's error enum.
pub(crate) fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> IoError + 'a {
    move |source| IoError { action, path: path.to_path_buf(), source }
}
