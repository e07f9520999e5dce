//! Supervision of the real processes a fault acts on: the `sentinel` binary and the agent
//! binaries. A [`Supervised`] process is started from a [`ProcessSpec`] (program, arguments,
//! CPU, log file) in its own process group, can be signalled (SIGKILL, SIGSTOP with a wait
//! until every thread is stopped, SIGCONT, SIGTERM), reaped and started again from the same
//! spec; dropping it kills the group. Its stderr (the log) goes to a file that survives
//! restarts, so a failure message can quote its end. What a process *is* (a proxy, an agent)
//! is not known here; see [`crate::proxy`] and [`crate::agents`].

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::error::FaultError;
use crate::sys;

/// How to start one process.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// Name used in messages and reports.
    pub name: String,
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment (`RUST_LOG` is `warn` unless set here).
    pub envs: Vec<(String, String)>,
    /// The CPU it is pinned to, if any.
    pub cpu: Option<usize>,
    /// The file its stdout and stderr are appended to.
    pub log: PathBuf,
}

/// A running (or exited, not yet restarted) child process.
pub struct Supervised {
    spec: ProcessSpec,
    child: tokio::process::Child,
    pid: u32,
    started: Instant,
    exited: Option<ExitStatus>,
}

impl Supervised {
    /// Starts the process described by `spec`.
    pub fn spawn(spec: ProcessSpec) -> Result<Supervised, FaultError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .map_err(|e| FaultError::io(format!("opening {}", spec.log.display()), e))?;
        let log_for_stdout = log
            .try_clone()
            .map_err(|e| FaultError::io("duplicating the log file", e))?;
        let mut command = tokio::process::Command::new(&spec.program);
        command
            .args(&spec.args)
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .envs(spec.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_for_stdout))
            .stderr(Stdio::from(log))
            // Its own group, so that dropping the handle also ends anything it started.
            .process_group(0)
            .kill_on_drop(true);
        if let Some(cpu) = spec.cpu {
            // SAFETY: the closure runs in the forked child before exec and only calls
            // sched_setaffinity (async-signal-safe) on a set owned by its frame.
            unsafe {
                command.pre_exec(move || {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut set);
                    libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
                    Ok(())
                });
            }
        }
        let child = command.spawn().map_err(|e| {
            FaultError::io(
                format!("starting {} ({})", spec.name, spec.program.display()),
                e,
            )
        })?;
        let pid = child
            .id()
            .ok_or_else(|| FaultError::Protocol(format!("{} has no pid", spec.name)))?;
        Ok(Supervised {
            spec,
            child,
            pid,
            started: Instant::now(),
            exited: None,
        })
    }

    /// The spec it was started from.
    pub fn spec(&self) -> &ProcessSpec {
        &self.spec
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The process id of the current incarnation.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// When the current incarnation was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Sends `signal` to the process (not its group). Refused once it has been reaped, since
    /// its pid could then belong to someone else.
    pub fn signal(&self, signal: i32) -> Result<(), FaultError> {
        if self.exited.is_some() {
            return Err(FaultError::Protocol(format!(
                "{} has exited; not signalling a pid that may be reused",
                self.spec.name
            )));
        }
        // SAFETY: kill(2) on the pid of our own child, which is not reaped yet.
        let rc = unsafe { libc::kill(self.pid as i32, signal) };
        if rc != 0 {
            return Err(FaultError::io(
                format!("kill({}, {signal}) on {}", self.pid, self.spec.name),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// SIGSTOP, then waits until every thread is stopped.
    pub async fn stop(&self) -> Result<(), FaultError> {
        self.signal(libc::SIGSTOP)?;
        poll_until(
            &format!("{} to stop", self.spec.name),
            Duration::from_secs(10),
            || sys::all_threads_stopped(self.pid),
        )
        .await
    }

    /// SIGCONT.
    pub fn resume(&self) -> Result<(), FaultError> {
        self.signal(libc::SIGCONT)
    }

    /// SIGKILL, then reaps it.
    pub async fn kill(&mut self) -> Result<ExitStatus, FaultError> {
        if self.exited.is_none() {
            self.signal(libc::SIGKILL)?;
        }
        self.wait_exit(Duration::from_secs(10)).await
    }

    /// Waits up to `within` for it to exit and reaps it.
    pub async fn wait_exit(&mut self, within: Duration) -> Result<ExitStatus, FaultError> {
        if let Some(status) = self.exited {
            return Ok(status);
        }
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .map_err(|_| FaultError::timeout(format!("{} to exit", self.spec.name), within))?
            .map_err(|e| FaultError::io(format!("waiting for {}", self.spec.name), e))?;
        self.exited = Some(status);
        Ok(status)
    }

    /// Starts a new incarnation from the same spec (the current one must have exited).
    pub fn respawn(&mut self) -> Result<(), FaultError> {
        if self.exited.is_none() {
            return Err(FaultError::Protocol(format!(
                "{} is still running; kill it before starting it again",
                self.spec.name
            )));
        }
        *self = Supervised::spawn(self.spec.clone())?;
        Ok(())
    }

    /// `Err` (with the end of its log) if it has exited.
    pub fn check_running(&mut self) -> Result<(), FaultError> {
        if self.exited.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
            }
        }
        match self.exited {
            None => Ok(()),
            Some(status) => Err(FaultError::Exited {
                what: self.spec.name.clone(),
                status: status.to_string(),
                log: self.log_tail(20),
            }),
        }
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.spec.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if self.exited.is_some() {
            return;
        }
        // Until it is reaped its pid (and so its process group id) cannot be reused.
        // SAFETY: kill(2) on the process group we created for our own unreaped child.
        unsafe {
            libc::kill(-(self.pid as i32), libc::SIGKILL);
        }
    }
}

/// Polls `condition` every 10 ms until it holds; a [`FaultError::Timeout`] naming `what`
/// after `limit`.
pub async fn poll_until(
    what: &str,
    limit: Duration,
    mut condition: impl FnMut() -> bool,
) -> Result<(), FaultError> {
    let deadline = Instant::now() + limit;
    while !condition() {
        if Instant::now() > deadline {
            return Err(FaultError::timeout(what, limit));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
