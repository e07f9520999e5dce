//! Mismatches between an agent and the proxy's configuration speak up (issue 23), end to end
//! with real parts only: the built `sentinel` binary, the WAF example agent (built on the SDK,
//! declaring `handles_request_body` and answering `continue` to request headers with a body)
//! dialling its Unix socket, a real upstream, and `sentinel agents` run as a process. Each
//! mismatch must be one warning in the proxy's log however many requests it touches, a counter
//! in `/metrics`, and a problem of the agent id in `/status.json` and the CLI that clears when
//! its cause is gone.
#![allow(
    clippy::disallowed_methods,
    reason = "test set-up writes and reads fixture files; no proxy runtime is blocked"
)]

mod e2e_support;

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;
use tempfile::TempDir;

use e2e_support::{sentinel_binary, Policy, Process, Sentinel, Upstream, PATIENCE};
use sentinel_test_support::config::{Agent, Event, FailureMode, Route};
use sentinel_test_support::prometheus::metric_sum;
use sentinel_test_support::wait::eventually;

const UNMATCHED: &str = "agent id admin-gte-1 matches no agent's agent-ids (admin-gate-*): start \
                         it with a matching --agent-id, or add a pattern to agent-ids";
const BODY_NOT_SENT: &str = "admin-gate-1 declares request bodies (handles_request_body) but \
                             agent \"admin-gate\" is not sent them: add \"request_body\" to its \
                             events, or stop declaring it";
const CONTINUE_ON_LAST: &str = "admin-gate-1 answered continue to request_headers, the last \
                                event it is sent in that phase (taken as allow): add \
                                \"request_body\" to the events of agent \"admin-gate\", or \
                                answer allow";
/// Requests sent while a mismatch lasts: it must still be logged once.
const REQUESTS: usize = 3;

struct World {
    proxy: Sentinel,
    _upstream: Upstream,
    _dir: TempDir,
}

/// The logical agent `admin-gate` (ids `admin-gate-*`, fails closed) sent `events`, in front
/// of every request.
fn policy(events: &[Event]) -> Policy {
    let gate = Agent::new("admin-gate")
        .agent_ids(["admin-gate-*"])
        .timeout(Duration::from_millis(5000))
        .failure_mode(FailureMode::Closed)
        .events(events.iter().copied());
    Policy::new()
        .agent(gate)
        .route(Route::new("all", "backend").agents(["admin-gate"]))
}

async fn world(events: &[Event]) -> World {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = Upstream::start().await;
    let proxy = Sentinel::start(dir.path(), &upstream, &policy(events)).await;
    World {
        proxy,
        _upstream: upstream,
        _dir: dir,
    }
}

impl World {
    /// The WAF agent registered as `agent_id` with `connections` connections.
    async fn waf(&self, agent_id: &str, connections: usize) -> Process {
        let mut waf = self
            .proxy
            .agent("sentinel-waf-agent", agent_id, connections, &[]);
        self.proxy
            .wait_for_agents(&mut [(&mut waf, agent_id, connections)])
            .await;
        waf
    }

