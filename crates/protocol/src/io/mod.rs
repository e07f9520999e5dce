//! Agent connection I/O over any byte stream (Unix, TCP, TLS): [`FrameStream`] owns the stream,
//! the frame codec and both buffers and speaks only in [`Frame`]s. The registration exchange
//! runs on it whole; afterwards it splits into a [`FrameReader`] (which keeps every byte already
//! buffered, so frames sent right behind the registration are read first) and a batching
//! [`FrameWriter`]. Buffers grow on demand and are released once a large frame or batch has
//! passed, so idle connections stay small. This module owns bytes and frames only: timers,
//! heartbeats, and what a frame means belong to the proxy and the SDK. Behind the `tokio`
//! feature.

mod reader;
mod writer;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

pub use reader::FrameReader;
pub use writer::{FrameWriter, WriteError, FINAL_FLUSH_TIMEOUT};

use crate::{Frame, FrameCodec, ProtocolError};
use reader::ReadState;
use writer::WriteState;

/// A read or write buffer that grew beyond this is released once empty.
pub const IDLE_BUFFER_CAPACITY: usize = 16 * 1024;

/// Read buffer of [`FrameStream::new`]: most registrations and events fit.
pub const DEFAULT_READ_CAPACITY: usize = 8 * 1024;

/// Any bidirectional byte stream an agent connection can run over.
pub trait AgentStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AgentStream for T {}

/// A stream with its transport erased, so that Unix, TCP and TLS share one code path.
pub type BoxedStream = Box<dyn AgentStream>;

/// One agent connection's stream with its codec and buffers.
///
/// ```
/// use sentinel_agent_protocol::io::FrameStream;
/// use sentinel_agent_protocol::{Encoding, FrameCodec, Message, Ping};
///
/// # async fn example(socket: tokio::net::UnixStream) -> Result<(), sentinel_agent_protocol::ProtocolError> {
/// let mut stream = FrameStream::new(socket, FrameCodec::new());
/// stream.write_frame(Message::Ping(Ping { nonce: 1 }).to_frame(Encoding::Json)?).await?;
/// let first = stream.read_frame().await?;
/// // Whatever arrived behind `first` stays buffered in the reader.
/// let (mut reader, writer) = stream.split();
/// let second = reader.read_frame().await?;
/// # drop((first, second, writer)); Ok(()) }
/// ```
#[derive(Debug)]
pub struct FrameStream<S> {
    stream: S,
    read: ReadState,
    write: WriteState,
}

impl<S: AsyncRead + AsyncWrite + Unpin> FrameStream<S> {
    /// Frames `stream` with `codec` and a read buffer of [`DEFAULT_READ_CAPACITY`].
    pub fn new(stream: S, codec: FrameCodec) -> FrameStream<S> {
        FrameStream::with_read_capacity(stream, codec, DEFAULT_READ_CAPACITY)
    }

    /// Frames `stream` with `codec` and a read buffer of `capacity` bytes to begin with; it
    /// grows to the frames actually read.
    pub fn with_read_capacity(stream: S, codec: FrameCodec, capacity: usize) -> FrameStream<S> {
        FrameStream {
            stream,
            read: ReadState {
                codec,
                buffer: BytesMut::with_capacity(capacity),
            },
            write: WriteState {
                codec,
                buffer: BytesMut::new(),
            },
        }
    }

    /// The next frame, `Ok(None)` once the peer closed cleanly. Cancel-safe.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, ProtocolError> {
        self.read.read_frame(&mut self.stream).await
    }

    /// Writes one frame and flushes it.
    pub async fn write_frame(&mut self, frame: Frame) -> Result<(), ProtocolError> {
        self.write.feed(&mut self.stream, frame).await?;
        self.write.flush(&mut self.stream).await
    }

    /// Shuts the write side down, so the peer reads a clean end of stream.
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        self.stream.shutdown().await
    }

    /// Changes the largest frame accepted and sent from now on: the registration exchange may
    /// have its own, smaller limit.
    pub fn set_max_frame_length(&mut self, max_frame_length: usize) {
        let codec = FrameCodec::with_max_frame_length(max_frame_length);
        self.read.codec = codec;
        self.write.codec = codec;
    }

    /// The underlying stream, to inspect it (a TLS session's peer certificate, say).
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Splits into a reader that keeps the bytes already buffered and a writer that starts with
    /// an empty buffer.
    pub fn split(self) -> (FrameReader<ReadHalf<S>>, FrameWriter<WriteHalf<S>>) {
        let (read_half, write_half) = tokio::io::split(self.stream);
        let write = WriteState {
            codec: self.write.codec,
            buffer: BytesMut::new(),
        };
        (
            FrameReader::new(read_half, self.read),
            FrameWriter::new(write_half, write),
        )
    }
}
