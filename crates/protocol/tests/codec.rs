//! The frame codec: partial reads, many frames per read, and hostile lengths rejected before
//! any memory is reserved for them. A tracking allocator measures the largest allocation the
//! decoder makes on this thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use proptest::prelude::*;
use sentinel_agent_protocol::*;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite};

struct TrackingAllocator;

thread_local! {
    static LARGEST_ALLOCATION: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST_ALLOCATION.try_with(|largest| largest.set(largest.get().max(size)));
}

unsafe impl GlobalAlloc for TrackingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded unchanged; the caller upholds GlobalAlloc::alloc's contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for alloc.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as for alloc; ptr came from this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for alloc; ptr came from this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: TrackingAllocator = TrackingAllocator;

/// Runs `f` and returns its result with the largest single allocation it made on this thread.
fn largest_allocation_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST_ALLOCATION.with(|l| l.set(0));
    let out = f();
    (out, LARGEST_ALLOCATION.with(Cell::get))
}

fn encode_all(frames: &[Frame]) -> BytesMut {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    for frame in frames {
        codec.encode(frame.clone(), &mut buf).expect("encode");
    }
    buf
}

/// Feeds `input` to a decoder `chunk` bytes at a time, as a socket reader would, decoding
/// after every chunk. Returns the frames and the first error.
fn feed(codec: &mut FrameCodec, input: &[u8], chunk: usize) -> (Vec<Frame>, Option<ProtocolError>) {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

#[test]
fn worked_example_bytes() {
    // PROTOCOL.md §5 Ping {"nonce":7} in JSON: length 12 = type byte + 11 payload bytes.
    let frame = Message::Ping(Ping { nonce: 7 })
        .to_frame(Encoding::Json)
        .unwrap();
    let bytes = encode_all(&[frame]);
    assert_eq!(&bytes[..5], &[0x00, 0x00, 0x00, 0x0c, 0xf0]);
    assert_eq!(&bytes[5..], br#"{"nonce":7}"#);
}

#[test]
fn many_frames_in_one_read_and_one_byte_reads() {
    let frames: Vec<Frame> = (0..50u64)
        .map(|nonce| {
            Message::Ping(Ping { nonce })
                .to_frame(Encoding::Json)
                .unwrap()
        })
        .collect();
    let wire = encode_all(&frames);
    for chunk in [1, 3, 7, wire.len()] {
        let (decoded, err) = feed(&mut FrameCodec::new(), &wire, chunk);
        assert!(err.is_none(), "chunk {chunk}: {err:?}");
        assert_eq!(decoded, frames, "chunk size {chunk}");
    }
}

#[test]
fn zero_length_is_an_error() {
    let (frames, err) = feed(&mut FrameCodec::new(), &[0, 0, 0, 0, 0x10], 64);
    assert!(frames.is_empty());
    let err = err.expect("error");
    assert!(matches!(err, ProtocolError::EmptyFrame), "{err}");
}

#[test]
fn oversized_length_is_rejected_without_allocating_it() {
    let mut codec = FrameCodec::with_max_frame_length(1024);
    let ((frames, err), largest) =
        largest_allocation_during(|| feed(&mut codec, &[0xff, 0xff, 0xff, 0xff, 0x10, 1, 2], 2));
    assert!(frames.is_empty());
    match err {
        Some(ProtocolError::FrameTooLarge { length, max }) => {
            assert_eq!((length, max), (u64::from(u32::MAX), 1024));
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert!(largest < 4096, "decoder allocated {largest} bytes");
    // Exactly the maximum is fine.
    let ok = Frame::new(MessageType::Ping, vec![b'x'; 1023]);
    let (frames, err) = feed(&mut codec, &encode_all(std::slice::from_ref(&ok)), 100);
    assert_eq!((frames, err.map(|e| e.to_string())), (vec![ok], None));
}

#[test]
fn encoder_refuses_frames_above_the_maximum() {
    let mut codec = FrameCodec::with_max_frame_length(10);
    let mut buf = BytesMut::new();
    let err = codec
        .encode(Frame::new(MessageType::Ping, vec![0; 10]), &mut buf)
        .unwrap_err();
    assert!(
        err.to_string().contains("exceeds the maximum of 10"),
        "{err}"
    );
    assert!(buf.is_empty());
}

#[tokio::test]
async fn framed_over_a_real_stream_with_tiny_reads() {
    // A 5-byte pipe forces partial reads of every frame.
    let (client, server) = tokio::io::duplex(5);
    let messages: Vec<Message> = vec![
        Message::Ping(Ping { nonce: 1 }),
        Decision::block(3, 403).into(),
        Message::RequestBodyChunk(BodyChunk {
            request_id: 3,
            chunk_index: 0,
            data: vec![0u8; 3000].into(),
            is_last: true,
        }),
    ];
    let to_send = messages.clone();
    let writer = tokio::spawn(async move {
        let mut sink = FramedWrite::new(client, FrameCodec::new());
        for message in to_send {
            sink.send(message.to_frame(Encoding::MessagePack).unwrap())
                .await
                .unwrap();
        }
    });
    let mut stream = FramedRead::new(server, FrameCodec::new());
    for expected in messages {
        let frame = stream.next().await.expect("frame").expect("valid frame");
        assert_eq!(
            Message::from_frame(&frame, Encoding::MessagePack).unwrap(),
            expected
        );
    }
    writer.await.unwrap();
    assert!(stream.next().await.is_none(), "clean end of stream");
}

#[tokio::test]
async fn hostile_length_on_a_real_stream() {
    let (mut client, server) = tokio::io::duplex(64);
    client
        .write_all(&[0x7f, 0xff, 0xff, 0xff, 0x01])
        .await
        .unwrap();
    let mut stream = FramedRead::new(server, FrameCodec::new());
    let err = stream.next().await.expect("an item").unwrap_err();
    assert!(matches!(err, ProtocolError::FrameTooLarge { .. }), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes, fed in arbitrary chunk sizes to a decoder with an arbitrary maximum:
    /// no panic, no frame above the maximum, and no allocation beyond what a frame of the
    /// maximum size needs (a decoder that reserved a claimed 4 GiB length would fail here).
    #[test]
    fn decoder_survives_arbitrary_input(
        input in proptest::collection::vec(any::<u8>(), 0..4096),
        max in 1usize..2048,
        chunk in 1usize..64,
    ) {
        let mut codec = FrameCodec::with_max_frame_length(max);
        let ((frames, _err), largest) = largest_allocation_during(|| feed(&mut codec, &input, chunk));
        for frame in &frames {
            prop_assert!(frame.payload.len() < max);
        }
        let bound = 2 * (max + FRAME_HEADER_LEN + chunk) + 64;
        prop_assert!(largest <= bound, "largest allocation {} > {}", largest, bound);
    }

    /// Valid frames followed by corruption: the valid prefix decodes intact and the corrupted
    /// remainder ends in an error or an incomplete frame, never a panic.
    #[test]
    fn truncated_and_corrupted_streams(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..8),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        flip_to in any::<u8>(),
    ) {
        let frames: Vec<Frame> = payloads.into_iter().map(|p| Frame::new(MessageType::Pong, p)).collect();
        let wire = encode_all(&frames);
        // Truncation: a prefix decodes to a prefix of the frames.
        let cut = cut.index(wire.len() + 1);
        let (decoded, err) = feed(&mut FrameCodec::new(), &wire[..cut], 13);
        prop_assert!(err.is_none());
        prop_assert_eq!(&frames[..decoded.len()], &decoded[..]);
        // Corruption of one byte: no panic; frames before the corrupted one are intact.
        let mut corrupted = wire.to_vec();
        let at = flip.index(corrupted.len());
        corrupted[at] = flip_to;
        let (decoded, _err) = feed(&mut FrameCodec::with_max_frame_length(4096), &corrupted, 9);
        let mut offset = 0;
        for (got, original) in decoded.iter().zip(&frames) {
            let end = offset + FRAME_HEADER_LEN + original.payload.len();
            if end <= at {
                prop_assert_eq!(got, original);
            }
            offset = end;
        }
    }

    /// Arbitrary payloads under every type byte, in both encodings: decoding returns a
    /// message or an error, never panics.
    #[test]
    fn message_decoding_never_panics(
        type_byte in any::<u8>(),
        payload in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let frame = Frame { type_byte, payload: payload.into() };
        for encoding in [Encoding::Json, Encoding::MessagePack] {
            let _ = Message::from_frame(&frame, encoding);
        }
        let _ = RegistrationRequest::parse(&frame.payload);
    }
}
