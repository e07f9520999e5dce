//! The KDL configuration: PROTOCOL.md §7's blocks parse exactly as written (KDL v1 and v2), and
//! mistakes are reported with file, line, column and a plain sentence.
#![allow(
    clippy::disallowed_methods,
    reason = "test set-up writes and reads fixture files; no proxy runtime is blocked"
)]

use std::path::Path;
use std::time::Duration;

#[allow(dead_code)]
#[path = "../../agent-sdk/testkit/src/pki.rs"]
mod pki;

use pki::TestCa;
use sentinel::config::{self, BodyOverflow, FailureMode};
use sentinel_test_support::config::{Node, ProxyConfig, ReverseListener, Tls, TokenSource};
use serde_json::json;

/// The first `reverse-listener` example of docs/configuration.md, exactly as documented
/// (comments, KDL v1 boolean), with its token given inline instead of from the environment.
fn documented_reverse_listener() -> String {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let text = std::fs::read_to_string(&docs).expect("docs/configuration.md");
    let start = text
        .find("```kdl\nreverse-listener")
        .expect("a reverse-listener example in docs/configuration.md")
        + "```kdl\n".len();
    let length = text[start..].find("```").expect("the example ends");
    text[start..start + length].replace("env=\"SENTINEL_WAF_TOKEN\"", "value=\"only-for-tests\"")
}

/// `block` rendered by the builder, then [`REST`]: the block opens on line 1, so its n-th
/// directive is on line n + 1.
fn with_rest(block: ReverseListener) -> String {
    let rendered = ProxyConfig::new().reverse_listener(block).render();
    format!("{rendered}{REST}")
}

const REST: &str = r#"
listeners {
    listener "http" { address "127.0.0.1:8080" }
}
upstreams {
    upstream "backend" { target "127.0.0.1:9000" }
}
agents {
    agent "waf" {
        agent-ids "waf-*"                 // registered agent_ids that serve this logical agent
        events "request_headers" "request_body"
        timeout-ms 100
        failure-mode "closed"             // "open": proceed without this agent's verdict
        config { rules_version "3.4.0" }  // pushed as {"rules_version": "3.4.0"}
    }
}
routes {
    route "default" {
        matches { path-prefix "/" }
        upstream "backend"
        agents "waf"                      // consulted in this order
    }
}
admin {
    address "127.0.0.1:9901"              // GET /metrics (Prometheus), /agents (JSON), /health
}
"#;

fn parse(text: &str) -> Result<config::Config, config::ConfigError> {
    config::parse(text, Path::new("/etc/sentinel/sentinel.kdl"))
}

#[test]
fn the_original_blocks_parse_exactly_as_written() {
    let config = parse(&format!("{}{REST}", documented_reverse_listener())).expect("valid");
    let reverse = config.reverse_listener.as_ref().expect("reverse listener");
    assert_eq!(
        reverse.path.as_deref(),
        Some(Path::new("/var/run/sentinel/agents.sock"))
    );
    assert_eq!(reverse.max_connections_per_agent, 4);
    assert_eq!(reverse.handshake_timeout, Duration::from_secs(10));
    assert!(reverse.require_auth);
    let allowed: Vec<_> = reverse
        .allowed_agents
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| p.as_str().to_string())
        .collect();
    assert_eq!(allowed, ["waf-*", "auth-agent"]);
    assert_eq!(reverse.tokens.len(), 1);
    assert!(reverse.tcp_address.is_none(), "commented out");

    assert_eq!(config.listeners[0].address.to_string(), "127.0.0.1:8080");
    assert_eq!(config.upstreams[0].targets, ["127.0.0.1:9000"]);
    let waf = config.agent("waf").unwrap();
    assert!(waf.events.request_headers && waf.events.request_body && !waf.events.response_headers);
    assert_eq!(waf.timeout, Duration::from_millis(100));
    assert_eq!(waf.failure_mode, FailureMode::Closed);
    assert_eq!(waf.config, Some(json!({"rules_version": "3.4.0"})));
    assert!(waf.agent_ids[0].matches("waf-7"));
    let route = &config.routes[0];
    assert_eq!(route.matches.path_prefix.as_deref(), Some("/"));
    assert_eq!(
        (route.upstream.as_str(), route.agents.as_slice()),
        ("backend", &["waf".to_string()][..])
    );
    assert_eq!(route.body_overflow, BodyOverflow::Reject);
    assert_eq!(config.admin.unwrap().address.to_string(), "127.0.0.1:9901");
}

