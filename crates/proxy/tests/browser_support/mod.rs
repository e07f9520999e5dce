//! A real headless browser for the status-page test: Debian's `chromium` driven by
//! `chromedriver` (package `chromium-driver`, installed by `scripts/install-deps`) over the W3C
//! WebDriver protocol, spoken with the same real HTTP client as the other end-to-end tests. The
//! driver runs as a child process in its own group (killed, browser included, when dropped).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use sentinel_test_support::wait::eventually;

use crate::e2e_support::{Http, Process, PATIENCE};

/// Where Debian installs them.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// Returns every table of the page, by id, as rows of cell texts with their `problem` mark,
/// plus the page's "updated" stamp: what an operator sees, read from the live DOM.
const READ_TABLES: &str = r#"
var out = {tables: {}, updated: '', problems: ''};
document.querySelectorAll('table').forEach(function (t) {
  out.tables[t.id] = Array.prototype.map.call(t.querySelectorAll('tbody tr'), function (r) {
    return {problem: r.classList.contains('problem'),
            cells: Array.prototype.map.call(r.cells, function (c) { return c.textContent; })};
  });
});
var u = document.getElementById('updated'); if (u) out.updated = u.textContent;
var p = document.getElementById('problems'); if (p) out.problems = p.textContent;
return out;
"#;

/// One row of a page table.
#[derive(Debug, Clone)]
pub struct PageRow {
    /// Marked as a problem.
    pub problem: bool,
    /// Cell texts.
    pub cells: Vec<String>,
}

/// What the page shows now.
#[derive(Debug, Clone)]
pub struct PageState {
    /// Table id → rows.
    pub tables: std::collections::BTreeMap<String, Vec<PageRow>>,
    /// The "updated" stamp.
    pub updated: String,
    /// The problems box text.
    pub problems: String,
}

impl PageState {
    /// Rows of table `id` (empty if the table is missing).
    pub fn rows(&self, id: &str) -> Vec<PageRow> {
        self.tables.get(id).cloned().unwrap_or_default()
    }

    /// The row of table `id` whose first cell is `key`.
    pub fn row(&self, id: &str, key: &str) -> Option<PageRow> {
        self.rows(id)
            .into_iter()
            .find(|r| r.cells.first().map(String::as_str) == Some(key))
    }
}

/// A chromedriver process with one headless Chromium session.
pub struct Browser {
    driver: Process,
    http: Http,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with a `width`×`height` window.
    /// Panics, saying how to install them, when the packages are missing.
    pub async fn start(width: u32, height: u32) -> Browser {
        for binary in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: the status page test drives a real browser; install the \
                 packages with scripts/install-deps (chromium, chromium-driver)"
            );
        }
        let profile = tempfile::tempdir().expect("browser profile dir");
        // Port 0: chromedriver binds a free port and names it in its start line.
        let mut driver = Process::spawn(
            "chromedriver",
            &PathBuf::from(CHROMEDRIVER),
            &["--port=0".to_string()],
            &[],
        );
        driver.wait_for_log(STARTED_ON_PORT).await;
        let port = driver_port(&driver.stdout())
            .unwrap_or_else(|| panic!("no port in chromedriver's start line\n{}", driver.output()));
        let http = Http::new(SocketAddr::from(([127, 0, 0, 1], port)));
        wait_ready(&http).await;
        let session = new_session(&http, profile.path(), width, height, &driver).await;
        Browser {
            driver,
            http,
            session,
            _profile: profile,
        }
    }

    async fn command(&self, method: Method, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        // A GET has no body; chromedriver refuses one.
        let (headers, body): (&[(&str, &str)], Bytes) = match body {
            Value::Null => (&[], Bytes::new()),
            body => (
                &[("content-type", "application/json")],
                Bytes::from(body.to_string()),
            ),
        };
        let reply = self.http.send(method, &path, headers, body).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "WebDriver {path}: {}\n{}",
            reply.text(),
            self.driver.output()
        );
        let value: Value = serde_json::from_slice(&reply.body).expect("WebDriver answers JSON");
        value["value"].clone()
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.command(Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    /// Runs `script` (a function body) in the page and returns its result.
    pub async fn eval(&self, script: &str) -> Value {
        self.command(
            Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// The page's tables as the DOM shows them now.
    pub async fn page(&self) -> PageState {
        let value = self.eval(READ_TABLES).await;
        let tables = value["tables"]
            .as_object()
            .map(|tables| {
                tables
                    .iter()
                    .map(|(id, rows)| {
                        let rows = rows
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|r| PageRow {
                                problem: r["problem"].as_bool().unwrap_or(false),
                                cells: r["cells"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .map(|c| c.as_str().unwrap_or_default().to_string())
                                    .collect(),
                            })
                            .collect();
                        (id.clone(), rows)
                    })
                    .collect()
            })
            .unwrap_or_default();
        PageState {
            tables,
            updated: value["updated"].as_str().unwrap_or_default().to_string(),
            problems: value["problems"].as_str().unwrap_or_default().to_string(),
        }
    }

    /// Polls the page every 100 ms until `condition` holds; returns the state that satisfied
    /// it. Panics naming `what`, with the last state, after `within`.
    pub async fn wait_for(
        &self,
        what: &str,
        within: Duration,
        condition: impl Fn(&PageState) -> bool,
    ) -> PageState {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let state = self.page().await;
            if condition(&state) {
                return state;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the page did not show {what} within {within:?}; it shows {state:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG screenshot of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        let encoded = self.command(Method::GET, "/screenshot", Value::Null).await;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("a base64 screenshot"))
            .expect("the screenshot is base64")
    }

    /// Ends the session (the browser exits); the driver is killed on drop.
    pub async fn close(self) {
        let path = format!("/session/{}", self.session);
        let _ = self
            .http
            .try_send(Method::DELETE, &path, &[], Bytes::new())
            .await;
    }
}

/// What chromedriver prints once it listens, followed by the port.
const STARTED_ON_PORT: &str = "started successfully on port ";

/// The port of chromedriver's start line in `output`.
fn driver_port(output: &str) -> Option<u16> {
    let (_, rest) = output.split_once(STARTED_ON_PORT)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Waits until the driver's `/status` says it is ready.
async fn wait_ready(http: &Http) {
    eventually("chromedriver to become ready", PATIENCE, || async {
        let Ok(reply) = http
            .try_send(Method::GET, "/status", &[], Bytes::new())
            .await
        else {
            return false;
        };
        let value: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        value["value"]["ready"] == true
    })
    .await;
}

async fn new_session(
    http: &Http,
    profile: &Path,
    width: u32,
    height: u32,
    driver: &Process,
) -> String {
    let capabilities = json!({
        "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    // The test may run as root in a container, where the sandbox cannot start.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--hide-scrollbars",
                    "--no-first-run",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}
    });
    let reply = http
        .send(
            Method::POST,
            "/session",
            &[("content-type", "application/json")],
            Bytes::from(capabilities.to_string()),
        )
        .await;
    let value: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    match value["value"]["sessionId"].as_str() {
        Some(id) if reply.status == StatusCode::OK => id.to_string(),
        _ => panic!(
            "chromedriver could not start Chromium: {} {}\n{}",
            reply.status,
            reply.text(),
            driver.output()
        ),
    }
}
