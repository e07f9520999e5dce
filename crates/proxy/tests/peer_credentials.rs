//! `allowed-uids` / `allowed-gids` on the Unix socket, checked with the peer's kernel-reported
//! credentials against the real listener: this test process's own uid and gid are allowed or
//! refused depending on the lists; TCP peers are not affected.

mod common;

use common::*;
use sentinel::pool::PoolSettings;
use sentinel::reverse::PeerFilter;
use sentinel_agent_protocol::*;

fn own_ids() -> (u32, u32) {
    // SAFETY: geteuid and getegid cannot fail and touch no memory.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

async fn proxy_with(filter: PeerFilter) -> Proxy {
    Proxy::start_with(
        move |config| config.peer_filter = filter,
        PoolSettings::default(),
        default_logical(),
    )
    .await
}

#[tokio::test]
async fn a_peer_whose_uid_is_listed_registers() {
    let (uid, _) = own_ids();
    let proxy = proxy_with(PeerFilter {
        allowed_uids: Some(vec![uid.wrapping_add(1), uid]),
        allowed_gids: None,
    })
    .await;
    proxy.register(Via::Uds, "waf-1").await;
    proxy.wait_for_connections(1).await;
    assert_eq!(proxy.stats.snapshot().accepted, 1);
}

#[tokio::test]
async fn a_peer_whose_gid_is_listed_registers_even_if_its_uid_is_not() {
    let (uid, gid) = own_ids();
    let proxy = proxy_with(PeerFilter {
        allowed_uids: Some(vec![uid.wrapping_add(1)]),
        allowed_gids: Some(vec![gid]),
    })
    .await;
    proxy.register(Via::Uds, "waf-1").await;
    proxy.wait_for_connections(1).await;
}

#[tokio::test]
async fn an_unlisted_peer_is_refused_not_allowed_and_counted() {
    let (uid, gid) = own_ids();
    let proxy = proxy_with(PeerFilter {
        allowed_uids: Some(vec![uid.wrapping_add(1)]),
        allowed_gids: Some(vec![gid.wrapping_add(1)]),
    })
    .await;
    let mut agent = proxy.dial(Via::Uds).await;
    match agent.register(RegistrationRequest::new("waf-1")).await {
        RegistrationResponse::Rejected { error, message } => {
            assert_eq!(error, RegistrationErrorCode::NotAllowed, "{message}");
            assert!(
                message.contains(&format!("peer uid {uid} gid {gid} not allowed")),
                "{message}"
            );
        }
        other => panic!("expected not_allowed, got {other:?}"),
    }
    agent.expect_closed().await;
    // Even a malformed first frame gets the same answer: the refusal does not depend on it.
    let mut agent = proxy.dial(Via::Uds).await;
    agent.send_raw(&[0, 0, 0, 2, 0x77, b'x']).await;
    match agent.recv().await {
        Some(Message::RegistrationResponse(response)) => assert!(
            matches!(
                *response,
                RegistrationResponse::Rejected {
                    error: RegistrationErrorCode::NotAllowed,
                    ..
                }
            ),
            "{response:?}"
        ),
        other => panic!("expected not_allowed, got {other:?}"),
    }
    let snapshot = proxy.stats.snapshot();
    assert_eq!(snapshot.rejected.get("not_allowed"), Some(&2));
    assert_eq!(snapshot.accepted, 0);
    assert_eq!(proxy.pool.connection_count(), 0);

    // TCP peers have no credentials to check and are not affected.
    proxy.register(Via::Tcp, "waf-1").await;
    proxy.wait_for_connections(1).await;
}
