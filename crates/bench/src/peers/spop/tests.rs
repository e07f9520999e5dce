//! Frame-level tests of the SPOP codec: every frame type round-trips, the bytes of a frame
//! match the layout SPOE.txt gives, and malformed or hostile input is an error, never a
//! panic or an unbounded allocation.

use bytes::{BufMut, Bytes, BytesMut};

use super::*;

const MAX: u32 = 16380;

fn encoded(frame: &Frame) -> BytesMut {
    let mut out = BytesMut::new();
    frame.encode(&mut out);
    out
}

fn round_trip(frame: Frame) {
    let mut bytes = encoded(&frame);
    let decoded = Frame::decode(&mut bytes, MAX)
        .expect("valid")
        .expect("complete");
    assert_eq!(decoded, frame);
    assert!(bytes.is_empty(), "decode consumed the whole frame");
}

fn hello() -> HaproxyHello {
    HaproxyHello {
        supported_versions: "2.0".into(),
        max_frame_size: MAX,
        capabilities: "pipelining,async".into(),
        healthcheck: false,
        engine_id: Some("0E1B2C3D-engine".into()),
    }
}

fn notify() -> Notify {
    Notify {
        stream_id: 70_000,
        frame_id: 1,
        messages: vec![Message {
            name: Bytes::from_static(b"check-auth"),
            args: vec![(
                Bytes::from_static(b"token"),
                TypedData::string("Bearer s3cret"),
            )],
        }],
    }
}

fn ack() -> Ack {
    Ack {
        stream_id: 70_000,
        frame_id: 1,
        actions: vec![
            Action::SetVar {
                scope: VarScope::Transaction,
                name: Bytes::from_static(b"ok"),
                value: TypedData::Bool(true),
            },
            Action::UnsetVar {
                scope: VarScope::Request,
                name: Bytes::from_static(b"old"),
            },
        ],
    }
}

#[test]
fn every_frame_type_round_trips() {
    round_trip(Frame::HaproxyHello(hello()));
    round_trip(Frame::HaproxyHello(HaproxyHello {
        healthcheck: true,
        engine_id: None,
        ..hello()
    }));
    round_trip(Frame::AgentHello(AgentHello {
        version: "2.0".into(),
        max_frame_size: 1024,
        capabilities: "pipelining".into(),
    }));
    round_trip(Frame::Notify(notify()));
    round_trip(Frame::Notify(Notify {
        messages: vec![
            Message {
                name: Bytes::from_static(b"check-body"),
                args: vec![(
                    Bytes::from_static(b"body"),
                    TypedData::Binary(Bytes::from(vec![b'x'; 4096])),
                )],
            },
            Message {
                name: Bytes::from_static(b"empty"),
                args: vec![],
            },
        ],
        ..notify()
    }));
    round_trip(Frame::Ack(ack()));
    round_trip(Frame::Ack(Ack {
        actions: vec![],
        ..ack()
    }));
    for frame in [
        Frame::HaproxyDisconnect(Disconnect {
            status_code: status::NORMAL,
            message: "bye".into(),
        }),
        Frame::AgentDisconnect(Disconnect {
            status_code: status::TOO_BIG,
            message: "frame is too big".into(),
        }),
    ] {
        round_trip(frame);
    }
}

#[test]
fn ack_bytes_follow_the_documented_layout() {
    let frame = Frame::Ack(Ack {
        stream_id: 5,
        frame_id: 300,
        actions: vec![Action::SetVar {
            scope: VarScope::Transaction,
            name: Bytes::from_static(b"ok"),
            value: TypedData::Bool(true),
        }],
    });
    let bytes = encoded(&frame);
    let expected: &[u8] = &[
        0, 0, 0, 15,  // length of what follows
        103, // ACK
        0, 0, 0, 1, // flags: FIN
        5, // stream id
        0xFC, 0x03, // frame id 300 as a varint: 0xF0 | (300 & 0xF), (300 - 240) >> 4
        1, 3, 2, // SET-VAR, 3 arguments, scope txn
        2, b'o', b'k', // name
        0x11, // BOOL true
    ];
    assert_eq!(&bytes[..], expected);
}

#[test]
fn notify_from_haproxy_bytes_decode() {
    // A NOTIFY as HAProxy lays it out: message name, NB-ARGS, then name/typed-value pairs.
    let mut raw = BytesMut::new();
    raw.put_u8(3);
    raw.put_u32(1);
    raw.put_slice(&[7, 1]);
    raw.put_slice(&[10]);
    raw.put_slice(b"check-auth");
    raw.put_u8(1);
    raw.put_slice(&[5]);
    raw.put_slice(b"token");
    raw.put_slice(&[0x08, 4]);
    raw.put_slice(b"abcd");
    let mut framed = BytesMut::new();
    framed.put_u32(raw.len() as u32);
    framed.put_slice(&raw);
    let Some(Frame::Notify(notify)) = Frame::decode(&mut framed, MAX).expect("valid") else {
        panic!("not a NOTIFY");
    };
    assert_eq!((notify.stream_id, notify.frame_id), (7, 1));
    assert_eq!(notify.messages.len(), 1);
    assert_eq!(notify.messages[0].name.as_ref(), b"check-auth");
    assert_eq!(
        notify.messages[0]
            .arg("token")
            .and_then(TypedData::as_bytes),
        Some(&b"abcd"[..])
    );
}

