//! `frames`: malformed, truncated and oversized frames at every stage of an agent connection
//! (before registration, mid-registration, after registration, mid-decision), sent by hand
//! over the Unix socket (where per-peer-address registration throttling does not apply)
//! while a real WAF agent serves steady load on another route. Each case states what the
//! proxy must do (refuse and close, ignore, fail the request closed); throughout, the proxy
//! stays up and the WAF route loses no request.
//!
//! The cases before and during registration are in `registration`, those on a registered
//! connection (after registration, mid-decision) in `registered`.

mod registered;
mod registration;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::FaultError;
use crate::proxy::ProxySettings;
use crate::raw::{frame_bytes, json_payload, types, RawConnection};
use crate::report::{seconds, Report};
use crate::scenarios::{waf_agent, waf_route, Harness, World, REGISTER_PATIENCE};
use sentinel_test_support::config::{Agent, Event, FailureMode, Route};

/// The agents `waf` (the WAF process) and `raw` (the hand-driven connection), each on its
/// own route.
fn settings() -> ProxySettings {
    let raw_agent = Agent::new("raw")
        .agent_ids(["raw-*"])
        .events([Event::RequestHeaders])
        .timeout(RAW_AGENT_TIMEOUT)
        .failure_mode(FailureMode::Closed);
    let raw_route = Route::new("raw", "backend")
        .path_prefix("/raw/")
        .agents(["raw"]);
    let mut settings =
        ProxySettings::new(vec![waf_agent(), raw_agent], vec![waf_route(), raw_route]);
    settings.handshake_timeout = HANDSHAKE_TIMEOUT;
    settings.max_frame_size = MAX_FRAME_SIZE;
    settings
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
const RAW_AGENT_TIMEOUT: Duration = Duration::from_millis(1500);
const MAX_FRAME_SIZE: u64 = 1024 * 1024;
/// How long the proxy may take to close a connection it must close at once.
const PROMPTLY: Duration = Duration::from_secs(3);
/// Ceiling of the proxy's growth in resident memory after a frame claiming 4 GiB.
const ALLOCATION_CEILING: u64 = 16 * 1024 * 1024;
/// Most the proxy's peak virtual size may grow on a 4 GiB length claim: well above an allocator
/// arena reservation (up to 1 GiB at a time), far below the 4 GiB a buffer for it would take.
const VIRTUAL_CEILING: u64 = 2 * 1024 * 1024 * 1024;

/// What one case found.
struct Finding {
    passed: bool,
    observed: String,
}

impl Finding {
    fn new(passed: bool, observed: impl Into<String>) -> Finding {
        Finding {
            passed,
            observed: observed.into(),
        }
    }
}

/// Runs the scenario.
pub async fn run(harness: &Harness) -> Result<Report, FaultError> {
    let mut world = harness.world(&settings()).await?;
    let waf = harness.waf(&world, "waf-a", 2)?;
    world
        .proxy
        .wait_registered(&[("waf-a", waf.pid(), 2)], REGISTER_PATIENCE)
        .await?;
    let load = world.steady_load("WAF route while bad frames are sent");
    let mut report = Report::new("frames");
    let mut cases = Cases::new(&world);
    cases.before_registration(&mut report).await?;
    cases.mid_registration(&mut report).await?;
    cases.after_registration(&mut report).await?;
    cases.mid_decision(&mut report).await?;
    let result = load.finish().await;
    report.record_load(&result);
    let t = &report.phases[0].1;
    let (sent, failed) = (t.sent, t.failed());
    report.check(
        "the real agent's route loses no request meanwhile",
        sent > 0 && failed == 0,
        format!("{failed} of {sent} failed"),
    );
    let still = world.proxy.connections_of("waf-a", Some(waf.pid())).await?;
    report.check(
        "the real agent keeps its 2 connections",
        still == 2,
        format!("{still}"),
    );
    drop(waf);
    Ok(world.finish(report).await)
}

struct Cases<'a> {
    world: &'a World,
    socket: &'a Path,
    next_id: usize,
}

