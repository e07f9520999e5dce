//! Every directive the builder can write, loaded by the proxy's real loader: if the grammar
//! drifts, these fail before any harness does.

use std::time::Duration;

use sentinel::config::{BodyOverflow as LoadedOverflow, FailureMode as LoadedMode};

use super::*;

fn load(config: &ProxyConfig) -> sentinel::config::Config {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("sentinel.kdl");
    let text = config.render();
    sentinel::config::parse(&text, &path)
        .unwrap_or_else(|e| panic!("the proxy refused the rendered config: {e}\n{text}"))
}

fn minimal(reverse: ReverseListener) -> ProxyConfig {
    ProxyConfig::new()
        .reverse_listener(reverse)
        .listener(Listener::new("http", "127.0.0.1:0"))
        .upstream(Upstream::new("backend", "127.0.0.1:9"))
        .route(Route::new("default", "backend"))
}

#[test]
fn a_full_configuration_loads_with_every_value_in_place() {
    let config = minimal(
        ReverseListener::unix("/tmp/sentinel \"odd\" dir/agents.sock")
            .tcp_address("127.0.0.1:0")
            .max_connections_per_agent(7)
            .handshake_timeout(Duration::from_millis(1500))
            .require_auth(true)
            .allowed_agents(["waf-*", "auth-agent"])
            .auth_token("waf-*", TokenSource::Value("se\"cret\\".into()))
            .auth_token("auth-agent", TokenSource::Sha256("ab".repeat(32)))
            .max_agent_connections(99)
            .failed_registrations(
                FailedRegistrations::new()
                    .limit(3)
                    .window(Duration::from_secs(60))
                    .block(Duration::from_secs(5))
                    .delay(Duration::ZERO)
                    .max_delay(Duration::from_millis(250)),
            )
            .max_pending_handshakes(12)
            .heartbeat_interval(Duration::from_millis(500))
            .write_timeout(Duration::from_secs(3))
            .max_frame_size(65536)
            .socket_mode("0600")
            .max_concurrent_requests(5)
            .max_concurrent_requests_limit(50),
    )
    .comment("written by the test-support builder")
    .upstream(
        Upstream::new("second", "127.0.0.1:10")
            .target("127.0.0.1:11")
            .max_fails(2)
            .fail_timeout(Duration::from_secs(4))
            .connect_timeout(Duration::from_millis(300))
            .request_timeout(Duration::from_secs(6)),
    )
    .agent(
        Agent::new("waf")
            .agent_ids(["waf-*"])
            .events([Event::RequestHeaders, Event::RequestBody])
            .timeout(Duration::from_millis(250))
            .failure_mode(FailureMode::Open)
            .config_entry(Node::new("rules_version").arg("3.4.0"))
            .config_entry(Node::new("limits").prop("max", 3u32)),
    )
    .agent(Agent::new("auth").timeout(Duration::from_micros(1500)))
    .route(
        Route::new("api", "second")
            .host("api.example.com")
            .path_prefix("/v1/")
            .agents(["waf", "auth"])
            .max_body_inspect(2048)
            .body_overflow(BodyOverflow::Forward),
    )
    .admin(Admin::new("127.0.0.1:0"))
    .shutdown_grace(Duration::from_millis(2500))
    .wait_for_agents(Duration::from_secs(15));
    let loaded = load(&config);

    let reverse = loaded.reverse_listener.as_ref().expect("reverse listener");
    let debug = format!("{reverse:?}");
    for needle in ["odd", "waf-*", "auth-agent"] {
        assert!(debug.contains(needle), "{needle} missing in {debug}");
    }
    assert_eq!(loaded.listeners[0].address.port(), 0);
    let second = loaded.upstream("second").expect("upstream second");
    assert_eq!(second.targets, ["127.0.0.1:10", "127.0.0.1:11"]);
    assert_eq!(second.max_fails, 2);
    assert_eq!(second.fail_timeout, Duration::from_secs(4));
    assert_eq!(second.connect_timeout, Duration::from_millis(300));
    assert_eq!(second.request_timeout, Duration::from_secs(6));
    let waf = loaded.agent("waf").expect("agent waf");
    assert!(waf.events.request_headers && waf.events.request_body);
    assert_eq!(waf.timeout, Duration::from_millis(250));
    assert_eq!(waf.failure_mode, LoadedMode::Open);
    let pushed = waf.config.as_ref().expect("pushed config");
    assert_eq!(pushed["rules_version"], "3.4.0");
    assert_eq!(pushed["limits"]["max"], 3);
    let auth = loaded.agent("auth").expect("agent auth");
    assert_eq!(auth.timeout, Duration::from_micros(1500));
    let api = &loaded.routes[1];
    assert_eq!(api.matches.path_prefix.as_deref(), Some("/v1/"));
    assert_eq!(api.matches.host.as_deref(), Some("api.example.com"));
    assert_eq!(api.agents, ["waf", "auth"]);
    assert_eq!(api.max_body_inspect, 2048);
    assert_eq!(api.body_overflow, LoadedOverflow::Forward);
    assert_eq!(loaded.routes[0].matches.path_prefix.as_deref(), Some("/"));
    assert!(loaded.admin.is_some());
    assert_eq!(loaded.shutdown_grace, Duration::from_millis(2500));
    assert_eq!(loaded.wait_for_agents, Duration::from_secs(15));
}

