//! The one process supervisor of the tests and harnesses. A [`Supervised`] child is started
//! from a [`ProcessSpec`] (program, arguments, environment, optional CPU pin and network
//! namespace) in its own process group; its stdout and stderr are kept in a [`Log`] that
//! survives restarts; it can be signalled, paused until every thread is stopped, terminated
//! with the drain timed, killed, waited for, and started again from the same spec. Dropping
//! it kills the whole group, so nothing outlives a failed or panicking run. What a process
//! *is* (a proxy, an agent) is the caller's business.

mod log;

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use log::{Log, LogLine, Stream, MAX_LOG_LINES};

use crate::wait::{try_wait_for, wait_for, TimedOut, WaitError};

/// How to start one process.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// Name used in messages.
    pub name: String,
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment (`RUST_LOG=warn` and `NO_COLOR=1` unless set here).
    pub envs: Vec<(String, String)>,
    /// The CPU it is pinned to, if any.
    pub cpu: Option<usize>,
    /// The network namespace it runs in (`ip netns exec NS`, which execs in place).
    pub netns: Option<String>,
    /// A file the log is also appended to.
    pub log_file: Option<PathBuf>,
    /// Repeat its stderr on ours as it arrives.
    pub echo_stderr: bool,
}

impl ProcessSpec {
    /// `program` with no arguments, called `name`.
    pub fn new(name: impl Into<String>, program: impl Into<PathBuf>) -> ProcessSpec {
        ProcessSpec {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            envs: Vec::new(),
            cpu: None,
            netns: None,
            log_file: None,
            echo_stderr: false,
        }
    }
    /// Appends arguments.
    pub fn args<S: ToString>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(args.into_iter().map(|a| a.to_string()));
        self
    }
    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: impl ToString) -> Self {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }
    /// Pins it to `cpu`.
    pub fn cpu(mut self, cpu: Option<usize>) -> Self {
        self.cpu = cpu;
        self
    }
    /// Runs it in network namespace `ns`.
    pub fn netns(mut self, ns: &str) -> Self {
        self.netns = Some(ns.to_string());
        self
    }
    /// Also appends its log to `path`.
    pub fn log_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.log_file = Some(path.into());
        self
    }
    /// Repeats its stderr on ours.
    pub fn echo_stderr(mut self) -> Self {
        self.echo_stderr = true;
        self
    }

    fn command(&self) -> Command {
        let mut command = match &self.netns {
            Some(ns) => {
                let mut ip = Command::new("ip");
                ip.args(["netns", "exec", ns]).arg(&self.program);
                ip
            }
            None => Command::new(&self.program),
        };
        command
            .args(&self.args)
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        use std::os::unix::process::CommandExt;
        // Its own group, so that stopping it also ends anything it started.
        command.process_group(0);
        if let Some(cpu) = self.cpu {
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
        command
    }
}

/// A supervised process misbehaved or could not be driven.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Starting it, or opening its log file, failed.
    #[error("cannot start {name} ({}): {source}", program.display())]
    Start {
        /// The process.
        name: String,
        /// Its executable.
        program: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A signal could not be sent.
    #[error("cannot signal {name} ({signal}): {reason}")]
    Signal {
        /// The process.
        name: String,
        /// The signal.
        signal: i32,
        /// Why.
        reason: String,
    },
    /// It exited when it should not have.
    #[error("{name} exited unexpectedly ({status}); last log lines:\n{log}")]
    Exited {
        /// The process.
        name: String,
        /// Its exit status.
        status: String,
        /// The end of its log.
        log: String,
    },
    /// A wait on it ran out.
    #[error("{timed_out}; last log lines of {name}:\n{log}")]
    TimedOut {
        /// The process.
        name: String,
        /// What was awaited.
        timed_out: TimedOut,
        /// The end of its log.
        log: String,
    },
}

/// A running (or exited, not yet restarted) child process.
pub struct Supervised {
    spec: ProcessSpec,
    child: Child,
    pid: u32,
    started: Instant,
    exited: Option<ExitStatus>,
    log: Log,
}

