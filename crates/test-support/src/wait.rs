//! Waiting on conditions instead of sleeping: the one [`eventually`] (async, a deadline, a
//! description that appears in the panic), its non-panicking forms [`wait_for`] and
//! [`try_wait_for`] for harnesses that report failures, a blocking form for threads without a
//! runtime, and ready-made conditions (a TCP port accepting, HTTP 200 on a path, a file
//! existing). Which condition a test needs is the test's business.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How often a condition is polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// A condition did not hold in time.
#[derive(Debug, Clone, thiserror::Error)]
#[error("timed out after {within:?} waiting for {what}")]
pub struct TimedOut {
    /// What was awaited.
    pub what: String,
    /// How long.
    pub within: Duration,
}

/// A fallible condition failed, or did not hold in time.
#[derive(Debug, thiserror::Error)]
pub enum WaitError<E> {
    /// The deadline passed.
    #[error(transparent)]
    TimedOut(#[from] TimedOut),
    /// The condition itself failed (e.g. the process it watched exited).
    #[error("while waiting for {what}: {source}")]
    Failed {
        /// What was awaited.
        what: String,
        /// Why it cannot hold any more.
        source: E,
    },
}

/// Polls `condition` until it holds and returns how long that took; **panics** with `what`
/// after `within`. The condition is checked at least once.
pub async fn eventually<F, Fut>(what: &str, within: Duration, condition: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    match wait_for(what, within, condition).await {
        Ok(took) => took,
        Err(timed_out) => panic!("{timed_out}"),
    }
}

/// [`eventually`] as a `Result`.
pub async fn wait_for<F, Fut>(
    what: &str,
    within: Duration,
    mut condition: F,
) -> Result<Duration, TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let checked = try_wait_for(what, within, || {
        let check = condition();
        async move { Ok::<bool, std::convert::Infallible>(check.await) }
    });
    match checked.await {
        Ok(took) => Ok(took),
        Err(WaitError::TimedOut(timed_out)) => Err(timed_out),
        Err(WaitError::Failed { source, .. }) => match source {},
    }
}

/// Polls a fallible `condition`: an `Err` from it ends the wait at once.
pub async fn try_wait_for<F, Fut, E>(
    what: &str,
    within: Duration,
    mut condition: F,
) -> Result<Duration, WaitError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, E>>,
{
    let started = Instant::now();
    loop {
        match condition().await {
            Ok(true) => return Ok(started.elapsed()),
            Ok(false) => {}
            Err(source) => {
                return Err(WaitError::Failed {
                    what: what.to_string(),
                    source,
                })
            }
        }
        if started.elapsed() > within {
            return Err(timed_out(what, within).into());
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// [`try_wait_for`] for a thread without a runtime (it sleeps the thread between checks).
pub fn wait_for_blocking<E>(
    what: &str,
    within: Duration,
    mut condition: impl FnMut() -> Result<bool, E>,
) -> Result<Duration, WaitError<E>> {
    let started = Instant::now();
    loop {
        match condition() {
            Ok(true) => return Ok(started.elapsed()),
            Ok(false) => {}
            Err(source) => {
                return Err(WaitError::Failed {
                    what: what.to_string(),
                    source,
                })
            }
        }
        if started.elapsed() > within {
            return Err(timed_out(what, within).into());
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn timed_out(what: &str, within: Duration) -> TimedOut {
    TimedOut {
        what: what.to_string(),
        within,
    }
}

/// Waits until `address` accepts TCP connections.
pub async fn wait_for_port(address: SocketAddr, within: Duration) -> Result<Duration, TimedOut> {
    wait_for(
        &format!("{address} to accept connections"),
        within,
        || async move { tokio::net::TcpStream::connect(address).await.is_ok() },
    )
    .await
}

/// Waits until `GET path` on `address` answers 200.
pub async fn wait_for_http_ok(
    address: SocketAddr,
    path: &str,
    within: Duration,
) -> Result<Duration, TimedOut> {
    let what = format!("GET http://{address}{path} to answer 200");
    wait_for(&what, within, || async move {
        let attempt = http_status(address, path);
        matches!(
            tokio::time::timeout(Duration::from_secs(2), attempt).await,
            Ok(Ok(200))
        )
    })
    .await
}

/// The status code of a plain HTTP/1.1 `GET path` on `address` (the connection is closed
/// afterwards, so nothing else of the answer matters).
pub async fn http_status(address: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut buffer = [0u8; 256];
    // The status line fits in the first few reads; stop at its end.
    while !head.contains(&b'\n') {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP status line in {line:?}")))
}

/// Waits until `path` exists.
pub async fn wait_for_file(path: &Path, within: Duration) -> Result<Duration, TimedOut> {
    wait_for(
        &format!("{} to exist", path.display()),
        within,
        || async move { path.exists() },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_once_the_condition_holds() {
        let mut calls = 0;
        let took = eventually("the third call", Duration::from_secs(5), || {
            calls += 1;
            std::future::ready(calls >= 3)
        })
        .await;
        assert_eq!(calls, 3);
        assert!(took >= 2 * POLL_INTERVAL);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for a condition that never holds")]
    async fn panics_naming_what_it_waited_for() {
        eventually(
            "a condition that never holds",
            Duration::from_millis(30),
            || std::future::ready(false),
        )
        .await;
    }

    #[tokio::test]
    async fn a_failing_condition_ends_the_wait() {
        let result = try_wait_for("anything", Duration::from_secs(5), || async {
            Err::<bool, &str>("the process exited")
        })
        .await;
        let message = result.expect_err("failed").to_string();
        assert!(message.contains("the process exited") && message.contains("anything"));
    }

    #[tokio::test]
    async fn ports_http_and_files() {
        let (listener, address) = crate::ports::bind_loopback_async().await.expect("bind");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buffer = [0u8; 512];
                let _ = stream.read(&mut buffer).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        wait_for_port(address, Duration::from_secs(5))
            .await
            .expect("port");
        wait_for_http_ok(address, "/health", Duration::from_secs(5))
            .await
            .expect("200");
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("later");
        let missing = wait_for_file(&file, Duration::from_millis(30)).await;
        assert!(missing.expect_err("no file").to_string().contains("later"));
        std::fs::write(&file, "").expect("write");
        wait_for_file(&file, Duration::from_secs(1))
            .await
            .expect("file");
    }

    #[test]
    fn blocking_form() {
        let mut calls = 0;
        wait_for_blocking("two calls", Duration::from_secs(5), || {
            calls += 1;
            Ok::<_, std::convert::Infallible>(calls == 2)
        })
        .expect("holds");
        let timed_out = wait_for_blocking("never", Duration::from_millis(20), || {
            Ok::<_, std::convert::Infallible>(false)
        });
        assert!(matches!(timed_out, Err(WaitError::TimedOut(_))));
    }
}