#[test]
fn token_sources_from_files_and_admin_token_files_load() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").expect("token file");
    let config = minimal(
        ReverseListener::unix(dir.path().join("agents.sock"))
            .require_auth(true)
            .auth_token("*", TokenSource::File(token.clone())),
    )
    .admin(Admin::new("127.0.0.1:0").token_file(&token));
    let path = dir.path().join("sentinel.kdl");
    config.write_to(&path).expect("write");
    let loaded = sentinel::config::load(&path).expect("config with token files loads");
    assert!(loaded.admin.expect("admin").token.is_some());
}

#[test]
fn an_unset_token_variable_is_refused_by_name() {
    let config = minimal(ReverseListener::unix("/tmp/a.sock").auth_token(
        "*",
        TokenSource::Env("SENTINEL_TEST_SUPPORT_SURELY_UNSET".into()),
    ));
    let error = sentinel::config::parse(&config.render(), Path::new("/tmp/x.kdl"))
        .expect_err("unset variable");
    assert!(
        error
            .to_string()
            .contains("SENTINEL_TEST_SUPPORT_SURELY_UNSET"),
        "{error}"
    );
}

#[test]
fn tls_and_peer_filters_are_spelled_as_the_loader_expects() {
    // The loader reads the certificate files at once: a missing file is reported by its
    // name, which proves the `tls` block itself was understood.
    let tls = minimal(
        ReverseListener::new().tcp_address("127.0.0.1:0").tls(
            Tls::new("/nonexistent/agents.crt", "/nonexistent/agents.key")
                .client_ca_file("/nonexistent/ca.crt"),
        ),
    );
    let error = sentinel::config::parse(&tls.render(), Path::new("/tmp/x.kdl"))
        .expect_err("missing certificate files");
    assert!(error.to_string().contains("agents.crt"), "{error}");

    let filtered = minimal(
        ReverseListener::unix("/tmp/a.sock")
            .allowed_uids([0, 1000])
            .allowed_gids([50]),
    );
    let loaded = load(&filtered);
    let debug = format!("{:?}", loaded.reverse_listener);
    assert!(debug.contains("1000") && debug.contains("50"), "{debug}");
}

#[test]
fn raw_nodes_reach_the_loader_verbatim() {
    let config = minimal(
        ReverseListener::unix("/tmp/a.sock").raw(Node::new("max-conections-per-agent").arg(3u32)),
    );
    let error = sentinel::config::parse(&config.render(), Path::new("/tmp/x.kdl"))
        .expect_err("a misspelt directive");
    assert!(
        error.to_string().contains("max-conections-per-agent"),
        "{error}"
    );
}

#[test]
fn durations_are_written_in_milliseconds_or_microseconds() {
    assert_eq!(duration(Duration::from_secs(2)), Value::from("2000ms"));
    assert_eq!(duration(Duration::from_micros(1500)), Value::from("1500us"));
    assert_eq!(duration(Duration::ZERO), Value::from("0ms"));
}
