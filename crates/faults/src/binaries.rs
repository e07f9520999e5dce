//! Where the binaries under test are: `sentinel` and the example agents, taken from one
//! directory (by default the one this program runs from, i.e. the same cargo target and
//! profile). Building them is the caller's business ([`build`] runs `cargo build` for the
//! binary of this crate).

use std::path::{Path, PathBuf};

use crate::error::FaultError;

/// The binaries a scenario starts.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The proxy.
    pub sentinel: PathBuf,
    /// The regex WAF agent (blocks SQL injection): the agent every scenario's load goes through.
    pub waf_agent: PathBuf,
}

impl Binaries {
    /// Finds every binary in `dir`.
    pub fn in_dir(dir: &Path) -> Result<Binaries, FaultError> {
        let find = |name: &str| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(FaultError::MissingBinary {
                    name: name.to_string(),
                    dir: dir.to_path_buf(),
                })
            }
        };
        Ok(Binaries {
            sentinel: find("sentinel")?,
            waf_agent: find("sentinel-waf-agent")?,
        })
    }

    /// Finds every binary next to the running executable (for a test executable, in the
    /// profile directory above `deps/`).
    pub fn beside_current_exe() -> Result<Binaries, FaultError> {
        let exe =
            std::env::current_exe().map_err(|e| FaultError::io("locating this program", e))?;
        let mut dir = exe
            .parent()
            .ok_or_else(|| FaultError::Protocol("this program has no directory".into()))?
            .to_path_buf();
        if dir.ends_with("deps") {
            dir.pop();
        }
        Binaries::in_dir(&dir)
    }
}

/// Runs `cargo build` for the proxy and the WAF agent in the profile the running executable
/// was built with (`cargo run -p sentinel-faults` builds only this package's binary).
pub fn build() -> Result<(), FaultError> {
    let exe = std::env::current_exe().map_err(|e| FaultError::io("locating this program", e))?;
    let release = exe
        .parent()
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command.args([
        "build",
        "--quiet",
        "-p",
        "sentinel",
        "-p",
        "sentinel-agent-waf",
        "--bins",
    ]);
    if release {
        command.arg("--release");
    }
    let status = command
        .status()
        .map_err(|e| FaultError::io("running cargo build", e))?;
    if !status.success() {
        return Err(FaultError::Protocol(format!(
            "cargo build of the sentinel and agent binaries failed ({status})"
        )));
    }
    Ok(())
}
