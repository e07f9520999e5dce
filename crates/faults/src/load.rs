//! The bounded load generator: `workers` tasks, each sending one request per `interval`
//! (so the rate stays steady whether answers are fast 503s or slow timeouts) through a real
//! HTTP/1.1 client (hyper-util, keep-alive) to the proxy, until stopped, `max_requests` or
//! `max_duration`. Every `must_block_every`-th request is an SQL injection carrying
//! [`MUST_BLOCK_HEADER`]; the rest are benign. Each request is classified into an
//! [`Outcome`] and recorded with its send and completion times and the phase the scenario
//! was in when it was sent. Which phases exist and what they mean is the scenario's business.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::report::{Outcome, Tally};
use crate::upstream::{MUST_BLOCK_HEADER, UPSTREAM_HEADER};

/// The query string the WAF agent's built-in SQL injection rule blocks.
pub const SQL_INJECTION_QUERY: &str = "id=1%27%20OR%20%271%27%3D%271";

/// Shape of the load.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Concurrent clients.
    pub workers: usize,
    /// Each worker sends at most one request per interval.
    pub interval: Duration,
    /// A request without an answer after this long counts as [`Outcome::Timeout`].
    pub request_timeout: Duration,
    /// Every n-th request of a worker is a must-block request (0: none).
    pub must_block_every: u64,
    /// Path prefix of every request (selects the route).
    pub path_prefix: String,
    /// Stop after this many requests in all.
    pub max_requests: u64,
    /// Stop after this long.
    pub max_duration: Duration,
}

impl LoadSpec {
    /// 8 workers at one request per 20 ms each (≤ 400 requests/s), 10 s client timeout, one
    /// request in 4 must be blocked, on `path_prefix`, bounded by 10 million requests and
    /// `max_duration`.
    pub fn steady(path_prefix: &str, max_duration: Duration) -> LoadSpec {
        LoadSpec {
            workers: 8,
            interval: Duration::from_millis(20),
            request_timeout: Duration::from_secs(10),
            must_block_every: 4,
            path_prefix: path_prefix.to_string(),
            max_requests: 10_000_000,
            max_duration,
        }
    }
}

/// One request's record.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When it was sent.
    pub sent: Instant,
    /// When its outcome was known.
    pub done: Instant,
    /// Its outcome.
    pub outcome: Outcome,
    /// Whether it was a must-block request.
    pub must_block: bool,
    /// The phase it was sent in.
    pub phase: usize,
}

/// The names of the phases and the current one, shared by the scenario and the workers.
#[derive(Default)]
struct Phases {
    names: Mutex<Vec<String>>,
    current: AtomicUsize,
}

/// Running load; [`Load::finish`] stops it and returns what happened.
pub struct Load {
    phases: Arc<Phases>,
    stop: CancellationToken,
    workers: Vec<JoinHandle<Vec<Sample>>>,
}

impl Load {
    /// Starts the workers against `proxy`, in a first phase named `first_phase`.
    pub fn start(spec: LoadSpec, proxy: SocketAddr, first_phase: &str) -> Load {
        let phases = Arc::new(Phases {
            names: Mutex::new(vec![first_phase.to_string()]),
            current: AtomicUsize::new(0),
        });
        let stop = CancellationToken::new();
        let client: Client<HttpConnector, Empty<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let started = Instant::now();
        let per_worker = spec.max_requests.div_ceil(spec.workers.max(1) as u64);
        let workers = (0..spec.workers)
            .map(|worker| {
                let context = Worker {
                    spec: spec.clone(),
                    client: client.clone(),
                    proxy,
                    worker,
                    phases: phases.clone(),
                    stop: stop.clone(),
                    started,
                    budget: per_worker,
                };
                tokio::spawn(context.run())
            })
            .collect();
        Load {
            phases,
            stop,
            workers,
        }
    }

    /// From now on requests are counted in a new phase named `name`.
    pub fn phase(&self, name: &str) {
        let mut names = self.phases.names.lock().unwrap_or_else(|e| e.into_inner());
        names.push(name.to_string());
        self.phases.current.store(names.len() - 1, Ordering::SeqCst);
    }