#[test]
fn frames_arrive_in_pieces_and_back_to_back() {
    let mut stream = encoded(&Frame::Notify(notify()));
    stream.extend_from_slice(&encoded(&Frame::HaproxyDisconnect(Disconnect {
        status_code: 0,
        message: "done".into(),
    })));
    let mut input = BytesMut::new();
    let mut frames = Vec::new();
    for byte in stream.iter() {
        input.put_u8(*byte);
        while let Some(frame) = Frame::decode(&mut input, MAX).expect("valid") {
            frames.push(frame);
        }
    }
    assert_eq!(frames.len(), 2);
    assert!(matches!(frames[0], Frame::Notify(_)));
    assert!(matches!(frames[1], Frame::HaproxyDisconnect(_)));
    assert!(input.is_empty());
}

#[test]
fn a_frame_larger_than_negotiated_is_refused_before_it_is_buffered() {
    let mut input = BytesMut::new();
    input.put_u32(MAX + 1);
    let error = Frame::decode(&mut input, MAX).unwrap_err();
    assert_eq!(
        error,
        SpopError::TooBig {
            size: MAX + 1,
            max: MAX
        }
    );
    assert_eq!(error.status_code(), status::TOO_BIG);
    let mut huge = BytesMut::new();
    huge.put_u32(u32::MAX);
    assert!(Frame::decode(&mut huge, MAX).is_err());
}

#[test]
fn fragments_are_refused() {
    let mut bytes = encoded(&Frame::Notify(notify()));
    bytes[8] = 0; // flags: FIN cleared
    let error = Frame::decode(&mut bytes, MAX).unwrap_err();
    assert_eq!(error, SpopError::Fragmented);
    assert_eq!(error.status_code(), status::FRAGMENTATION);
    let mut unset = encoded(&Frame::Notify(notify()));
    unset[4] = 0; // type UNSET: a continuation fragment
    assert_eq!(
        Frame::decode(&mut unset, MAX).unwrap_err(),
        SpopError::Fragmented
    );
}

#[test]
fn hello_without_mandatory_items_maps_to_its_status_code() {
    let without = |key: &str| {
        let mut raw = BytesMut::new();
        raw.put_u8(1);
        raw.put_u32(1);
        raw.put_slice(&[0, 0]);
        let items = [
            ("supported-versions", TypedData::string("2.0")),
            ("max-frame-size", TypedData::Uint32(MAX)),
            ("capabilities", TypedData::string("")),
        ];
        for (name, value) in items.iter().filter(|(n, _)| *n != key) {
            raw.put_u8(name.len() as u8);
            raw.put_slice(name.as_bytes());
            value.encode(&mut raw);
        }
        Frame::parse(raw.freeze())
    };
    assert_eq!(
        without("supported-versions").unwrap_err().status_code(),
        status::NO_VERSION
    );
    assert_eq!(
        without("max-frame-size").unwrap_err().status_code(),
        status::NO_FRAME_SIZE
    );
    assert_eq!(
        without("capabilities").unwrap_err().status_code(),
        status::NO_CAPABILITIES
    );
    assert!(without("none").is_ok());
}

#[test]
fn hello_with_nonzero_ids_is_invalid() {
    let mut bytes = encoded(&Frame::HaproxyHello(hello()));
    bytes[9] = 1; // stream id
    let error = Frame::decode(&mut bytes, MAX).unwrap_err();
    assert!(matches!(error, SpopError::Invalid(_)), "{error:?}");
    assert_eq!(error.status_code(), status::INVALID);
}

#[test]
fn every_truncation_of_every_frame_is_an_error_not_a_panic() {
    let frames = [
        Frame::HaproxyHello(hello()),
        Frame::Notify(notify()),
        Frame::Ack(ack()),
        Frame::AgentDisconnect(Disconnect {
            status_code: 4,
            message: "invalid".into(),
        }),
    ];
    for frame in frames {
        let full = encoded(&frame).freeze();
        let body = full.slice(4..);
        for cut in 0..body.len() {
            // A frame whose length prefix says `cut` bytes: the payload ends early.
            let result = Frame::parse(body.slice(..cut));
            let acceptable = match &result {
                Err(_) => true,
                // Cutting a list exactly between two items leaves a shorter, valid list.
                Ok(decoded) => decoded != &frame,
            };
            assert!(acceptable, "{frame:?} cut at {cut}: {result:?}");
        }
    }
}

#[test]
fn malformed_payloads_are_errors() {
    let header = |frame_type: u8| {
        let mut raw = BytesMut::new();
        raw.put_u8(frame_type);
        raw.put_u32(1);
        raw.put_slice(&[1, 1]);
        raw
    };
    // NOTIFY whose NB-ARGS promises more arguments than follow.
    let mut notify = header(3);
    notify.put_slice(&[1, b'm', 3, 1, b'a', 0x00]);
    assert_eq!(
        Frame::parse(notify.freeze()),
        Err(SpopError::Truncated("argument name"))
    );
    // NOTIFY with a reserved data type.
    let mut reserved = header(3);
    reserved.put_slice(&[1, b'm', 1, 1, b'a', 0x0C]);
    assert_eq!(
        Frame::parse(reserved.freeze()),
        Err(SpopError::UnknownDataType(12))
    );
    // ACK with an unknown action and with a bad scope.
    let mut action = header(103);
    action.put_slice(&[9, 0]);
    assert!(matches!(
        Frame::parse(action.freeze()),
        Err(SpopError::Invalid(_))
    ));
    let mut scope = header(103);
    scope.put_slice(&[1, 3, 7, 1, b'v', 0x00]);
    assert!(matches!(
        Frame::parse(scope.freeze()),
        Err(SpopError::Invalid(_))
    ));
    // A message name whose length runs past the frame.
    let mut name = header(3);
    name.put_slice(&[0xF0, 0x10, b'x']);
    assert_eq!(
        Frame::parse(name.freeze()),
        Err(SpopError::Truncated("message name"))
    );
    // An unknown frame type is reported, not an error (the spec lets peers skip it).
    assert_eq!(Frame::parse(header(42).freeze()), Ok(Frame::Unknown(42)));
}
