//! Child processes for the end-to-end tests: test-support's [`Supervised`] (own process group,
//! output kept, the whole group killed on drop even when the test panics) behind the
//! panicking interface these tests read best. Starting the proxy itself is `proxy.rs`'s job.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use sentinel_test_support::process::{ProcessSpec, Stream, Supervised};

use super::PATIENCE;

/// The built `sentinel` binary.
pub fn sentinel_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sentinel"))
}

/// An example agent binary from the same target directory as `sentinel`. Panics, saying how
/// to build it, when it is missing.
pub fn agent_binary(name: &str) -> PathBuf {
    let sentinel = sentinel_binary();
    let dir = sentinel
        .parent()
        .expect("the sentinel binary has a directory");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{name} was not found in {}: the end-to-end tests run the example agents as processes; \
         build them with `cargo test --workspace` (or `cargo build --workspace`) first",
        dir.display()
    );
    path
}

/// A supervised child; every failure to drive it panics with its output.
pub struct Process {
    inner: Supervised,
}

impl Process {
    /// Starts `program` with `args`; `name` is used in failure messages. Logs at info level
    /// without colours unless `RUST_LOG` is set in `envs`.
    pub fn spawn(name: &str, program: &Path, args: &[String], envs: &[(&str, &str)]) -> Process {
        let spec = envs.iter().fold(
            ProcessSpec::new(name, program)
                .args(args)
                .env("RUST_LOG", "info"),
            |spec, (key, value)| spec.env(key, value),
        );
        let inner = Supervised::spawn(spec).unwrap_or_else(|e| panic!("{e}"));
        Process { inner }
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.inner.pid() as i32
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.inner.log().text(Stream::Stdout)
    }

    /// What it printed on stderr (its log) so far.
    pub fn stderr(&self) -> String {
        self.inner.log().text(Stream::Stderr)
    }

    /// Both outputs, labelled, for failure messages.
    pub fn output(&self) -> String {
        let name = self.inner.name();
        format!(
            "--- {name} stdout ---\n{}\n--- {name} stderr ---\n{}\n",
            self.stdout(),
            self.stderr()
        )
    }

    /// Sends `signal` to the process (not its group).
    pub fn signal(&self, signal: i32) {
        self.inner.signal(signal).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Stops the process (SIGSTOP) and waits until every one of its threads is stopped: the
    /// signal takes effect asynchronously, and a thread still running could answer one more
    /// request.
    pub async fn freeze(&self) {
        self.inner.pause().await.unwrap_or_else(|e| panic!("{e}"));
    }

    /// Whether it has exited (reaps it if so).
    pub fn has_exited(&mut self) -> bool {
        self.inner.exit_status().is_some()
    }

    /// Waits for it to exit, then for the rest of its output; panics after `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let status = match self.inner.wait_exit(within).await {
            Ok(status) => status,
            Err(e) => panic!("{e}\n{}", self.output()),
        };
        let log = self.inner.log().clone();
        // The pipes close with the process; their last lines may still be on the way.
        let _ = sentinel_test_support::wait::wait_for(
            "the output to be read",
            Duration::from_secs(5),
            || std::future::ready(log.drained()),
        )
        .await;
        status
    }

    /// Waits until its output contains `needle`; panics with its output after [`PATIENCE`] or
    /// if it exits first.
    pub async fn wait_for_log(&mut self, needle: &str) {
        if let Err(e) = self.inner.wait_for_log(needle, PATIENCE).await {
            panic!("{e}\n{}", self.output());
        }
    }
}