    /// Stops the workers (requests in flight finish or time out) and returns every sample.
    pub async fn finish(mut self) -> LoadResult {
        self.stop.cancel();
        let mut samples = Vec::new();
        let workers = self.workers.len();
        let mut lost = Vec::new();
        for (index, worker) in std::mem::take(&mut self.workers).into_iter().enumerate() {
            // A worker task only ends by returning its samples; one that panicked or was
            // cancelled took its samples with it, so the result says so and fails the check.
            match worker.await {
                Ok(mine) => samples.extend(mine),
                Err(e) => lost.push(format!("worker {index}: {e}")),
            }
        }
        samples.sort_by_key(|s| s.sent);
        let names = self
            .phases
            .names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        LoadResult {
            names,
            samples,
            workers,
            lost,
        }
    }
}

impl Drop for Load {
    /// A load abandoned without [`Load::finish`] (a scenario that failed half-way) stops too,
    /// instead of loading the next scenario's proxy until its time runs out.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct Worker {
    spec: LoadSpec,
    client: Client<HttpConnector, Empty<Bytes>>,
    proxy: SocketAddr,
    worker: usize,
    phases: Arc<Phases>,
    stop: CancellationToken,
    started: Instant,
    budget: u64,
}

impl Worker {
    async fn run(self) -> Vec<Sample> {
        let mut samples = Vec::new();
        let mut ticks = tokio::time::interval(self.spec.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for n in 0..self.budget {
            tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = ticks.tick() => {}
            }
            if self.started.elapsed() >= self.spec.max_duration {
                break;
            }
            let must_block = self.spec.must_block_every > 0
                && (n + self.worker as u64) % self.spec.must_block_every == 0;
            let phase = self.phases.current.load(Ordering::SeqCst);
            let sent = Instant::now();
            let outcome = self.send(n, must_block).await;
            samples.push(Sample {
                sent,
                done: Instant::now(),
                outcome,
                must_block,
                phase,
            });
        }
        samples
    }

    async fn send(&self, n: u64, must_block: bool) -> Outcome {
        let path = format!("{}/w{}", self.spec.path_prefix, self.worker);
        let request = RequestSpec {
            proxy: self.proxy,
            path: &path,
            n,
            must_block,
            timeout: self.spec.request_timeout,
        };
        request.send(&self.client).await
    }
}

/// Sends one request to `path_prefix` (a must-block one when `must_block`) on a fresh
/// client, with the load's usual 10 s timeout, and classifies the answer.
pub async fn send_one(proxy: SocketAddr, path_prefix: &str, must_block: bool) -> Outcome {
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let path = format!("{path_prefix}/one");
    let request = RequestSpec {
        proxy,
        path: &path,
        n: 0,
        must_block,
        timeout: Duration::from_secs(10),
    };
    request.send(&client).await
}

struct RequestSpec<'a> {
    proxy: SocketAddr,
    path: &'a str,
    n: u64,
    must_block: bool,
    timeout: Duration,
}

impl RequestSpec<'_> {
    async fn send(&self, client: &Client<HttpConnector, Empty<Bytes>>) -> Outcome {
        let query = if self.must_block {
            SQL_INJECTION_QUERY.to_string()
        } else {
            format!("id={}", self.n)
        };
        let uri = format!("http://{}{}?{query}", self.proxy, self.path);
        let mut request = Request::get(uri);
        if self.must_block {
            request = request.header(MUST_BLOCK_HEADER, "1");
        }
        let Ok(request) = request.body(Empty::new()) else {
            return Outcome::Other;
        };
        let exchange = async {
            let response = client.request(request).await.map_err(classify_error)?;
            let status = response.status();
            let by_upstream = response.headers().contains_key(UPSTREAM_HEADER);
            // The whole answer must arrive; a connection cut mid-body is a reset.
            response
                .into_body()
                .collect()
                .await
                .map_err(|_| Outcome::RefusedOrReset)?;
            Ok::<_, Outcome>(classify_status(status, by_upstream))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(outcome)) | Ok(Err(outcome)) => outcome,
            Err(_) => Outcome::Timeout,
        }
    }
}

