//! Every message type survives encode → frame codec → decode unchanged, in JSON and in
//! MessagePack, for arbitrary field values (property tests).

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use sentinel_agent_protocol::*;
use serde_json::{Map, Value};
use tokio_util::codec::{Decoder, Encoder};

fn text() -> impl Strategy<Value = String> {
    // Arbitrary Unicode, including quotes, escapes and control characters.
    any::<String>().prop_map(|s| s.chars().take(40).collect())
}

fn header_pairs() -> impl Strategy<Value = Vec<HeaderPair>> {
    proptest::collection::vec((text(), text()), 0..6)
}

fn bytes() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    proptest::collection::btree_map(text(), json_value(), 0..4)
        .prop_map(|m| m.into_iter().collect())
}

fn capabilities() -> impl Strategy<Value = Capabilities> {
    (any::<[bool; 6]>(), proptest::option::of(any::<u32>())).prop_map(|(f, max)| Capabilities {
        handles_request_headers: f[0],
        handles_request_body: f[1],
        handles_response_headers: f[2],
        handles_response_body: f[3],
        supports_streaming: f[4],
        supports_cancellation: f[5],
        max_concurrent_requests: max,
    })
}

fn registration_request() -> impl Strategy<Value = Message> {
    (
        text(),
        capabilities(),
        proptest::option::of(text().prop_map(AuthToken::new)),
        json_object(),
        proptest::collection::vec(text(), 0..3),
    )
        .prop_map(
            |(agent_id, capabilities, auth_token, metadata, encodings)| {
                RegistrationRequest {
                    protocol_version: PROTOCOL_VERSION,
                    agent_id,
                    capabilities,
                    auth_token,
                    metadata,
                    encodings,
                }
                .into()
            },
        )
}

fn error_code() -> impl Strategy<Value = RegistrationErrorCode> {
    proptest::sample::select(RegistrationErrorCode::ALL.to_vec())
}

fn registration_response() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            text(),
            proptest::option::of(json_value()),
            any::<bool>(),
            any::<u64>()
        )
            .prop_map(|(assigned_id, config, msgpack, heartbeat_interval_ms)| {
                RegistrationResponse::Accepted {
                    assigned_id,
                    // JSON cannot tell `"config": null` from no config; both mean "none".
                    config: config.filter(|c| !c.is_null()),
                    encoding: if msgpack {
                        Encoding::MessagePack
                    } else {
                        Encoding::Json
                    },
                    heartbeat_interval_ms,
                }
                .into()
            }),
        (error_code(), text()).prop_map(|(error, message)| RegistrationResponse::Rejected {
            error,
            message
        }
        .into()),
    ]
}

fn header_op() -> impl Strategy<Value = HeaderOp> {
    prop_oneof![
        (text(), text()).prop_map(|(name, value)| HeaderOp::Set { name, value }),
        (text(), text()).prop_map(|(name, value)| HeaderOp::Add { name, value }),
        text().prop_map(|name| HeaderOp::Remove { name }),
    ]
}

fn decision() -> impl Strategy<Value = Message> {
    let action = prop_oneof![
        Just(Action::Allow),
        Just(Action::Continue),
        (any::<u16>(), proptest::option::of(text()), header_pairs()).prop_map(
            |(status, body, headers)| Action::Block {
                status,
                body,
                headers
            }
        ),
        (text(), any::<u16>()).prop_map(|(location, status)| Action::Redirect { location, status }),
    ];
    let audit = (
        proptest::collection::vec(text(), 0..3),
        proptest::collection::vec(text(), 0..3),
        proptest::option::of(text()),
    )
        .prop_map(|(tags, rule_ids, reason)| Audit {
            tags,
            rule_ids,
            reason,
        });
    (
        any::<u64>(),
        action,
        proptest::collection::vec(header_op(), 0..4),
        proptest::collection::vec(header_op(), 0..4),
        proptest::option::of(bytes()),
        proptest::option::of(audit),
    )
        .prop_map(
            |(request_id, action, request_headers, response_headers, body, audit)| {
                // A chunk replacement only exists on allow/continue (see `Decision::body`).
                let body = body.filter(|_| !action.is_final() || action == Action::Allow);
                Decision {
                    request_id,
                    action,
                    request_headers,
                    response_headers,
                    body,
                    audit,
                }
                .into()
            },
        )
}

