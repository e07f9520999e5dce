//! Process limits: the proxy holds thousands of agent and client sockets, so at start-up the
//! soft open-files limit is raised to the hard limit and the result is logged.

/// Raises `RLIMIT_NOFILE`'s soft limit to its hard limit; logs what it did.
pub fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if read != 0 {
        tracing::warn!(
            "cannot read the open-files limit: {}",
            std::io::Error::last_os_error()
        );
        return;
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            tracing::warn!(
                soft = before,
                hard = limit.rlim_max,
                "cannot raise the open-files limit: {}",
                std::io::Error::last_os_error()
            );
            return;
        }
    }
    tracing::info!(before, now = limit.rlim_cur, "open-files limit");
}
