//! The operator's view (issue 11), end to end with real parts only: the built `sentinel`
//! binary, real agent processes dialling it over its Unix socket and over TCP, a real upstream,
//! headless Chromium driven through chromedriver looking at the status page, the
//! `sentinel agents` / `sentinel status` commands run as processes against the same proxy, and
//! the Grafana dashboard's queries checked against what `/metrics` exports.
//!
//! The browser is Debian's `chromium` with `chromium-driver`; `scripts/install-deps` installs
//! them. Without them the browser test fails, saying so (it is never skipped).
#![allow(
    clippy::disallowed_methods,
    reason = "test set-up writes and reads fixture files; no proxy runtime is blocked"
)]

mod browser_support;
mod e2e_support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;
use tempfile::TempDir;

use browser_support::{Browser, PageState};
use e2e_support::{
    agent_binary, sentinel_binary, Extras, Policy, Process, Sentinel, Upstream, ALICE_TOKEN,
    PATIENCE,
};
use sentinel_test_support::config::{
    Agent, Event, FailureMode, ReverseListener, Route, TokenSource,
};
use sentinel_test_support::ports::ANY_LOOPBACK;
use sentinel_test_support::prometheus::metric_sum;
use sentinel_test_support::wait::eventually;

const WAF_SECRET: &str = "status-page-waf-secret-7f3a";
const AUTH_SECRET: &str = "status-page-auth-secret-91bc";
const ECHO_SECRET: &str = "status-page-echo-secret-c2d4";
const WRONG_SECRET: &str = "status-page-wrong-secret-0000";
const ADMIN_SECRET: &str = "status-page-admin-secret-5e6f";
/// Every admin page an operator reads (all but `/health`).
const ADMIN_PAGES: [&str; 5] = [
    "/",
    "/status.json",
    "/status/view.json",
    "/agents",
    "/metrics",
];
/// The env var the agents read their registration token from.
const TOKEN_ENV: &str = "SENTINEL_STATUS_TEST_TOKEN";

/// The auth agent, then the WAF, in front of everything; both fail closed.
fn agents_and_routes() -> Policy {
    let agent = |name: &str, ids: &str| {
        Agent::new(name)
            .agent_ids([ids])
            .timeout(Duration::from_millis(2000))
            .failure_mode(FailureMode::Closed)
    };
    Policy::new()
        .agent(agent("auth", "auth-agent").events([Event::RequestHeaders]))
        .agent(agent("waf", "waf-*").events([Event::RequestHeaders, Event::RequestBody]))
        .route(Route::new("default", "backend").agents(["auth", "waf"]))
}

/// The proxy with agent authentication on, its reverse listener also on TCP.
struct World {
    proxy: Sentinel,
    tcp: std::net::SocketAddr,
    tokens_file: String,
    _upstream: Upstream,
    _dir: TempDir,
}

