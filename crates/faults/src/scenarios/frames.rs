//! `frames`: malformed, truncated and oversized frames at every stage of an agent connection
//! (before registration, mid-registration, after registration, mid-decision), sent by hand
//! over the Unix socket (where per-peer-address registration throttling does not apply)
//! while a real WAF agent serves steady load on another route. Each case states what the
//! proxy must do (refuse and close, ignore, fail the request closed); throughout, the proxy
//! stays up and the WAF route loses no request.

use std::path::Path;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;

use crate::admin;
use crate::error::FaultError;
use crate::load::{Load, LoadSpec, SQL_INJECTION_QUERY};
use crate::proxy::ProxySettings;
use crate::raw::{frame_bytes, json_payload, registration_bytes, types, RawConnection};
use crate::report::{seconds, Report};
use crate::scenarios::{Harness, World, REGISTER_PATIENCE, WAF_PREFIX};
use crate::upstream::{MUST_BLOCK_HEADER, UPSTREAM_HEADER};

const AGENTS_AND_ROUTES: &str = r#"
agents {
    agent "waf" { agent-ids "waf-*"; events "request_headers"; timeout-ms 2000; failure-mode "closed"; }
    agent "raw" { agent-ids "raw-*"; events "request_headers"; timeout-ms 1500; failure-mode "closed"; }
}
routes {
    route "waf" { matches { path-prefix "/waf/"; }; upstream "backend"; agents "waf"; }
    route "raw" { matches { path-prefix "/raw/"; }; upstream "backend"; agents "raw"; }
}
"#;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
const RAW_AGENT_TIMEOUT: Duration = Duration::from_millis(1500);
const MAX_FRAME_SIZE: u64 = 1024 * 1024;
/// How long the proxy may take to close a connection it must close at once.
const PROMPTLY: Duration = Duration::from_secs(3);
/// Ceiling of the proxy's growth in resident memory after a frame claiming 4 GiB.
const ALLOCATION_CEILING: u64 = 16 * 1024 * 1024;

/// The bytes a mid-decision case answers with, given the request_id it was sent.
type DecisionBytes = fn(u64) -> Vec<u8>;

