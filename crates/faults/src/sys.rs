//! What the harness reads from and asks of the operating system: resident memory, open file
//! descriptors and thread states of a process from `/proc`, CPU pinning, the open-files limit.
//! Linux only, like the proxy's own resource handling. Not process management (see
//! [`crate::process`]).

use std::path::Path;

use crate::error::FaultError;

/// Which CPU each role runs on: the proxy alone on one, the harness (clients, upstream) and
/// the agents on the other; on a one-CPU machine everything shares CPU 0.
#[derive(Debug, Clone, Copy)]
pub struct Cores {
    /// The `sentinel` process.
    pub proxy: usize,
    /// Agents, the harness itself (load generator and upstream).
    pub others: usize,
}

impl Cores {
    /// Proxy on CPU 0, the rest on CPU 1 when there is one.
    pub fn detect() -> Cores {
        let available = std::thread::available_parallelism().map_or(1, |n| n.get());
        Cores {
            proxy: 0,
            others: usize::from(available > 1),
        }
    }
}

/// Pins the calling thread, and every thread or process it starts later, to `cpu`.
pub fn pin_current_thread(cpu: usize) -> Result<(), FaultError> {
    // SAFETY: `set` is a plain bit set owned by this frame; sched_setaffinity only reads it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        return Err(FaultError::io(
            format!("pinning to CPU {cpu}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Raises the soft open-files limit to the hard one (the silent flood holds 1000 sockets);
/// returns the new soft limit.
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

/// Resident set size (`VmRSS`) of process `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64, FaultError> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| FaultError::io(&path, e))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .ok_or_else(|| FaultError::Protocol(format!("{path} has no readable VmRSS line")))?;
    Ok(kib * 1024)
}

/// Open file descriptors of process `pid` (entries of `/proc/PID/fd`).
pub fn fd_count(pid: u32) -> Result<u64, FaultError> {
    let path = format!("/proc/{pid}/fd");
    let entries = std::fs::read_dir(&path).map_err(|e| FaultError::io(&path, e))?;
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
    fn reads_our_own_memory_and_descriptors() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).expect("rss") > 0);
        let before = fd_count(pid).expect("fds");
        let file = std::fs::File::open("/proc/self/status").expect("open");
        assert_eq!(fd_count(pid).expect("fds"), before + 1);
        drop(file);
        assert!(!all_threads_stopped(pid), "we are running");
    }
}
