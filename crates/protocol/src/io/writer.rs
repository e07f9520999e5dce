//! The write side of an agent connection: frames are encoded into one buffer and written
//! together, so that many queued frames cost one write. It owns batching, the write timeout and
//! the orderly end of the write half; it does not decide what is sent or what a failure means
//! for the connection.

use std::future::Future;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::Encoder;

use super::IDLE_BUFFER_CAPACITY;
use crate::{Frame, FrameCodec, ProtocolError};

/// Encoded bytes beyond which the buffer is written out before the next frame is added, so a
/// long batch does not build one huge buffer.
const WRITE_HIGH_WATER: usize = 8 * 1024;

/// Longest the frames still queued when a write loop ends may take to go out.
pub const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a batching write loop stopped before its queue closed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A frame could not be encoded or the stream failed.
    #[error("write failed: {0}")]
    Failed(#[from] ProtocolError),
    /// The peer did not take the bytes within the write timeout.
    #[error("the peer did not read for {0:?}")]
    Stalled(Duration),
}

/// The codec and the encoded bytes not yet written; shared by [`super::FrameStream`] and
/// [`FrameWriter`].
#[derive(Debug)]
pub(super) struct WriteState {
    pub(super) codec: FrameCodec,
    pub(super) buffer: BytesMut,
}

impl WriteState {
    /// Adds `frame` to the buffer, first writing out what is there if it is already large.
    pub(super) async fn feed<W: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut W,
        frame: Frame,
    ) -> Result<(), ProtocolError> {
        if self.buffer.len() >= WRITE_HIGH_WATER {
            self.flush(stream).await?;
        }
        self.codec.encode(frame, &mut self.buffer)
    }

    /// Writes every buffered byte and flushes the stream.
    pub(super) async fn flush<W: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut W,
    ) -> Result<(), ProtocolError> {
        while !self.buffer.is_empty() {
            if stream.write_buf(&mut self.buffer).await? == 0 {
                let closed = std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    "failed to write frame to transport",
                );
                return Err(closed.into());
            }
        }
        stream.flush().await?;
        Ok(())
    }

    /// A buffer that grew for a large batch is released once written.
    fn release_if_idle(&mut self) {
        if self.buffer.is_empty() && self.buffer.capacity() > IDLE_BUFFER_CAPACITY {
            self.buffer = BytesMut::new();
        }
    }
}

/// The write half of a split [`super::FrameStream`]: it starts with an empty buffer that grows
/// to the batches actually written.
#[derive(Debug)]
pub struct FrameWriter<W> {
    stream: W,
    state: WriteState,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub(super) fn new(stream: W, state: WriteState) -> FrameWriter<W> {
        FrameWriter { stream, state }
    }

    /// Writes `first` and every frame already waiting in `queue`, then flushes once.
    pub async fn write_batch(
        &mut self,
        first: Frame,
        queue: &mut mpsc::Receiver<Frame>,
    ) -> Result<(), ProtocolError> {
        self.state.feed(&mut self.stream, first).await?;
        while let Ok(frame) = queue.try_recv() {
            self.state.feed(&mut self.stream, frame).await?;
        }
        self.state.flush(&mut self.stream).await?;
        self.state.release_if_idle();
        Ok(())
    }

    /// Writes the frames of `queue` in batches until the queue closes or `stop` resolves, each
    /// batch within `write_timeout`. Then, within a second, writes what is still queued (a
    /// GoAway, a last Cancel) and shuts the write half down so the peer sees a clean end of
    /// stream. A failed or stalled write returns at once, without that last flush.
    pub async fn run(
        mut self,
        mut queue: mpsc::Receiver<Frame>,
        write_timeout: Duration,
        stop: impl Future<Output = ()>,
    ) -> Result<(), WriteError> {
        let mut stop = std::pin::pin!(stop);
        loop {
            let first = tokio::select! {
                first = queue.recv() => first,
                _ = &mut stop => None,
            };
            let Some(first) = first else { break };
            // Let the tasks that are ready run first: the callers woken together queue their
            // next frames, and one write carries them all instead of one syscall per frame.
            tokio::task::yield_now().await;
            match tokio::time::timeout(write_timeout, self.write_batch(first, &mut queue)).await {
                Ok(written) => written?,
                Err(_) => return Err(WriteError::Stalled(write_timeout)),
            }
        }
        let _ = tokio::time::timeout(FINAL_FLUSH_TIMEOUT, self.finish(&mut queue)).await;
        Ok(())
    }

    /// Writes what is queued, flushes and shuts the write half down (attempted even when the
    /// flush failed: the peer should still see the stream end).
    async fn finish(&mut self, queue: &mut mpsc::Receiver<Frame>) -> Result<(), ProtocolError> {
        while let Ok(frame) = queue.try_recv() {
            self.state.feed(&mut self.stream, frame).await?;
        }
        let flushed = self.state.flush(&mut self.stream).await;
        self.stream.shutdown().await?;
        flushed
    }
}
