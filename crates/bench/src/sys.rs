//! The machine side of benchmarking: which core each role runs on (the proxy alone on one,
//! everything else on another), pinning this process and children (`taskset`), the open-files
//! limit, CPU time and RSS of a process from `/proc`, and child processes that die with us.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Where each role runs.
#[derive(Debug, Clone, Copy)]
pub struct Cores {
    /// The proxy side (the `sentinel` process, or the pool in this process).
    pub proxy: usize,
    /// Clients, agents, upstreams and load generators.
    pub others: usize,
    /// How many CPUs this process may use.
    pub available: usize,
}

impl Cores {
    /// Proxy on CPU 0, the rest on CPU 1 (both on CPU 0 on a one-CPU machine).
    pub fn detect() -> Cores {
        let available = std::thread::available_parallelism().map_or(1, |n| n.get());
        Cores {
            proxy: 0,
            others: if available > 1 { 1 } else { 0 },
            available,
        }
    }
}

/// Pins the calling thread (and every thread it starts later) to `cpu`.
pub fn pin_current_thread(cpu: usize) -> anyhow::Result<()> {
    // SAFETY: `set` is a plain bit set owned by this frame; sched_setaffinity only reads it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        bail!(
            "sched_setaffinity(cpu {cpu}) failed: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Undoes [`pin_current_thread`] for the calling thread: every CPU again.
pub fn unpin_current_thread() {
    // SAFETY: as above.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in 0..libc::CPU_SETSIZE as usize {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Raises the soft open-files limit to the hard one; returns the new soft limit.
pub fn raise_nofile_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit on a stack value.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur as u64
    }
}

/// User + system CPU time of process `pid` so far.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').context("malformed stat")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// Resident set size of process `pid` in bytes.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .context("malformed VmRSS")?
        .parse()?;
    Ok(kib * 1024)
}

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    child: Child,
    what: String,
}

impl Proc {
    /// Starts `program args` pinned to `cpu` with `taskset`, stdout discarded, stderr
    /// inherited unless `quiet`, `RUST_LOG=warn` unless `env` says otherwise.
    pub fn spawn(
        what: &str,
        cpu: usize,
        program: &PathBuf,
        args: &[String],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Proc> {
        let mut command = Command::new("taskset");
        command
            .arg("-c")
            .arg(cpu.to_string())
            .arg(program)
            .args(args)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = command
            .spawn()
            .with_context(|| format!("starting {what} ({})", program.display()))?;
        Ok(Proc {
            child,
            what: what.to_string(),
        })
    }

    /// The process id (taskset execs the program, so it is the program's).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has already exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early: {status}", self.what);
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `program args` pinned to `cpu` and returns its stdout; fails on a non-zero exit or
/// after `limit`.
pub fn run_capture(
    cpu: usize,
    program: &PathBuf,
    args: &[String],
    limit: Duration,
) -> anyhow::Result<String> {
    let mut child = Command::new("taskset")
        .arg("-c")
        .arg(cpu.to_string())
        .arg(program)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    let started = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{} took longer than {limit:?}", program.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!("{} failed: {}", program.display(), output.status);
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Polls `condition` every 2 ms until it holds; fails naming `what` after `limit`.
pub fn wait_until(
    what: &str,
    limit: Duration,
    mut condition: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        if condition()? {
            return Ok(started.elapsed());
        }
        if started.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Builds the binaries of `packages` in the profile of `exe` (the running bench), so that the
/// suite starts what it measures: `cargo run -p sentinel-bench` builds only its own package.
pub fn build_binaries(exe: &std::path::Path, packages: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let release = exe
        .parent()
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == "release");
    let mut command = Command::new(cargo);
    command.args(["build", "--quiet", "--bins"]);
    for package in packages {
        command.args(["-p", package]);
    }
    if release {
        command.arg("--release");
    }
    if !command.status().context("running cargo build")?.success() {
        bail!("cargo build of {} failed", packages.join(", "));
    }
    Ok(())
}

/// A free loopback TCP port (bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
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
