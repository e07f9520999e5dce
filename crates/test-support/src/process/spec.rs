//! How to start one supervised process: program, arguments, environment, an optional CPU pin
//! and network namespace, where its log goes. Turning a spec into a running, watched child is
//! [`super::Supervised`]'s job.

use std::path::PathBuf;
use std::process::{Command, Stdio};

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

    pub(super) fn command(&self) -> Command {
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
