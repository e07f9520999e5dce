//! The demo's sample requests (one clean, four that an agent must stop) and the table of what
//! each agent decided for each of them, read from the proxy's decision counters before and after
//! the request. It owns the samples and the table; it does not start anything.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sentinel::state::ProxyState;

pub const DEMO_TOKEN: &str = "demo-token-alice";
const AGENTS: [&str; 2] = ["auth", "waf"];
/// In the order an agent can give them for one request.
const ACTIONS: [&str; 4] = ["continue", "allow", "block", "redirect"];

pub struct Sample {
    what: &'static str,
    method: &'static str,
    path: &'static str,
    token: bool,
    body: &'static str,
}

pub const SAMPLES: [Sample; 5] = [
    Sample {
        what: "clean request",
        method: "GET",
        path: "/products?id=42",
        token: true,
        body: "",
    },
    Sample {
        what: "SQL injection in query",
        method: "GET",
        path: "/products?id=1%27%20OR%20%271%27%3D%271",
        token: true,
        body: "",
    },
    Sample {
        what: "missing token",
        method: "GET",
        path: "/products?id=42",
        token: false,
        body: "",
    },
    Sample {
        what: "XSS in body",
        method: "POST",
        path: "/comments",
        token: true,
        body: "<script>alert(1)</script>",
    },
    Sample {
        what: "path traversal",
        method: "GET",
        path: "/static/..%2f..%2fetc%2fpasswd",
        token: true,
        body: "",
    },
];

pub fn sample_request(
    sample: &Sample,
    address: std::net::SocketAddr,
) -> anyhow::Result<Request<Full<Bytes>>> {
    let mut request = Request::builder()
        .method(sample.method)
        .uri(format!("http://{address}{}", sample.path))
        .header("host", "demo.local");
    if sample.token {
        request = request.header("authorization", format!("Bearer {DEMO_TOKEN}"));
    }
    Ok(request.body(Full::new(Bytes::from_static(sample.body.as_bytes())))?)
}

pub async fn send_samples(
    state: &Arc<ProxyState>,
    address: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    println!("{:<24} {:<7} {:<15} client got", "request", "auth", "waf");
    println!("{}", "-".repeat(86));
    let mut unexpected = Vec::new();
    for sample in &SAMPLES {
        let before = decision_counts(state);
        let request = sample_request(sample, address)?;
        let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
            .await
            .context("the proxy did not answer within 10 s")??;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let after = decision_counts(state);
        let decided = |agent: &str| {
            ACTIONS
                .iter()
                .filter(|action| after[&(agent, **action)] > before[&(agent, **action)])
                .copied()
                .collect::<Vec<_>>()
                .join("→")
        };
        let (auth, waf) = (decided("auth"), decided("waf"));
        let got = format!("{} {}", status.as_u16(), one_line(&body));
        println!(
            "{:<24} {:<7} {:<15} {}",
            sample.what,
            or_dash(&auth),
            or_dash(&waf),
            got
        );
        let expected_status = match sample.what {
            "clean request" => StatusCode::OK,
            "missing token" => StatusCode::UNAUTHORIZED,
            _ => StatusCode::FORBIDDEN,
        };
        if status != expected_status {
            unexpected.push(format!(
                "{}: expected {expected_status}, got {status}",
                sample.what
            ));
        }
    }
    println!();
    if unexpected.is_empty() {
        println!("every request got the expected answer.");
        Ok(())
    } else {
        bail!("unexpected answers: {}", unexpected.join("; "))
    }
}

fn decision_counts(
    state: &ProxyState,
) -> std::collections::HashMap<(&'static str, &'static str), u64> {
    let mut counts = std::collections::HashMap::new();
    for agent in AGENTS {
        for action in ACTIONS {
            counts.insert((agent, action), state.metrics().decisions(agent, action));
        }
    }
    counts
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() {
        "-"
    } else {
        text
    }
}

fn one_line(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.lines().next().unwrap_or("").trim();
    line.chars().take(48).collect()
}
