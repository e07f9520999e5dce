//! Rule ids and reasons of blocking decisions (issue 23), end to end: the built `sentinel`
//! binary on a configuration written by the test, a real upstream, and an agent written with the
//! Rust SDK (`Verdict::block(403).rule(…).reason(…)`) dialing the proxy's Unix socket. The log
//! line of a block or redirect names the agent, status, rule ids, tags, reason and route; a
//! reason cannot forge a log line; `sentinel_agent_rule_decisions_total` counts by rule and
//! holds its cap of distinct rules per agent.
#![allow(
    clippy::disallowed_methods,
    reason = "test set-up writes fixture files; no proxy runtime is blocked"
)]

mod e2e_support;

use std::time::Duration;

use e2e_support::{Policy, Sentinel, Upstream, PATIENCE};
use http::StatusCode;
use sentinel_agent_sdk::prelude::*;
use sentinel_agent_sdk::CancellationToken;
use sentinel_test_support::config::{Agent as AgentBlock, Route};
use sentinel_test_support::prometheus::metric_sum;
use sentinel_test_support::wait::eventually;
use tempfile::TempDir;

const METRIC: &str = "sentinel_agent_rule_decisions_total";
/// The proxy's cap of distinct `rule` labels per logical agent (documented in operations.md).
const CAP: usize = 100;
const FORGED: &str = "2030-01-01T00:00:00.000000Z ERROR sentinel: forged by the agent";

/// Answers by path: `/block/RULE` blocks 403 naming RULE (tag `e2e`); `/block-bare` blocks
/// naming nothing; `/forge` blocks with a reason holding a newline and a fake log line;
/// `/many/FIRST` blocks naming the ten rules `rFIRST`…; `/redirect/RULE` redirects naming RULE;
/// `/allow/RULE` allows naming RULE; anything else is allowed silently.
struct RuleAgent;

impl Agent for RuleAgent {
    async fn on_request_headers(&self, req: &RequestHeaders, _ctx: &mut RequestContext) -> Verdict {
        let path = req.path();
        if let Some(rule) = path.strip_prefix("/block/") {
            return Verdict::block(403)
                .rule(rule)
                .tag("e2e")
                .reason("/admin requested from outside 10.0.0.0/8");
        }
        if let Some(rule) = path.strip_prefix("/redirect/") {
            return Verdict::redirect("https://login.example/")
                .rule(rule)
                .reason("log in first");
        }
        if let Some(rule) = path.strip_prefix("/allow/") {
            return Verdict::allow().rule(rule);
        }
        if let Some(first) = path.strip_prefix("/many/") {
            let first: usize = first.parse().unwrap_or(0);
            return (first..first + 10).fold(Verdict::block(403), |v, n| v.rule(format!("r{n}")));
        }
        match path {
            "/block-bare" => Verdict::block(403),
            "/forge" => Verdict::block(403)
                .rule("forge")
                .reason(format!("first line\n{FORGED}")),
            _ => Verdict::allow(),
        }
    }
}

/// The proxy with the logical agent `rules` (ids `rules-*`) on every path, and one SDK agent
/// `rules-1` registered with it. The agent stops when the token is cancelled (on drop).
struct World {
    proxy: Sentinel,
    _upstream: Upstream,
    _dir: TempDir,
    agent: CancellationToken,
}

impl Drop for World {
    fn drop(&mut self) {
        self.agent.cancel();
    }
}

async fn world() -> World {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = Upstream::start().await;
    let policy = Policy::new()
        .agent(
            AgentBlock::new("rules")
                .agent_ids(["rules-*"])
                .timeout(Duration::from_secs(5)),
        )
        .route(
            Route::new("default", "backend")
                .path_prefix("/")
                .agents(["rules"]),
        );
    let proxy = Sentinel::start(dir.path(), &upstream, &policy).await;
    let mut config = RunnerConfig::new("rules-1");
    config.connections_per_proxy = 2;
    let address = format!("unix:{}", proxy.socket.display());
    config
        .proxies
        .push(address.parse().expect("the socket address"));
    let runner = Runner::new(RuleAgent, config).expect("the agent's configuration");
    let agent = CancellationToken::new();
    tokio::spawn(runner.run(agent.clone()));
    eventually("the agent to register", PATIENCE, || async {
        proxy.connections_of("rules-1").await.len() == 2
    })
    .await;
    World {
        proxy,
        _upstream: upstream,
        _dir: dir,
        agent,
    }
}