#[test]
fn kdl_v2_booleans_are_accepted_too() {
    let v1 = documented_reverse_listener();
    assert!(
        v1.contains("require-auth true"),
        "the documented example is KDL v1"
    );
    let v2 = v1.replace("require-auth true", "require-auth #true");
    let config = parse(&format!("{v2}{REST}")).expect("valid v2");
    assert!(config.reverse_listener.unwrap().require_auth);
}

#[test]
fn defaults_follow_the_protocol() {
    let config = parse(&with_rest(ReverseListener::unix("/tmp/a.sock"))).unwrap();
    let reverse = config.reverse_listener.unwrap();
    assert_eq!(reverse.handshake_timeout, Duration::from_secs(10));
    assert_eq!(reverse.max_connections_per_agent, 4);
    assert!(!reverse.require_auth);
    assert!(reverse.allowed_agents.is_none());
    assert_eq!(config.shutdown_grace, Duration::from_secs(30));
    assert_eq!(config.wait_for_agents, Duration::ZERO, "listen at once");
    let waiting = parse(&format!(
        "{}\nwait-for-agents \"15s\"\n",
        with_rest(ReverseListener::unix("/tmp/a.sock"))
    ))
    .unwrap();
    assert_eq!(waiting.wait_for_agents, Duration::from_secs(15));
}

#[test]
fn nested_pushed_config_becomes_json() {
    let text = REST.replace(
        r#"config { rules_version "3.4.0" }"#,
        r#"config {
            rules_version "3.4.0"
            paranoia 2
            enabled #true
            tags "a" "b"
            rule id="942100" pattern="union select"
            rule id="941100" pattern="<script"
            limits { body "1MiB" }
        }"#,
    );
    let config = parse(&text).unwrap();
    assert_eq!(
        config.agent("waf").unwrap().config,
        Some(json!({
            "rules_version": "3.4.0",
            "paranoia": 2,
            "enabled": true,
            "tags": ["a", "b"],
            "rule": [{"id": "942100", "pattern": "union select"}, {"id": "941100", "pattern": "<script"}],
            "limits": {"body": "1MiB"}
        }))
    );
}

#[test]
fn token_sources_load_and_missing_env_is_reported_without_secrets() {
    let text = with_rest(
        ReverseListener::unix("/tmp/a.sock")
            .require_auth(true)
            .auth_token(
                "waf-*",
                TokenSource::Env("SENTINEL_CONFIG_TEST_SURELY_UNSET".into()),
            ),
    );
    let err = parse(&text).unwrap_err();
    assert_eq!((err.line, err.column), (4, 5), "{err}");
    assert!(
        err.to_string()
            .contains("SENTINEL_CONFIG_TEST_SURELY_UNSET"),
        "{err}"
    );
    let text = text.replace(
        "env=\"SENTINEL_CONFIG_TEST_SURELY_UNSET\"",
        "sha256=\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"",
    );
    assert_eq!(
        parse(&text).unwrap().reverse_listener.unwrap().tokens.len(),
        1
    );
    let both = text.replace("sha256=", "value=\"x\" sha256=");
    assert!(parse(&both).unwrap_err().message.contains("exactly one of"));
}

#[test]
fn errors_name_file_line_column_and_what_is_wrong() {
    let cases: Vec<(String, (usize, usize), &str)> = vec![
        (
            REST.replace("timeout-ms 100", "timeout-ms \"fast\""),
            (12, 9),
            "`timeout-ms` must be a whole number",
        ),
        (
            REST.replace("failure-mode \"closed\"", "failure-mode \"maybe\""),
            (13, 9),
            "failure-mode must be \"closed\" or \"open\"",
        ),
        (
            REST.replace("upstream \"backend\"\n", "upstream \"nowhere\"\n"),
            (18, 5),
            "names upstream \"nowhere\", which is not defined",
        ),
        (
            REST.replace("agents \"waf\" ", "agents \"wafx\" "),
            (18, 5),
            "names agent \"wafx\"",
        ),
        (
            REST.replace("address \"127.0.0.1:8080\"", "address \"localhost\""),
            (3, 23),
            "is not an address",
        ),
        (
            REST.replace("events \"request_headers\"", "events \"request_headerz\""),
            (11, 9),
            "unknown event \"request_headerz\"",
        ),
        (
            format!("{REST}\nbogus 1\n"),
            (28, 1),
            "unknown directive `bogus` in the top level",
        ),
        (
            REST.replace("listeners {", "listeners {{"),
            (0, 0),
            "invalid KDL",
        ),
    ];
    for (text, (line, column), expected) in cases {
        let err = parse(&text).expect_err(expected);
        assert!(
            err.message.contains(expected),
            "expected {expected:?}, got: {err}"
        );
        if line > 0 {
            assert_eq!((err.line, err.column), (line, column), "{err}");
        } else {
            assert!(err.line > 0, "KDL syntax errors have a position: {err}");
        }
        assert!(
            err.to_string().starts_with("/etc/sentinel/sentinel.kdl:"),
            "{err}"
        );
    }
}

