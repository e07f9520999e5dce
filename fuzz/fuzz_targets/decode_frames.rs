//! Fuzz target: arbitrary bytes through the frame codec (with a small maximum so hostile lengths
//! are exercised), then every decoded frame through message decoding in both encodings and
//! through the registration parser. Any panic is a bug.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sentinel_agent_protocol::{Encoding, FrameCodec, Message, RegistrationRequest};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut codec = FrameCodec::with_max_frame_length(64 * 1024);
    let mut buf = BytesMut::new();
    // Feed in uneven pieces, as a socket would.
    for piece in data.chunks(7) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    for encoding in [Encoding::Json, Encoding::MessagePack] {
                        let _ = Message::from_frame(&frame, encoding);
                    }
                    let _ = RegistrationRequest::parse(&frame.payload);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
