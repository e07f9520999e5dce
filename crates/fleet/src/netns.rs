//! Network namespaces as test hosts: per-run names (prefix + pid), running `ip` and `nft`,
//! entering a namespace from a thread, and removing every namespace of this run on drop — with
//! the processes still inside — plus the stale ones earlier runs left behind when they were
//! killed. It does not decide the topology; that is `topology`.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;

use anyhow::{bail, Context};

/// Every namespace this harness creates starts with this.
pub const PREFIX: &str = "sfl";

/// Runs `program args…` and returns its stdout; the error carries its stderr.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !output.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `ip args…`.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    run("ip", args).map(drop)
}

/// Runs `program args…` inside namespace `ns`.
pub fn exec_in(ns: &str, program: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    run("ip", &all)
}

/// Moves the calling thread into namespace `ns` (only this thread, and threads it starts
/// afterwards).
pub fn enter(ns: &str) -> anyhow::Result<()> {
    let path = format!("/run/netns/{ns}");
    let file = File::open(&path).with_context(|| format!("cannot open {path}"))?;
    // SAFETY: setns only reads the descriptor, which stays open for the call.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        bail!(
            "setns into {ns} failed: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Runs `f` on a thread inside namespace `ns` and returns its result.
pub fn run_in<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                enter(ns)?;
                Ok(f())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the thread inside {ns} panicked"))?
    })
}

/// The namespaces of one run; all removed on drop.
pub struct Namespaces {
    run_prefix: String,
    names: Vec<String>,
}

impl Namespaces {
    /// An empty set for this process (`sfl<pid>-…`).
    pub fn for_this_run() -> Namespaces {
        Namespaces {
            run_prefix: format!("{PREFIX}{}-", std::process::id()),
            names: Vec::new(),
        }
    }

    /// The full name of role `role` (e.g. `p1`).
    pub fn name(&self, role: &str) -> String {
        format!("{}{role}", self.run_prefix)
    }

    /// Creates the namespace for `role` with its loopback up, and returns its name.
    pub fn add(&mut self, role: &str) -> anyhow::Result<String> {
        let name = self.name(role);
        ip(&["netns", "add", &name])?;
        self.names.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"])?;
        Ok(name)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.names.iter().rev() {
            remove(name);
        }
    }
}

/// Kills whatever still runs inside `name`, then deletes it (with its interfaces).
fn remove(name: &str) {
    if let Ok(pids) = run("ip", &["netns", "pids", name]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: plain kill(2) on a pid that `ip netns pids` reported inside our namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    if let Err(e) = ip(&["netns", "del", name]) {
        eprintln!("fleet: could not remove namespace {name}: {e}");
    }
}

/// Removes namespaces of earlier runs whose process is gone (a run killed before its cleanup).
pub fn remove_stale() -> usize {
    let Ok(list) = run("ip", &["netns", "list"]) else {
        return 0;
    };
    let mut removed = 0;
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = owner_pid(name) else {
            continue;
        };
        let alive =
            pid == std::process::id() || std::path::Path::new(&format!("/proc/{pid}")).exists();
        if !alive {
            remove(name);
            removed += 1;
        }
    }
    removed
}

/// The pid of the run that created namespace `name` (`sfl<pid>-<role>`), if it is one of ours.
fn owner_pid(name: &str) -> Option<u32> {
    let (pid, role) = name.strip_prefix(PREFIX)?.split_once('-')?;
    if role.is_empty() {
        return None;
    }
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_names_are_taken_for_stale() {
        assert_eq!(owner_pid("sfl4242-p1"), Some(4242));
        assert_eq!(owner_pid("sfl4242-probe-a"), Some(4242));
        assert_eq!(owner_pid("sfl4242"), None);
        assert_eq!(owner_pid("sflx-p1"), None);
        assert_eq!(owner_pid("docker-4242-p1"), None);
        assert_eq!(owner_pid("sfl4242-"), None);
    }

    #[test]
    fn names_carry_the_pid() {
        let names = Namespaces::for_this_run();
        assert_eq!(
            owner_pid(&names.name("p1")),
            Some(std::process::id()),
            "{}",
            names.name("p1")
        );
    }
}
