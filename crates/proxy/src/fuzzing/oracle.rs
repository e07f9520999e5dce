//! The registration oracle: which answer the bytes a peer sends on a fresh connection deserve,
//! decided from PROTOCOL.md §1–§3 alone. It shares no code with the proxy's codec, message
//! types or validator — it reads the length prefix by hand, the payload with `serde_json::Value`
//! and the id syntax with its own matcher — so a wrong rejection code in the proxy fails the
//! fuzz target and the property tests instead of being copied into their expectation.
//!
//! The order is the contract's: the frame is complete and well formed (`invalid_request`, or
//! `timeout` when it never completes) → `protocol_version` is 2 (`version_mismatch`) → the rest
//! of the body follows the v2 schema (`invalid_request`) → `agent_id` syntax
//! (`invalid_agent_id`) → auth (`auth_failed`) → allowlist (`not_allowed`). The connection
//! limit (check 6) depends on the other connections and is judged by the driver.
//!
//! The reading of "well formed" where §3 is terse, as docs/protocol.md states it: the body is
//! one JSON object; a `protocol_version` that is present and numeric is judged before the rest
//! of the schema (so a newer agent learns it speaks the wrong version), while a missing or
//! non-numeric one makes the body malformed; a later duplicate key replaces an earlier one.

use serde_json::{Map, Value};

/// The registration frame's type byte (§2).
const REGISTRATION_REQUEST: u8 = 0x01;
/// The only protocol version (§3).
const VERSION: u64 = 2;

/// The policy of the listener under test, as plain data.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// Largest accepted value of the length prefix of the first frame.
    pub max_frame_length: u64,
    /// `(agent-id pattern, token)`: a token is valid for the ids its pattern matches.
    pub tokens: Vec<(&'static str, &'static str)>,
    /// Allowlist patterns; empty means no allowlist.
    pub allowed: Vec<&'static str>,
}

/// What the oracle says the peer must be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Admitted, subject to the per-agent connection limit.
    Admissible,
    /// Refused with this §3 error code.
    Refused(&'static str),
}

/// Judges `wire`, everything the peer sends before it waits for an answer.
pub(crate) fn judge(policy: &Policy, wire: &[u8]) -> Verdict {
    let Some(prefix) = wire.get(..4) else {
        return Verdict::Refused("timeout");
    };
    let length = u64::from(u32::from_be_bytes([
        prefix[0], prefix[1], prefix[2], prefix[3],
    ]));
    if length == 0 || length > policy.max_frame_length {
        return Verdict::Refused("invalid_request");
    }
    let Some(frame) = wire.get(4..4 + length as usize) else {
        return Verdict::Refused("timeout");
    };
    if frame[0] != REGISTRATION_REQUEST {
        return Verdict::Refused("invalid_request");
    }
    match judge_body(policy, &frame[1..]) {
        Ok(()) => Verdict::Admissible,
        Err(code) => Verdict::Refused(code),
    }
}

fn judge_body(policy: &Policy, payload: &[u8]) -> Result<(), &'static str> {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(payload) else {
        return Err("invalid_request");
    };
    match body.get("protocol_version") {
        Some(Value::Number(n)) if n.as_u64() == Some(VERSION) => {}
        Some(Value::Number(_)) => return Err("version_mismatch"),
        _ => return Err("invalid_request"),
    }
    if !follows_v2_schema(&body) {
        return Err("invalid_request");
    }
    let id = body.get("agent_id").and_then(Value::as_str).unwrap_or("");
    if !is_agent_id(id) {
        return Err("invalid_agent_id");
    }
    let token = body.get("auth_token").and_then(Value::as_str);
    let authenticated = policy
        .tokens
        .iter()
        .any(|(pattern, secret)| wildcard(pattern, id) && token == Some(secret));
    if !policy.tokens.is_empty() && !authenticated {
        return Err("auth_failed");
    }
    if !policy.allowed.is_empty() && !policy.allowed.iter().any(|p| wildcard(p, id)) {
        return Err("not_allowed");
    }
    Ok(())
}

/// The v2 RegistrationRequest schema of §3: `agent_id` a string; `auth_token`, `metadata`,
/// `encodings` and `capabilities` absent, null or of their type; capability flags booleans and
/// `max_concurrent_requests` a u32 or null. Fields it does not name are ignored.
fn follows_v2_schema(body: &Map<String, Value>) -> bool {
    let absent_null_or = |key: &str, ok: &dyn Fn(&Value) -> bool| match body.get(key) {
        None | Some(Value::Null) => true,
        Some(value) => ok(value),
    };
    body.get("agent_id").is_some_and(Value::is_string)
        && absent_null_or("auth_token", &Value::is_string)
        && absent_null_or("metadata", &Value::is_object)
        && absent_null_or("encodings", &|v| {
            v.as_array()
                .is_some_and(|items| items.iter().all(Value::is_string))
        })
        && absent_null_or("capabilities", &|v| {
            v.as_object().is_some_and(follows_capabilities_schema)
        })
}

