//! The writer task of one connection: owns the write half, writes queued frames in batches
//! under a write timeout, and when the queue closes flushes what is left and shuts the write
//! half down so the proxy sees a clean end of stream.

use std::time::Duration;

use futures::SinkExt;
use sentinel_agent_protocol::{Frame, FrameCodec};
use tokio::io::WriteHalf;
use tokio::sync::mpsc;
use tokio_util::codec::FramedWrite;

use crate::address::BoxedStream;

pub(crate) type Writer = FramedWrite<WriteHalf<BoxedStream>, FrameCodec>;

/// Frames queued before the connection task waits for the writer.
pub(crate) const QUEUE: usize = 256;

/// Writes until the queue closes (`Ok`) or a write fails or stalls (`Err` with why).
pub(crate) async fn run(
    mut writer: Writer,
    mut queue: mpsc::Receiver<Frame>,
    write_timeout: Duration,
) -> Result<(), String> {
    while let Some(first) = queue.recv().await {
        // Let the handlers that are ready finish first, so one write carries all their replies
        // instead of one syscall per reply.
        tokio::task::yield_now().await;
        let batch = async {
            writer.feed(first).await?;
            while let Ok(frame) = queue.try_recv() {
                writer.feed(frame).await?;
            }
            writer.flush().await
        };
        match tokio::time::timeout(write_timeout, batch).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("write failed: {e}")),
            Err(_) => return Err(format!("the proxy did not read for {write_timeout:?}")),
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), writer.close()).await;
    Ok(())
}
