//! Building and finding the workspace binaries a test or harness starts (`sentinel`, the
//! agents): one `cargo build` in the profile of the running program, with the package
//! variables `cargo run` sets stripped so the inner build does not invalidate the outer one.
//! Running them is [`crate::process`]'s business.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Building or finding a binary failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The running program's path is unknown.
    #[error("cannot locate the running program: {0}")]
    CurrentExe(#[source] std::io::Error),
    /// cargo could not be started.
    #[error("cannot run cargo to build {packages}: {source}")]
    Cargo {
        /// The packages.
        packages: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// cargo ran and failed (its own messages went to stderr).
    #[error("cargo build of {packages} failed ({status}); see cargo's messages above")]
    Failed {
        /// The packages.
        packages: String,
        /// cargo's exit status.
        status: std::process::ExitStatus,
    },
    /// A binary is not where it should be.
    #[error("{name} was not found in {}; build it first (`cargo build --workspace --bins`)", dir.display())]
    Missing {
        /// The binary's name.
        name: String,
        /// Where it was looked for.
        dir: PathBuf,
    },
}

/// The directory of the running program's profile (`target/debug`, `target/release`): for a
/// test executable, the one above `deps/`. The workspace binaries are built there.
pub fn profile_dir() -> Result<PathBuf, BuildError> {
    let exe = std::env::current_exe().map_err(BuildError::CurrentExe)?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    Ok(dir)
}

/// `dir/name` if it is a file.
pub fn find_binary(dir: &Path, name: &str) -> Result<PathBuf, BuildError> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(BuildError::Missing {
            name: name.to_string(),
            dir: dir.to_path_buf(),
        })
    }
}

/// Runs `cargo build --bins -p PACKAGE…` in the workspace, in the profile of the running
/// program (release when it runs from a `release` directory), and returns that profile's
/// directory. `cargo run -p HARNESS` builds only the harness; this builds what it starts.
pub fn build_binaries(packages: &[&str]) -> Result<PathBuf, BuildError> {
    let dir = profile_dir()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["build", "--quiet", "--bins"]);
    for package in packages {
        command.args(["-p", package]);
    }
    if dir.ends_with("release") {
        command.arg("--release");
    }
    command.current_dir(workspace_root());
    strip_package_variables(&mut command);
    let listed = packages.join(", ");
    let status = command.status().map_err(|source| BuildError::Cargo {
        packages: listed.clone(),
        source,
    })?;
    if !status.success() {
        return Err(BuildError::Failed {
            packages: listed,
            status,
        });
    }
    Ok(dir)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `cargo run` describes the running package in the environment; build scripts that watch
/// such variables (ring watches CARGO_MANIFEST_DIR) would otherwise rebuild the proxy here,
/// and again in the next plain `cargo build`.
fn strip_package_variables(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if is_package_variable(&name) {
            command.env_remove(name.as_ref());
        }
    }
}

fn is_package_variable(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_MANIFEST_")
        || [
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
        ]
        .contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_only_the_package_variables() {
        for stripped in [
            "CARGO_PKG_NAME",
            "CARGO_MANIFEST_DIR",
            "CARGO_PRIMARY_PACKAGE",
        ] {
            assert!(is_package_variable(stripped), "{stripped}");
        }
        for kept in ["CARGO", "CARGO_HOME", "CARGO_TARGET_DIR", "PATH"] {
            assert!(!is_package_variable(kept), "{kept}");
        }
    }

    #[test]
    fn finds_the_profile_and_reports_missing_binaries() {
        let dir = profile_dir().expect("profile");
        assert!(!dir.ends_with("deps"));
        let missing = find_binary(&dir, "surely-not-a-binary").expect_err("missing");
        assert!(missing.to_string().contains("surely-not-a-binary"));
        assert!(workspace_root().join("Cargo.toml").is_file());
    }
}
