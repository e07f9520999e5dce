//! The JSON examples of PROTOCOL.md §3–§5, copied verbatim, must decode as written and
//! re-encode to equivalent JSON.

use sentinel_agent_protocol::*;
use serde_json::{json, Value};

fn decode(message_type: MessageType, json: &str) -> Message {
    let frame = Frame::new(message_type, json.as_bytes().to_vec());
    Message::from_frame(&frame, Encoding::Json)
        .unwrap_or_else(|e| panic!("PROTOCOL.md example for {message_type} must parse: {e}"))
}

fn reencoded(message: &Message) -> Value {
    let frame = message.to_frame(Encoding::Json).expect("encode");
    serde_json::from_slice(&frame.payload).expect("our JSON is JSON")
}

#[test]
fn registration_request_example() {
    let text = r#"{
  "protocol_version": 2,
  "agent_id": "waf-worker-3",
  "capabilities": {
    "handles_request_headers": true,
    "handles_request_body": true,
    "handles_response_headers": false,
    "handles_response_body": false,
    "supports_streaming": true,
    "supports_cancellation": true,
    "max_concurrent_requests": 100
  },
  "auth_token": "secret-token",
  "metadata": { "version": "1.2.0" },
  "encodings": ["msgpack", "json"]
}"#;
    let Message::RegistrationRequest(request) = decode(MessageType::RegistrationRequest, text)
    else {
        panic!("wrong variant")
    };
    assert_eq!(request.agent_id, "waf-worker-3");
    assert!(request.capabilities.handles_request_body);
    assert!(!request.capabilities.handles_response_headers);
    assert_eq!(request.capabilities.max_concurrent_requests, Some(100));
    assert_eq!(
        request.auth_token.as_ref().map(AuthToken::expose),
        Some("secret-token")
    );
    assert_eq!(request.metadata["version"], "1.2.0");
    assert_eq!(request.encodings, ["msgpack", "json"]);
    let original: Value = serde_json::from_str(text).unwrap();
    assert_eq!(reencoded(&Message::RegistrationRequest(request)), original);
}

#[test]
fn minimal_registration_request_with_nulls() {
    let text = r#"{"protocol_version": 2, "agent_id": "a", "capabilities": {},
                   "auth_token": null, "metadata": null, "encodings": null}"#;
    let request = RegistrationRequest::parse(text.as_bytes()).expect("nulls are allowed");
    assert_eq!(request.capabilities, Capabilities::default());
    assert!(request.auth_token.is_none() && request.metadata.is_empty());
    assert!(request.encodings.is_empty());
}

#[test]
fn registration_request_parse_classifies_failures() {
    let cases: [(&str, RegistrationErrorCode); 6] = [
        ("not json", RegistrationErrorCode::InvalidRequest),
        ("[1,2]", RegistrationErrorCode::InvalidRequest),
        (r#"{"agent_id":"a"}"#, RegistrationErrorCode::InvalidRequest),
        (
            r#"{"protocol_version":"2","agent_id":"a"}"#,
            RegistrationErrorCode::InvalidRequest,
        ),
        (
            r#"{"protocol_version":3,"whatever":[]}"#,
            RegistrationErrorCode::VersionMismatch,
        ),
        (
            r#"{"protocol_version":2,"agent_id":7}"#,
            RegistrationErrorCode::InvalidRequest,
        ),
    ];
    for (text, expected) in cases {
        let (code, message) = RegistrationRequest::parse(text.as_bytes()).unwrap_err();
        assert_eq!(code, expected, "{text}: {message}");
    }
}

#[test]
fn registration_response_examples() {
    let accepted = r#"{ "accepted": true, "assigned_id": "waf-worker-3-conn-7", "config": { "rules_version": "3.4.0" },
  "encoding": "json", "heartbeat_interval_ms": 10000 }"#;
    let rejected =
        r#"{ "accepted": false, "error": "auth_failed", "message": "Authentication failed" }"#;
    let Message::RegistrationResponse(response) =
        decode(MessageType::RegistrationResponse, accepted)
    else {
        panic!("wrong variant")
    };
    assert_eq!(
        *response,
        RegistrationResponse::Accepted {
            assigned_id: "waf-worker-3-conn-7".into(),
            config: Some(json!({"rules_version": "3.4.0"})),
            encoding: Encoding::Json,
            heartbeat_interval_ms: 10000,
        }
    );
    assert_eq!(
        reencoded(&Message::RegistrationResponse(response)),
        serde_json::from_str::<Value>(accepted).unwrap()
    );
    let Message::RegistrationResponse(response) =
        decode(MessageType::RegistrationResponse, rejected)
    else {
        panic!("wrong variant")
    };
    assert_eq!(
        *response,
        RegistrationResponse::rejected(RegistrationErrorCode::AuthFailed)
    );
    assert_eq!(
        reencoded(&Message::RegistrationResponse(response)),
        serde_json::from_str::<Value>(rejected).unwrap()
    );
}