    async fn status(&self) -> Value {
        let reply = self.proxy.admin.get("/status.json", &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        serde_json::from_slice(&reply.body).expect("/status.json is JSON")
    }

    /// `sentinel_agent_mismatches_total` for `agent` and `cause`.
    async fn mismatches(&self, agent: &str, cause: &str) -> f64 {
        let metrics = self.proxy.metrics().await;
        metric_sum(
            &metrics,
            "sentinel_agent_mismatches_total",
            &[("agent", agent), ("cause", cause)],
        )
    }

    /// Waits for `text` in the proxy's log, then checks it is there exactly once.
    async fn logged_once(&self, text: &str) {
        eventually("the mismatch to be logged", PATIENCE, || async {
            self.proxy.process.stderr().contains(text)
        })
        .await;
        let log = self.proxy.process.stderr();
        assert_eq!(log.matches(text).count(), 1, "{log}");
    }

    async fn cli_agents(&self) -> String {
        let args = vec![
            "agents".to_string(),
            "--admin".to_string(),
            self.proxy.admin.address().to_string(),
        ];
        let mut cli = Process::spawn("sentinel-agents", &sentinel_binary(), &args, &[]);
        let status = cli.wait_exit(PATIENCE).await;
        assert!(status.success(), "{}", cli.output());
        cli.stdout()
    }
}

/// The problems `/status.json` shows for `agent_id`, wherever it is listed.
fn problems_of(status: &Value, agent_id: &str) -> Vec<String> {
    let served = status["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["agent_ids"].as_array().cloned().unwrap_or_default());
    let unassigned = status["unassigned"].as_array().cloned().unwrap_or_default();
    served
        .chain(unassigned)
        .filter(|id| id["agent_id"] == agent_id)
        .flat_map(|id| id["problems"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect()
}

/// A typo in `--agent-id`: the agent registers, every request answers 503; the proxy says
/// which patterns it missed, and stops saying so once the agent is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_id_no_logical_agent_matches_speaks_up_until_it_leaves() {
    let w = world(&[Event::RequestHeaders, Event::RequestBody]).await;
    let waf = w.waf("admin-gte-1", 1).await;
    for _ in 0..REQUESTS {
        let reply = w.proxy.http.get("/", &[]).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    w.logged_once(UNMATCHED).await;
    assert_eq!(w.mismatches("-", "unmatched_agent_id").await, 1.0);
    assert_eq!(problems_of(&w.status().await, "admin-gte-1"), [UNMATCHED]);
    let agents = w.cli_agents().await;
    assert!(agents.contains(UNMATCHED), "{agents}");
    assert!(!agents.contains("no problems"), "{agents}");

    drop(waf);
    eventually("the problem to clear", PATIENCE, || async {
        let status = w.status().await;
        status["unassigned"].as_array().is_some_and(Vec::is_empty)
            && problems_of(&status, "admin-gte-1").is_empty()
    })
    .await;
}

/// The agent declares request bodies; its logical agent is sent headers only. Every
/// connection counts, the log says it once, and a reload that adds `request_body` clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_capability_the_proxy_never_uses_speaks_up_until_a_reload_fixes_it() {
    let mut w = world(&[Event::RequestHeaders]).await;
    let _waf = w.waf("admin-gate-1", 2).await;
    w.logged_once(BODY_NOT_SENT).await;
    assert_eq!(w.mismatches("admin-gate", "capability_not_sent").await, 2.0);
    assert_eq!(
        problems_of(&w.status().await, "admin-gate-1"),
        [BODY_NOT_SENT]
    );

    let fixed = policy(&[Event::RequestHeaders, Event::RequestBody]);
    w.proxy
        .rewrite_config(&w.proxy.config_with(&fixed).render());
    w.proxy.process.signal(libc::SIGHUP);
    w.proxy.process.wait_for_log("reload complete").await;
    assert!(problems_of(&w.status().await, "admin-gate-1").is_empty());
    let agents = w.cli_agents().await;
    assert!(agents.contains("no problems"), "{agents}");
}

/// The trap: the agent answers `continue` to the headers expecting the body, the proxy is not
/// configured to send it one, takes the continue as allow and the body goes upstream
/// uninspected. Each such request is counted, the log says it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_on_the_last_event_of_a_phase_speaks_up_once() {
    let w = world(&[Event::RequestHeaders]).await;
    let _waf = w.waf("admin-gate-1", 1).await;
    for _ in 0..REQUESTS {
        let reply = w
            .proxy
            .http
            .post("/login", &[], "user=admin' OR '1'='1")
            .await;
        // Taken as allow, as PROTOCOL.md §4 says: the upstream got it.
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert!(reply.by_upstream());
    }
    w.logged_once(CONTINUE_ON_LAST).await;
    assert_eq!(
        w.mismatches("admin-gate", "continue_on_last_event").await,
        REQUESTS as f64
    );
    let problems = problems_of(&w.status().await, "admin-gate-1");
    assert!(
        problems.iter().any(|p| p == CONTINUE_ON_LAST),
        "{problems:?}"
    );
}

/// An agent connected under a typo: a reload that adds a matching pattern clears the problem,
/// and one that takes it away again reports it at once, without the agent reconnecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_unmatches_a_connected_agent_says_so() {
    let mut w = world(&[Event::RequestHeaders, Event::RequestBody]).await;
    let _waf = w.waf("admin-gte-1", 1).await;
    let matched = policy(&[Event::RequestHeaders, Event::RequestBody]);
    let typo_tolerant = matched.clone().agent(
        Agent::new("typos")
            .agent_ids(["admin-gte-*"])
            .events([Event::RequestHeaders, Event::RequestBody]),
    );
    w.proxy
        .rewrite_config(&w.proxy.config_with(&typo_tolerant).render());
    w.proxy.process.signal(libc::SIGHUP);
    w.proxy.process.wait_for_log("reload complete").await;
    assert!(problems_of(&w.status().await, "admin-gte-1").is_empty());

    w.proxy
        .rewrite_config(&w.proxy.config_with(&matched).render());
    w.proxy.process.signal(libc::SIGHUP);
    eventually("the reload to unmatch the agent", PATIENCE, || async {
        problems_of(&w.status().await, "admin-gte-1") == [UNMATCHED]
    })
    .await;
    assert_eq!(w.mismatches("-", "unmatched_agent_id").await, 2.0);
    eventually("the second warning", PATIENCE, || async {
        w.proxy.process.stderr().matches(UNMATCHED).count() == 2
    })
    .await;
}
