//! Where the binaries under test are: `sentinel` and the WAF agent, taken from one directory
//! (by default the profile directory of this program, i.e. the same cargo target and
//! profile). Building and finding them is `sentinel_test_support::build`.

use std::path::{Path, PathBuf};

use sentinel_test_support::build::{build_binaries, find_binary, profile_dir};

use crate::error::FaultError;

/// The packages whose binaries the scenarios start.
const PACKAGES: [&str; 2] = ["sentinel", "sentinel-agent-waf"];

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
        Ok(Binaries {
            sentinel: find_binary(dir, "sentinel")?,
            waf_agent: find_binary(dir, "sentinel-waf-agent")?,
        })
    }

    /// Finds every binary in the profile directory of the running executable.
    pub fn beside_current_exe() -> Result<Binaries, FaultError> {
        Binaries::in_dir(&profile_dir()?)
    }
}

/// Runs `cargo build` for the proxy and the WAF agent in the profile the running executable
/// was built with (`cargo run -p sentinel-faults` builds only this package's binary).
pub fn build() -> Result<(), FaultError> {
    build_binaries(&PACKAGES)?;
    Ok(())
}
