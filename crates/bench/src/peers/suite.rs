//! The `peers` suite: starts the upstream and the three systems, proves each one really makes
//! its check (a request without token is refused, a body with the pattern is refused), then
//! for every run and every (check, system) pair measures saturation with wrk and latency with
//! oha at half of that saturation rate, and prints the side-by-side table and the issue's
//! targets. Checks and systems interleave within each run, so drift hits all of them alike.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::measure::{self, Latency, LoadSettings, RequestShape, Saturation};
use super::systems::{self, Check, Running, Shared, System};
use super::tools::{self, Tools};
use crate::report::{self, Row, Target};
use crate::sys::{self, Cores, Proc};

/// What the `peers` command line asked for.
pub struct Settings {
    /// Runs per figure (median reported).
    pub runs: usize,
    /// Short windows: a smoke run.
    pub quick: bool,
    /// Skip `cargo build`.
    pub no_build: bool,
    /// Do not install missing tools.
    pub no_install: bool,
    /// Client connections.
    pub connections: usize,
}

/// One run of one (check, system) pair.
#[derive(Debug, Clone, Copy)]
struct Sample {
    saturation: Saturation,
    latency: Latency,
}

/// All samples, indexed by check then system.
type Samples = [[Vec<Sample>; 3]; 3];

/// Runs the suite and prints the table.
pub fn run(settings: &Settings) -> anyhow::Result<()> {
    let started = Instant::now();
    let tools = tools::ensure(!settings.no_install)?;
    let exe = std::env::current_exe()?;
    let bin_dir = exe.parent().context("no binary directory")?.to_path_buf();
    if !settings.no_build {
        sentinel_test_support::build::build_binaries(&[
            "sentinel",
            "sentinel-agent-auth",
            "sentinel-agent-waf",
        ])?;
    }
    let cores = Cores::detect();
    let dir = tempfile::tempdir()?;
    let mut upstream = Proc::spawn(
        "upstream",
        cores.others,
        &exe,
        &[
            "upstream".into(),
            "--addr".into(),
            sentinel_test_support::ports::ANY_LOOPBACK.to_string(),
        ],
        &[],
    )?;
    let shared = Shared {
        dir: dir.path().to_path_buf(),
        upstream: upstream.listening_address(Duration::from_secs(10))?,
        token: random_token()?,
        exe: exe.clone(),
        bin_dir,
        cores,
    };
    systems::write_private(&shared.token_file(), &shared.token)?;
    let mut running = vec![
        systems::start_sentinel(&shared)?,
        systems::start_nginx(&shared, &tools)?,
        systems::start_haproxy(&shared, &tools)?,
    ];
    print_header(&tools, cores, settings, &running);
    for system in &running {
        probe(system, &shared.token)?;
    }
    eprintln!(
        "probes passed: every system refuses a missing or wrong token and a body with the pattern"
    );

    let load = LoadSettings {
        connections: settings.connections,
        saturation: Duration::from_secs(if settings.quick { 1 } else { 3 }),
        latency: Duration::from_secs(if settings.quick { 1 } else { 3 }),
        cpu: cores.others,
    };
    let requests = prepare_requests(&shared)?;
    warm_up(&tools, &mut running, &requests, load)?;
    let samples = measure_all(&tools, &mut running, &requests, load, settings.runs)?;
    let (table, rows) = render(&samples, settings);
    println!();
    println!("{table}");
    println!("{}", report::render(&rows));
    let met = rows.iter().filter(|r| r.met() == Some(true)).count();
    let missed = rows.iter().filter(|r| r.met() == Some(false)).count();
    println!(
        "targets met: {met}, missed: {missed}; load average at the end {}; took {:.0} s",
        load_average(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The request files per check: wrk's script and oha's body file.
struct CheckRequest {
    shape: RequestShape,
    wrk_script: PathBuf,
    body_file: Option<PathBuf>,
}

fn prepare_requests(shared: &Shared) -> anyhow::Result<Vec<CheckRequest>> {
    Check::ALL
        .iter()
        .enumerate()
        .map(|(i, &check)| {
            let shape = RequestShape::for_check(check, &shared.token);
            let wrk_script = shared.dir.join(format!("wrk-{i}.lua"));
            measure::write_wrk_script(&wrk_script, &shape)?;
            let body_file = match &shape.body {
                Some(body) => {
                    let path = shared.dir.join(format!("body-{i}"));
                    std::fs::write(&path, body)?;
                    Some(path)
                }
                None => None,
            };
            Ok(CheckRequest {
                shape,
                wrk_script,
                body_file,
            })
        })
        .collect()
}

/// 32 random bytes from the kernel, hex: a fresh token per run, kept in files only.
fn random_token() -> anyhow::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Proves each system makes its checks before anything is measured.
fn probe(running: &Running, token: &str) -> anyhow::Result<()> {
    let name = running.system.name();
    for check in Check::ALL {
        let Some(endpoint) = running.endpoint(check) else {
            continue;
        };
        let shape = RequestShape::for_check(check, token);
        let body = shape.body.clone().unwrap_or_default();
        let method = if check.has_body() { "POST" } else { "GET" };
        let status = |headers: &[(String, String)], body: &[u8]| {
            measure::probe_status(endpoint.address, method, endpoint.path, headers, body)
        };
        let expect = |what: &str, got: u16, want: u16| -> anyhow::Result<()> {
            if got != want {
                bail!("{name} {}: {what} got {got}, expected {want}", check.name());
            }
            Ok(())
        };
        expect("a valid request", status(&shape.headers, &body)?, 200)?;
        let without_token: Vec<_> = shape
            .headers
            .iter()
            .filter(|(n, _)| n != "authorization")
            .cloned()
            .collect();
        let mut wrong_token = without_token.clone();
        wrong_token.push(("authorization".into(), "Bearer not-the-token".into()));
        match check {
            Check::Plain => expect(
                "a request without token",
                status(&without_token, &body)?,
                200,
            )?,
            Check::Header => {
                expect(
                    "a request without token",
                    status(&without_token, &body)?,
                    401,
                )?;
                expect(
                    "a request with a wrong token",
                    status(&wrong_token, &body)?,
                    401,
                )?;
            }
            Check::Body => {
                let mut attack = body.clone();
                attack.splice(0..0, b"comment=<script>alert(1)</script>&".iter().copied());
                attack.truncate(body.len());
                expect(
                    "a body with the pattern",
                    status(&shape.headers, &attack)?,
                    403,
                )?;
            }
        }
    }
    Ok(())
}

fn warm_up(
    tools: &Tools,
    running: &mut [Running],
    requests: &[CheckRequest],
    load: LoadSettings,
) -> anyhow::Result<()> {
    let short = LoadSettings {
        saturation: Duration::from_secs(1),
        ..load
    };
    for system in running.iter_mut() {
        for check in Check::ALL {
            if let Some(endpoint) = system.endpoint(check) {
                let pid = system.proxy.pid();
                let script = &requests[check as usize].wrk_script;
                measure::saturate(&tools.wrk, script, endpoint, pid, short).with_context(|| {
                    format!("warm-up {} {}", system.system.name(), check.name())
                })?;
            }
        }
    }
    Ok(())
}

fn measure_all(
    tools: &Tools,
    running: &mut [Running],
    requests: &[CheckRequest],
    load: LoadSettings,
    runs: usize,
) -> anyhow::Result<Samples> {
    let mut samples: Samples = Default::default();
    for run in 0..runs {
        eprintln!("run {}/{runs} (load average {})", run + 1, load_average());
        for check in Check::ALL {
            for system in running.iter_mut() {
                let Some(endpoint) = system.endpoint(check).cloned() else {
                    continue;
                };
                system.proxy.check_alive()?;
                let request = &requests[check as usize];
                let what = format!("{} {}", system.system.name(), check.name());
                let saturation = measure::saturate(
                    &tools.wrk,
                    &request.wrk_script,
                    &endpoint,
                    system.proxy.pid(),
                    load,
                )
                .with_context(|| format!("wrk, {what}"))?;
                let latency = measure::latency(
                    &tools.oha,
                    request.body_file.as_ref(),
                    &request.shape,
                    &endpoint,
                    saturation.rps * 0.5,
                    load,
                )
                .with_context(|| format!("oha, {what}"))?;
                eprintln!(
                    "  {what}: {:.0} req/s, {:.0} req per proxy CPU-s; at {:.0} req/s (achieved {:.0}) p50 {} us p99 {} us",
                    saturation.rps,
                    saturation.per_cpu_second(),
                    latency.rate,
                    latency.achieved_rps,
                    latency.p50.as_micros(),
                    latency.p99.as_micros()
                );
                samples[check as usize][system.system as usize].push(Sample {
                    saturation,
                    latency,
                });
            }
        }
    }
    Ok(samples)
}

/// Medians of one (check, system) pair.
#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    runs: usize,
    rps: f64,
    per_cpu_s: f64,
    per_cpu_s_min: f64,
    per_cpu_s_max: f64,
    busy: f64,
    rate: f64,
    p50_us: f64,
    p99_us: f64,
}

fn summarize(samples: &[Sample], window: Duration) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    let median =
        |f: &dyn Fn(&Sample) -> f64| sys::median(&samples.iter().map(f).collect::<Vec<_>>());
    let per_cpu: Vec<f64> = samples
        .iter()
        .map(|s| s.saturation.per_cpu_second())
        .collect();
    Some(Summary {
        runs: samples.len(),
        rps: median(&|s| s.saturation.rps),
        per_cpu_s: sys::median(&per_cpu),
        per_cpu_s_min: per_cpu.iter().copied().fold(f64::INFINITY, f64::min),
        per_cpu_s_max: per_cpu.iter().copied().fold(0.0, f64::max),
        busy: median(&|s| s.saturation.proxy_cpu.as_secs_f64() / window.as_secs_f64()),
        rate: median(&|s| s.latency.rate),
        p50_us: median(&|s| s.latency.p50.as_secs_f64() * 1e6),
        p99_us: median(&|s| s.latency.p99.as_secs_f64() * 1e6),
    })
}

/// Median over runs of (check's percentile - plain's percentile) for one system.
fn added_us(samples: &Samples, check: Check, system: System, p99: bool) -> Option<f64> {
    let checked = &samples[check as usize][system as usize];
    let plain = &samples[Check::Plain as usize][system as usize];
    if checked.is_empty() || plain.len() != checked.len() {
        return None;
    }
    let pick = |s: &Sample| if p99 { s.latency.p99 } else { s.latency.p50 }.as_secs_f64() * 1e6;
    let diffs: Vec<f64> = checked
        .iter()
        .zip(plain)
        .map(|(c, p)| pick(c) - pick(p))
        .collect();
    Some(sys::median(&diffs))
}

fn render(samples: &Samples, settings: &Settings) -> (String, Vec<Row>) {
    let window = Duration::from_secs(if settings.quick { 1 } else { 3 });
    let summary =
        |check: Check, system: System| summarize(&samples[check as usize][system as usize], window);
    let mut table = String::from(
        "| check | system | external check | req/s (wrk) | req per proxy CPU-s | proxy core busy | latency at req/s | p50 us | p99 us | added p50 / p99 us vs own plain | runs: req per CPU-s |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for check in Check::ALL {
        for system in System::ALL {
            let Some(s) = summary(check, system) else {
                table.push_str(&format!(
                    "| {} | {} | {} | - | - | - | - | - | - | - | not measured |\n",
                    check.name(),
                    system.name(),
                    system.mechanism(check)
                ));
                continue;
            };
            let added = match (
                check,
                added_us(samples, check, system, false),
                added_us(samples, check, system, true),
            ) {
                (Check::Plain, _, _) => "-".to_string(),
                (_, Some(a50), Some(a99)) => format!("{a50:+.0} / {a99:+.0}"),
                _ => "-".to_string(),
            };
            table.push_str(&format!(
                "| {} | {} | {} | {:.0} | {:.0} | {:.0}% | {:.0} | {:.0} | {:.0} | {} | {}: {:.0}-{:.0} |\n",
                check.name(),
                system.name(),
                system.mechanism(check),
                s.rps,
                s.per_cpu_s,
                s.busy * 100.0,
                s.rate,
                s.p50_us,
                s.p99_us,
                added,
                s.runs,
                s.per_cpu_s_min,
                s.per_cpu_s_max
            ));
        }
    }
    (table, target_rows(samples, window))
}

fn target_rows(samples: &Samples, window: Duration) -> Vec<Row> {
    let per_cpu = |check: Check, system: System| {
        summarize(&samples[check as usize][system as usize], window)
            .map_or(f64::NAN, |s| s.per_cpu_s)
    };
    let mut rows = Vec::new();
    let plain_sentinel = per_cpu(Check::Plain, System::Sentinel);
    rows.push(Row {
        group: "1 plain".into(),
        case: "sentinel vs nginx, req per proxy CPU-s".into(),
        measured: plain_sentinel,
        baseline: Some(per_cpu(Check::Plain, System::Nginx)),
        unit: "req/CPU-s",
        target: Target::AtLeast(1.0),
        note: String::new(),
    });
    rows.push(Row {
        group: "1 plain".into(),
        case: "sentinel vs haproxy, req per proxy CPU-s".into(),
        measured: plain_sentinel,
        baseline: Some(per_cpu(Check::Plain, System::Haproxy)),
        unit: "req/CPU-s",
        target: Target::None,
        note: "no target in the issue".into(),
    });
    let (better_peer, better) = [System::Nginx, System::Haproxy]
        .into_iter()
        .map(|s| (s, per_cpu(Check::Header, s)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((System::Nginx, f64::NAN));
    rows.push(Row {
        group: "2 header".into(),
        case: format!(
            "sentinel + auth agent vs the better peer ({}), req per proxy CPU-s",
            better_peer.name()
        ),
        measured: per_cpu(Check::Header, System::Sentinel),
        baseline: Some(better),
        unit: "req/CPU-s",
        // Issue 17: at least HAProxy with SPOE's requests per proxy CPU-second.
        target: Target::AtLeast(1.0),
        note: String::new(),
    });
    let added = |system| added_us(samples, Check::Header, system, true).unwrap_or(f64::NAN);
    let sentinel_added = added(System::Sentinel);
    let (lowest_peer, lowest) = [System::Nginx, System::Haproxy]
        .into_iter()
        .map(|s| (s, added(s)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((System::Nginx, f64::NAN));
    // A latency target is only decided when the run-to-run spread of the baseline it is
    // measured against is below the 100 us it is about (on a shared machine it is not).
    let spread = p99_spread_us(samples, Check::Plain, System::Sentinel);
    let decidable = spread <= ADDED_P99_LIMIT_US;
    let latency_target = |target| if decidable { target } else { Target::None };
    let undecided = if decidable {
        String::new()
    } else {
        format!(
            "; not decided: sentinel's plain p99 varied by {spread:.0} us between runs, more than the {ADDED_P99_LIMIT_US:.0} us at stake"
        )
    };
    rows.push(Row {
        group: "2 header".into(),
        case: format!(
            "sentinel added p99 vs the lowest peer's ({})",
            lowest_peer.name()
        ),
        // Below 1 us an added latency is noise; the floor keeps the ratio meaningful.
        measured: sentinel_added.max(1.0),
        baseline: Some(lowest.max(1.0)),
        unit: "us",
        target: latency_target(Target::AtMost(1.0)),
        note: format!(
            "added p99: sentinel {sentinel_added:+.0}, nginx {:+.0}, haproxy {:+.0} us{undecided}",
            added(System::Nginx),
            added(System::Haproxy)
        ),
    });
    rows.push(Row {
        group: "2 header".into(),
        case: "sentinel added p99".into(),
        measured: sentinel_added,
        baseline: None,
        unit: "us",
        target: latency_target(Target::Below(ADDED_P99_LIMIT_US)),
        note: format!("limit: <= {ADDED_P99_LIMIT_US:.0} us on this machine{undecided}"),
    });
    rows.push(Row {
        group: "3 body".into(),
        case: "sentinel + waf agent vs haproxy SPOE, req per proxy CPU-s".into(),
        measured: per_cpu(Check::Body, System::Sentinel),
        baseline: Some(per_cpu(Check::Body, System::Haproxy)),
        unit: "req/CPU-s",
        // Issue 17: 10% under HAProxy SPOE's proxy CPU per checked body.
        target: Target::AtLeast(1.1),
        note: "nginx: n/a, auth_request cannot see the body".into(),
    });
    rows
}

/// The limit on the p99 the header check adds.
const ADDED_P99_LIMIT_US: f64 = 100.0;

/// Largest minus smallest p99 over the runs of one (check, system) pair.
fn p99_spread_us(samples: &Samples, check: Check, system: System) -> f64 {
    let p99s: Vec<f64> = samples[check as usize][system as usize]
        .iter()
        .map(|s| s.latency.p99.as_secs_f64() * 1e6)
        .collect();
    let max = p99s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = p99s.iter().copied().fold(f64::INFINITY, f64::min);
    if p99s.is_empty() {
        f64::INFINITY
    } else {
        max - min
    }
}

fn print_header(tools: &Tools, cores: Cores, settings: &Settings, running: &[Running]) {
    eprintln!("versions: {}", tools.versions().join("; "));
    eprintln!(
        "placement: proxy under test alone on CPU {}; wrk/oha, upstream, agents, auth service and SPOA on CPU {} (taskset); {} CPUs available",
        cores.proxy, cores.others, cores.available
    );
    for system in running {
        let pid = system.proxy.pid();
        eprintln!(
            "  {}: pid {pid}, {} threads, {}",
            system.system.name(),
            proc_status_field(pid, "Threads:").unwrap_or_default(),
            proc_status_field(pid, "Cpus_allowed_list:")
                .map(|c| format!("CPUs {c}"))
                .unwrap_or_default()
        );
    }
    eprintln!(
        "method: wrk -t1 -c{c} for {w} s per run (saturation; requests / proxy CPU-s from /proc/PID/stat of the proxy and its children), then oha -c{c} -q (50% of that run's wrk rate) --latency-correction for {w} s; median of {r} runs; load average {l}",
        c = settings.connections,
        w = if settings.quick { 1 } else { 3 },
        r = settings.runs,
        l = load_average()
    );
}

fn proc_status_field(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim().to_string())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
