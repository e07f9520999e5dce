//! Tokens never reach the logs: every log line the proxy writes while accepting and rejecting
//! agents with tokens is captured and searched for the secrets.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use sentinel::pool::PoolSettings;
use sentinel::reverse::{TokenRule, TokenSource};
use sentinel_agent_protocol::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// Current-thread runtime: every task runs on this thread, under the thread's subscriber.
#[tokio::test]
async fn tokens_never_appear_in_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let proxy = Proxy::start_with(
        |c| {
            c.require_auth = true;
            c.tokens =
                vec![
                    TokenRule::load("waf-*", &TokenSource::Value("correct-horse-battery".into()))
                        .unwrap(),
                ];
        },
        PoolSettings::default(),
        default_logical(),
    )
    .await;
    for via in BOTH {
        let (_agent, _) = proxy
            .register_request(
                via,
                request_with_token("waf-1", Some("correct-horse-battery")),
            )
            .await;
        let mut wrong = proxy.dial(via).await;
        let answer = wrong
            .register(request_with_token("waf-2", Some("staple-wrong-guess")))
            .await;
        assert!(matches!(answer, RegistrationResponse::Rejected { .. }));
    }
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("agent registered"),
        "the capture works: {logs}"
    );
    assert!(logs.contains("registration rejected"), "{logs}");
    for secret in ["correct-horse-battery", "staple-wrong-guess"] {
        assert!(!logs.contains(secret), "secret {secret} leaked into logs");
    }
}
