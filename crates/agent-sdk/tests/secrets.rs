//! Tokens stay secret: with every log line of the agent (and the proxy) captured at TRACE level
//! through a refused and an accepted registration, a request and a shutdown, neither token
//! appears; nor in the Debug output of the configuration or the registration request.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use sentinel_agent_sdk::protocol::AuthToken;
use sentinel_agent_sdk::{Runner, RunnerEvent};
use sentinel_agent_testkit::{request, AgentReply, TestProxy, TokenRule, TokenSource};

const RIGHT: &str = "right-token-9f3a1c";
const WRONG: &str = "wrong-token-7b2e4d";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn tokens_never_appear_in_logs_or_debug_output() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // A current-thread test runtime: every task logs through this thread's subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let proxy = TestProxy::builder()
        .listener(|config| {
            config.require_auth = true;
            config.tokens =
                vec![TokenRule::load("waf-*", &TokenSource::Value(RIGHT.into())).unwrap()];
        })
        .start()
        .await;
    let mut refused = fast_config("waf-1", &[proxy.unix_addr()]);
    refused.auth_token = Some(AuthToken::new(WRONG));
    let mut accepted = fast_config("waf-2", &[proxy.tcp_addr()]);
    accepted.auth_token = Some(AuthToken::new(RIGHT));
    let debug = format!(
        "{refused:?} {accepted:?} {:?}",
        Runner::new(Probe::default(), accepted.clone())
            .unwrap()
            .registration_request()
    );

    let mut refused = run(Probe::default(), refused);
    let accepted = run(Probe::default(), accepted);
    refused
        .next_event(|e| {
            matches!(
                e,
                RunnerEvent::RegistrationFailed {
                    permanent: true,
                    ..
                }
            )
        })
        .await;
    proxy.wait_for_connections(1).await;
    let reply = proxy.send("agents", request("GET", "/", &[]), LONG).await;
    assert!(matches!(reply, Ok(AgentReply::Decision(_))), "{reply:?}");
    refused.stop_within(Duration::from_secs(5)).await;
    accepted.stop_within(Duration::from_secs(5)).await;

    let logs = captured.text();
    assert!(
        logs.contains("auth_failed"),
        "the refusal was logged:\n{logs}"
    );
    assert!(
        logs.contains("registered"),
        "the registration was logged:\n{logs}"
    );
    for token in [RIGHT, WRONG] {
        assert!(
            !logs.contains(token),
            "a token leaked into the logs:\n{logs}"
        );
        assert!(
            !debug.contains(token),
            "a token leaked into Debug output: {debug}"
        );
    }
}
