//! Which settings a reload cannot apply: those bound into sockets and tasks at start-up. Each
//! section of the model is taken apart field by field here, so a new setting does not compile
//! until it is classified as restart-only or applied on reload. Applying a reload, and logging
//! what it could not apply, is [`crate::app`]'s business.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{AdminConfig, Config, ListenerConfig};
use crate::pool::PoolSettings;
use crate::reverse::{PeerFilter, ReverseListenerConfig, ThrottleSettings};

/// A restart-only setting as the reload log names it, and whether it differs between the
/// running configuration and the new one.
struct RestartOnly {
    setting: &'static str,
    changed: fn(&Config, &Config) -> bool,
}

/// Every restart-only setting, in the order a reload reports them.
const RESTART_ONLY: [RestartOnly; 5] = [
    RestartOnly {
        setting: "reverse-listener (sockets, limits, peer filter)",
        changed: |old, new| reverse_listener(old) != reverse_listener(new),
    },
    RestartOnly {
        setting: "reverse-listener agent connection settings",
        changed: |old, new| agent_connections(old) != agent_connections(new),
    },
    // Certificates reload in place; turning TLS on or off changes what the socket speaks.
    RestartOnly {
        setting: "reverse-listener tls (turned on or off)",
        changed: |old, new| tls_on(old) != tls_on(new),
    },
    RestartOnly {
        setting: "listeners",
        changed: |old, new| listeners(old) != listeners(new),
    },
    // The admin token is read per request, so a reload rotates it; only the socket is fixed.
    RestartOnly {
        setting: "admin address",
        changed: |old, new| admin_address(old) != admin_address(new),
    },
];

impl Config {
    /// The restart-only settings that differ in `new`, named for the reload log; a reload
    /// applies everything else.
    pub fn restart_only_changes(&self, new: &Config) -> Vec<String> {
        RESTART_ONLY
            .iter()
            .filter(|restart_only| (restart_only.changed)(self, new))
            .map(|restart_only| restart_only.setting.to_string())
            .collect()
    }
}

/// The top level: which sections hold restart-only settings.
fn sections(config: &Config) -> RestartOnlySections<'_> {
    let Config {
        reverse_listener,
        pool,
        listeners,
        admin,
        // Applied on reload: the routing table, the pool's logical agents, and the grace
        // period (read when shutdown starts).
        upstreams: _,
        agents: _,
        routes: _,
        shutdown_grace: _,
        // Only consulted at start-up, and not reported by a reload.
        wait_for_agents: _,
    } = config;
    RestartOnlySections {
        reverse_listener: reverse_listener.as_ref(),
        pool,
        listeners,
        admin: admin.as_ref(),
    }
}

/// The sections of a [`Config`] that hold restart-only settings.
struct RestartOnlySections<'a> {
    reverse_listener: Option<&'a ReverseListenerConfig>,
    pool: &'a PoolSettings,
    listeners: &'a [ListenerConfig],
    admin: Option<&'a AdminConfig>,
}

/// The reverse listener's sockets, limits and peer filter.
type BoundReverseListener<'a> = (
    &'a Option<PathBuf>,
    &'a Option<SocketAddr>,
    &'a Duration,
    &'a usize,
    &'a usize,
    &'a ThrottleSettings,
    &'a usize,
    &'a usize,
    &'a PeerFilter,
);

fn reverse_listener(config: &Config) -> Option<BoundReverseListener<'_>> {
    let ReverseListenerConfig {
        path,
        tcp_address,
        handshake_timeout,
        max_connections_per_agent,
        max_agent_connections,
        failed_registrations,
        max_pending_handshakes,
        max_frame_length,
        peer_filter,
        // Applied on reload to new registrations (the validator slot).
        require_auth: _,
        tokens: _,
        allowed_agents: _,
        // Certificates reload in place (the TLS slot); on or off is `tls_on`.
        tls: _,
        // Fixed at bind time but not reported by a reload, as before; the file cannot set the
        // registration frame limit at all.
        socket_mode: _,
        max_registration_frame_length: _,
    } = sections(config).reverse_listener?;
    Some((
        path,
        tcp_address,
        handshake_timeout,
        max_connections_per_agent,
        max_agent_connections,
        failed_registrations,
        max_pending_handshakes,
        max_frame_length,
        peer_filter,
    ))
}

/// Every agent connection setting: the pool is built once, at start-up.
fn agent_connections(config: &Config) -> (Duration, Duration, usize, usize) {
    let PoolSettings {
        heartbeat_interval,
        write_timeout,
        default_max_in_flight,
        max_in_flight_limit,
    } = *sections(config).pool;
    (
        heartbeat_interval,
        write_timeout,
        default_max_in_flight,
        max_in_flight_limit,
    )
}

fn tls_on(config: &Config) -> bool {
    sections(config)
        .reverse_listener
        .is_some_and(|reverse| reverse.tls.is_some())
}

/// Every HTTP listener, name and address: they are bound at start-up.
fn listeners(config: &Config) -> &[ListenerConfig] {
    sections(config).listeners
}

fn admin_address(config: &Config) -> Option<SocketAddr> {
    let AdminConfig {
        address,
        // Read per request, so a reload rotates it.
        token: _,
    } = sections(config).admin?;
    Some(*address)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_socket(path: &str) -> Config {
        Config {
            reverse_listener: Some(ReverseListenerConfig {
                path: Some(PathBuf::from(path)),
                ..ReverseListenerConfig::default()
            }),
            ..Config::default()
        }
    }

    #[test]
    fn names_each_restart_only_setting_that_changed() {
        let old = with_socket("/run/a.sock");
        assert!(old.restart_only_changes(&old.clone()).is_empty());

        let mut new = with_socket("/run/b.sock");
        new.pool.heartbeat_interval = Duration::from_secs(3);
        new.listeners.push(ListenerConfig {
            name: "http".into(),
            address: SocketAddr::from(([127, 0, 0, 1], 8080)),
        });
        new.admin = Some(AdminConfig::default());
        assert_eq!(
            old.restart_only_changes(&new),
            [
                "reverse-listener (sockets, limits, peer filter)",
                "reverse-listener agent connection settings",
                "listeners",
                "admin address",
            ]
        );
    }

    #[test]
    fn settings_applied_on_reload_are_not_named() {
        let old = with_socket("/run/a.sock");
        let mut new = old.clone();
        let reverse = new.reverse_listener.as_mut().expect("configured above");
        reverse.require_auth = true;
        reverse.allowed_agents = Some(Vec::new());
        new.shutdown_grace = Duration::from_secs(1);
        new.routes.push(crate::config::RouteConfig::default());
        assert!(old.restart_only_changes(&new).is_empty());
    }
}
