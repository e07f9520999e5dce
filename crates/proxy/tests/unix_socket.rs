//! The Unix socket's life cycle: permissions, stale files, a live competitor, files that are not
//! sockets, and removal on shutdown.
#![allow(
    clippy::disallowed_methods,
    reason = "test set-up writes and reads fixture files; no proxy runtime is blocked"
)]

mod common;

use std::os::unix::fs::PermissionsExt;

use sentinel::pool::PoolSettings;
use sentinel::reverse::{
    InvalidReverseListener, ListenerError, ReverseConnectionListener, ReverseListenerConfig,
};
use sentinel::AgentPool;
use tokio_util::sync::CancellationToken;

fn config(path: &std::path::Path) -> ReverseListenerConfig {
    ReverseListenerConfig {
        path: Some(path.to_path_buf()),
        ..ReverseListenerConfig::default()
    }
}

fn pool() -> AgentPool {
    AgentPool::new(common::default_logical(), PoolSettings::default())
}

#[tokio::test]
async fn socket_is_0660_and_removed_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.sock");
    let listener = ReverseConnectionListener::bind(config(&path), pool())
        .await
        .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(listener.run(shutdown.clone()));
    shutdown.cancel();
    task.await.unwrap();
    assert!(!path.exists());
}

#[tokio::test]
async fn stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.sock");
    // A socket file left behind by a process that died: bound, then the listener dropped
    // without cleanup (std does not unlink on drop).
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let listener = ReverseConnectionListener::bind(config(&path), pool())
        .await
        .unwrap();
    assert_eq!(listener.uds_path(), Some(path.as_path()));
    tokio::net::UnixStream::connect(&path)
        .await
        .expect("the new listener answers");
}

#[tokio::test]
async fn live_listener_on_the_path_is_not_stolen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.sock");
    let _first = ReverseConnectionListener::bind(config(&path), pool())
        .await
        .unwrap();
    let err = ReverseConnectionListener::bind(config(&path), pool())
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, ListenerError::AlreadyListening(_)), "{err}");
    assert!(
        err.to_string()
            .contains("another process is already listening"),
        "{err}"
    );
    assert!(path.exists(), "the live socket is left alone");
}

#[tokio::test]
async fn regular_file_on_the_path_is_never_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.sock");
    std::fs::write(&path, "precious").unwrap();
    let err = ReverseConnectionListener::bind(config(&path), pool())
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, ListenerError::NotASocket(_)), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

#[tokio::test]
async fn nothing_to_bind_is_an_error() {
    let err = ReverseConnectionListener::bind(ReverseListenerConfig::default(), pool())
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(
            err,
            ListenerError::Invalid(InvalidReverseListener::NothingToBind)
        ),
        "{err}"
    );
}
