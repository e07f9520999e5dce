//! The fleet's certificates, made at run time: one CA, one server certificate per proxy (its
//! LAN address as subject alternative name) and one client certificate per agent host (its
//! agent id), written as PEM files into the run's directory. The issuing helpers are the
//! agent SDK testkit's (`crates/agent-sdk/testkit/src/pki.rs`, included, not copied).

use std::net::Ipv4Addr;
use std::path::Path;

#[allow(dead_code)]
#[path = "../../agent-sdk/testkit/src/pki.rs"]
mod testkit_pki;

use testkit_pki::TestCa;

/// Writes `ca.crt`, `proxy<N>.crt/.key` and `<agent_id>.crt/.key` into `dir`.
pub fn write_all(dir: &Path, proxies: &[Ipv4Addr], agent_ids: &[&str]) {
    let ca = TestCa::new("sentinel fleet test CA");
    ca.write(dir, "ca");
    for (i, addr) in proxies.iter().enumerate() {
        ca.server(&[&addr.to_string()])
            .write(dir, &format!("proxy{}", i + 1));
    }
    for id in agent_ids {
        ca.client(&[id], Some(id)).write(dir, id);
    }
}
