//! The one error type of the harness library. It says which step of setting up or driving a
//! fault went wrong (a process would not start, a wait ran out, the admin API answered
//! nonsense). A scenario whose *expectation* fails is not an error: that is a failed check in
//! its [`crate::report::Report`].

use std::time::Duration;

/// What went wrong while running a scenario.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// A binary could not be built or found.
    #[error(transparent)]
    Build(#[from] sentinel_test_support::build::BuildError),
    /// A supervised process could not be started or driven, or exited unexpectedly.
    #[error(transparent)]
    Process(#[from] sentinel_test_support::process::ProcessError),
    /// A `/proc` read or system call failed.
    #[error(transparent)]
    Os(#[from] sentinel_test_support::os::OsError),
    /// An I/O step failed.
    #[error("{what}: {source}")]
    Io {
        /// The step.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Something that should happen did not within its time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long was waited.
        after: Duration,
    },
    /// An HTTP exchange with the proxy's admin API or the proxy failed.
    #[error("{what}: {detail}")]
    Http {
        /// The exchange.
        what: String,
        /// What went wrong.
        detail: String,
    },
    /// A peer sent something the harness cannot interpret.
    #[error("protocol: {0}")]
    Protocol(String),
}

impl FaultError {
    /// An [`FaultError::Io`] for `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> FaultError {
        FaultError::Io {
            what: what.into(),
            source,
        }
    }

    /// A [`FaultError::Timeout`] for `what`.
    pub fn timeout(what: impl Into<String>, after: Duration) -> FaultError {
        FaultError::Timeout {
            what: what.into(),
            after,
        }
    }
}
