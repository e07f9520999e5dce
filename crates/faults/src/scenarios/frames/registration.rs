//! The `frames` cases before and during registration: bad first frames, half registrations
//! (closed, or left silent until the handshake timeout), a slow but whole registration, a
//! registration followed by garbage, a wrong protocol version, a 4 GiB length claim.

use std::time::{Duration, Instant};

use http::StatusCode;

use crate::admin;
use crate::error::FaultError;
use crate::raw::{frame_bytes, registration_bytes, types, RawConnection};
use crate::report::{seconds, Report};

use super::{
    closed_word, describe_answer, error_code, read_registration_answer, Cases, Finding,
    ALLOCATION_CEILING, HANDSHAKE_TIMEOUT, PROMPTLY, VIRTUAL_CEILING,
};

impl Cases<'_> {
    pub(super) async fn before_registration(
        &mut self,
        report: &mut Report,
    ) -> Result<(), FaultError> {
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

    pub(super) async fn mid_registration(&mut self, report: &mut Report) -> Result<(), FaultError> {
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

    async fn four_gib_claim(&self) -> Result<Finding, FaultError> {
        let (rss_before, _) = self.world.proxy.resources()?;
        let virtual_before = self.world.proxy.virtual_peak()?;
        let finding = self
            .expect_refused(&[0xff, 0xff, 0xff, 0xff, types::REGISTRATION_REQUEST])
            .await?;
        let (rss_after, _) = self.world.proxy.resources()?;
        let growth = rss_after.saturating_sub(rss_before);
        // A buffer reserved for the claim but never written (and freed when the connection
        // closes) never shows in the resident set; the peak virtual size keeps it.
        let virtual_growth = self
            .world
            .proxy
            .virtual_peak()?
            .saturating_sub(virtual_before);
        Ok(Finding::new(
            finding.passed && growth < ALLOCATION_CEILING && virtual_growth < VIRTUAL_CEILING,
            format!(
                "{}; proxy RSS {}, peak virtual size {}",
                finding.observed,
                crate::report::mib(growth as i64),
                crate::report::mib(virtual_growth as i64)
            ),
        ))
    }
}
