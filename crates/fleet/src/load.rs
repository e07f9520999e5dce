//! The load client: a few workers sending GET requests in a closed loop, one fresh connection
//! each, round-robin over the proxies that are enabled — like a load balancer, a request goes
//! to the next proxy only when its connection is refused. Every fifth request is an attack
//! (SQL injection with the marker) that must come back 403; the others must come back 200.
//! Bounded in count and in time. It records per request what happened, for the report.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::http::{get, Failure, ATTACK_MARKER};

/// One request's fate.
#[derive(Debug, Clone)]
pub struct Sample {
    pub started: Instant,
    pub latency: Duration,
    /// The proxy that answered (or the last one tried).
    pub proxy: usize,
    /// `None` when answered as expected; otherwise why not.
    pub failure: Option<String>,
    /// An attack that came back 200.
    pub wrongly_allowed: bool,
}

/// Everything the load saw.
#[derive(Debug, Default)]
pub struct Stats {
    pub samples: Vec<Sample>,
    /// Requests re-sent to another proxy after a refused connection.
    pub failovers: u64,
    /// Workers that panicked or were cancelled, with why: their samples are missing.
    pub lost: Vec<String>,
}

impl Stats {
    pub fn sent(&self) -> usize {
        self.samples.len()
    }

    pub fn answered(&self) -> usize {
        self.samples.iter().filter(|s| s.failure.is_none()).count()
    }

    pub fn wrongly_allowed(&self) -> usize {
        self.samples.iter().filter(|s| s.wrongly_allowed).count()
    }

    /// Failed requests by cause.
    pub fn failures(&self) -> BTreeMap<String, usize> {
        let mut by_cause = BTreeMap::new();
        for cause in self.samples.iter().filter_map(|s| s.failure.as_ref()) {
            *by_cause.entry(cause.clone()).or_insert(0) += 1;
        }
        by_cause
    }

    /// Latencies of the requests started within `[from, to)` through one of `proxies`.
    pub fn latencies(&self, from: Instant, to: Instant, proxies: &[usize]) -> Vec<Duration> {
        let mut all: Vec<Duration> = self
            .samples
            .iter()
            .filter(|s| s.started >= from && s.started < to && proxies.contains(&s.proxy))
            .map(|s| s.latency)
            .collect();
        all.sort_unstable();
        all
    }
}

/// A quantile of sorted latencies (zero when empty).
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Load settings.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub proxies: Vec<SocketAddr>,
    pub workers: usize,
    pub max_requests: u64,
    pub max_duration: Duration,
    pub request_timeout: Duration,
}

/// Running load; stop it to get the stats.
pub struct Load {
    stop: Arc<AtomicBool>,
    enabled: Arc<Mutex<Vec<bool>>>,
    workers: Vec<tokio::task::JoinHandle<(Vec<Sample>, u64)>>,
}

impl Load {
    /// Starts the workers, all proxies enabled.
    pub fn start(config: LoadConfig) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let enabled = Arc::new(Mutex::new(vec![true; config.proxies.len()]));
        let shared = Arc::new(Shared {
            config,
            counter: AtomicU64::new(0),
            rotation: AtomicUsize::new(0),
            started: Instant::now(),
        });
        let workers = (0..shared.config.workers)
            .map(|_| tokio::spawn(worker(shared.clone(), stop.clone(), enabled.clone())))
            .collect();
        Load {
            stop,
            enabled,
            workers,
        }
    }

    /// Sends new requests only to the proxies whose index is in `which`.
    pub fn only(&self, which: &[usize]) {
        if let Ok(mut enabled) = self.enabled.lock() {
            for (i, on) in enabled.iter_mut().enumerate() {
                *on = which.contains(&i);
            }
        }
    }

    /// Stops and collects.
    pub async fn stop(self) -> Stats {
        self.stop.store(true, Ordering::Relaxed);
        let mut stats = Stats::default();
        for (index, worker) in self.workers.into_iter().enumerate() {
            match worker.await {
                Ok((samples, failovers)) => {
                    stats.samples.extend(samples);
                    stats.failovers += failovers;
                }
                Err(e) => stats.lost.push(format!("worker {index}: {e}")),
            }
        }
        stats.samples.sort_by_key(|s| s.started);
        stats
    }
}

struct Shared {
    config: LoadConfig,
    counter: AtomicU64,
    rotation: AtomicUsize,
    started: Instant,
}