#[test]
fn request_and_response_event_examples() {
    let headers = r#"{ "request_id": 42, "method": "POST", "uri": "/login?next=%2F", "version": "HTTP/1.1",
  "headers": [["host", "example.com"], ["cookie", "a=1"], ["cookie", "b=2"]],
  "client_addr": "203.0.113.7:51234", "route": "default", "has_body": true }"#;
    let Message::RequestHeaders(event) = decode(MessageType::RequestHeaders, headers) else {
        panic!("wrong variant")
    };
    assert_eq!(event.headers.len(), 3, "repeated names stay repeated");
    assert_eq!(event.headers[2], ("cookie".to_string(), "b=2".to_string()));
    assert_eq!(
        reencoded(&Message::RequestHeaders(event)),
        serde_json::from_str::<Value>(headers).unwrap()
    );

    let response = r#"{ "request_id": 42, "status": 200, "headers": [["content-type", "text/html"]], "has_body": true }"#;
    let Message::ResponseHeaders(event) = decode(MessageType::ResponseHeaders, response) else {
        panic!("wrong variant")
    };
    assert_eq!(event.status, 200);

    let chunk = r#"{ "request_id": 42, "chunk_index": 0, "data": "aGVsbG8=", "is_last": false }"#;
    for message_type in [
        MessageType::RequestBodyChunk,
        MessageType::ResponseBodyChunk,
    ] {
        let (Message::RequestBodyChunk(chunk) | Message::ResponseBodyChunk(chunk)) =
            decode(message_type, chunk)
        else {
            panic!("wrong variant")
        };
        assert_eq!(&chunk.data[..], b"hello");
    }
}

#[test]
fn decision_example() {
    let text = r#"{ "request_id": 42,
  "action": "allow",
  "request_headers":  [{ "op": "set", "name": "x-user", "value": "alice" }, { "op": "remove", "name": "cookie" }],
  "response_headers": [{ "op": "add", "name": "x-waf", "value": "checked" }],
  "body": null,
  "audit": { "tags": ["sqli"], "rule_ids": ["942100"], "reason": "SQL injection in query" } }"#;
    let Message::Decision(decision) = decode(MessageType::Decision, text) else {
        panic!("wrong variant")
    };
    assert_eq!(decision.action, Action::Allow);
    assert_eq!(
        decision.request_headers,
        [
            HeaderOp::Set {
                name: "x-user".into(),
                value: "alice".into()
            },
            HeaderOp::Remove {
                name: "cookie".into()
            }
        ]
    );
    assert_eq!(
        decision.response_headers,
        [HeaderOp::Add {
            name: "x-waf".into(),
            value: "checked".into()
        }]
    );
    assert_eq!(decision.body, None);
    let audit = decision.audit.clone().expect("audit");
    assert_eq!(audit.rule_ids, ["942100"]);
    assert_eq!(audit.reason.as_deref(), Some("SQL injection in query"));
    let mut expected: Value = serde_json::from_str(text).unwrap();
    expected.as_object_mut().unwrap().remove("body"); // null and absent mean the same
    assert_eq!(reencoded(&Message::Decision(decision)), expected);
}

#[test]
fn decision_action_defaults_and_bodies() {
    let block = r#"{"request_id": 1, "action": "block"}"#;
    let Message::Decision(d) = decode(MessageType::Decision, block) else {
        panic!()
    };
    assert_eq!(
        d.action,
        Action::Block {
            status: 403,
            body: None,
            headers: vec![]
        }
    );

    let block = r#"{"request_id": 1, "action": "block", "status": 429, "body": "slow down",
                    "headers": [["retry-after", "1"]]}"#;
    let Message::Decision(d) = decode(MessageType::Decision, block) else {
        panic!()
    };
    assert_eq!(
        d.action,
        Action::Block {
            status: 429,
            body: Some("slow down".into()),
            headers: vec![("retry-after".into(), "1".into())]
        }
    );

    let redirect = r#"{"request_id": 1, "action": "redirect", "location": "/login"}"#;
    let Message::Decision(d) = decode(MessageType::Decision, redirect) else {
        panic!()
    };
    assert_eq!(
        d.action,
        Action::Redirect {
            location: "/login".into(),
            status: 302
        }
    );

    let replace = r#"{"request_id": 1, "action": "continue", "body": "aGk="}"#;
    let Message::Decision(d) = decode(MessageType::Decision, replace) else {
        panic!()
    };
    assert_eq!(d.action, Action::Continue);
    assert_eq!(d.body.as_deref(), Some(&b"hi"[..]));

    let no_location = r#"{"request_id": 1, "action": "redirect"}"#;
    let frame = Frame::new(MessageType::Decision, no_location.as_bytes().to_vec());
    let err = Message::from_frame(&frame, Encoding::Json).unwrap_err();
    assert!(err.to_string().contains("location"), "{err}");
}

