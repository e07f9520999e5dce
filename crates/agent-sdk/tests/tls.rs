//! Dialing `tls:host:port` against the real listener with TLS on, with certificates generated
//! by the test: an agent with the CA bundle and a client certificate registers over mutual TLS
//! and answers requests; a wrong CA, a missing client certificate, or a certificate that does
//! not name the agent_id keeps it out, with the reason in its events.
#![allow(
    clippy::disallowed_methods,
    reason = "test set-up writes and reads fixture files; no proxy runtime is blocked"
)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use sentinel_agent_sdk::protocol::{Action, RegistrationErrorCode};
use sentinel_agent_sdk::{RunnerEvent, TlsClientConfig};
use sentinel_agent_testkit::pki::TestCa;
use sentinel_agent_testkit::{request, AgentReply, ReverseTls, TestProxy, TlsFiles};

struct Pki {
    dir: tempfile::TempDir,
    server_ca: TestCa,
    agent_ca: TestCa,
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().expect("temp dir"),
            server_ca: TestCa::new("sdk test server CA"),
            agent_ca: TestCa::new("sdk test agent CA"),
        };
        pki.server_ca.write(pki.dir.path(), "server-ca");
        pki.agent_ca.write(pki.dir.path(), "agent-ca");
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The proxy's TLS, with a certificate for `names`, requiring client certificates.
    fn proxy_tls(&self, names: &[&str]) -> ReverseTls {
        let (cert_file, key_file) = self
            .server_ca
            .server(names)
            .write(self.dir.path(), "server");
        ReverseTls::load(TlsFiles {
            cert_file,
            key_file,
            client_ca_file: Some(self.path("agent-ca.crt")),
        })
        .expect("test certificates load")
    }

    /// Agent settings trusting `ca_file`, with a client certificate for `names`.
    fn agent_tls(&self, ca_file: &Path, names: &[&str], stem: &str) -> TlsClientConfig {
        let (cert, key) = self
            .agent_ca
            .client(names, None)
            .write(self.dir.path(), stem);
        TlsClientConfig {
            ca_file: Some(ca_file.to_path_buf()),
            cert_file: Some(cert),
            key_file: Some(key),
            server_name: None,
        }
    }
}

async fn mutual_tls_proxy(tls: ReverseTls) -> TestProxy {
    TestProxy::builder()
        .listener(move |c| c.tls = Some(tls.clone()))
        .start()
        .await
}

