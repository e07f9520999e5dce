//! Property tests of the two paths the proxy's fuzz targets cover, run in CI: registrations
//! built from the pieces that matter (version, id, token, allowlist, encodings, frame type),
//! then optionally damaged, through the real handshake on two connections; and registered
//! agents playing generated scripts while requests are in flight. The invariants are those of
//! `sentinel::fuzzing`. `SENTINEL_PROPTEST_CASES` raises the case count of each property (it cannot lower it).

mod fuzz_support;

use proptest::prelude::*;
use proptest::test_runner::Config;
use sentinel::fuzzing::{check_registration, check_session, AgentOp, AgentScript};
use sentinel_agent_protocol::Encoding;
use serde_json::{json, Map, Value};

/// Default cases per property (see docs/security.md for how long they take).
const DEFAULT_CASES: u32 = 20_000;

fn config() -> Config {
    Config {
        cases: fuzz_support::cases(DEFAULT_CASES),
        // Failures are kept as tests/fuzz_corpus files instead.
        failure_persistence: None,
        ..Config::default()
    }
}

fn version() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        4 => Just(Some(json!(2))),
        1 => Just(Some(json!(1))),
        1 => Just(Some(json!("2"))),
        1 => Just(Some(json!(2.5))),
        1 => Just(Some(Value::Null)),
        1 => Just(None),
    ]
}

fn agent_id() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        3 => Just(Some(json!("fuzz-1"))),
        2 => "fuzz-2[a-z0-9._-]{0,8}".prop_map(|s| Some(json!(s))),
        1 => Just(Some(json!("fuzz-3"))),
        1 => "[ -~]{0,12}".prop_map(|s| Some(json!(s))),
        1 => Just(Some(json!("x".repeat(200)))),
        1 => Just(Some(json!(7))),
        1 => Just(None),
    ]
}

fn token() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        4 => Just(Some(json!("fuzz-secret-token"))),
        1 => Just(Some(json!("fuzz-secret-tokem"))),
        1 => Just(Some(json!(""))),
        1 => Just(Some(json!(12345))),
        1 => Just(Some(json!(["fuzz-secret-token"]))),
        1 => Just(Some(Value::Null)),
        1 => Just(None),
    ]
}

fn encodings() -> impl Strategy<Value = Option<Value>> {
    let name = prop::sample::select(vec!["json", "msgpack", "cbor", "", "JSON"]);
    prop_oneof![
        3 => prop::collection::vec(name, 0..4).prop_map(|v| Some(json!(v))),
        1 => Just(Some(json!("json"))),
        1 => Just(None),
    ]
}

fn capabilities() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        2 => (any::<bool>(), prop::option::of(any::<u32>())).prop_map(|(headers, max)| {
            Some(json!({ "handles_request_headers": headers, "max_concurrent_requests": max }))
        }),
        1 => Just(Some(json!({ "max_concurrent_requests": -1 }))),
        1 => Just(Some(json!("all"))),
        1 => Just(None),
    ]
}

/// A registration frame from the generated fields, then maybe damaged.
fn registration_wire() -> impl Strategy<Value = Vec<u8>> {
    let fields = (version(), agent_id(), token(), encodings(), capabilities());
    let frame_type = prop_oneof![6 => Just(0x01u8), 1 => any::<u8>()];
    let damage = prop_oneof![
        4 => Just(Damage::None),
        1 => any::<prop::sample::Index>().prop_map(Damage::Truncate),
        1 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Flip(i, b)),
        1 => prop::collection::vec(any::<u8>(), 1..40).prop_map(Damage::Append),
    ];
    (fields, frame_type, damage).prop_map(|((v, id, token, enc, caps), frame_type, damage)| {
        let mut object = Map::new();
        for (key, value) in [
            ("protocol_version", v),
            ("agent_id", id),
            ("auth_token", token),
            ("encodings", enc),
            ("capabilities", caps),
        ] {
            if let Some(value) = value {
                object.insert(key.to_string(), value);
            }
        }
        let payload = serde_json::to_vec(&Value::Object(object)).expect("JSON");
        let mut wire = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
        wire.push(frame_type);
        wire.extend(payload);
        damage.apply(&mut wire);
        wire
    })
}

#[derive(Debug, Clone)]
enum Damage {
    None,
    Truncate(prop::sample::Index),
    Flip(prop::sample::Index, u8),
    Append(Vec<u8>),
}

impl Damage {
    fn apply(&self, wire: &mut Vec<u8>) {
        match self {
            Damage::None => {}
            Damage::Truncate(at) => wire.truncate(at.index(wire.len())),
            Damage::Flip(at, byte) => {
                let at = at.index(wire.len());
                wire[at] = *byte;
            }
            Damage::Append(bytes) => wire.extend(bytes),
        }
    }
}

/// Request ids and nonces near the ones in use, so that known and unknown ids both occur.
fn agent_op() -> impl Strategy<Value = AgentOp> {
    let id = 0u64..10;
    prop_oneof![
        6 => (id.clone(), 0u8..4, prop_oneof![Just(403u16), Just(302), any::<u16>()])
            .prop_map(|(request_id, action, status)| AgentOp::Decision { request_id, action, status }),
        2 => id.clone().prop_map(|request_id| AgentOp::RequestError { request_id }),
        2 => (0u64..5).prop_map(|nonce| AgentOp::Pong { nonce }),
        1 => any::<u64>().prop_map(|nonce| AgentOp::Ping { nonce }),
        1 => (0u64..5000).prop_map(|grace_ms| AgentOp::GoAway { grace_ms }),
        2 => (any::<u8>(), prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(type_byte, payload)| AgentOp::Frame { type_byte, payload }),
        1 => prop::collection::vec(any::<u8>(), 0..12).prop_map(AgentOp::Bytes),
        1 => any::<u32>().prop_map(|length| AgentOp::Announce { length }),
        2 => (0u64..3000).prop_map(|millis| AgentOp::Wait { millis }),
        1 => id.prop_map(|request_id| AgentOp::DropRequest { request_id }),
    ]
}

fn agent_script() -> impl Strategy<Value = AgentScript> {
    (
        any::<bool>(),
        prop::option::of(0u32..10),
        0usize..=8,
        prop::collection::vec(agent_op(), 0..24),
        any::<bool>(),
    )
        .prop_map(|(msgpack, max, requests, ops, hang_up)| AgentScript {
            encoding: if msgpack {
                Encoding::MessagePack
            } else {
                Encoding::Json
            },
            max_concurrent_requests: max,
            requests,
            ops,
            hang_up,
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn registrations_get_the_contracts_answer_and_leave_nothing_behind(wire in registration_wire()) {
        let checked = fuzz_support::run(check_registration(&wire));
        prop_assert!(checked.is_ok(), "{:?} for {:?}", checked, String::from_utf8_lossy(&wire));
    }

    #[test]
    fn raw_bytes_on_a_fresh_connection_are_answered(wire in prop::collection::vec(any::<u8>(), 0..64)) {
        let checked = fuzz_support::run(check_registration(&wire));
        prop_assert!(checked.is_ok(), "{:?} for {:?}", checked, wire);
    }

    #[test]
    fn every_request_ends_whatever_the_agent_sends(script in agent_script()) {
        let checked = fuzz_support::run(check_session(&script));
        prop_assert!(checked.is_ok(), "{:?}\nreplay bytes: {:?}", checked, script.to_bytes());
    }
}
