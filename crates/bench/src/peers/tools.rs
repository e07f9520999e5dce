//! The outside programs the `peers` suite needs — nginx, HAProxy, wrk (apt) and oha (cargo) —
//! found on the machine or installed when missing, and their versions for the report. Owns
//! installation and lookup, not configuration.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

/// Where each tool is.
pub struct Tools {
    /// nginx binary.
    pub nginx: PathBuf,
    /// haproxy binary.
    pub haproxy: PathBuf,
    /// wrk binary.
    pub wrk: PathBuf,
    /// oha binary.
    pub oha: PathBuf,
}

/// Apt packages and the binary each provides.
const APT_TOOLS: [(&str, &str); 3] = [("nginx", "nginx"), ("haproxy", "haproxy"), ("wrk", "wrk")];

/// Finds every tool, installing the missing ones unless `install` is false.
pub fn ensure(install: bool) -> anyhow::Result<Tools> {
    let missing: Vec<&str> = APT_TOOLS
        .iter()
        .filter(|(binary, _)| find(binary).is_none())
        .map(|(_, package)| *package)
        .collect();
    if !missing.is_empty() {
        if !install {
            bail!("missing {missing:?}: run without --no-install, or apt-get install them");
        }
        apt_install(&missing)?;
    }
    if find("oha").is_none() {
        if !install {
            bail!("missing oha: run without --no-install, or `cargo install oha --locked`");
        }
        cargo_install_oha()?;
    }
    let get = |name: &str| find(name).with_context(|| format!("{name} still not found"));
    Ok(Tools {
        nginx: get("nginx")?,
        haproxy: get("haproxy")?,
        wrk: get("wrk")?,
        oha: get("oha")?,
    })
}

/// `name` on PATH, in the sbin directories (not on a normal user's PATH), or in cargo's bin.
fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin"));
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .chain(cargo_bin)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    eprintln!("installing {} with apt-get", packages.join(" "));
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let apt_get = |args: &[&str]| {
        let mut command = Command::new(if root { "apt-get" } else { "sudo" });
        if !root {
            command.arg("apt-get");
        }
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    run_checked(&mut apt_get(&["update", "-qq"]))?;
    let mut install = apt_get(&["install", "-y", "-qq"]);
    install.args(packages);
    run_checked(&mut install)
}

fn cargo_install_oha() -> anyhow::Result<()> {
    eprintln!("installing oha with cargo install (a few minutes)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run_checked(Command::new(cargo).args(["install", "oha", "--locked"]))
}

fn run_checked(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

impl Tools {
    /// One line per tool: its own version output.
    pub fn versions(&self) -> Vec<String> {
        vec![
            version_line(&self.nginx, "-v", "nginx version"),
            version_line(&self.haproxy, "-v", "HAProxy version"),
            version_line(&self.wrk, "-v", "wrk"),
            version_line(&self.oha, "--version", "oha"),
        ]
    }
}

/// The first line of `program flag`'s output (stdout or stderr) that starts with `prefix`.
fn version_line(program: &Path, flag: &str, prefix: &str) -> String {
    let output = Command::new(program)
        .arg(flag)
        .stdin(Stdio::null())
        .output();
    let Ok(output) = output else {
        return format!("{}: version unknown", program.display());
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| text.lines().next().unwrap_or("version unknown"))
        .trim()
        .to_string()
}
