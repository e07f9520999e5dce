//! Drivers for the fuzz targets (`fuzz/fuzz_targets/`) and the property and regression tests
//! (`tests/fuzz_properties.rs`, `tests/fuzz_regressions.rs`). Each one runs the proxy's real
//! code over an in-memory stream, as the reverse listener does after accepting a socket:
//! [`check_registration`] feeds bytes to the handshake task of a fresh connection,
//! [`check_session`] registers an agent and then plays an [`AgentScript`] against its pooled
//! connection while requests are in flight. Both return a [`Violation`] when an invariant every
//! input must keep is broken (panics are caught by the caller's harness).
//!
//! Not a stable API: hidden from the docs and used by nothing else in the proxy. It owns no
//! behaviour of its own, only the drivers and their checks. The drivers use tokio's clock:
//! run them on a current-thread runtime with paused time
//! (`Builder::new_current_thread().enable_all().start_paused(true)`, tokio feature
//! `test-util`), so timeouts and heartbeats elapse at once and a run is deterministic.

mod harness;
mod oracle;
mod registration;
mod script;
mod session;

pub use registration::{check_registration, RegistrationReport};
pub use script::{AgentOp, AgentScript};
pub use session::{check_session, SessionReport};

/// An invariant a driver found broken, in one sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fuzzing invariant violated: {0}")]
pub struct Violation(pub String);

/// Shorthand for a driver step that may find a violation.
pub type Checked<T> = Result<T, Violation>;

fn violation<T>(what: impl Into<String>) -> Checked<T> {
    Err(Violation(what.into()))
}
