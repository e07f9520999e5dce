//! What the harness needs from the machine, checked before anything is built, each failure a
//! plain sentence naming what is missing: root (to create namespaces and links), the `ip` and
//! `nft` commands, and network namespaces, veth pairs and bridges in the kernel. It never
//! skips: a machine that cannot run the fleet fails the run.

use anyhow::bail;

use crate::netns::{ip, run, Namespaces};

pub fn check() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the fleet harness must run as root: it creates network namespaces, veth pairs and a bridge (CAP_SYS_ADMIN and CAP_NET_ADMIN)");
    }
    if run("ip", &["-V"]).is_err() {
        bail!(
            "the `ip` command is missing: install the iproute2 package (scripts/install-deps does)"
        );
    }
    if run("nft", &["--version"]).is_err() {
        bail!("the `nft` command is missing: install the nftables package (scripts/install-deps does)");
    }
    let mut probe = Namespaces::for_this_run();
    let a = probe.add("probe-a").map_err(|e| {
        anyhow::anyhow!("cannot create a network namespace (is this a container without CAP_SYS_ADMIN, or a kernel without CONFIG_NET_NS?): {e:#}")
    })?;
    let b = probe.add("probe-b")?;
    ip(&[
        "-n", &a, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", &b,
    ])
    .map_err(|e| {
        anyhow::anyhow!("cannot create a veth pair between namespaces (CONFIG_VETH): {e:#}")
    })?;
    ip(&["-n", &a, "link", "add", "br0", "type", "bridge"]).map_err(|e| {
        anyhow::anyhow!("cannot create a bridge in a namespace (CONFIG_BRIDGE): {e:#}")
    })?;
    crate::netns::exec_in(&a, "nft", &["list", "ruleset"]).map_err(|e| {
        anyhow::anyhow!("nftables does not work inside a namespace (CONFIG_NF_TABLES): {e:#}")
    })?;
    Ok(())
}
