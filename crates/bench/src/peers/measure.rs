//! One measurement of one system on one check: saturation throughput with wrk (closed loop,
//! fixed connections) normalised by the proxy's CPU time from `/proc/PID/stat` (the process
//! and its children, for nginx's master and worker), and latency with oha at a fixed rate
//! with its coordinated-omission correction. Also the functional probes run before measuring
//! (a request without token is refused, a body with the pattern is refused). Both load
//! generators run on the non-proxy core and are bounded in time.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use super::systems::{Check, Endpoint};
use crate::sys;

/// The request every system gets: the ten browser headers, the bearer token, and for the body
/// check a 4 KiB form body that does not match the pattern.
pub struct RequestShape {
    /// Header name/value pairs (no Host: each client sets its own).
    pub headers: Vec<(String, String)>,
    /// The POST body, if any.
    pub body: Option<Vec<u8>>,
}

impl RequestShape {
    /// The request for `check`, authorised with `token`.
    pub fn for_check(check: Check, token: &str) -> RequestShape {
        let mut headers: Vec<(String, String)> = crate::wire::HEADERS
            .iter()
            .skip(1)
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        headers.push(("authorization".into(), format!("Bearer {token}")));
        let body = check.has_body().then(|| {
            headers.push((
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
            crate::wire::clean_body()
        });
        RequestShape { headers, body }
    }

    fn method(&self) -> &'static str {
        if self.body.is_some() {
            "POST"
        } else {
            "GET"
        }
    }
}

/// Bounds and sizes of the load runs.
#[derive(Debug, Clone, Copy)]
pub struct LoadSettings {
    /// Client connections (wrk and oha alike).
    pub connections: usize,
    /// wrk's window.
    pub saturation: Duration,
    /// oha's window.
    pub latency: Duration,
    /// The core the load generators run on.
    pub cpu: usize,
}

/// What wrk measured.
#[derive(Debug, Clone, Copy)]
pub struct Saturation {
    /// Requests per second.
    pub rps: f64,
    /// Requests completed.
    pub requests: u64,
    /// Proxy CPU time (process tree) over the run.
    pub proxy_cpu: Duration,
}

impl Saturation {
    /// Requests per proxy CPU-second.
    pub fn per_cpu_second(&self) -> f64 {
        self.requests as f64 / self.proxy_cpu.as_secs_f64().max(1e-3)
    }
}

/// What oha measured at a fixed rate.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// The rate asked for.
    pub rate: f64,
    /// Median, coordinated-omission corrected.
    pub p50: Duration,
    /// 99th percentile, corrected.
    pub p99: Duration,
    /// Requests per second achieved.
    pub achieved_rps: f64,
}

/// Writes wrk's Lua script for `shape` (mode 0600: it holds the token).
pub fn write_wrk_script(path: &Path, shape: &RequestShape) -> anyhow::Result<()> {
    let mut script = format!("wrk.method = \"{}\"\n", shape.method());
    for (name, value) in &shape.headers {
        // The spaces keep `[ [==[` from reading as a long string opener.
        script.push_str(&format!("wrk.headers[ {} ] = {}\n", lua(name), lua(value)));
    }
    if let Some(body) = &shape.body {
        script.push_str(&format!(
            "wrk.body = {}\n",
            lua(std::str::from_utf8(body).context("body is text")?)
        ));
    }
    super::systems::write_private(path, &script)
}

/// A Lua long-bracket string literal (no escaping needed; the texts here hold no "]==]").
fn lua(text: &str) -> String {
    format!("[==[{text}]==]")
}

/// Runs wrk against `endpoint` and reads `proxy_pid`'s CPU time around it.
pub fn saturate(
    wrk: &Path,
    script: &Path,
    endpoint: &Endpoint,
    proxy_pid: u32,
    settings: LoadSettings,
) -> anyhow::Result<Saturation> {
    let url = format!("http://{}{}", endpoint.address, endpoint.path);
    let args = vec![
        "-t1".to_string(),
        format!("-c{}", settings.connections),
        format!("-d{}s", settings.saturation.as_secs().max(1)),
        "--timeout".into(),
        "2s".into(),
        "-s".into(),
        script.display().to_string(),
        url,
    ];
    let before = tree_cpu_time(proxy_pid)?;
    let limit = settings.saturation + Duration::from_secs(20);
    let out = sys::run_capture(settings.cpu, wrk, &args, limit)?;
    let proxy_cpu = tree_cpu_time(proxy_pid)?.saturating_sub(before);
    parse_wrk(&out).map(|(requests, rps)| Saturation {
        rps,
        requests,
        proxy_cpu,
    })
}

/// (requests, requests per second) from wrk's report; fails on any error or non-2xx answer.
pub fn parse_wrk(out: &str) -> anyhow::Result<(u64, f64)> {
    if let Some(line) = out
        .lines()
        .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
    {
        bail!("wrk reported failures: {}", line.trim());
    }
    let requests = out
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .with_context(|| format!("no request count in wrk output: {out}"))?;
    let rps = out
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .with_context(|| format!("no Requests/sec in wrk output: {out}"))?;
    Ok((requests, rps))
}