/// How a mid-decision case ends the agent's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The bad frame makes the proxy close it.
    ProxyCloses,
    /// The agent closes it after the bad frame.
    AgentCloses,
    /// It stays open; the request waits for the agent timeout.
    StaysOpen,
}

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
    let mut settings = ProxySettings::new(AGENTS_AND_ROUTES);
    settings.handshake_timeout = HANDSHAKE_TIMEOUT;
    settings.max_frame_size = MAX_FRAME_SIZE;
    let mut world = harness.world(&settings).await?;
    let waf = harness.waf(&world, "waf-a", 2)?;
    world
        .proxy
        .wait_registered(&[("waf-a", waf.pid(), 2)], REGISTER_PATIENCE)
        .await?;
    let load = Load::start(
        LoadSpec::steady(WAF_PREFIX, Duration::from_secs(300)),
        world.proxy.addresses().http,
        "WAF route while bad frames are sent",
    );
    let mut report = Report::new("frames");
    let mut cases = Cases::new(&world);
    cases.before_registration(&mut report).await?;
    cases.mid_registration(&mut report).await?;
    cases.after_registration(&mut report).await?;
    cases.mid_decision(&mut report).await?;
    let result = load.finish().await;
    report.phases = result.tallies();
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
    Ok(world.finish(report))
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

    async fn before_registration(&mut self, report: &mut Report) -> Result<(), FaultError> {
        let stage = "before registration";
        let cases: [(&str, Vec<u8>); 5] = [
            ("zero-length frame", vec![0, 0, 0, 0]),
            ("frame over the 64 KiB registration limit", {
                let mut bytes = frame_bytes(types::REGISTRATION_REQUEST, &vec![b' '; 70 * 1024]);
                bytes.truncate(16 * 1024);
                bytes
            }),
            (
                "Ping instead of a registration",
                frame_bytes(types::PING, br#"{"nonce":1}"#),
            ),
            (
                "registration with malformed JSON",
                frame_bytes(
                    types::REGISTRATION_REQUEST,
                    br#"{"protocol_version": 2, "agent_id": "#,
                ),
            ),
            (
                "registration of binary garbage",
                frame_bytes(types::REGISTRATION_REQUEST, &[0xff, 0xfe, 0x00, 0x81, 0x92]),
            ),
        ];
        for (case, bytes) in cases {
            let finding = self.expect_refused(&bytes).await?;
            Self::record(report, stage, case, "refused and closed", finding);
        }
        let finding = self.four_gib_claim().await?;
        Self::record(
            report,
            stage,
            "length field of 4 GiB",
            "closed without allocating it",
            finding,
        );
        Ok(())
    }

    async fn mid_registration(&mut self, report: &mut Report) -> Result<(), FaultError> {
        let stage = "mid-registration";
        let whole = registration_bytes("raw-mid");
        let half = &whole[..whole.len() / 2];

        let mut conn = RawConnection::connect(self.socket).await?;
        conn.send(half).await?;
        drop(conn);
        let healthy = admin::get(self.world.proxy.addresses().admin, "/health", PROMPTLY).await;
        let listed = self.world.proxy.connections_of("raw-mid", None).await?;
        Self::record(
            report,
            stage,
            "half a registration, then close",
            "forgotten, nothing registered",
            Finding::new(
                matches!(healthy, Ok((StatusCode::OK, _))) && listed == 0,
                format!("{listed} registered"),
            ),
        );

        let mut conn = RawConnection::connect(self.socket).await?;
        conn.send(half).await?;
        let started = Instant::now();
        let (closed, frames) = conn.read_until_closed(HANDSHAKE_TIMEOUT * 4).await;
        let after = started.elapsed();
        let code = error_code(&frames);
        Self::record(
            report,
            stage,
            "half a registration, then silence",
            "answered `timeout` and closed after the handshake timeout (2 s)",
            Finding::new(
                closed
                    && code.as_deref() == Some("timeout")
                    && after >= HANDSHAKE_TIMEOUT.mul_f64(0.8),
                format!(
                    "{} after {}, answer {}",
                    closed_word(closed),
                    seconds(after),
                    code.unwrap_or_else(|| "none".into())
                ),
            ),
        );

        let mut conn = RawConnection::connect(self.socket).await?;
        let started = Instant::now();
        for chunk in whole.chunks(4) {
            conn.send(chunk).await?;
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        let answer = read_registration_answer(&mut conn).await;
        Self::record(
            report,
            stage,
            "whole registration trickled 4 bytes per 15 ms",
            "accepted (slow is not malformed)",
            Finding::new(
                answer.as_ref().is_ok_and(|a| a["accepted"] == true),
                format!(
                    "{} in {}",
                    describe_answer(&answer),
                    seconds(started.elapsed())
                ),
            ),
        );
        drop(conn);
        self.world
            .proxy
            .wait_unregistered("raw-mid", PROMPTLY)
            .await?;

        let mut bytes = registration_bytes("raw-mid");
        bytes.extend_from_slice(&[0, 0, 1, 0, types::DECISION, b'{']);
        let finding = self
            .expect_registered_then_closed("raw-mid", &bytes)
            .await?;
        Self::record(
            report,
            stage,
            "registration followed by a truncated frame and close",
            "registered, then removed",
            finding,
        );

        let wrong_version =
            serde_json::json!({"protocol_version": 1, "agent_id": "raw-v1", "capabilities": {}});
        let finding = self
            .expect_refused(&frame_bytes(
                types::REGISTRATION_REQUEST,
                wrong_version.to_string().as_bytes(),
            ))
            .await?;
        Self::record(
            report,
            stage,
            "protocol_version 1",
            "refused and closed",
            finding,
        );
        Ok(())
    }

    async fn after_registration(&mut self, report: &mut Report) -> Result<(), FaultError> {
        let stage = "after registration";
        let oversized = {
            let mut b = ((MAX_FRAME_SIZE + 1) as u32).to_be_bytes().to_vec();
            b.push(types::DECISION);
            b
        };
        let closing: [(&str, Vec<u8>); 4] = [
            ("zero-length frame", vec![0, 0, 0, 0]),
            ("frame over max-frame-size (1 MiB)", oversized),
            (
                "Decision with malformed JSON",
                frame_bytes(types::DECISION, b"{\"request_id\": 1, \"action\": "),
            ),
            (
                "truncated frame, then close",
                vec![0, 0, 0, 64, types::DECISION, b'{'],
            ),
        ];
        for (case, bytes) in closing {
            let id = self.fresh_id("raw-after");
            let mut conn = self.registered(&id).await?;
            let _ = conn.send(&bytes).await;
            if case.ends_with("then close") {
                drop(conn);
                let gone = self.world.proxy.wait_unregistered(&id, PROMPTLY).await;
                Self::record(
                    report,
                    stage,
                    case,
                    "connection removed",
                    Finding::new(
                        gone.is_ok(),
                        gone.map_or_else(
                            |e| e.to_string(),
                            |d| format!("removed after {}", seconds(d)),
                        ),
                    ),
                );
                continue;
            }
            let (closed, _) = conn.read_until_closed(PROMPTLY).await;
            let gone = self
                .world
                .proxy
                .wait_unregistered(&id, PROMPTLY)
                .await
                .is_ok();
            Self::record(
                report,
                stage,
                case,
                "closed, agent removed",
                Finding::new(
                    closed && gone,
                    format!(
                        "{}, {}",
                        closed_word(closed),
                        if gone { "removed" } else { "still listed" }
                    ),
                ),
            );
        }
        let ignored: [(&str, Vec<u8>); 2] = [
            (
                "unknown frame type 0x7e",
                frame_bytes(0x7e, b"{\"future\": true}"),
            ),
            (
                "a second RegistrationRequest",
                registration_bytes("raw-again"),
            ),
        ];
        for (case, bytes) in ignored {
            let id = self.fresh_id("raw-after");
            let mut conn = self.registered(&id).await?;
            conn.send(&bytes).await?;
            let finding = ping_pong(&mut conn).await;
            let listed = self.world.proxy.connections_of(&id, None).await?;
            Self::record(
                report,
                stage,
                case,
                "ignored, connection still serves Ping",
                Finding::new(
                    finding.passed && listed == 1,
                    format!("{}, {listed} listed", finding.observed),
                ),
            );
            drop(conn);
            self.world.proxy.wait_unregistered(&id, PROMPTLY).await?;
        }
        Ok(())
    }

    async fn mid_decision(&mut self, report: &mut Report) -> Result<(), FaultError> {
        let stage = "mid-decision";
        use Ending::*;
        let cases: [(&str, DecisionBytes, Ending); 5] = [
            (
                "Decision with malformed JSON",
                |_| frame_bytes(types::DECISION, b"{\"request_id\": "),
                ProxyCloses,
            ),
            (
                "truncated Decision, then close",
                |id| {
                    let mut b = frame_bytes(
                        types::DECISION,
                        format!("{{\"request_id\": {id}, \"action\": \"allow\"}}").as_bytes(),
                    );
                    b.truncate(b.len() - 8);
                    b
                },
                AgentCloses,
            ),
            (
                "length field of 4 GiB",
                |_| vec![0xff, 0xff, 0xff, 0xff, types::DECISION],
                ProxyCloses,
            ),
            ("zero-length frame", |_| vec![0, 0, 0, 0], ProxyCloses),
            (
                "allow for another request_id",
                |id| {
                    frame_bytes(
                        types::DECISION,
                        format!("{{\"request_id\": {}, \"action\": \"allow\"}}", id + 1000)
                            .as_bytes(),
                    )
                },
                StaysOpen,
            ),
        ];
        for (case, bytes, ending) in cases {
            let finding = self.bad_decision(bytes, ending).await?;
            let expected = if ending != StaysOpen {
                "request fails closed (503) at once, not after the agent timeout"
            } else {
                "reply dropped, request fails closed (503) after the agent timeout"
            };
            Self::record(report, stage, case, expected, finding);
        }
        Ok(())
    }

    /// Registers a fresh raw agent, gets a must-block request dispatched to it, answers with
    /// `bytes(request_id)`, and checks the client's answer.
    async fn bad_decision(
        &mut self,
        bytes: DecisionBytes,
        ending: Ending,
    ) -> Result<Finding, FaultError> {
        let id = self.fresh_id("raw-dec");
        let mut conn = self.registered(&id).await?;
        let http = self.world.proxy.addresses().http;
        let path = format!("/raw/{id}?{SQL_INJECTION_QUERY}");
        let request = tokio::spawn(async move {
            admin::get_with_headers(
                http,
                &path,
                &[(MUST_BLOCK_HEADER, "1")],
                Duration::from_secs(20),
            )
            .await
        });
        let event = conn
            .read_frame(Duration::from_secs(10), "RequestHeaders")
            .await?;
        if event.type_byte != types::REQUEST_HEADERS {
            return Err(FaultError::Protocol(format!(
                "expected RequestHeaders, got 0x{:02x}",
                event.type_byte
            )));
        }
        let request_id = json_payload(&event)?["request_id"].as_u64().unwrap_or(0);
        let misbehaved = Instant::now();
        let _ = conn.send(&bytes(request_id)).await;
        // The connection is closed here when the case says the agent closes it.
        let kept = (ending != Ending::AgentCloses).then_some(conn);
        let answer = request
            .await
            .map_err(|e| FaultError::Protocol(format!("request task: {e}")))?;
        let after = misbehaved.elapsed();
        drop(kept);
        self.world.proxy.wait_unregistered(&id, PROMPTLY).await?;
        let Ok((status, headers, _)) = answer else {
            return Ok(Finding::new(
                false,
                format!(
                    "no answer: {}",
                    answer.err().map_or(String::new(), |e| e.to_string())
                ),
            ));
        };
        let by_upstream = headers.contains_key(UPSTREAM_HEADER);
        let timely = if ending != Ending::StaysOpen {
            after < RAW_AGENT_TIMEOUT
        } else {
            after >= RAW_AGENT_TIMEOUT.mul_f64(0.8)
        };
        Ok(Finding::new(
            status == StatusCode::SERVICE_UNAVAILABLE && !by_upstream && timely,
            format!(
                "{status} after {}{}",
                seconds(after),
                if by_upstream {
                    ", by the upstream!"
                } else {
                    ""
                }
            ),
        ))
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

    async fn four_gib_claim(&self) -> Result<Finding, FaultError> {
        let (rss_before, _) = self.world.proxy.resources()?;
        let finding = self
            .expect_refused(&[0xff, 0xff, 0xff, 0xff, types::REGISTRATION_REQUEST])
            .await?;
        let (rss_after, _) = self.world.proxy.resources()?;
        let growth = rss_after.saturating_sub(rss_before);
        Ok(Finding::new(
            finding.passed && growth < ALLOCATION_CEILING,
            format!(
                "{}; proxy RSS {}",
                finding.observed,
                crate::report::mib(growth as i64)
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