#[tokio::test]
async fn an_agent_with_ca_and_client_certificate_registers_and_answers_over_tls() {
    let pki = Pki::new();
    let proxy = mutual_tls_proxy(pki.proxy_tls(&["127.0.0.1"])).await;
    let mut config = fast_config("waf-1", &[proxy.tls_addr()]);
    config.tls = pki.agent_tls(&pki.path("server-ca.crt"), &["waf-1"], "waf-1");
    let mut running = run(Probe::default(), config);
    running
        .next_event(|e| matches!(e, RunnerEvent::Registered { .. }))
        .await;
    proxy.wait_for_connections(1).await;
    let agents = proxy.pool.snapshot();
    assert_eq!(agents[0].agent_id, "waf-1");
    assert_eq!(agents[0].connections[0].transport.as_str(), "tls");

    let reply = proxy
        .send("agents", request("GET", "/over-tls", &[]), LONG)
        .await
        .expect("a reply over TLS");
    let AgentReply::Decision(decision) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(decision.action, Action::Allow);
    assert_eq!(
        running
            .agent
            .started
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    running.stop_within(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn the_server_name_comes_from_the_host_unless_overridden() {
    let pki = Pki::new();
    // The proxy's certificate names only proxy.test, not the address dialled.
    let proxy = mutual_tls_proxy(pki.proxy_tls(&["proxy.test"])).await;

    let mut config = fast_config("waf-1", &[proxy.tls_addr()]);
    config.tls = pki.agent_tls(&pki.path("server-ca.crt"), &["waf-1"], "waf-1");
    let mut wrong_name = run(Probe::default(), config.clone());
    let failed = wrong_name
        .next_event(|e| matches!(e, RunnerEvent::RegistrationFailed { .. }))
        .await;
    let RunnerEvent::RegistrationFailed { error, code, .. } = failed else {
        unreachable!()
    };
    assert_eq!(code, None, "the proxy never got to answer");
    assert!(error.contains("TLS handshake"), "{error}");
    wrong_name.stop_within(Duration::from_secs(10)).await;

    config.tls.server_name = Some("proxy.test".into());
    let mut right_name = run(Probe::default(), config);
    right_name
        .next_event(|e| matches!(e, RunnerEvent::Registered { .. }))
        .await;
    proxy.wait_for_connections(1).await;
    right_name.stop_within(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn wrong_ca_missing_or_mismatching_client_certificate_keep_the_agent_out() {
    let pki = Pki::new();
    let proxy = mutual_tls_proxy(pki.proxy_tls(&["127.0.0.1"])).await;

    // Trusting the wrong CA: the proxy's certificate is refused by the agent.
    let mut config = fast_config("waf-1", &[proxy.tls_addr()]);
    config.tls = pki.agent_tls(&pki.path("agent-ca.crt"), &["waf-1"], "waf-1");
    let mut wrong_ca = run(Probe::default(), config);
    let failed = wrong_ca
        .next_event(|e| matches!(e, RunnerEvent::RegistrationFailed { .. }))
        .await;
    let RunnerEvent::RegistrationFailed {
        error, permanent, ..
    } = failed
    else {
        unreachable!()
    };
    assert!(error.contains("TLS handshake"), "{error}");
    assert!(
        !permanent,
        "a TLS failure may be a rotation in progress: retried"
    );
    wrong_ca.stop_within(Duration::from_secs(10)).await;

    // No client certificate: the proxy ends the handshake.
    let mut config = fast_config("waf-1", &[proxy.tls_addr()]);
    config.tls = TlsClientConfig {
        ca_file: Some(pki.path("server-ca.crt")),
        ..TlsClientConfig::default()
    };
    let mut anonymous = run(Probe::default(), config);
    let failed = anonymous
        .next_event(|e| matches!(e, RunnerEvent::RegistrationFailed { .. }))
        .await;
    let RunnerEvent::RegistrationFailed { code, .. } = failed else {
        unreachable!()
    };
    assert_eq!(code, None);
    anonymous.stop_within(Duration::from_secs(10)).await;

    // A client certificate for another agent_id: refused auth_failed, and given up on.
    let mut config = fast_config("waf-2", &[proxy.tls_addr()]);
    config.tls = pki.agent_tls(&pki.path("server-ca.crt"), &["waf-1"], "waf-1");
    let mut impostor = run(Probe::default(), config);
    let failed = impostor
        .next_event(|e| matches!(e, RunnerEvent::RegistrationFailed { .. }))
        .await;
    let RunnerEvent::RegistrationFailed {
        code, permanent, ..
    } = failed
    else {
        unreachable!()
    };
    assert_eq!(code, Some(RegistrationErrorCode::AuthFailed));
    assert!(permanent);
    impostor.stop_within(Duration::from_secs(10)).await;

    assert_eq!(proxy.connection_count(), 0);
    assert!(proxy.stats().tls_handshakes_failed >= 2);
}

#[tokio::test]
async fn unusable_tls_files_stop_the_runner_from_starting() {
    let pki = Pki::new();
    let mut config = fast_config("waf-1", &["tls:127.0.0.1:9"]);
    config.tls = pki.agent_tls(&pki.path("server-ca.crt"), &["waf-1"], "waf-1");
    // The key of another certificate.
    let other = pki.agent_ca.client(&["x"], None);
    std::fs::write(config.tls.key_file.as_ref().unwrap(), &other.key_pem).unwrap();
    let err = sentinel_agent_sdk::Runner::new(Probe::default(), config)
        .err()
        .expect("mismatched key refused");
    assert!(err.to_string().contains("--tls-key"), "{err}");
    assert!(!err
        .to_string()
        .contains(other.key_pem.lines().nth(1).unwrap()));

    let mut config = fast_config("waf-1", &["tls:127.0.0.1:9"]);
    config.tls.ca_file = Some(pki.path("missing.crt"));
    let err = sentinel_agent_sdk::Runner::new(Probe::default(), config)
        .err()
        .expect("missing CA refused");
    assert!(err.to_string().contains("missing.crt"), "{err}");
}
