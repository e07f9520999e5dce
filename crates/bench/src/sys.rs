//! The machine side of benchmarking, on top of `sentinel_test_support`: the core layout,
//! pinning, the open-files limit and `/proc` readings come from its `os` module (re-exported
//! here); child processes ([`Proc`]) are its supervisor, pinned to a core, killed with their
//! group when dropped; builds are its `build` module. What stays here is what only the bench
//! needs: statistics, a helper run to completion for its output, and the waits on plain
//! threads.

use std::path::Path;
use std::time::Duration;

use std::net::SocketAddr;

use anyhow::{bail, Context};
use sentinel_test_support::process::{ProcessSpec, Stream, Supervised};
use sentinel_test_support::wait::{wait_for_blocking, WaitError};

pub use sentinel_test_support::os::{
    cpu_time, pin_current_thread, raise_nofile_limit, rss_bytes, unpin_current_thread, Cores,
};

/// A child process pinned to a core, its stderr repeated on ours, killed (with its process
/// group) and reaped when dropped.
pub struct Proc {
    process: Supervised,
}

impl Proc {
    /// Starts `program args` pinned to `cpu`, `RUST_LOG=warn` unless `env` says otherwise.
    pub fn spawn(
        what: &str,
        cpu: usize,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Proc> {
        let mut spec = ProcessSpec::new(what, program)
            .args(args)
            .cpu(Some(cpu))
            .echo_stderr();
        for (key, value) in env {
            spec = spec.env(key, value);
        }
        Ok(Proc {
            process: Supervised::spawn(spec)?,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Fails if the process has already exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        Ok(self.process.check_running()?)
    }

    /// The address a bench role started on port 0 announced on its first stdout line
    /// (`listening on ADDR`); waits for it at most `limit`.
    pub fn listening_address(&mut self, limit: Duration) -> anyhow::Result<SocketAddr> {
        let what = format!("{} to announce its address", self.process.name());
        let mut found = None;
        wait_until(&what, limit, || {
            self.check_alive()?;
            found = self
                .process
                .log()
                .text(Stream::Stdout)
                .lines()
                .find_map(|line| line.strip_prefix(crate::roles::LISTENING_ON)?.parse().ok());
            Ok(found.is_some())
        })?;
        found.context("no address announced")
    }

    /// Its standard error so far.
    pub fn stderr(&self) -> String {
        self.process.log().text(Stream::Stderr)
    }
}

/// Runs `program args` pinned to `cpu` and returns its stdout; fails on a non-zero exit or
/// after `limit`.
pub fn run_capture(
    cpu: usize,
    program: &Path,
    args: &[String],
    limit: Duration,
) -> anyhow::Result<String> {
    let name = program.display().to_string();
    let spec = ProcessSpec::new(&name, program)
        .args(args)
        .cpu(Some(cpu))
        .echo_stderr();
    let mut process = Supervised::spawn(spec)?;
    let status = process.wait_exit_blocking(limit)?;
    if !status.success() {
        bail!("{name} failed: {status}");
    }
    Ok(process.log().text(Stream::Stdout))
}

/// Polls `condition` until it holds; fails naming `what` after `limit`, or at once when the
/// condition fails.
pub fn wait_until(
    what: &str,
    limit: Duration,
    condition: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<Duration> {
    match wait_for_blocking(what, limit, condition) {
        Ok(took) => Ok(took),
        Err(WaitError::TimedOut(e)) => Err(e.into()),
        Err(WaitError::Failed { what, source }) => {
            Err(source.context(format!("waiting for {what}")))
        }
    }
}

/// A loopback TCP port for a program that cannot report the port it bound (nginx, HAProxy):
/// bound, then released. The one bind-and-release left in the bench; `sentinel` and this
/// binary's own roles get port 0 and report the ports they bound.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Nanoseconds of up to `iterations` timed calls of `once`, sorted, after a tenth as many
/// untimed warm-up calls; bounded by 5 s (fewer samples on a slow machine).
pub async fn timed_round_trips(
    iterations: usize,
    mut once: impl AsyncFnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Vec<u64>> {
    let mut samples = Vec::with_capacity(iterations);
    let give_up = std::time::Instant::now() + Duration::from_secs(5);
    for i in 0..iterations + iterations / 10 {
        if std::time::Instant::now() > give_up {
            break;
        }
        let started = std::time::Instant::now();
        once().await?;
        if i >= iterations / 10 {
            samples.push(started.elapsed().as_nanos() as u64);
        }
    }
    samples.sort_unstable();
    Ok(samples)
}

/// Median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The `q` quantile (0..=1) of sorted `values`.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}