async fn worker(
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    enabled: Arc<Mutex<Vec<bool>>>,
) -> (Vec<Sample>, u64) {
    let mut samples = Vec::new();
    let mut failovers = 0;
    loop {
        let n = shared.counter.fetch_add(1, Ordering::Relaxed);
        if stop.load(Ordering::Relaxed)
            || n >= shared.config.max_requests
            || shared.started.elapsed() >= shared.config.max_duration
        {
            break;
        }
        let order = proxy_order(&shared, &enabled);
        let attack = n % 5 == 0;
        let path = if attack {
            format!("/fleet/search?q=1%27%20OR%20%271%27%3D%271&{ATTACK_MARKER}={n}")
        } else {
            format!("/fleet/item?n={n}")
        };
        let started = Instant::now();
        let mut outcome = Err(Failure::Refused);
        let mut proxy = order.first().copied().unwrap_or(0);
        for (attempt, &candidate) in order.iter().enumerate() {
            proxy = candidate;
            let addr = shared.config.proxies[candidate];
            outcome = get(addr, &path, shared.config.request_timeout).await;
            if outcome != Err(Failure::Refused) {
                break;
            }
            if attempt + 1 < order.len() {
                failovers += 1;
            }
        }
        let (failure, wrongly_allowed) = judge(attack, &outcome);
        samples.push(Sample {
            started,
            latency: started.elapsed(),
            proxy,
            failure,
            wrongly_allowed,
        });
    }
    (samples, failovers)
}

/// The enabled proxies, starting at the next one in rotation.
fn proxy_order(shared: &Shared, enabled: &Mutex<Vec<bool>>) -> Vec<usize> {
    let on: Vec<usize> = enabled
        .lock()
        .map(|e| (0..e.len()).filter(|&i| e[i]).collect())
        .unwrap_or_default();
    if on.is_empty() {
        return on;
    }
    let start = shared.rotation.fetch_add(1, Ordering::Relaxed) % on.len();
    on[start..].iter().chain(&on[..start]).copied().collect()
}

/// Whether the answer is the expected one: 403 for an attack, 200 otherwise.
fn judge(attack: bool, outcome: &Result<(u16, bytes::Bytes), Failure>) -> (Option<String>, bool) {
    match outcome {
        Err(failure) => (Some(failure.label()), false),
        Ok((403, _)) if attack => (None, false),
        Ok((200, _)) if !attack => (None, false),
        Ok((200, _)) => (Some("attack allowed (200)".into()), true),
        Ok((503, _)) => (Some("503 (no verdict)".into()), false),
        Ok((status, _)) => (Some(format!("status {status}")), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16) -> Result<(u16, bytes::Bytes), Failure> {
        Ok((status, bytes::Bytes::new()))
    }

    #[test]
    fn attacks_must_be_blocked_and_clean_requests_passed() {
        assert_eq!(judge(true, &answer(403)), (None, false));
        assert_eq!(judge(false, &answer(200)), (None, false));
        let (failure, wrongly) = judge(true, &answer(200));
        assert!(wrongly && failure.is_some());
        assert_eq!(
            judge(false, &answer(503)).0.as_deref(),
            Some("503 (no verdict)")
        );
        assert_eq!(judge(false, &answer(403)).0.as_deref(), Some("status 403"));
        let refused = judge(false, &Err(Failure::Refused));
        assert_eq!(refused, (Some("connection refused".into()), false));
    }

    #[tokio::test]
    async fn a_panicking_worker_is_reported_lost() {
        let load = Load {
            stop: Arc::new(AtomicBool::new(false)),
            enabled: Arc::new(Mutex::new(vec![true])),
            workers: vec![
                tokio::spawn(async { (Vec::new(), 0) }),
                tokio::spawn(async { panic!("worker bug") }),
            ],
        };
        let stats = load.stop().await;
        assert_eq!(stats.lost.len(), 1, "{:?}", stats.lost);
        assert!(stats.lost[0].starts_with("worker 1"));
    }

    #[test]
    fn quantiles_of_sorted_latencies() {
        let ms = |n| Duration::from_millis(n);
        let sorted = [ms(1), ms(2), ms(3), ms(4), ms(100)];
        assert_eq!(quantile(&sorted, 0.5), ms(3));
        assert_eq!(quantile(&sorted, 1.0), ms(100));
        assert_eq!(quantile(&[], 0.99), Duration::ZERO);
    }
}