/// The outcome of an answer with `status`; `by_upstream` when it carries the upstream's header.
pub fn classify_status(status: StatusCode, by_upstream: bool) -> Outcome {
    match status {
        s if s.is_success() && by_upstream => Outcome::Allowed,
        StatusCode::FORBIDDEN if !by_upstream => Outcome::Blocked,
        StatusCode::SERVICE_UNAVAILABLE => Outcome::Unavailable,
        StatusCode::GATEWAY_TIMEOUT => Outcome::Timeout,
        _ => Outcome::Other,
    }
}

/// The outcome of a request that got no answer: connection refused, reset or closed early
/// are [`Outcome::RefusedOrReset`], anything else [`Outcome::Other`].
fn classify_error(error: hyper_util::client::legacy::Error) -> Outcome {
    if error.is_connect() {
        return Outcome::RefusedOrReset;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&error);
    while let Some(cause) = source {
        if let Some(hyper_error) = cause.downcast_ref::<hyper::Error>() {
            if hyper_error.is_incomplete_message()
                || hyper_error.is_closed()
                || hyper_error.is_canceled()
            {
                return Outcome::RefusedOrReset;
            }
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | BrokenPipe
                    | UnexpectedEof
            ) {
                return Outcome::RefusedOrReset;
            }
        }
        source = cause.source();
    }
    Outcome::Other
}

/// Every request of a finished load.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Phase names, by index.
    pub names: Vec<String>,
    /// Samples sorted by send time.
    pub samples: Vec<Sample>,
    /// Workers started.
    pub workers: usize,
    /// Workers whose samples were lost (panicked or cancelled), with why.
    pub lost: Vec<String>,
}

impl LoadResult {
    /// `(phase name, tally)` for every phase, in order.
    pub fn tallies(&self) -> Vec<(String, Tally)> {
        let mut tallies: Vec<(String, Tally)> = self
            .names
            .iter()
            .map(|n| (n.clone(), Tally::default()))
            .collect();
        for s in &self.samples {
            if let Some((_, t)) = tallies.get_mut(s.phase) {
                t.add(s.outcome, s.must_block);
            }
        }
        tallies
    }

    /// The tally of the phase named `name` (empty when there is none).
    pub fn tally_of(&self, name: &str) -> Tally {
        self.tallies()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .unwrap_or_default()
    }

    /// Time from `since` until the first request that failed after it, whenever it was sent
    /// (how long the fault took to show).
    pub fn first_failure_after(&self, since: Instant) -> Option<Duration> {
        self.samples
            .iter()
            .filter(|s| s.done >= since && failed(s.outcome))
            .map(|s| s.done.saturating_duration_since(since))
            .min()
    }

    /// Time from `since` until a benign request sent at or after it was first answered by
    /// the upstream (how long recovery took).
    pub fn first_allowed_after(&self, since: Instant) -> Option<Duration> {
        self.samples
            .iter()
            .filter(|s| s.sent >= since && !s.must_block && s.outcome == Outcome::Allowed)
            .map(|s| s.done.saturating_duration_since(since))
            .min()
    }

    /// Time from `since` until the last failed request sent at or after it completed; `None`
    /// when none failed after `since`.
    pub fn last_failure_after(&self, since: Instant) -> Option<Duration> {
        self.samples
            .iter()
            .filter(|s| s.sent >= since && failed(s.outcome))
            .map(|s| s.done.saturating_duration_since(since))
            .max()
    }

    /// The shortest and longest time to the outcome of the failed requests of phase `name`.
    pub fn failure_latency_range(&self, name: &str) -> Option<(Duration, Duration)> {
        let phase = self.names.iter().position(|n| n == name)?;
        let latencies = self
            .samples
            .iter()
            .filter(|s| s.phase == phase && failed(s.outcome))
            .map(|s| s.done.saturating_duration_since(s.sent));
        latencies.fold(None, |range, d| match range {
            None => Some((d, d)),
            Some((lo, hi)) => Some((lo.min(d), hi.max(d))),
        })
    }