impl World {
    async fn status_of(&self, path: &str) -> StatusCode {
        self.proxy.http.get(path, &[]).await.status
    }

    async fn wait_for_log(&self, needle: &str) {
        eventually(
            &format!("the log to contain {needle}"),
            PATIENCE,
            || async { self.proxy.process.stderr().contains(needle) },
        )
        .await;
    }

    async fn rule_count(&self, action: &str, rule: &str) -> f64 {
        let labels = [("agent", "rules"), ("action", action), ("rule", rule)];
        metric_sum(&self.proxy.metrics().await, METRIC, &labels)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_and_redirects_name_their_rule_and_reason_in_the_log_and_the_metric() {
    let w = world().await;
    assert_eq!(
        w.status_of("/block/admin-gate").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.status_of("/block/admin-gate").await,
        StatusCode::FORBIDDEN
    );
    w.wait_for_log(
        "request blocked agent=rules status=403 rule_ids=admin-gate tags=e2e \
         reason=\"/admin requested from outside 10.0.0.0/8\" route=default",
    )
    .await;
    assert_eq!(w.rule_count("block", "admin-gate").await, 2.0);

    assert_eq!(
        w.status_of("/redirect/login-required").await,
        StatusCode::FOUND
    );
    w.wait_for_log(
        "request redirected agent=rules status=302 location=https://login.example/ \
         rule_ids=login-required reason=\"log in first\" route=default",
    )
    .await;
    assert_eq!(w.rule_count("redirect", "login-required").await, 1.0);

    // A block that names no rule counts under (none); an allow naming a rule counts under it;
    // a plain allow is not counted by rule at all.
    assert_eq!(w.status_of("/block-bare").await, StatusCode::FORBIDDEN);
    assert_eq!(w.status_of("/allow/monitor-only").await, StatusCode::OK);
    assert_eq!(w.status_of("/plain").await, StatusCode::OK);
    assert_eq!(w.rule_count("block", "(none)").await, 1.0);
    assert_eq!(w.rule_count("allow", "monitor-only").await, 1.0);
    let metrics = w.proxy.metrics().await;
    assert_eq!(
        metric_sum(&metrics, METRIC, &[("action", "allow")]),
        1.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reason_with_a_newline_does_not_forge_a_log_line() {
    let w = world().await;
    assert_eq!(w.status_of("/forge").await, StatusCode::FORBIDDEN);
    // The newline arrives escaped, inside the quoted reason of the block's own line.
    w.wait_for_log(&format!("rule_ids=forge reason=\"first line\\n{FORGED}\""))
        .await;
    let log = w.proxy.process.stderr();
    assert!(
        !log.lines().any(|line| line.starts_with(FORGED)),
        "a log line was forged:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_rules_beyond_the_cap_count_under_other() {
    let w = world().await;
    // 11 blocks naming 10 new rules each: r0…r109.
    for first in (0..CAP + 10).step_by(10) {
        let status = w.status_of(&format!("/many/{first}")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let metrics = w.proxy.metrics().await;
    let series = metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{METRIC}{{agent=\"rules\"")))
        .count();
    assert_eq!(series, CAP + 1, "{metrics}");
    assert_eq!(w.rule_count("block", "r0").await, 1.0);
    assert_eq!(w.rule_count("block", "r99").await, 1.0);
    assert_eq!(w.rule_count("block", "r100").await, 0.0);
    // The last block named ten rules over the cap: one decision, counted once under (other).
    assert_eq!(w.rule_count("block", "(other)").await, 1.0);
}
