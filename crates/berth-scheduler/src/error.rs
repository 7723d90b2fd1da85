//! The scheduler's error type.

/// A failure that stops the scheduler. Watch and API errors are retried or logged, not fatal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("scheduler task failed")]
    Task(#[source] tokio::task::JoinError),
}
