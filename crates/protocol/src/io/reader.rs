//! The read side of an agent connection: a stream, the frame codec and the read buffer that
//! belongs to them. It owns how bytes become frames (decode what is buffered first, read only
//! when no whole frame is left) and when an idle buffer is given back; it does not decide what
//! a frame means.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::codec::Decoder;

use super::IDLE_BUFFER_CAPACITY;
use crate::{Frame, FrameCodec, ProtocolError};

/// The codec and the bytes read but not yet decoded; shared by [`super::FrameStream`] and
/// [`FrameReader`] so that splitting a stream keeps every buffered byte.
#[derive(Debug)]
pub(super) struct ReadState {
    pub(super) codec: FrameCodec,
    pub(super) buffer: BytesMut,
}

impl ReadState {
    /// The next frame: decoded from the buffer if a whole one is there, otherwise after reading
    /// more. `Ok(None)` on a clean end of stream. Cancel-safe: bytes are only consumed once a
    /// whole frame has been decoded.
    pub(super) async fn read_frame<R: AsyncRead + Unpin>(
        &mut self,
        stream: &mut R,
    ) -> Result<Option<Frame>, ProtocolError> {
        loop {
            if let Some(frame) = self.codec.decode(&mut self.buffer)? {
                self.release_if_idle();
                return Ok(Some(frame));
            }
            // Room for at least one byte, so that a read of 0 means end of stream.
            self.buffer.reserve(1);
            if stream.read_buf(&mut self.buffer).await? == 0 {
                return self.end_of_stream();
            }
        }
    }

    fn end_of_stream(&mut self) -> Result<Option<Frame>, ProtocolError> {
        if self.buffer.is_empty() {
            return Ok(None);
        }
        // The peer stopped in the middle of a frame.
        Err(std::io::Error::other("bytes remaining on stream").into())
    }

    /// A buffer that grew for one large frame is released once empty, so that an idle
    /// connection does not keep that memory; the next read grows it again on demand.
    fn release_if_idle(&mut self) {
        if self.buffer.is_empty() && self.buffer.capacity() > IDLE_BUFFER_CAPACITY {
            self.buffer = BytesMut::new();
        }
    }
}

/// The read half of a split [`super::FrameStream`]. The frames that arrived together with the
/// registration are still in its buffer and come out of the first [`FrameReader::read_frame`]
/// calls, before anything is read from the socket.
#[derive(Debug)]
pub struct FrameReader<R> {
    stream: R,
    state: ReadState,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(super) fn new(stream: R, state: ReadState) -> FrameReader<R> {
        FrameReader { stream, state }
    }

    /// The next frame, `Ok(None)` once the peer has closed its side cleanly. An error (an
    /// oversized or empty frame, a stream that ends inside a frame, an I/O failure) means the
    /// connection must be closed. Cancel-safe, so it may be raced in `tokio::select!`.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, ProtocolError> {
        self.state.read_frame(&mut self.stream).await
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered_len(&self) -> usize {
        self.state.buffer.len()
    }

    /// The read buffer's current capacity: what this reader holds in memory while idle.
    pub fn buffer_capacity(&self) -> usize {
        self.state.buffer.capacity()
    }
}
