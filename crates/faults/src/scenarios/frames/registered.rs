//! The `frames` cases on a registered connection: bad frames after registration (closed and
//! removed, or ignored while the connection keeps answering Ping), and bad answers to a
//! request in flight (the request fails closed at once, or after the agent timeout when the
//! answer is merely for another request).

use std::time::{Duration, Instant};

use http::StatusCode;

use crate::admin;
use crate::error::FaultError;
use crate::load::SQL_INJECTION_QUERY;
use crate::raw::{frame_bytes, json_payload, registration_bytes, types};
use crate::report::{seconds, Report};
use crate::upstream::{MUST_BLOCK_HEADER, UPSTREAM_HEADER};

use super::{closed_word, ping_pong, Cases, Finding, MAX_FRAME_SIZE, PROMPTLY, RAW_AGENT_TIMEOUT};

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

impl Cases<'_> {
    pub(super) async fn after_registration(
        &mut self,
        report: &mut Report,
    ) -> Result<(), FaultError> {
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

    pub(super) async fn mid_decision(&mut self, report: &mut Report) -> Result<(), FaultError> {
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
}