#[test]
fn control_examples() {
    let cases: [(MessageType, &str); 6] = [
        (
            MessageType::RequestError,
            r#"{ "request_id": 42, "code": "internal", "message": "…" }"#,
        ),
        (
            MessageType::Cancel,
            r#"{ "request_id": 42, "reason": "client_disconnected" }"#,
        ),
        (MessageType::CancelAll, r#"{ "reason": "…" }"#),
        (
            MessageType::ConfigUpdate,
            r#"{ "config": { "rules_version": "3.5.0" } }"#,
        ),
        (
            MessageType::GoAway,
            r#"{ "reason": "shutdown", "grace_ms": 30000 }"#,
        ),
        (MessageType::Ping, r#"{ "nonce": 7 }"#),
    ];
    for (message_type, text) in cases {
        let message = decode(message_type, text);
        assert_eq!(message.message_type(), message_type);
        assert_eq!(
            reencoded(&message),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }
    assert_eq!(
        decode(MessageType::Pong, r#"{ "nonce": 7 }"#),
        Message::Pong(Pong { nonce: 7 })
    );
}

#[test]
fn error_codes_and_retryability() {
    let permanent: Vec<_> = RegistrationErrorCode::ALL
        .into_iter()
        .filter(|c| !c.is_retryable())
        .map(RegistrationErrorCode::as_str)
        .collect();
    assert_eq!(
        permanent,
        [
            "invalid_request",
            "version_mismatch",
            "invalid_agent_id",
            "auth_failed",
            "not_allowed"
        ]
    );
    for code in RegistrationErrorCode::ALL {
        let wire = serde_json::to_value(code).unwrap();
        assert_eq!(wire, Value::String(code.as_str().into()));
        assert_eq!(
            serde_json::from_value::<RegistrationErrorCode>(wire).unwrap(),
            code
        );
    }
    let future: RegistrationErrorCode = serde_json::from_str(r#""overloaded""#).unwrap();
    assert_eq!(future, RegistrationErrorCode::Unknown);
    assert!(future.is_retryable());
}

#[test]
fn malformed_tokens_are_not_echoed_in_errors() {
    let text = r#"{"protocol_version": 2, "agent_id": "a", "auth_token": 73519246}"#;
    let (code, message) = RegistrationRequest::parse(text.as_bytes()).unwrap_err();
    assert_eq!(code, RegistrationErrorCode::InvalidRequest);
    assert!(!message.contains("73519246"), "{message}");
    assert!(message.contains("auth_token"), "{message}");
}

#[test]
fn tokens_never_show_in_debug_output() {
    let mut request = RegistrationRequest::new("waf-1");
    request.auth_token = Some(AuthToken::new("hunter2-secret"));
    let printed = format!("{request:?} {:?}", Message::from(request.clone()));
    assert!(!printed.contains("hunter2"), "{printed}");
}

#[test]
fn encoding_negotiation() {
    let offered = Encoding::SUPPORTED;
    assert_eq!(
        Encoding::negotiate(["msgpack", "json"], &offered),
        Encoding::MessagePack
    );
    assert_eq!(
        Encoding::negotiate(["json", "msgpack"], &offered),
        Encoding::Json
    );
    assert_eq!(
        Encoding::negotiate(["cbor", "msgpack"], &offered),
        Encoding::MessagePack
    );
    assert_eq!(Encoding::negotiate([], &offered), Encoding::Json);
    assert_eq!(Encoding::negotiate(["cbor"], &offered), Encoding::Json);
    assert_eq!(
        Encoding::negotiate(["msgpack"], &[Encoding::Json]),
        Encoding::Json
    );
}

#[test]
fn registration_frames_are_json_even_when_msgpack_was_negotiated() {
    let message = Message::from(RegistrationResponse::rejected(
        RegistrationErrorCode::Timeout,
    ));
    let frame = message.to_frame(Encoding::MessagePack).unwrap();
    let value: Value = serde_json::from_slice(&frame.payload).expect("JSON payload");
    assert_eq!(value["error"], "timeout");
    assert_eq!(
        Message::from_frame(&frame, Encoding::MessagePack).unwrap(),
        message
    );
}