impl Supervised {
    /// Starts the process described by `spec`.
    pub fn spawn(spec: ProcessSpec) -> Result<Supervised, ProcessError> {
        let file = match &spec.log_file {
            Some(path) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| start_error(&spec, source))?,
            ),
            None => None,
        };
        let log = Log::new(file, spec.echo_stderr);
        Supervised::spawn_with_log(spec, log)
    }

    fn spawn_with_log(spec: ProcessSpec, log: Log) -> Result<Supervised, ProcessError> {
        let mut child = spec
            .command()
            .spawn()
            .map_err(|source| start_error(&spec, source))?;
        if let Some(stdout) = child.stdout.take() {
            log.follow(Stream::Stdout, stdout);
        }
        if let Some(stderr) = child.stderr.take() {
            log.follow(Stream::Stderr, stderr);
        }
        Ok(Supervised {
            pid: child.id(),
            spec,
            child,
            started: Instant::now(),
            exited: None,
            log,
        })
    }

    /// Starts a new incarnation from the same spec, keeping the log (the current one must
    /// have exited).
    pub fn respawn(&mut self) -> Result<(), ProcessError> {
        if self.exit_status().is_none() {
            return Err(self.signal_error(0, "still running; stop it before starting it again"));
        }
        *self = Supervised::spawn_with_log(self.spec.clone(), self.log.clone())?;
        Ok(())
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
    /// Its log (all incarnations).
    pub fn log(&self) -> &Log {
        &self.log
    }
    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.log.tail(lines)
    }

    /// Its exit status, once it has exited (reaping it).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
            }
        }
        self.exited
    }

    /// `Err` (with the end of its log) if it has exited.
    pub fn check_running(&mut self) -> Result<(), ProcessError> {
        match self.exit_status() {
            None => Ok(()),
            Some(status) => Err(ProcessError::Exited {
                name: self.spec.name.clone(),
                status: status.to_string(),
                log: self.log.tail(20),
            }),
        }
    }

    /// Sends `signal` to the process (not its group). Refused once it has been reaped, since
    /// its pid could then belong to someone else.
    pub fn signal(&self, signal: i32) -> Result<(), ProcessError> {
        if self.exited.is_some() {
            return Err(self.signal_error(signal, "it has exited; its pid may be reused"));
        }
        // SAFETY: kill(2) on the pid of our own child, which is not reaped yet.
        if unsafe { libc::kill(self.pid as i32, signal) } != 0 {
            let reason = std::io::Error::last_os_error().to_string();
            return Err(self.signal_error(signal, &reason));
        }
        Ok(())
    }

    fn signal_error(&self, signal: i32, reason: &str) -> ProcessError {
        ProcessError::Signal {
            name: self.spec.name.clone(),
            signal,
            reason: reason.to_string(),
        }
    }

    fn timed_out(&self, timed_out: TimedOut) -> ProcessError {
        ProcessError::TimedOut {
            name: self.spec.name.clone(),
            timed_out,
            log: self.log.tail(20),
        }
    }

    /// SIGSTOP, then waits until every thread is stopped.
    pub async fn pause(&self) -> Result<(), ProcessError> {
        self.signal(libc::SIGSTOP)?;
        let pid = self.pid;
        wait_for(
            &format!("{} to stop", self.spec.name),
            Duration::from_secs(10),
            || async move { crate::os::all_threads_stopped(pid) },
        )
        .await
        .map(|_| ())
        .map_err(|e| self.timed_out(e))
    }

    /// SIGCONT.
    pub fn resume(&self) -> Result<(), ProcessError> {
        self.signal(libc::SIGCONT)
    }

    /// Waits up to `within` for it to exit and reaps it.
    pub async fn wait_exit(&mut self, within: Duration) -> Result<ExitStatus, ProcessError> {
        let what = format!("{} to exit", self.spec.name);
        let waited = try_wait_for(&what, within, || {
            let exited = self.exit_status().is_some();
            async move { Ok::<bool, std::convert::Infallible>(exited) }
        })
        .await;
        match waited {
            Ok(_) => Ok(self.exited.unwrap_or_default()),
            Err(WaitError::TimedOut(e)) => Err(self.timed_out(e)),
            Err(WaitError::Failed { source, .. }) => match source {},
        }
    }

    /// SIGTERM, then waits up to `within` for the exit; returns how long the drain took and
    /// the exit status.
    pub async fn terminate(
        &mut self,
        within: Duration,
    ) -> Result<(Duration, ExitStatus), ProcessError> {
        let started = Instant::now();
        self.signal(libc::SIGTERM)?;
        let status = self.wait_exit(within).await?;
        Ok((started.elapsed(), status))
    }

    /// SIGKILL to the whole group, then reaps it.
    pub async fn kill(&mut self) -> Result<ExitStatus, ProcessError> {
        if self.exit_status().is_none() {
            self.kill_group();
        }
        self.wait_exit(Duration::from_secs(10)).await
    }

    /// Waits until a log line contains `needle`; fails early if the process exits without
    /// having written it.
    pub async fn wait_for_log(
        &mut self,
        needle: &str,
        within: Duration,
    ) -> Result<Duration, ProcessError> {
        let what = format!("{needle:?} in the log of {}", self.spec.name);
        let log = self.log.clone();
        let waited = try_wait_for(&what, within, || {
            // Decide on the log first: a line written just before the exit still counts.
            let found = log.contains(needle);
            let result = match found || !log.drained() {
                true => Ok(found),
                false => self.check_running().map(|_| false),
            };
            async move { result }
        })
        .await;
        match waited {
            Ok(took) => Ok(took),
            Err(WaitError::TimedOut(e)) => Err(self.timed_out(e)),
            Err(WaitError::Failed { source, .. }) => Err(source),
        }
    }

    fn kill_group(&self) {
        // SAFETY: kill(2) on the process group we created for our own unreaped child: until
        // it is reaped its pid, and so the group id, cannot be reused.
        unsafe {
            libc::kill(-(self.pid as i32), libc::SIGKILL);
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if self.exit_status().is_some() {
            return;
        }
        self.kill_group();
        let _ = self.child.wait();
    }
}

fn start_error(spec: &ProcessSpec, source: std::io::Error) -> ProcessError {
    ProcessError::Start {
        name: spec.name.clone(),
        program: spec.program.clone(),
        source,
    }
}

#[cfg(test)]
mod tests;