#[test]
fn tls_block_loads_certificates_relative_to_the_file_and_reports_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("config test CA");
    ca.server(&["proxy.test"]).write(dir.path(), "agents");
    ca.write(dir.path(), "agent-ca");
    let file = dir.path().join("sentinel.kdl");
    let remote = || ReverseListener::new().tcp_address("0.0.0.0:9090");
    let block = |tls: Tls| with_rest(remote().tls(tls));
    // What the builder has no method for (a missing key file, an unknown directive) is
    // written as raw nodes, one per line like the rest.
    let raw_tls = |directives: &[(&str, &str)]| {
        let tls = directives
            .iter()
            .fold(Node::new("tls"), |tls, (name, value)| {
                tls.child(Node::new(*name).arg(*value))
            });
        with_rest(remote().raw(tls))
    };
    let full = block(Tls::new("agents.crt", "agents.key").client_ca_file("agent-ca.crt"));
    let config = config::parse(&full, &file).expect("valid TLS block");
    let tls = config.reverse_listener.unwrap().tls.expect("tls");
    assert_eq!(tls.files().cert_file, dir.path().join("agents.crt"));
    assert_eq!(tls.files().key_file, dir.path().join("agents.key"));
    assert_eq!(
        tls.files().client_ca_file.as_deref(),
        Some(dir.path().join("agent-ca.crt").as_path())
    );
    assert!(tls.is_mutual());
    let server_only = block(Tls::new("agents.crt", "agents.key"));
    assert!(!config::parse(&server_only, &file)
        .unwrap()
        .reverse_listener
        .unwrap()
        .tls
        .unwrap()
        .is_mutual());

    // Each mistake names the file, the line of the setting at fault, and what to do.
    std::fs::write(dir.path().join("not-a-key.pem"), "hello").unwrap();
    let cases = [
        (
            block(Tls::new("missing.crt", "agents.key")),
            4,
            "cannot read cert-file",
        ),
        (
            block(Tls::new("agents.crt", "not-a-key.pem")),
            5,
            "holds no PEM private key",
        ),
        (
            block(Tls::new("agents.crt", "agents.key").client_ca_file("not-a-key.pem")),
            6,
            "holds no PEM certificate",
        ),
        (
            raw_tls(&[("cert-file", "agents.crt")]),
            3,
            "needs both `cert-file` and `key-file`",
        ),
        (
            raw_tls(&[
                ("cert-file", "agents.crt"),
                ("key-file", "agents.key"),
                ("ciphers", "all"),
            ]),
            6,
            "unknown directive `ciphers` in tls",
        ),
        (
            with_rest(
                ReverseListener::unix("/run/a.sock").tls(Tls::new("agents.crt", "agents.key")),
            ),
            3,
            "add a `tcp-address`",
        ),
    ];
    for (text, line, expected) in cases {
        let err = config::parse(&text, &file).expect_err(expected);
        assert!(
            err.message.contains(expected),
            "expected {expected:?}: {err}"
        );
        assert_eq!(err.line, line, "{err}");
    }
    // Key material never appears in an error.
    let key = std::fs::read_to_string(dir.path().join("agents.key")).unwrap();
    std::fs::write(dir.path().join("key-as-cert.pem"), &key).unwrap();
    let text = block(Tls::new("key-as-cert.pem", "agents.key"));
    let err = config::parse(&text, &file).unwrap_err();
    let body = key.lines().nth(1).unwrap();
    assert!(!err.to_string().contains(body), "{err}");
}

#[test]
fn allowed_uids_and_gids_parse_and_need_the_unix_socket() {
    let text = with_rest(
        ReverseListener::unix("/run/a.sock")
            .allowed_uids([0, 1000])
            .allowed_gids([50]),
    );
    let reverse = parse(&text).unwrap().reverse_listener.unwrap();
    assert_eq!(reverse.peer_filter.allowed_uids, Some(vec![0, 1000]));
    assert_eq!(reverse.peer_filter.allowed_gids, Some(vec![50]));
    assert_eq!(
        parse(&with_rest(ReverseListener::unix("/run/a.sock")))
            .unwrap()
            .reverse_listener
            .unwrap()
            .peer_filter,
        Default::default(),
        "no lists by default"
    );
    let unix = || ReverseListener::unix("/run/a.sock");
    let cases = [
        (
            unix().raw(Node::new("allowed-uids").arg("root")),
            3,
            "takes numeric ids",
        ),
        (
            unix().raw(Node::new("allowed-gids").arg(-1)),
            3,
            "takes numeric ids",
        ),
        (
            unix().raw(Node::new("allowed-uids")),
            3,
            "one or more numeric ids",
        ),
        (
            ReverseListener::new()
                .tcp_address("0.0.0.0:9090")
                .allowed_uids([1000]),
            1,
            "apply to the Unix socket: add a `path`",
        ),
    ];
    for (block, line, expected) in cases {
        let err = parse(&with_rest(block)).expect_err(expected);
        assert!(
            err.message.contains(expected),
            "expected {expected:?}: {err}"
        );
        assert_eq!(err.line, line, "{err}");
    }
}

