//! Shared by the SDK's integration tests: `Probe`, an agent that records what reached it and
//! can be told to hold, panic or hang, and helpers to run it against a real listener from
//! `sentinel-agent-testkit` with delays short enough for tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sentinel_agent_sdk::prelude::*;
use sentinel_agent_sdk::{BackoffConfig, CancellationToken, Disconnect, RunnerEvent};
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

/// Records everything; behaviour depends on the request path:
/// `/slow` waits until the gate opens, `/stuck` never finishes, `/panic` panics,
/// anything with a body is scanned for `evil` across chunks.
pub struct Probe {
    pub configs: Mutex<Vec<Value>>,
    pub cancels: Mutex<Vec<Cancelled>>,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub started: AtomicUsize,
    /// Handlers dropped before they finished (aborted by Cancel, CancelAll or shutdown).
    pub aborted: AtomicUsize,
    gate: watch::Sender<bool>,
}

impl Default for Probe {
    fn default() -> Probe {
        Probe {
            configs: Mutex::default(),
            cancels: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            aborted: AtomicUsize::new(0),
            gate: watch::channel(false).0,
        }
    }
}

impl Probe {
    pub fn open_gate(&self) {
        self.gate.send_replace(true);
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    pub fn aborted(&self) -> usize {
        self.aborted.load(Ordering::SeqCst)
    }

    pub fn configs(&self) -> Vec<Value> {
        self.configs.lock().unwrap().clone()
    }

    pub fn cancels(&self) -> Vec<Cancelled> {
        self.cancels.lock().unwrap().clone()
    }
}

/// Counts a handler in flight; counts it as aborted if dropped before `finish`.
struct InFlight<'a> {
    probe: &'a Probe,
    finished: bool,
}

impl<'a> InFlight<'a> {
    fn enter(probe: &'a Probe) -> InFlight<'a> {
        probe.started.fetch_add(1, Ordering::SeqCst);
        let now = probe.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        probe.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight {
            probe,
            finished: false,
        }
    }

    fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.probe.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !self.finished {
            self.probe.aborted.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Agent for Probe {
    fn events(&self) -> Events {
        Events::REQUEST_HEADERS | Events::REQUEST_BODY
    }

    async fn on_request_headers(&self, req: &RequestHeaders, ctx: &mut RequestContext) -> Verdict {
        let guard = InFlight::enter(self);
        match req.path() {
            "/slow" => {
                let _ = self.gate.subscribe().wait_for(|open| *open).await;
            }
            "/stuck" => std::future::pending::<()>().await,
            "/panic" => panic!("the probe was asked to panic"),
            _ => {}
        }
        guard.finish();
        if req.has_body {
            Verdict::continue_()
        } else {
            Verdict::allow().set_request_header("x-probe", ctx.connection_id())
        }
    }

    async fn on_request_body_chunk(&self, chunk: &BodyChunk, ctx: &mut RequestContext) -> Verdict {
        let seen = ctx.state::<Vec<u8>>();
        seen.extend_from_slice(&chunk.data);
        if !chunk.is_last {
            return Verdict::continue_();
        }
        let path = ctx.request_headers().map(|h| h.path().to_string());
        let body = String::from_utf8_lossy(ctx.state::<Vec<u8>>()).into_owned();
        if body.contains("evil") {
            Verdict::block(403)
                .rule("evil-body")
                .reason(format!("evil in the body of {}", path.unwrap_or_default()))
        } else {
            Verdict::allow()
        }
    }

    async fn on_config(&self, config: &Value) -> Result<(), BoxError> {
        self.configs.lock().unwrap().push(config.clone());
        if config.get("reject") == Some(&Value::Bool(true)) {
            return Err("the probe refuses this configuration".into());
        }
        Ok(())
    }

    async fn on_cancel(&self, cancelled: &Cancelled) {
        self.cancels.lock().unwrap().push(cancelled.clone());
    }
}

/// Short delays, one connection, a fixed jitter seed.
pub fn fast_config<S: AsRef<str>>(agent_id: &str, proxies: &[S]) -> RunnerConfig {
    let mut config = RunnerConfig::new(agent_id);
    config.proxies = proxies
        .iter()
        .map(|p| p.as_ref().parse().expect("address"))
        .collect();
    config.connections_per_proxy = 1;
    config.backoff = BackoffConfig {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        reset_after: Duration::from_secs(60),
        seed: Some(42),
    };
    config.registration_timeout = Duration::from_secs(5);
    config.drain_grace = Duration::from_secs(5);
    config
}

/// A runner in the background.
pub struct Running<A> {
    pub agent: Arc<A>,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<()>,
    pub events: broadcast::Receiver<RunnerEvent>,
}

pub fn run<A: Agent>(agent: A, config: RunnerConfig) -> Running<A> {
    let runner = Runner::new(agent, config).expect("valid config");
    let agent = runner.agent().clone();
    let events = runner.subscribe();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(runner.run(shutdown.clone()));
    Running {
        agent,
        shutdown,
        task,
        events,
    }
}

impl<A> Running<A> {
    /// Stops the runner and waits for it; fails the test if it takes longer than `bound`.
    pub async fn stop_within(self, bound: Duration) {
        self.shutdown.cancel();
        tokio::time::timeout(bound, self.task)
            .await
            .expect("the runner stops in time")
            .expect("the runner does not panic");
    }

    /// Events received so far (without waiting).
    pub fn drain_events(&mut self) -> Vec<RunnerEvent> {
        let mut out = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            out.push(event);
        }
        out
    }

    /// Waits for the next event matching `pred`.
    pub async fn next_event(&mut self, mut pred: impl FnMut(&RunnerEvent) -> bool) -> RunnerEvent {
        let wait = async {
            loop {
                match self.events.recv().await {
                    Ok(event) if pred(&event) => return event,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(e) => panic!("runner events ended: {e}"),
                }
            }
        };
        tokio::time::timeout(sentinel_agent_testkit::PATIENCE, wait)
            .await
            .expect("the expected runner event")
    }

    /// A pushed configuration applied once, then recognised as unchanged `unchanged` times
    /// (once for each further connection that received it).
    pub async fn config_applied_then_unchanged(&mut self, unchanged: usize) {
        self.next_event(|e| matches!(e, RunnerEvent::ConfigApplied))
            .await;
        for _ in 0..unchanged {
            self.next_event(|e| matches!(e, RunnerEvent::ConfigUnchanged))
                .await;
        }
    }

    /// The next `Disconnected` event (others are skipped) and its reason.
    pub async fn next_disconnect(&mut self) -> (RunnerEvent, Disconnect) {
        let event = self
            .next_event(|e| matches!(e, RunnerEvent::Disconnected { .. }))
            .await;
        match &event {
            RunnerEvent::Disconnected { reason, .. } => {
                let reason = reason.clone();
                (event, reason)
            }
            other => unreachable!("next_event matched {other:?}"),
        }
    }
}

pub const LONG: Duration = Duration::from_secs(10);
