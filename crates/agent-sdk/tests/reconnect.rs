//! Reconnecting against the real listener: back in the pool after the proxy restarts, no hot
//! loop on permanent refusals, and transient refusals spaced by growing, jittered delays.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use sentinel_agent_sdk::protocol::{AuthToken, RegistrationErrorCode};
use sentinel_agent_sdk::{BackoffConfig, Disconnect, RunnerEvent};
use sentinel_agent_testkit::{request, AgentReply, TestProxy, TokenRule, TokenSource};

#[tokio::test]
async fn back_in_the_pool_within_the_backoff_bound_after_the_proxy_restarts() {
    let mut proxy = TestProxy::start().await;
    let mut config = fast_config("waf-1", &[proxy.unix_addr()]);
    config.connections_per_proxy = 2;
    let max = Duration::from_millis(300);
    config.backoff.max = max;
    let mut running = run(Probe::default(), config);
    proxy.wait_for_connections(2).await;

    proxy.stop(Duration::from_secs(1)).await;
    // The agents were told to go away, then lost the proxy.
    let (ended, reason) = running.next_disconnect().await;
    assert!(matches!(reason, Disconnect::Drained), "{ended:?}");
    // While the proxy is down every attempt fails, and the slots keep trying.
    for _ in 0..4 {
        running
            .next_event(|e| {
                matches!(
                    e,
                    RunnerEvent::RegistrationFailed {
                        permanent: false,
                        ..
                    }
                )
            })
            .await;
    }

    proxy.restart().await;
    let restarted = Instant::now();
    proxy.wait_for_connections(2).await;
    let took = restarted.elapsed();
    // One backoff delay (at most `max`) plus a registration; generous for a loaded machine.
    assert!(
        took < max + Duration::from_secs(3),
        "back after {took:?}, the backoff maximum is {max:?}"
    );
    let reply = proxy.send("agents", request("GET", "/", &[]), LONG).await;
    assert!(matches!(reply, Ok(AgentReply::Decision(_))), "{reply:?}");
}

#[tokio::test]
async fn a_permanent_refusal_never_hot_loops() {
    let proxy = TestProxy::builder()
        .listener(|config| {
            config.require_auth = true;
            config.tokens =
                vec![TokenRule::load("waf-*", &TokenSource::Value("right".into())).expect("token")];
        })
        .start()
        .await;
    let mut config = fast_config("waf-1", &[proxy.unix_addr()]);
    config.connections_per_proxy = 2;
    config.auth_token = Some(AuthToken::new("wrong"));
    let max = Duration::from_millis(200);
    config.backoff = BackoffConfig {
        initial: Duration::from_millis(1),
        max,
        ..config.backoff
    };
    let mut running = run(Probe::default(), config);

    let window = Duration::from_millis(1500);
    tokio::time::sleep(window).await;
    let attempts = proxy
        .stats()
        .rejected
        .get("auth_failed")
        .copied()
        .unwrap_or(0);
    // Permanent refusals wait at least max/2 = 100 ms: at most 1 + 15 attempts per slot.
    // A hot loop would make thousands; a slot that gave up for good, 1.
    let per_slot_bound = 1 + (window.as_millis() / (max / 2).as_millis()) as u64;
    assert!(
        (4..=2 * per_slot_bound).contains(&attempts),
        "{attempts} attempts from 2 slots in {window:?}"
    );
    assert_eq!(proxy.connection_count(), 0);

    let events = running.drain_events();
    let refusal = events
        .iter()
        .find(|e| matches!(e, RunnerEvent::RegistrationFailed { .. }))
        .expect("a refusal was reported");
    assert!(
        matches!(
            refusal,
            RunnerEvent::RegistrationFailed {
                code: Some(RegistrationErrorCode::AuthFailed),
                permanent: true,
                ..
            }
        ),
        "{refusal:?}"
    );
    let backoffs: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, RunnerEvent::Backoff { .. }))
        .collect();
    assert!(
        !backoffs.is_empty(),
        "no backoff after a permanent refusal: {events:?}"
    );
    for event in backoffs {
        if let RunnerEvent::Backoff {
            delay, permanent, ..
        } = event
        {
            assert!(permanent, "{event:?}");
            assert!(*delay >= max / 2 && *delay <= max, "{event:?}");
        }
    }
    running.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn transient_refusals_back_off_exponentially_with_jitter() {
    // A per-agent limit of 0 makes every registration a retryable `connection_limit`.
    let proxy = TestProxy::builder()
        .listener(|config| config.max_connections_per_agent = 0)
        .start()
        .await;
    let mut config = fast_config("waf-1", &[proxy.tcp_addr()]);
    config.backoff = BackoffConfig {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(160),
        reset_after: Duration::from_secs(60),
        seed: Some(7),
    };
    let started = Instant::now();
    let mut running = run(Probe::default(), config);

    let mut ceilings = Vec::new();
    let mut ratios = HashSet::new();
    let mut waited = Duration::ZERO;
    for _ in 0..8 {
        running
            .next_event(|e| matches!(e, RunnerEvent::Connecting { .. }))
            .await;
        let refused = running
            .next_event(|e| matches!(e, RunnerEvent::RegistrationFailed { .. }))
            .await;
        assert!(
            matches!(
                refused,
                RunnerEvent::RegistrationFailed {
                    code: Some(RegistrationErrorCode::ConnectionLimit),
                    permanent: false,
                    ..
                }
            ),
            "{refused:?}"
        );
        let RunnerEvent::Backoff {
            delay,
            ceiling,
            permanent,
            ..
        } = running
            .next_event(|e| matches!(e, RunnerEvent::Backoff { .. }))
            .await
        else {
            unreachable!()
        };
        assert!(!permanent);
        assert!(delay < ceiling, "{delay:?} under {ceiling:?}");
        ceilings.push(ceiling.as_millis());
        ratios.insert((delay.as_secs_f64() / ceiling.as_secs_f64() * 1000.0) as u32);
        waited += delay;
    }
    running
        .next_event(|e| matches!(e, RunnerEvent::Connecting { .. }))
        .await;
    // The ninth attempt cannot start before the eight announced delays have passed.
    let elapsed = started.elapsed();
    assert!(
        elapsed >= waited,
        "9 attempts in {elapsed:?}, delays sum to {waited:?}"
    );
    assert_eq!(ceilings, [10, 20, 40, 80, 160, 160, 160, 160]);
    assert!(
        ratios.len() >= 6,
        "delays are jittered, fractions of the ceiling: {ratios:?}"
    );
    let rejected = proxy.stats().rejected.get("connection_limit").copied();
    assert!(rejected >= Some(8), "{rejected:?}");
}
