//! The agent connection I/O type: buffered frames survive the split, batches arrive whole and
//! in order, buffers shrink back after a large frame, and the write loop ends cleanly or
//! reports a stalled peer.

use std::time::Duration;

use sentinel_agent_protocol::io::{FrameStream, WriteError, IDLE_BUFFER_CAPACITY};
use sentinel_agent_protocol::{Frame, FrameCodec, MessageType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::Encoder;

fn ping(n: u8) -> Frame {
    Frame::new(MessageType::Ping, vec![n])
}

fn encoded(frames: &[Frame]) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    for frame in frames {
        FrameCodec::new().encode(frame.clone(), &mut out).unwrap();
    }
    out.to_vec()
}

#[tokio::test]
async fn frames_buffered_behind_the_first_are_read_after_the_split() {
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    // One write: the first frame and two more right behind it.
    theirs
        .write_all(&encoded(&[ping(1), ping(2), ping(3)]))
        .await
        .unwrap();
    let mut stream = FrameStream::new(ours, FrameCodec::new());
    assert_eq!(stream.read_frame().await.unwrap(), Some(ping(1)));
    let (mut reader, _writer) = stream.split();
    assert_eq!(reader.buffered_len(), 2 * 6);
    // The peer stays open and silent: both frames must come from the buffer.
    let read_two = async {
        let a = reader.read_frame().await.unwrap();
        let b = reader.read_frame().await.unwrap();
        (a, b)
    };
    let (a, b) = tokio::time::timeout(Duration::from_secs(5), read_two)
        .await
        .expect("buffered frames are returned without reading");
    assert_eq!((a, b), (Some(ping(2)), Some(ping(3))));
    drop(theirs);
    assert_eq!(reader.read_frame().await.unwrap(), None);
}

#[tokio::test]
async fn a_batch_arrives_whole_and_in_order() {
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    let (_reader, mut writer) = FrameStream::new(ours, FrameCodec::new()).split();
    let (queue, mut queued) = mpsc::channel(16);
    for n in 2..=5 {
        queue.try_send(ping(n)).unwrap();
    }
    writer.write_batch(ping(1), &mut queued).await.unwrap();
    let expected = encoded(&(1..=5).map(ping).collect::<Vec<_>>());
    let mut received = vec![0; expected.len()];
    theirs.read_exact(&mut received).await.unwrap();
    assert_eq!(received, expected);
}

#[tokio::test]
async fn the_read_buffer_is_released_after_a_large_frame() {
    let (ours, mut theirs) = tokio::io::duplex(256 * 1024);
    let large = Frame::new(MessageType::RequestBodyChunk, vec![7u8; 100 * 1024]);
    theirs
        .write_all(&encoded(std::slice::from_ref(&large)))
        .await
        .unwrap();
    let (mut reader, _writer) =
        FrameStream::with_read_capacity(ours, FrameCodec::new(), 1024).split();
    assert_eq!(reader.read_frame().await.unwrap(), Some(large));
    assert!(reader.buffer_capacity() <= IDLE_BUFFER_CAPACITY);
}

#[tokio::test]
async fn a_stream_that_ends_inside_a_frame_is_an_error() {
    let (ours, mut theirs) = tokio::io::duplex(1024);
    let bytes = encoded(&[ping(1)]);
    theirs.write_all(&bytes[..bytes.len() - 1]).await.unwrap();
    drop(theirs);
    let mut stream = FrameStream::new(ours, FrameCodec::new());
    let error = stream.read_frame().await.unwrap_err();
    assert!(
        error.to_string().contains("bytes remaining on stream"),
        "{error}"
    );
}

#[tokio::test]
async fn an_oversized_frame_is_refused_after_the_limit_changes() {
    let (ours, mut theirs) = tokio::io::duplex(1024);
    let mut stream = FrameStream::new(ours, FrameCodec::new());
    stream.set_max_frame_length(4);
    theirs
        .write_all(&encoded(&[Frame::new(MessageType::Ping, vec![0; 8])]))
        .await
        .unwrap();
    let error = stream.read_frame().await.unwrap_err();
    assert!(error.to_string().contains("exceeds the maximum"), "{error}");
}

#[tokio::test]
async fn stopping_the_write_loop_sends_what_is_queued_and_ends_the_stream() {
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    let (_reader, writer) = FrameStream::new(ours, FrameCodec::new()).split();
    let (queue, queued) = mpsc::channel(16);
    queue.try_send(ping(1)).unwrap();
    queue.try_send(ping(2)).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    stop.cancel();
    let run = writer.run(queued, Duration::from_secs(5), stop.cancelled_owned());
    run.await.unwrap();
    let mut received = Vec::new();
    theirs.read_to_end(&mut received).await.unwrap();
    assert_eq!(received, encoded(&[ping(1), ping(2)]));
}

#[tokio::test]
async fn a_peer_that_does_not_read_stalls_the_write_loop() {
    let (ours, _theirs) = tokio::io::duplex(16);
    let (_reader, writer) = FrameStream::new(ours, FrameCodec::new()).split();
    let (queue, queued) = mpsc::channel(16);
    queue
        .try_send(Frame::new(MessageType::Ping, vec![0; 64]))
        .unwrap();
    let timeout = Duration::from_millis(50);
    let ended = writer.run(queued, timeout, std::future::pending()).await;
    assert!(
        matches!(ended, Err(WriteError::Stalled(t)) if t == timeout),
        "{ended:?}"
    );
}
