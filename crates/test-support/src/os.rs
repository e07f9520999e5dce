//! What tests and harnesses read from and ask of the operating system (Linux): which CPU each
//! role runs on and pinning to it, the open-files limit, and a process's resident memory, CPU
//! time, descriptors and thread states from `/proc`. Not process management (see
//! [`crate::process`]).

use std::path::Path;
use std::time::Duration;

/// A `/proc` read or a system call failed.
#[derive(Debug, thiserror::Error)]
pub enum OsError {
    /// The call or read failed.
    #[error("{what}: {source}")]
    Io {
        /// The step.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A `/proc` file did not have the expected shape.
    #[error("{path} has no readable {field}")]
    Malformed {
        /// The file.
        path: String,
        /// The field looked for.
        field: &'static str,
    },
}

fn io(what: impl Into<String>, source: std::io::Error) -> OsError {
    OsError::Io {
        what: what.into(),
        source,
    }
}

/// Which CPU each role runs on: the proxy alone on one, everything else (clients, agents,
/// upstreams, load generators, the harness) on another; on a one-CPU machine all on CPU 0.
#[derive(Debug, Clone, Copy)]
pub struct Cores {
    /// The proxy side.
    pub proxy: usize,
    /// Everything else.
    pub others: usize,
    /// How many CPUs this process may use.
    pub available: usize,
}

impl Cores {
    /// Proxy on CPU 0, the rest on CPU 1 when there is one.
    pub fn detect() -> Cores {
        let available = std::thread::available_parallelism().map_or(1, |n| n.get());
        Cores {
            proxy: 0,
            others: usize::from(available > 1),
            available,
        }
    }
}

/// Pins the calling thread, and every thread or process it starts later, to `cpu`.
pub fn pin_current_thread(cpu: usize) -> Result<(), OsError> {
    // SAFETY: `set` is a plain bit set owned by this frame; sched_setaffinity only reads it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        return Err(io(
            format!("pinning to CPU {cpu}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Undoes [`pin_current_thread`] for the calling thread: every CPU again.
pub fn unpin_current_thread() {
    // SAFETY: as above. A failure leaves the thread pinned, which only costs speed.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in 0..libc::CPU_SETSIZE as usize {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Raises the soft open-files limit to the hard one (floods hold thousands of sockets);
/// returns the new soft limit (0 if it cannot be read).
pub fn raise_nofile_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit on a value owned by this frame.
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

fn read_proc(path: &str) -> Result<String, OsError> {
    std::fs::read_to_string(path).map_err(|e| io(format!("reading {path}"), e))
}

/// Resident set size (`VmRSS`) of process `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64, OsError> {
    let path = format!("/proc/{pid}/status");
    let kib = read_proc(&path)?
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .ok_or(OsError::Malformed {
            path,
            field: "VmRSS line",
        })?;
    Ok(kib * 1024)
}

/// User + system CPU time of process `pid` so far.
pub fn cpu_time(pid: u32) -> Result<Duration, OsError> {
    let path = format!("/proc/{pid}/stat");
    let stat = read_proc(&path)?;
    let malformed = || OsError::Malformed {
        path: path.clone(),
        field: "utime and stime",
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let (_, rest) = stat.rsplit_once(')').ok_or_else(malformed)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let ticks = tick(11).zip(tick(12)).ok_or_else(malformed)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_nanos(
        (ticks.0 + ticks.1) * 1_000_000_000 / hz,
    ))
}

/// Open file descriptors of process `pid` (entries of `/proc/PID/fd`).
pub fn fd_count(pid: u32) -> Result<u64, OsError> {
    let path = format!("/proc/{pid}/fd");
    let entries = std::fs::read_dir(&path).map_err(|e| io(format!("listing {path}"), e))?;
    Ok(entries.count() as u64)
}

/// Whether every thread of process `pid` is stopped (state `T` or `t`). SIGSTOP takes effect
/// asynchronously; until this holds, a running thread could still answer a request.
pub fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks
        .flatten()
        .all(|task| thread_state(&task.path()).is_some_and(|s| s == 'T' || s == 't'))
}

fn thread_state(task: &Path) -> Option<char> {
    let stat = std::fs::read_to_string(task.join("stat")).ok()?;
    // The state is the first field after the parenthesised command name.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.trim_start().chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_memory_time_and_descriptors() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).expect("rss") > 0);
        cpu_time(pid).expect("cpu time");
        let before = fd_count(pid).expect("fds");
        let file = std::fs::File::open("/proc/self/status").expect("open");
        assert!(fd_count(pid).expect("fds") > before);
        drop(file);
        assert!(!all_threads_stopped(pid), "we are running");
        assert!(rss_bytes(u32::MAX).is_err());
    }

    #[test]
    fn detects_cores() {
        let cores = Cores::detect();
        assert!(cores.available >= 1);
        assert!(cores.others < cores.available);
    }
}
