//! Throttling of peer addresses whose registrations fail. Each failed registration from an
//! address (bad token, refused id, malformed request, failed TLS handshake) is answered after
//! a delay that doubles with every failure in the current window; once an address reaches the
//! failure limit it is refused outright — its connections are closed before anything is read —
//! until the block ends. This owns the per-address records and their counters; which outcomes
//! count as failures is the handshake's decision, and Unix socket peers (which have no
//! address) are never throttled.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// Addresses tracked at once. A flood from more addresses than this evicts the records of
/// addresses that are not blocked, so memory stays bounded whatever peers do.
const MAX_TRACKED_PEERS: usize = 65_536;

/// How failed registrations from one address are slowed down and then refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failures within `window` after which the address is blocked (0: never blocked).
    pub limit: u32,
    /// The period failures are counted over, from an address's first failure.
    pub window: Duration,
    /// How long a blocked address is refused.
    pub block: Duration,
    /// Delay before answering the first failure; each further failure doubles it (0: none).
    pub delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
}

impl Default for ThrottleSettings {
    fn default() -> ThrottleSettings {
        ThrottleSettings {
            limit: 10,
            window: Duration::from_secs(60),
            block: Duration::from_secs(60),
            delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// What the throttle has done since start, and how many addresses are blocked now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ThrottleSnapshot {
    /// Failed registrations answered after a delay.
    pub delayed_rejections: u64,
    /// Times an address reached the failure limit and was blocked.
    pub blocks: u64,
    /// Connections from blocked addresses closed without being read.
    pub refused_connections: u64,
    /// Addresses blocked right now.
    pub blocked_peers: u64,
}

/// The per-address failure records of one listener.
#[derive(Debug)]
pub(crate) struct FailureThrottle {
    settings: ThrottleSettings,
    peers: Mutex<HashMap<IpAddr, PeerRecord>>,
    delayed: AtomicU64,
    blocks: AtomicU64,
    refused: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct PeerRecord {
    failures: u32,
    window_start: Instant,
    blocked_until: Option<Instant>,
}

impl PeerRecord {
    fn blocked_at(&self, now: Instant) -> bool {
        self.blocked_until.is_some_and(|until| now < until)
    }

    /// Whether the record says nothing any more: no block in force and its window is over.
    fn expired_at(&self, now: Instant, window: Duration) -> bool {
        !self.blocked_at(now) && now >= self.window_start + window
    }
}

impl FailureThrottle {
    pub(crate) fn new(settings: ThrottleSettings) -> FailureThrottle {
        FailureThrottle {
            settings,
            peers: Mutex::new(HashMap::new()),
            delayed: AtomicU64::new(0),
            blocks: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Whether a new connection from `address` may start a handshake; a refusal is counted.
    pub(crate) fn admits(&self, address: IpAddr) -> bool {
        let key = peer_key(address);
        let blocked = self
            .lock()
            .get(&key)
            .is_some_and(|record| record.blocked_at(Instant::now()));
        if blocked {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        !blocked
    }

    /// Counts a failed registration from `address` and returns how long to wait before
    /// answering it. Reaching the limit blocks the address from now on.
    pub(crate) fn record_failure(&self, address: IpAddr) -> Duration {
        let now = Instant::now();
        let key = peer_key(address);
        let mut peers = self.lock();
        if !peers.contains_key(&key) && !self.make_room(&mut peers, now) {
            return self.settings.max_delay.min(self.settings.delay);
        }
        let record = peers.entry(key).or_insert(PeerRecord {
            failures: 0,
            window_start: now,
            blocked_until: None,
        });
        if record.expired_at(now, self.settings.window) {
            *record = PeerRecord {
                failures: 0,
                window_start: now,
                blocked_until: None,
            };
        }
        record.failures = record.failures.saturating_add(1);
        let limit = self.settings.limit;
        if limit > 0 && record.failures >= limit && !record.blocked_at(now) {
            record.blocked_until = Some(now + self.settings.block);
            self.blocks.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                peer = %key,
                failures = record.failures,
                block = ?self.settings.block,
                "too many failed registrations from this address; refusing it for a while"
            );
        }
        let delay = self.delay_after(record.failures);
        if !delay.is_zero() {
            self.delayed.fetch_add(1, Ordering::Relaxed);
        }
        delay
    }

    /// The current counters.
    pub(crate) fn snapshot(&self) -> ThrottleSnapshot {
        let now = Instant::now();
        let blocked_peers = self.lock().values().filter(|r| r.blocked_at(now)).count() as u64;
        ThrottleSnapshot {
            delayed_rejections: self.delayed.load(Ordering::Relaxed),
            blocks: self.blocks.load(Ordering::Relaxed),
            refused_connections: self.refused.load(Ordering::Relaxed),
            blocked_peers,
        }
    }

    /// `delay × 2^(failures − 1)`, at most `max_delay`.
    fn delay_after(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.settings
            .delay
            .saturating_mul(1u32 << doublings)
            .min(self.settings.max_delay)
    }

    /// Frees a place for a new record when the table is full: expired records first, then
    /// any unblocked one. Returns false when every tracked address is blocked.
    fn make_room(&self, peers: &mut HashMap<IpAddr, PeerRecord>, now: Instant) -> bool {
        if peers.len() < MAX_TRACKED_PEERS {
            return true;
        }
        peers.retain(|_, record| !record.expired_at(now, self.settings.window));
        if peers.len() < MAX_TRACKED_PEERS {
            return true;
        }
        let victim = peers
            .iter()
            .filter(|(_, record)| !record.blocked_at(now))
            .min_by_key(|(_, record)| record.window_start)
            .map(|(key, _)| *key);
        match victim {
            Some(key) => {
                peers.remove(&key);
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, PeerRecord>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The unit one peer controls: its IPv4 address, or the /64 network of an IPv6 address (a
/// single host is routinely given a whole /64). IPv4-mapped IPv6 addresses count as IPv4.
fn peer_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(network))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(limit: u32) -> ThrottleSettings {
        ThrottleSettings {
            limit,
            window: Duration::from_secs(60),
            block: Duration::from_secs(30),
            delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(800),
        }
    }

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 8));

    #[tokio::test(start_paused = true)]
    async fn delay_doubles_up_to_the_maximum_then_the_address_is_blocked() {
        let throttle = FailureThrottle::new(settings(6));
        let delays: Vec<u64> = (0..5)
            .map(|_| throttle.record_failure(PEER).as_millis() as u64)
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 800]);
        assert!(throttle.admits(PEER), "not blocked below the limit");
        throttle.record_failure(PEER);
        assert!(!throttle.admits(PEER), "blocked at the limit");
        assert!(throttle.admits(OTHER), "other addresses are not affected");
        let snapshot = throttle.snapshot();
        assert_eq!(
            (snapshot.blocks, snapshot.refused_connections),
            (1, 1),
            "{snapshot:?}"
        );
        assert_eq!(snapshot.blocked_peers, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_block_ends_and_the_address_starts_afresh() {
        let throttle = FailureThrottle::new(settings(2));
        throttle.record_failure(PEER);
        throttle.record_failure(PEER);
        assert!(!throttle.admits(PEER));
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(throttle.admits(PEER), "the block lasts `block`");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(
            throttle.record_failure(PEER),
            Duration::from_millis(100),
            "after the window a new failure starts from the first delay"
        );
        assert!(throttle.admits(PEER));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_outside_the_window_do_not_add_up() {
        let throttle = FailureThrottle::new(settings(3));
        throttle.record_failure(PEER);
        throttle.record_failure(PEER);
        tokio::time::advance(Duration::from_secs(61)).await;
        throttle.record_failure(PEER);
        assert!(throttle.admits(PEER));
    }

    #[tokio::test(start_paused = true)]
    async fn limit_zero_never_blocks_and_delay_zero_never_delays() {
        let throttle = FailureThrottle::new(ThrottleSettings {
            limit: 0,
            delay: Duration::ZERO,
            ..settings(0)
        });
        for _ in 0..100 {
            assert_eq!(throttle.record_failure(PEER), Duration::ZERO);
        }
        assert!(throttle.admits(PEER));
        assert_eq!(throttle.snapshot().delayed_rejections, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_stays_bounded_and_keeps_blocked_addresses() {
        let throttle = FailureThrottle::new(settings(1));
        throttle.record_failure(PEER);
        for n in 0..(MAX_TRACKED_PEERS as u32 + 10) {
            let address = IpAddr::V6(Ipv6Addr::from((u128::from(n) + 1) << 64));
            throttle.record_failure(address);
        }
        assert!(throttle.lock().len() <= MAX_TRACKED_PEERS);
        assert!(!throttle.admits(PEER), "a blocked address is never evicted");
    }

    #[test]
    fn ipv6_addresses_of_one_64_network_are_one_peer() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(peer_key(a), peer_key(b));
        assert_ne!(peer_key(a), peer_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(peer_key(mapped), PEER);
    }
}