    /// The tally of the requests sent at or after `from` and completed before `to`.
    pub fn completed_between(&self, from: Instant, to: Instant) -> Tally {
        let mut tally = Tally::default();
        for s in self
            .samples
            .iter()
            .filter(|s| s.sent >= from && s.done < to)
        {
            tally.add(s.outcome, s.must_block);
        }
        tally
    }

    /// Requests that failed among those sent at or after `from` and completed before `to`.
    pub fn failures_between(&self, from: Instant, to: Instant) -> u64 {
        self.samples
            .iter()
            .filter(|s| s.sent >= from && s.done < to && failed(s.outcome))
            .count() as u64
    }
}

fn failed(outcome: Outcome) -> bool {
    !matches!(outcome, Outcome::Allowed | Outcome::Blocked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_worker_is_reported_lost() {
        let load = Load {
            phases: Arc::new(Phases {
                names: Mutex::new(vec!["p".into()]),
                current: AtomicUsize::new(0),
            }),
            stop: CancellationToken::new(),
            workers: vec![
                tokio::spawn(async { Vec::new() }),
                tokio::spawn(async { panic!("worker bug") }),
            ],
        };
        let result = load.finish().await;
        assert_eq!(result.workers, 2);
        assert_eq!(result.lost.len(), 1, "{:?}", result.lost);
        assert!(result.lost[0].starts_with("worker 1"));
    }

    #[test]
    fn statuses_map_to_outcomes() {
        assert_eq!(classify_status(StatusCode::OK, true), Outcome::Allowed);
        assert_eq!(classify_status(StatusCode::OK, false), Outcome::Other);
        assert_eq!(
            classify_status(StatusCode::FORBIDDEN, false),
            Outcome::Blocked
        );
        assert_eq!(classify_status(StatusCode::FORBIDDEN, true), Outcome::Other);
        assert_eq!(
            classify_status(StatusCode::SERVICE_UNAVAILABLE, false),
            Outcome::Unavailable
        );
        assert_eq!(
            classify_status(StatusCode::GATEWAY_TIMEOUT, false),
            Outcome::Timeout
        );
        assert_eq!(
            classify_status(StatusCode::BAD_GATEWAY, false),
            Outcome::Other
        );
    }

    #[test]
    fn times_are_measured_from_the_given_instant() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let sample = |sent: u64, done: u64, outcome: Outcome| Sample {
            sent: at(sent),
            done: at(done),
            outcome,
            must_block: false,
            phase: 0,
        };
        let result = LoadResult {
            workers: 1,
            lost: Vec::new(),
            names: vec!["p".into()],
            samples: vec![
                sample(0, 5, Outcome::Allowed),
                sample(10, 40, Outcome::Unavailable),
                sample(20, 30, Outcome::Unavailable),
                sample(50, 60, Outcome::Allowed),
            ],
        };
        assert_eq!(
            result.first_failure_after(at(5)),
            Some(Duration::from_millis(25))
        );
        assert_eq!(
            result.first_failure_after(at(35)),
            Some(Duration::from_millis(5))
        );
        assert_eq!(
            result.failure_latency_range("p"),
            Some((Duration::from_millis(10), Duration::from_millis(30)))
        );
        assert_eq!(
            result.last_failure_after(at(5)),
            Some(Duration::from_millis(35))
        );
        assert_eq!(
            result.first_allowed_after(at(5)),
            Some(Duration::from_millis(55))
        );
        assert_eq!(result.failures_between(at(0), at(35)), 1);
        assert_eq!(result.failures_between(at(15), at(100)), 1);
        assert_eq!(result.tally_of("p").sent, 4);
        assert_eq!(result.completed_between(at(5), at(45)).unavailable, 2);
    }
}