#[test]
fn absurd_durations_are_refused_before_they_can_overflow_a_deadline() {
    for (directive, text) in [
        (
            "shutdown-grace",
            format!("{REST}\nshutdown-grace \"18446744073709551615s\"\n"),
        ),
        (
            "timeout",
            REST.replace("timeout-ms 100", "timeout \"9999999h\""),
        ),
    ] {
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains("at most 24h"), "{directive}: {err}");
    }
}

#[test]
fn agent_connection_cap_and_failed_registration_throttle_parse() {
    // The durations are written with the units an operator would use ("2m", "10m"), which
    // the builder (milliseconds) would not exercise.
    let durations = [
        ("window", "2m"),
        ("block", "10m"),
        ("delay", "50ms"),
        ("max-delay", "2s"),
    ];
    let throttle = durations.iter().fold(
        Node::new("failed-registrations").child(Node::new("limit").arg(5)),
        |block, (name, value)| block.child(Node::new(*name).arg(*value)),
    );
    let after_rest = |block: ReverseListener| {
        REST.to_string() + &ProxyConfig::new().reverse_listener(block).render()
    };
    let text = after_rest(
        ReverseListener::unix("/run/a.sock")
            .max_agent_connections(200)
            .raw(throttle),
    );
    let reverse = parse(&text).unwrap().reverse_listener.unwrap();
    assert_eq!(reverse.max_agent_connections, 200);
    let throttle = reverse.failed_registrations;
    assert_eq!(
        (throttle.limit, throttle.window, throttle.block),
        (5, Duration::from_secs(120), Duration::from_secs(600))
    );
    assert_eq!(
        (throttle.delay, throttle.max_delay),
        (Duration::from_millis(50), Duration::from_secs(2))
    );

    let defaults = parse(&after_rest(ReverseListener::unix("/run/a.sock")))
        .unwrap()
        .reverse_listener
        .unwrap();
    assert_eq!(defaults.max_agent_connections, 1024);
    assert_eq!(defaults.failed_registrations.limit, 10);

    let typo = after_rest(
        ReverseListener::unix("/run/a.sock")
            .raw(Node::new("failed-registrations").child(Node::new("limt").arg(5))),
    );
    let error = parse(&typo).unwrap_err().to_string();
    assert!(error.contains("limt") && error.contains("limit"), "{error}");
}

#[test]
fn admin_binds_loopback_by_default_and_loads_its_token_file_without_showing_it() {
    let dir = tempfile::tempdir().unwrap();
    let base = format!("{}{REST}", documented_reverse_listener());
    let without_admin = &base[..base.find("admin {").expect("REST ends with admin")];

    let config = parse(&format!("{without_admin}admin {{ }}\n")).unwrap();
    let admin = config.admin.expect("an admin block");
    assert!(admin.address.ip().is_loopback());
    assert_eq!(admin.address, config::AdminConfig::DEFAULT_ADDRESS);
    assert!(admin.token.is_none());

    let secret = "admin-token-for-the-config-test";
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, format!("{secret}\n")).unwrap();
    let config = parse(&format!(
        "{without_admin}admin {{ address \"0.0.0.0:9901\"; token-file \"{}\"; }}\n",
        token_file.display()
    ))
    .unwrap();
    let admin = config.admin.as_ref().expect("an admin block");
    let token = admin.token.as_ref().expect("the token");
    assert!(token.accepts(Some(format!("Bearer {secret}").as_bytes())));
    assert!(
        !format!("{config:?}").contains(secret),
        "Debug shows the token"
    );

    std::fs::write(&token_file, "\n").unwrap();
    let error = parse(&format!(
        "{without_admin}admin {{ token-file \"{}\"; }}\n",
        token_file.display()
    ))
    .unwrap_err()
    .to_string();
    assert!(error.contains("holds no token"), "{error}");
    let error = parse(&format!("{without_admin}admin {{ token \"x\"; }}\n"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("token-file"), "{error}");
}