impl<'a> Cases<'a> {
    fn new(world: &'a World) -> Cases<'a> {
        Cases {
            world,
            socket: &world.proxy.addresses().socket,
            next_id: 0,
        }
    }

    fn record(report: &mut Report, stage: &str, case: &str, expected: &str, finding: Finding) {
        report.check(
            format!("{stage}: {case} → {expected}"),
            finding.passed,
            finding.observed,
        );
    }

    fn fresh_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", self.next_id)
    }

    async fn registered(&self, id: &str) -> Result<RawConnection, FaultError> {
        let mut conn = RawConnection::connect(self.socket).await?;
        let answer = conn.register(id, Duration::from_secs(10)).await?;
        if answer["accepted"] != true {
            return Err(FaultError::Protocol(format!(
                "registration of {id} refused: {answer}"
            )));
        }
        Ok(conn)
    }

    async fn expect_refused(&self, bytes: &[u8]) -> Result<Finding, FaultError> {
        let mut conn = RawConnection::connect(self.socket).await?;
        let started = Instant::now();
        // The proxy may close before everything is written; that is a refusal too.
        let _ = conn.send(bytes).await;
        let (closed, frames) = conn.read_until_closed(PROMPTLY).await;
        let code = error_code(&frames);
        let accepted = frames
            .iter()
            .any(|f| json_payload(f).is_ok_and(|v| v["accepted"] == true));
        Ok(Finding::new(
            closed && !accepted && started.elapsed() < PROMPTLY,
            format!(
                "{} after {}, answer {}",
                closed_word(closed),
                seconds(started.elapsed()),
                code.unwrap_or_else(|| "none".into())
            ),
        ))
    }

    async fn expect_registered_then_closed(
        &self,
        id: &str,
        bytes: &[u8],
    ) -> Result<Finding, FaultError> {
        let mut conn = RawConnection::connect(self.socket).await?;
        conn.send(bytes).await?;
        let answer = read_registration_answer(&mut conn).await;
        drop(conn);
        let gone = self.world.proxy.wait_unregistered(id, PROMPTLY).await;
        Ok(Finding::new(
            answer.as_ref().is_ok_and(|a| a["accepted"] == true) && gone.is_ok(),
            format!(
                "{}, {}",
                describe_answer(&answer),
                if gone.is_ok() {
                    "removed"
                } else {
                    "still listed"
                }
            ),
        ))
    }
}

async fn read_registration_answer(conn: &mut RawConnection) -> Result<Value, FaultError> {
    let frame = conn
        .read_frame(Duration::from_secs(10), "a RegistrationResponse")
        .await?;
    json_payload(&frame)
}

fn describe_answer(answer: &Result<Value, FaultError>) -> String {
    match answer {
        Ok(a) if a["accepted"] == true => "accepted".into(),
        Ok(a) => format!("refused {}", a["error"]),
        Err(e) => e.to_string(),
    }
}

/// Sends Ping nonce 42 and expects Pong 42.
async fn ping_pong(conn: &mut RawConnection) -> Finding {
    if let Err(e) = conn
        .send(&frame_bytes(types::PING, br#"{"nonce": 42}"#))
        .await
    {
        return Finding::new(false, e.to_string());
    }
    match conn.read_frame(PROMPTLY, "a Pong").await {
        Ok(frame) if frame.type_byte == types::PONG => {
            let nonce = json_payload(&frame)
                .map(|v| v["nonce"].clone())
                .unwrap_or_default();
            Finding::new(nonce == 42, format!("Pong nonce {nonce}"))
        }
        Ok(frame) => Finding::new(false, format!("got type 0x{:02x}", frame.type_byte)),
        Err(e) => Finding::new(false, e.to_string()),
    }
}

/// The `error` of the RegistrationResponse among `frames`, if any.
fn error_code(frames: &[sentinel_agent_protocol::Frame]) -> Option<String> {
    frames
        .iter()
        .filter(|f| f.type_byte == types::REGISTRATION_RESPONSE)
        .find_map(|f| json_payload(f).ok())
        .and_then(|v| v["error"].as_str().map(str::to_string))
}

fn closed_word(closed: bool) -> &'static str {
    if closed {
        "closed"
    } else {
        "still open"
    }
}
