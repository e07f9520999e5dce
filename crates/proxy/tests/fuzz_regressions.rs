//! Replays every input kept for the proxy's fuzz targets through the drivers the targets use:
//! the seeds (`fuzz/seeds/<target>/`) and each input a fuzzer found failing
//! (`tests/fuzz_corpus/<target>/`, one file per finding, named after it). A few seeds also pin
//! the outcome they must produce, so the drivers are shown to tell the cases apart.
#![allow(
    clippy::disallowed_methods,
    reason = "test set-up writes and reads fixture files; no proxy runtime is blocked"
)]

mod fuzz_support;

use std::path::{Path, PathBuf};

use sentinel::fuzzing::{check_registration, check_session, AgentScript};

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dirs = [
        manifest.join("../../fuzz/seeds").join(target),
        manifest.join("tests/fuzz_corpus").join(target),
    ];
    let mut found = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        // The seeds must be there; a target without findings has no fuzz_corpus directory.
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if i == 0 || e.kind() != std::io::ErrorKind::NotFound => {
                panic!("{}: {e}", dir.display())
            }
            Err(_) => continue,
        };
        for entry in entries {
            let path: PathBuf = entry.expect("a directory entry").path();
            let bytes = std::fs::read(&path).expect("a readable input");
            found.push((path.display().to_string(), bytes));
        }
    }
    found.sort();
    assert!(!found.is_empty(), "no inputs for {target}");
    found
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_registration_input_keeps_the_invariants() {
    for (name, bytes) in inputs("register") {
        if let Err(violation) = fuzz_support::run(check_registration(&bytes)) {
            panic!("{name}: {violation}");
        }
    }
}

#[test]
fn every_agent_session_input_keeps_the_invariants() {
    for (name, bytes) in inputs("agent_session") {
        let script = AgentScript::from_bytes(&bytes);
        if let Err(violation) = fuzz_support::run(check_session(&script)) {
            panic!("{name}: {violation}\n{script:?}");
        }
    }
}

#[test]
fn registration_seeds_get_the_answers_the_protocol_gives() {
    let outcome = |name: &str| {
        fuzz_support::run(check_registration(&seed("register", name)))
            .unwrap_or_else(|v| panic!("{name}: {v}"))
            .outcomes
    };
    // The same registration on two connections with a limit of one.
    assert_eq!(outcome("valid"), ["accepted", "connection_limit"]);
    assert_eq!(outcome("not_allowed"), ["not_allowed"; 2]);
    assert_eq!(outcome("wrong_token"), ["auth_failed"; 2]);
    assert_eq!(outcome("version_1"), ["version_mismatch"; 2]);
    assert_eq!(outcome("bad_id"), ["invalid_agent_id"; 2]);
    assert_eq!(outcome("partial"), ["timeout"; 2]);
    assert_eq!(outcome("huge_length"), ["invalid_request"; 2]);
}

#[test]
fn agent_session_seeds_end_their_requests_as_scripted() {
    let outcome = |name: &str| {
        let script = AgentScript::from_bytes(&seed("agent_session", name));
        fuzz_support::run(check_session(&script))
            .unwrap_or_else(|v| panic!("{name}: {v}"))
            .outcomes
    };
    assert_eq!(outcome("answers_json"), ["decision", "decision", "error"]);
    assert_eq!(
        outcome("answers_msgpack"),
        ["decision", "decision", "error"]
    );
    // Junk payload of a known type is a protocol error: the connection closes.
    assert_eq!(outcome("junk_frames"), ["connection_lost"; 2]);
    // Nobody answers: both requests time out.
    assert_eq!(outcome("announce_max"), ["timeout"]);
}