/// `admin_token_file`: the admin block's `token-file`, if any.
async fn world(admin_token_file: Option<PathBuf>) -> World {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = Upstream::start().await;
    let token = |secret: &str| TokenSource::Value(secret.to_string());
    let extras = Extras {
        reverse_listener: ReverseListener::new()
            .tcp_address(ANY_LOOPBACK)
            .require_auth(true)
            .auth_token("waf-*", token(WAF_SECRET))
            .auth_token("auth-agent", token(AUTH_SECRET))
            .auth_token("echo-*", token(ECHO_SECRET)),
        admin_token_file,
    };
    let proxy = Sentinel::start_with(dir.path(), &upstream, extras, &agents_and_routes()).await;
    let tcp = proxy
        .agents_tcp
        .expect("the reverse listener's TCP address is in the start line");
    let tokens_file = dir.path().join("tokens.json");
    std::fs::write(
        &tokens_file,
        format!(r#"[{{"user": "alice", "bearer": "{ALICE_TOKEN}"}}]"#),
    )
    .expect("write the tokens file");
    World {
        proxy,
        tcp,
        tokens_file: tokens_file.display().to_string(),
        _upstream: upstream,
        _dir: dir,
    }
}

impl World {
    /// An example agent dialling `connect` with registration token `token`.
    fn agent(
        &self,
        binary: &str,
        agent_id: &str,
        connect: &str,
        token: &str,
        extra: &[&str],
    ) -> Process {
        let mut args: Vec<String> = [
            "--connect",
            connect,
            "--agent-id",
            agent_id,
            "--connections",
            "1",
            "--auth-token-env",
            TOKEN_ENV,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        Process::spawn(
            agent_id,
            &agent_binary(binary),
            &args,
            &[(TOKEN_ENV, token)],
        )
    }

    fn unix(&self) -> String {
        format!("unix:{}", self.proxy.socket.display())
    }

    fn waf(&self, agent_id: &str) -> Process {
        self.agent(
            "sentinel-waf-agent",
            agent_id,
            &self.unix(),
            WAF_SECRET,
            &[],
        )
    }

    fn auth_over_tcp(&self) -> Process {
        self.agent(
            "sentinel-auth-agent",
            "auth-agent",
            &format!("tcp:{}", self.tcp),
            AUTH_SECRET,
            &["--tokens", &self.tokens_file],
        )
    }

    /// The WAF `waf-1` over the Unix socket and the auth agent over TCP, registered, then
    /// [`World::traffic`].
    async fn agents_with_traffic(&self) -> (Process, Process) {
        let mut waf = self.waf("waf-1");
        let mut auth = self.auth_over_tcp();
        self.proxy
            .wait_for_agents(&mut [(&mut waf, "waf-1", 1), (&mut auth, "auth-agent", 1)])
            .await;
        self.traffic().await;
        (waf, auth)
    }

    /// A few requests through the proxy, so the agents have decisions and latencies.
    async fn traffic(&self) {
        let bearer = format!("Bearer {ALICE_TOKEN}");
        for path in ["/products?id=1", "/products?id=1%27%20OR%20%271%27%3D%271"] {
            for _ in 0..3 {
                self.proxy
                    .http
                    .get(path, &[("authorization", &bearer)])
                    .await;
            }
        }
        self.proxy.http.get("/no-token", &[]).await;
    }

    /// Runs `sentinel ARGS` and returns its stdout; panics unless it exits 0.
    async fn cli(&self, args: &[&str]) -> String {
        let (status, stdout, output) = run_cli(args).await;
        assert!(status.success(), "sentinel {args:?} failed\n{output}");
        stdout
    }
}

async fn run_cli(args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut process = Process::spawn("sentinel-cli", &sentinel_binary(), &args, &[]);
    let status = process.wait_exit(PATIENCE).await;
    (status, process.stdout(), process.output())
}

fn connection_rows(page: &PageState, agent_id: &str) -> Vec<Vec<String>> {
    page.rows("connections")
        .into_iter()
        .filter(|r| r.cells.first().map(String::as_str) == Some(agent_id))
        .map(|r| r.cells)
        .collect()
}

/// The transport column of the connections table.
const TRANSPORT: usize = 3;

fn rejected_last_minute(page: &PageState, code: &str) -> Option<String> {
    page.row("rejections", code).map(|r| r.cells[2].clone())
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [
        WAF_SECRET,
        AUTH_SECRET,
        ECHO_SECRET,
        WRONG_SECRET,
        ADMIN_SECRET,
        ALICE_TOKEN,
    ] {
        assert!(!text.contains(secret), "{what} shows a secret: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_follows_agents_and_rejections_in_a_real_browser() {
    let started = Instant::now();
    let world = world(None).await;
    let admin = world.proxy.admin.address();
    let (waf, mut auth) = world.agents_with_traffic().await;

    // Without JavaScript: the first answer already holds the tables.
    let html = world.proxy.admin.get("/", &[]).await;
    assert_eq!(html.status, StatusCode::OK);
    let html = html.text();
    for needle in [
        "<table id=\"connections\">",
        "<td>waf-1-conn-",
        "<td>auth-agent-conn-",
        "<td>tcp</td>",
        "<td>uds</td>",
    ] {
        assert!(
            html.contains(needle),
            "the served page lacks {needle}: {html}"
        );
    }

    let browser = Browser::start(1280, 1000).await;
    let browser_up = Instant::now();
    browser.goto(&format!("http://{admin}/")).await;
    // Both agents with their transports, once the script has polled at least once.
    let page = browser
        .wait_for("both agents after a poll", PATIENCE, |page| {
            page.updated.starts_with("live, updated")
                && connection_rows(page, "waf-1").len() == 1
                && connection_rows(page, "auth-agent").len() == 1
        })
        .await;
    assert_eq!(connection_rows(&page, "waf-1")[0][TRANSPORT], "uds");
    assert_eq!(connection_rows(&page, "auth-agent")[0][TRANSPORT], "tcp");
    let waf_row = page.row("agents", "waf").expect("the waf row");
    assert!(
        waf_row.cells[3].contains("block"),
        "the waf blocked the injections: {waf_row:?}"
    );
    // p50 and p99 over the last minute, in milliseconds.
    assert!(
        waf_row.cells[6].ends_with(" ms") && waf_row.cells[7].ends_with(" ms"),
        "{waf_row:?}"
    );
    assert!(!waf_row.problem && !page.row("routes", "default").unwrap().problem);

    // Killed: its connection leaves the page within 5 s (the proxy sees the socket close, the
    // page polls every 2 s), and the fail-closed route is marked.
    waf.signal(libc::SIGKILL);
    let killed = Instant::now();
    let page = browser
        .wait_for("the killed agent gone", Duration::from_secs(5), |page| {
            connection_rows(page, "waf-1").is_empty()
        })
        .await;
    let gone_after = killed.elapsed();
    assert!(page.row("agents", "waf").unwrap().problem, "{page:#?}");
    let route = page.row("routes", "default").unwrap();
    assert!(route.problem && route.cells[4].contains("503"), "{route:?}");
    assert!(page.problems.contains("Needs attention"));

    // One registration with a bad token: auth_failed shows 1, and the listener row is marked.
    let mut bad = world.agent(
        "sentinel-echo-agent",
        "echo-1",
        &world.unix(),
        WRONG_SECRET,
        &[],
    );
    let page = browser
        .wait_for("auth_failed 1", PATIENCE, |page| {
            rejected_last_minute(page, "auth_failed").as_deref() == Some("1")
        })
        .await;
    bad.signal(libc::SIGKILL);
    bad.wait_exit(PATIENCE).await;
    assert!(page.row("rejections", "auth_failed").unwrap().problem);
    assert!(page.rows("listener")[0].problem, "{page:#?}");

    // A new waf process; the screenshot then shows every kind of row.
    let mut waf = world.waf("waf-2");
    world
        .proxy
        .wait_for_agents(&mut [(&mut waf, "waf-2", 1), (&mut auth, "auth-agent", 1)])
        .await;
    world.traffic().await;
    browser
        .wait_for("the new waf", PATIENCE, |page| {
            connection_rows(page, "waf-2").len() == 1
                && !page.row("routes", "default").unwrap().problem
        })
        .await;
    let screenshot = browser.screenshot().await;
    assert!(
        screenshot.starts_with(b"\x89PNG\r\n\x1a\n") && screenshot.len() > 10_000,
        "not a real screenshot ({} bytes)",
        screenshot.len()
    );
    let artifact = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    std::fs::write(&artifact, &screenshot).expect("write the screenshot");
    let browser_time = browser_up.elapsed();
    browser.close().await;

    // The same facts in the terminal and as JSON, from the same proxy.
    let admin_arg = admin.to_string();
    let agents = world.cli(&["agents", "--admin", &admin_arg]).await;
    for needle in [
        "Logical agents",
        "waf-2-conn-",
        "auth-agent-conn-",
        "tcp",
        "uds",
    ] {
        assert!(
            agents.contains(needle),
            "`sentinel agents` lacks {needle}:\n{agents}"
        );
    }
    assert!(
        !agents.contains("Routes"),
        "agents shows only agents:\n{agents}"
    );
    let status = world.cli(&["status", "--admin", &admin_arg]).await;
    for needle in ["Reverse listener", "auth_failed", "Routes", "backend"] {
        assert!(
            status.contains(needle),
            "`sentinel status` lacks {needle}:\n{status}"
        );
    }
    assert!(
        status
            .lines()
            .any(|l| l.starts_with('!') && l.contains("auth_failed")),
        "the rejection row is marked:\n{status}"
    );
    let json: Value = serde_json::from_str(
        &world
            .cli(&["agents", "--admin", &admin_arg, "--json"])
            .await,
    )
    .expect("`sentinel agents --json` prints JSON");
    let names: BTreeSet<&str> = json["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, BTreeSet::from(["auth", "waf"]));
    let transports: BTreeSet<&str> = json["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["agent_ids"].as_array().into_iter().flatten())
        .flat_map(|id| id["connections"].as_array().into_iter().flatten())
        .filter_map(|c| c["transport"].as_str())
        .collect();
    assert_eq!(transports, BTreeSet::from(["tcp", "uds"]));
    let json: Value = serde_json::from_str(
        &world
            .cli(&["status", "--admin", &admin_arg, "--json"])
            .await,
    )
    .expect("`sentinel status --json` prints JSON");
    assert_eq!(json["listener"]["rejected_total"]["auth_failed"], 1);
    assert_eq!(json["listener"]["tcp_address"], world.tcp.to_string());

    // No secret anywhere an operator looks.
    for path in ADMIN_PAGES {
        assert_no_secret(path, &world.proxy.admin.get(path, &[]).await.text());
    }
    assert_no_secret("sentinel status", &status);
    eprintln!(
        "status page test: killed agent left the page after {gone_after:?}; browser part took \
         {browser_time:?}; whole test {:?}; screenshot at {}",
        started.elapsed(),
        artifact.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_admin_token_every_endpoint_but_health_answers_401_without_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, format!("{ADMIN_SECRET}\n")).expect("write the token file");
    let world = world(Some(token_file.clone())).await;
    let admin = &world.proxy.admin;

    let bearer = format!("Bearer {ADMIN_SECRET}");
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("operator:{ADMIN_SECRET}"))
    );
    for path in ADMIN_PAGES {
        let refused = admin.get(path, &[]).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{path}");
        let challenges: Vec<_> = refused
            .headers
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert!(
            challenges.iter().any(|c| c.starts_with("Basic")),
            "{challenges:?}"
        );
        let wrong = admin
            .get(path, &[("authorization", "Bearer not-the-token")])
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{path}");
        for authorization in [&bearer, &basic] {
            let allowed = admin.get(path, &[("authorization", authorization)]).await;
            assert_eq!(allowed.status, StatusCode::OK, "{path}: {}", allowed.text());
            assert_no_secret(path, &allowed.text());
        }
    }
    assert_eq!(admin.get("/health", &[]).await.status, StatusCode::OK);

    let address = admin.address().to_string();
    let (status, _, output) = run_cli(&["status", "--admin", &address]).await;
    assert!(!status.success(), "no token, no status:\n{output}");
    assert!(
        output.contains("401") && output.contains("--token-file"),
        "{output}"
    );
    assert_no_secret("the refused CLI", &output);
    let token_arg = token_file.display().to_string();
    let shown = world
        .cli(&["status", "--admin", &address, "--token-file", &token_arg])
        .await;
    assert!(shown.contains("Reverse listener"), "{shown}");
    assert_no_secret("sentinel status", &shown);

    // Rotation: a new token file and a reload; the old token is refused from then on.
    let rotated = "status-page-admin-secret-rotated-8a9b";
    std::fs::write(&token_file, format!("{rotated}\n")).expect("rewrite the token file");
    world.proxy.process.signal(libc::SIGHUP);
    let new_bearer = format!("Bearer {rotated}");
    eventually("the rotated admin token", PATIENCE, || async {
        admin
            .get("/status.json", &[("authorization", &new_bearer)])
            .await
            .status
            == StatusCode::OK
    })
    .await;
    let old = admin
        .get("/status.json", &[("authorization", &bearer)])
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let log = world.proxy.process.output();
    assert_no_secret("sentinel's log", &log);
    assert!(!log.contains(rotated), "the log shows the rotated token");
    assert!(
        !log.contains("takes effect after a restart"),
        "a token change needs no restart:\n{log}"
    );
}

/// Every metric name a query of `dashboard` mentions: panel targets (`expr`) and template
/// variables (`query`, `definition`).
fn dashboard_metrics(dashboard: &Value, found: &mut BTreeSet<String>) {
    match dashboard {
        Value::Object(map) => {
            for (key, value) in map {
                if let ("expr" | "query" | "definition", Value::String(expr)) =
                    (key.as_str(), value)
                {
                    found.extend(metric_names(expr));
                }
                dashboard_metrics(value, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dashboard_metrics(v, found)),
        _ => {}
    }
}

/// Identifiers starting with `sentinel_` in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("sentinel_") {
        let boundary = start == 0
            || !rest[..start]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        if boundary {
            names.push(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// The sample names `/metrics` exports: each `# TYPE` family expanded the way the exposition
/// format names its samples.
fn exported_samples(page: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in page.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

/// The series behind the panels the issue names: requests by route and status, decisions by
/// agent and action, the latency histogram, live connections, rejected registrations by code.
const PANEL_METRICS: [&str; 5] = [
    "sentinel_http_requests_total",
    "sentinel_agent_decisions_total",
    "sentinel_agent_decision_latency_seconds_bucket",
    "sentinel_agent_connections",
    "sentinel_agent_registrations_rejected_total",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_queries_only_metrics_that_metrics_exports() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/grafana/sentinel.json");
    let text = std::fs::read_to_string(&path).expect("examples/grafana/sentinel.json");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut queried = BTreeSet::new();
    dashboard_metrics(&dashboard, &mut queried);
    // The panels the issue asks for are there.
    for wanted in PANEL_METRICS {
        assert!(
            queried.contains(wanted),
            "the dashboard does not query {wanted}"
        );
    }

    // A real proxy with an agent that decided and a registration that was refused, so every
    // family also has samples.
    let world = world(None).await;
    let (_waf, _auth) = world.agents_with_traffic().await;
    let bad = world.agent(
        "sentinel-echo-agent",
        "echo-1",
        &world.unix(),
        WRONG_SECRET,
        &[],
    );
    eventually("the refused registration", PATIENCE, || async {
        metric_sum(
            &world.proxy.metrics().await,
            "sentinel_agent_registrations_rejected_total",
            &[("code", "auth_failed")],
        ) >= 1.0
    })
    .await;
    bad.signal(libc::SIGKILL);
    let page = world.proxy.metrics().await;
    let exported = exported_samples(&page);
    let missing: Vec<&String> = queried.iter().filter(|m| !exported.contains(*m)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics /metrics does not export: {missing:?}\nexported: {exported:?}"
    );
    for metric in PANEL_METRICS {
        assert!(
            page.lines().any(|l| l.starts_with(metric)),
            "{metric} has no sample after real traffic:\n{page}"
        );
    }
}

/// Decisions the waf gave over the last minute, from `/status.json`.
fn waf_decisions(status: &Value) -> u64 {
    status["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["name"] == "waf")
        .flat_map(|a| a["last_minute"]["decisions"].as_object().cloned())
        .flat_map(|d| d.into_iter().filter_map(|(_, n)| n.as_u64()))
        .sum()
}

/// `sentinel demo --keep-running` stays up after its table, prints the status page's URL, keeps
/// traffic flowing, and exits cleanly on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_keep_running_serves_the_status_page_until_stopped() {
    agent_binary("sentinel-waf-agent");
    agent_binary("sentinel-auth-agent");
    let mut demo = Process::spawn(
        "sentinel demo --keep-running",
        &sentinel_binary(),
        &["demo".to_string(), "--keep-running".to_string()],
        &[("RUST_LOG", "warn")],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = loop {
        let stdout = demo.stdout();
        if let Some(url) = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("status page"))
            .map(|rest| rest.trim().to_string())
        {
            break url;
        }
        assert!(!demo.has_exited(), "the demo exited\n{}", demo.output());
        assert!(
            Instant::now() < deadline,
            "no status page URL\n{}",
            demo.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(demo
        .stdout()
        .contains("every request got the expected answer"));
    let address: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|_| panic!("not an address: {url}"));
    let admin = e2e_support::Http::new(address);
    let page = admin.get("/", &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("<td>waf-1-conn-"), "{}", page.text());
    let status = |reply: e2e_support::Reply| -> Value {
        serde_json::from_slice(&reply.body).expect("status.json is JSON")
    };
    let before = waf_decisions(&status(admin.get("/status.json", &[]).await));
    eventually("the demo's trickle of traffic", PATIENCE, || async {
        waf_decisions(&status(admin.get("/status.json", &[]).await)) > before
    })
    .await;

    demo.signal(libc::SIGTERM);
    let exit = demo.wait_exit(PATIENCE).await;
    assert!(exit.success(), "{exit}\n{}", demo.output());
    assert!(demo.stdout().contains("stopping the demo"));
}