fn follows_capabilities_schema(capabilities: &Map<String, Value>) -> bool {
    const FLAGS: [&str; 6] = [
        "handles_request_headers",
        "handles_request_body",
        "handles_response_headers",
        "handles_response_body",
        "supports_streaming",
        "supports_cancellation",
    ];
    let flags_ok = FLAGS
        .iter()
        .all(|flag| capabilities.get(*flag).is_none_or(Value::is_boolean));
    let limit_ok = match capabilities.get("max_concurrent_requests") {
        None | Some(Value::Null) => true,
        Some(value) => value.as_u64().is_some_and(|n| n <= u64::from(u32::MAX)),
    };
    flags_ok && limit_ok
}

/// `^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`, written out.
fn is_agent_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    let tail_ok = |b: &u8| b.is_ascii_alphanumeric() || b".-_:".contains(b);
    !bytes.is_empty()
        && bytes.len() <= 128
        && bytes[0].is_ascii_alphanumeric()
        && bytes[1..].iter().all(tail_ok)
}

/// `*` matches any run of characters (also none), `?` exactly one; everything else itself.
fn wildcard(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), text.chars().collect());
    // matches[j]: the pattern so far matches text[..j].
    let mut matches = vec![false; text.len() + 1];
    matches[0] = true;
    for p in &pattern {
        let mut next = vec![false; text.len() + 1];
        for j in 0..=text.len() {
            next[j] = match p {
                '*' => matches[j] || (j > 0 && next[j - 1]),
                '?' => j > 0 && matches[j - 1],
                c => j > 0 && matches[j - 1] && text[j - 1] == *c,
            };
        }
        matches = next;
    }
    matches[text.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            max_frame_length: 4096,
            tokens: vec![("fuzz-*", "secret")],
            allowed: vec!["fuzz-1", "fuzz-2*"],
        }
    }

    fn frame(type_byte: u8, body: &str) -> Vec<u8> {
        let mut wire = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        wire.push(type_byte);
        wire.extend_from_slice(body.as_bytes());
        wire
    }

    fn judged(body: &str) -> Verdict {
        judge(&policy(), &frame(0x01, body))
    }

    #[test]
    fn each_check_in_the_order_of_the_contract() {
        let refused = Verdict::Refused;
        assert_eq!(judge(&policy(), b"\0\0"), refused("timeout"));
        assert_eq!(judge(&policy(), &[0, 0, 0, 0]), refused("invalid_request"));
        assert_eq!(judge(&policy(), &[0, 0, 16, 1]), refused("invalid_request"));
        assert_eq!(judge(&policy(), &[0, 0, 0, 9, 1]), refused("timeout"));
        assert_eq!(
            judge(&policy(), &frame(0x10, "{}")),
            refused("invalid_request")
        );
        assert_eq!(judged("[]"), refused("invalid_request"));
        assert_eq!(
            judged(r#"{"agent_id":"fuzz-1"}"#),
            refused("invalid_request")
        );
        assert_eq!(
            judged(r#"{"protocol_version":3,"agent_id":7}"#),
            refused("version_mismatch")
        );
        assert_eq!(
            judged(r#"{"protocol_version":2.0}"#),
            refused("version_mismatch")
        );
        assert_eq!(
            judged(r#"{"protocol_version":2,"agent_id":7}"#),
            refused("invalid_request")
        );
        let caps =
            r#"{"protocol_version":2,"agent_id":"fuzz-1","capabilities":{"supports_streaming":1}}"#;
        assert_eq!(judged(caps), refused("invalid_request"));
        assert_eq!(
            judged(r#"{"protocol_version":2,"agent_id":"-x"}"#),
            refused("invalid_agent_id")
        );
        assert_eq!(
            judged(r#"{"protocol_version":2,"agent_id":"fuzz-1"}"#),
            refused("auth_failed")
        );
        let wrong_scope = r#"{"protocol_version":2,"agent_id":"waf-1","auth_token":"secret"}"#;
        assert_eq!(judged(wrong_scope), refused("auth_failed"));
        let not_listed = r#"{"protocol_version":2,"agent_id":"fuzz-3","auth_token":"secret"}"#;
        assert_eq!(judged(not_listed), refused("not_allowed"));
        let good = r#"{"protocol_version":2,"agent_id":"fuzz-22","auth_token":"secret",
            "capabilities":null,"metadata":{"v":1},"encodings":["json"],"extra":true}"#;
        assert_eq!(judged(good), Verdict::Admissible);
    }

    #[test]
    fn the_id_syntax_and_wildcards_are_written_out() {
        assert!(is_agent_id("a") && is_agent_id("W.a_f:1-2") && is_agent_id(&"a".repeat(128)));
        assert!(!is_agent_id("") && !is_agent_id("_a") && !is_agent_id(&"a".repeat(129)));
        assert!(!is_agent_id("a b") && !is_agent_id("é"));
        assert!(wildcard("fuzz-*", "fuzz-") && wildcard("*", "") && wildcard("f?zz", "fuzz"));
        assert!(!wildcard("fuzz-?", "fuzz-") && !wildcard("fuzz-1", "fuzz-10"));
        assert!(wildcard("a*b*c", "aXbYbc") && !wildcard("a*b*c", "aXbY"));
    }
}