/// Runs oha at `rate` requests per second with latency correction.
pub fn latency(
    oha: &Path,
    body_file: Option<&PathBuf>,
    shape: &RequestShape,
    endpoint: &Endpoint,
    rate: f64,
    settings: LoadSettings,
) -> anyhow::Result<Latency> {
    let mut args = vec![
        "--no-tui".to_string(),
        "--output-format".into(),
        "json".into(),
        "-z".into(),
        format!("{}s", settings.latency.as_secs().max(1)),
        "-c".into(),
        settings.connections.to_string(),
        "-q".into(),
        format!("{:.0}", rate.max(1.0)),
        "--latency-correction".into(),
        // Requests in flight at the deadline finish and count, instead of being errors.
        "-w".into(),
        "-m".into(),
        shape.method().into(),
    ];
    for (name, value) in &shape.headers {
        args.push("-H".into());
        args.push(format!("{name}: {value}"));
    }
    if let Some(file) = body_file {
        args.push("-D".into());
        args.push(file.display().to_string());
    }
    args.push(format!("http://{}{}", endpoint.address, endpoint.path));
    let limit = settings.latency + Duration::from_secs(20);
    let out = sys::run_capture(settings.cpu, oha, &args, limit)?;
    parse_oha(&out, rate)
}

/// The latency figures from oha's JSON; fails on any error or non-2xx status.
pub fn parse_oha(out: &str, rate: f64) -> anyhow::Result<Latency> {
    let json_start = out.find('{').context("oha printed no JSON")?;
    let v: serde_json::Value =
        serde_json::from_str(&out[json_start..]).context("parsing oha's JSON")?;
    if let Some(errors) = v["errorDistribution"].as_object() {
        if !errors.is_empty() {
            bail!("oha reported errors: {errors:?}");
        }
    }
    if let Some(codes) = v["statusCodeDistribution"].as_object() {
        if let Some(bad) = codes.keys().find(|c| !c.starts_with('2')) {
            bail!("oha got status {bad}: {codes:?}");
        }
    }
    let seconds = |key: &str| {
        v["latencyPercentiles"][key]
            .as_f64()
            .map(Duration::from_secs_f64)
            .with_context(|| format!("no {key} in oha's JSON"))
    };
    Ok(Latency {
        rate,
        p50: seconds("p50")?,
        p99: seconds("p99")?,
        achieved_rps: v["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0),
    })
}

/// CPU time of `pid` plus that of its live descendants.
pub fn tree_cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let mut total = sys::cpu_time(pid)?;
    for child in descendants(pid) {
        total += sys::cpu_time(child).unwrap_or_default();
    }
    Ok(total)
}

/// Every live descendant of `root`, from the parent ids in `/proc/*/stat`.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let ppid = stat
                .rfind(')')
                .and_then(|end| stat[end + 1..].split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut index = 0;
    while index < found.len() {
        let parent = found[index];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        index += 1;
    }
    found.remove(0);
    found
}

/// Sends one request (`Connection: close`) and returns the response status.
pub fn probe_status(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> anyhow::Result<u16> {
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" {
        request.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    let line = String::from_utf8_lossy(&head);
    line.get(9..12)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("malformed status line {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_report_parses_and_failures_are_errors() {
        let ok = "Running 3s test @ http://127.0.0.1:1/x\n  1 threads and 32 connections\n  \
                  123456 requests in 3.00s, 12.34MB read\nRequests/sec:  41152.00\n";
        assert_eq!(parse_wrk(ok).expect("parses"), (123456, 41152.0));
        let bad = format!("{ok}  Non-2xx or 3xx responses: 5\n");
        assert!(parse_wrk(&bad).is_err());
        assert!(parse_wrk("garbage").is_err());
    }

    #[test]
    fn wrk_script_has_no_accidental_long_strings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.lua");
        let shape = RequestShape::for_check(Check::Body, "tok");
        write_wrk_script(&path, &shape).expect("written");
        let script = std::fs::read_to_string(&path).expect("readable");
        assert!(script.starts_with("wrk.method = \"POST\"\n"));
        assert!(!script.contains("[[") && !script.contains("]]"), "{script}");
        assert!(script.contains("wrk.headers[ [==[authorization]==] ] = [==[Bearer tok]==]"));
        assert!(script.contains("wrk.body = [==[comment="));
    }

    #[test]
    fn oha_json_parses_and_errors_are_reported() {
        let ok = r#"{"summary":{"requestsPerSec":999.5},"latencyPercentiles":{"p50":0.0005,"p99":0.002},"statusCodeDistribution":{"200":100},"errorDistribution":{}}"#;
        let latency = parse_oha(ok, 1000.0).expect("parses");
        assert_eq!(latency.p50, Duration::from_micros(500));
        assert_eq!(latency.p99, Duration::from_millis(2));
        let refused = ok.replace(r#""200":100"#, r#""200":90,"401":10"#);
        assert!(parse_oha(&refused, 1000.0).is_err());
        let errors = ok.replace(
            r#""errorDistribution":{}"#,
            r#""errorDistribution":{"timeout":1}"#,
        );
        assert!(parse_oha(&errors, 1000.0).is_err());
    }

    #[test]
    fn descendants_of_this_process_include_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep runs");
        let found = descendants(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&child.id()), "{found:?}");
    }
}
