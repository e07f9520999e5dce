//! Reloading the configuration file of a running proxy: token rotation and allowlist changes
//! apply to the next registration; a broken file is refused and the old rules keep serving.
#![allow(
    clippy::disallowed_methods,
    reason = "test set-up writes and reads fixture files; no proxy runtime is blocked"
)]

use std::path::Path;

use futures::{SinkExt, StreamExt};
use sentinel::app::RunningProxy;
use sentinel_agent_protocol::*;
use sentinel_test_support::config::{
    Listener, ProxyConfig, ReverseListener, Route, TokenSource, Upstream,
};
use sentinel_test_support::ports::ANY_LOOPBACK;
use tokio_util::codec::Framed;

fn write_config(path: &Path, socket: &Path, token: &str, allowed: &str) {
    ProxyConfig::new()
        .reverse_listener(
            ReverseListener::unix(socket)
                .require_auth(true)
                .allowed_agents([allowed])
                .auth_token("*", TokenSource::Value(token.to_string())),
        )
        .listener(Listener::new("http", ANY_LOOPBACK))
        .upstream(Upstream::new("backend", "127.0.0.1:9"))
        .route(Route::new("default", "backend"))
        .write_to(path)
        .unwrap();
}

async fn register(socket: &Path, agent_id: &str, token: &str) -> RegistrationResponse {
    let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let mut framed = Framed::new(stream, FrameCodec::new());
    let mut request = RegistrationRequest::new(agent_id);
    request.auth_token = Some(AuthToken::new(token));
    framed
        .send(Message::from(request).to_frame(Encoding::Json).unwrap())
        .await
        .unwrap();
    let frame = framed.next().await.expect("an answer").expect("a frame");
    match Message::from_frame(&frame, Encoding::Json).unwrap() {
        Message::RegistrationResponse(response) => *response,
        other => panic!("{other:?}"),
    }
}

fn code(response: &RegistrationResponse) -> Option<RegistrationErrorCode> {
    match response {
        RegistrationResponse::Accepted { .. } => None,
        RegistrationResponse::Rejected { error, .. } => Some(*error),
    }
}

#[tokio::test]
async fn token_rotation_and_allowlist_changes_apply_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let (file, socket) = (
        dir.path().join("sentinel.kdl"),
        dir.path().join("agents.sock"),
    );
    write_config(&file, &socket, "old-secret", "waf-*");
    let proxy = RunningProxy::start(sentinel::config::load(&file).unwrap(), Some(file.clone()))
        .await
        .unwrap();
    assert_eq!(code(&register(&socket, "waf-1", "old-secret").await), None);

    write_config(&file, &socket, "new-secret", "auth-*");
    let report = proxy.reload().expect("valid file");
    assert!(report.needs_restart.is_empty(), "{report:?}");
    assert_eq!(
        code(&register(&socket, "auth-1", "old-secret").await),
        Some(RegistrationErrorCode::AuthFailed)
    );
    assert_eq!(
        code(&register(&socket, "waf-2", "new-secret").await),
        Some(RegistrationErrorCode::NotAllowed)
    );
    assert_eq!(code(&register(&socket, "auth-1", "new-secret").await), None);

    // The file cut off after its first line (an unclosed block), as an interrupted write
    // would leave it.
    let whole = std::fs::read_to_string(&file).unwrap();
    let first_line = whole.lines().next().unwrap();
    assert!(first_line.ends_with('{'), "{first_line}");
    std::fs::write(&file, first_line).unwrap();
    let err = proxy.reload().expect_err("broken file refused");
    assert!(err.to_string().contains("sentinel.kdl:"), "{err}");
    assert_eq!(
        code(&register(&socket, "auth-2", "new-secret").await),
        None,
        "old rules keep serving"
    );
    proxy.shutdown().await;
}