fn body_chunk() -> impl Strategy<Value = BodyChunk> {
    (any::<u64>(), any::<u64>(), bytes(), any::<bool>()).prop_map(
        |(request_id, chunk_index, data, is_last)| BodyChunk {
            request_id,
            chunk_index,
            data,
            is_last,
        },
    )
}

fn any_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        registration_request(),
        registration_response(),
        (
            any::<u64>(),
            text(),
            text(),
            text(),
            header_pairs(),
            text(),
            text(),
            any::<bool>()
        )
            .prop_map(
                |(request_id, method, uri, version, headers, client_addr, route, has_body)| {
                    RequestHeaders {
                        request_id,
                        method,
                        uri,
                        version,
                        headers,
                        client_addr,
                        route,
                        has_body,
                    }
                    .into()
                }
            ),
        body_chunk().prop_map(Message::RequestBodyChunk),
        (any::<u64>(), any::<u16>(), header_pairs(), any::<bool>()).prop_map(
            |(request_id, status, headers, has_body)| ResponseHeaders {
                request_id,
                status,
                headers,
                has_body
            }
            .into()
        ),
        body_chunk().prop_map(Message::ResponseBodyChunk),
        decision(),
        (any::<u64>(), text(), text()).prop_map(|(request_id, code, message)| RequestError {
            request_id,
            code,
            message
        }
        .into()),
        (any::<u64>(), text()).prop_map(|(request_id, reason)| Cancel {
            request_id,
            reason: reason.into()
        }
        .into()),
        text().prop_map(|reason| CancelAll {
            reason: reason.into()
        }
        .into()),
        json_value().prop_map(|config| ConfigUpdate { config }.into()),
        (text(), any::<u64>()).prop_map(|(reason, grace_ms)| GoAway { reason, grace_ms }.into()),
        any::<u64>().prop_map(|nonce| Ping { nonce }.into()),
        any::<u64>().prop_map(|nonce| Pong { nonce }.into()),
    ]
}

fn through_the_wire(message: &Message, encoding: Encoding) -> Message {
    let mut codec = FrameCodec::new();
    let mut wire = BytesMut::new();
    codec
        .encode(message.to_frame(encoding).expect("encodes"), &mut wire)
        .expect("fits in a frame");
    let frame = codec.decode(&mut wire).expect("valid").expect("complete");
    assert!(wire.is_empty(), "one frame, nothing left over");
    Message::from_frame(&frame, encoding).expect("decodes")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn every_message_round_trips_in_json(message in any_message()) {
        prop_assert_eq!(through_the_wire(&message, Encoding::Json), message);
    }

    #[test]
    fn every_message_round_trips_in_msgpack(message in any_message()) {
        prop_assert_eq!(through_the_wire(&message, Encoding::MessagePack), message);
    }

    #[test]
    fn msgpack_bodies_are_raw_bytes(chunk in body_chunk()) {
        let frame = Message::RequestBodyChunk(chunk.clone()).to_frame(Encoding::MessagePack).unwrap();
        // The payload contains the data verbatim (a `bin` value), not base64.
        if chunk.data.len() > 8 {
            prop_assert!(frame.payload.windows(chunk.data.len()).any(|w| w == &chunk.data[..]));
        }
    }
}

#[test]
fn every_message_type_is_covered() {
    // The strategy above must produce all 14 types; fail loudly if one is added without it.
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = any_message();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..2000 {
        seen.insert(
            strategy
                .new_tree(&mut runner)
                .unwrap()
                .current()
                .message_type(),
        );
    }
    assert_eq!(seen.len(), MessageType::ALL.len(), "seen: {seen:?}");
}
