//! The fleet's network, built from namespaces: a "switch" namespace holding a bridge (the LAN),
//! three proxy hosts and a client host on it, and a router host between the LAN and two agent
//! hosts, each on its own private network. The router masquerades the agent networks (nftables)
//! and forwards no new connection inward; the agent hosts drop every inbound connection attempt.
//! Addresses are private, exist only inside these namespaces, and differ per run. Nothing in the
//! root namespace is touched. Also: taking a host's link down and up again.

use std::net::Ipv4Addr;

use anyhow::Context;

use crate::netns::{exec_in, ip, Namespaces};

/// One host: its namespace and its address (on the LAN, or on its private network for agents).
#[derive(Debug, Clone)]
pub struct Host {
    pub ns: String,
    pub addr: Ipv4Addr,
}

/// The whole network. Dropping it removes every namespace (and what runs inside).
pub struct Topology {
    pub proxies: Vec<Host>,
    pub client: Host,
    /// The router's LAN side: the address every agent connection comes from.
    pub router: Host,
    pub agents: Vec<Host>,
    /// The agent hosts' gateway, per agent host.
    agent_gateways: Vec<Ipv4Addr>,
    namespaces: Namespaces,
}

/// Host part of each proxy's LAN address.
const PROXY_HOSTS: [u8; 3] = [11, 12, 13];
const CLIENT_HOST: u8 = 20;
const ROUTER_HOST: u8 = 1;

impl Topology {
    /// Builds the network; on error, what was built so far is removed.
    pub fn build() -> anyhow::Result<Topology> {
        let mut namespaces = Namespaces::for_this_run();
        // 10.<16..215>.x.y: a different second octet per run (by pid) keeps runs apart in logs.
        let net = 16 + (std::process::id() % 200) as u8;
        let lan = |host: u8| Ipv4Addr::new(10, net, 0, host);
        let switch = namespaces.add("sw")?;
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &switch, "link", "set", "br0", "up"])?;

        let mut proxies = Vec::new();
        for (i, host) in PROXY_HOSTS.iter().enumerate() {
            let ns = namespaces.add(&format!("p{}", i + 1))?;
            plug_into_lan(&switch, &ns, &format!("p{}", i + 1), lan(*host))?;
            proxies.push(Host {
                ns,
                addr: lan(*host),
            });
        }
        let client_ns = namespaces.add("cl")?;
        plug_into_lan(&switch, &client_ns, "cl", lan(CLIENT_HOST))?;
        let router_ns = namespaces.add("rt")?;
        plug_into_lan(&switch, &router_ns, "rt", lan(ROUTER_HOST))?;

        let mut agents = Vec::new();
        let mut agent_gateways = Vec::new();
        for i in 0..2u8 {
            let ns = namespaces.add(&format!("a{}", i + 1))?;
            let gateway = Ipv4Addr::new(10, net, i + 1, 1);
            let addr = Ipv4Addr::new(10, net, i + 1, 2);
            let port = format!("a{}", i + 1);
            ip(&[
                "-n", &router_ns, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ])?;
            ip(&[
                "-n",
                &router_ns,
                "addr",
                "add",
                &format!("{gateway}/24"),
                "dev",
                &port,
            ])?;
            ip(&["-n", &router_ns, "link", "set", &port, "up"])?;
            bring_up_eth0(&ns, addr)?;
            ip(&[
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                &gateway.to_string(),
            ])?;
            nft(&ns, &agent_host_firewall())?;
            agents.push(Host { ns, addr });
            agent_gateways.push(gateway);
        }
        exec_in(&router_ns, "sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
        nft(&router_ns, &router_rules(net))?;
        Ok(Topology {
            proxies,
            client: Host {
                ns: client_ns,
                addr: lan(CLIENT_HOST),
            },
            router: Host {
                ns: router_ns,
                addr: lan(ROUTER_HOST),
            },
            agents,
            agent_gateways,
            namespaces,
        })
    }

    /// The switch namespace's name (for the report).
    pub fn switch(&self) -> String {
        self.namespaces.name("sw")
    }

    /// Takes `host`'s only link down: its packets simply stop, no FIN, no RST.
    pub fn link_down(&self, host: &Host) -> anyhow::Result<()> {
        ip(&["-n", &host.ns, "link", "set", "eth0", "down"])
    }

    /// Brings `host`'s link back (and an agent host's default route, which the kernel dropped
    /// with the link).
    pub fn link_up(&self, host: &Host) -> anyhow::Result<()> {
        ip(&["-n", &host.ns, "link", "set", "eth0", "up"])?;
        if let Some(i) = self.agents.iter().position(|a| a.ns == host.ns) {
            let gateway = self.agent_gateways[i].to_string();
            ip(&[
                "-n", &host.ns, "route", "replace", "default", "via", &gateway,
            ])?;
        }
        Ok(())
    }
}

/// A veth from `ns` (as `eth0`, with `addr`/24) to the switch's bridge.
fn plug_into_lan(switch: &str, ns: &str, port: &str, addr: Ipv4Addr) -> anyhow::Result<()> {
    ip(&[
        "-n", switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns,
    ])?;
    ip(&["-n", switch, "link", "set", port, "master", "br0"])?;
    ip(&["-n", switch, "link", "set", port, "up"])?;
    bring_up_eth0(ns, addr)
}

/// Gives `ns`'s `eth0` the address `addr`/24 and brings it up.
fn bring_up_eth0(ns: &str, addr: Ipv4Addr) -> anyhow::Result<()> {
    let cidr = format!("{addr}/24");
    ip(&["-n", ns, "addr", "add", &cidr, "dev", "eth0"])?;
    ip(&["-n", ns, "link", "set", "eth0", "up"])
}

fn nft(ns: &str, rules: &str) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("rules.nft");
    std::fs::write(&file, rules)?;
    let path = file.to_string_lossy().into_owned();
    exec_in(ns, "nft", &["-f", &path])
        .map(drop)
        .with_context(|| format!("loading nftables rules into {ns}"))
}

/// Agent hosts: answers to their own connections only; every inbound attempt is dropped.
fn agent_host_firewall() -> String {
    "table inet fleet_host {
    chain input {
        type filter hook input priority filter; policy drop;
        iif \"lo\" accept
        ct state established,related accept
    }
}
"
    .to_string()
}

/// The router: masquerades the agent networks onto the LAN, forwards no new connection inward.
fn router_rules(net: u8) -> String {
    format!(
        "table ip fleet_router {{
    chain forward {{
        type filter hook forward priority filter; policy accept;
        iifname \"eth0\" ct state new drop
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname \"eth0\" ip saddr 10.{net}.0.0/16 masquerade
    }}
}}
"
    )
}

/// The agent hosts' firewall as `nft list ruleset` shows it (for the NAT scenario's check).
pub fn ruleset(host: &Host) -> anyhow::Result<String> {
    exec_in(&host.ns, "nft", &["list", "ruleset"])
}
