//! Fuzz target: what a registered agent sends on its connection (decisions for known and
//! unknown request ids, pongs, pings, GoAway, junk types and payloads, partial frames, silence)
//! while the proxy has requests in flight, through the pooled connection's reader and a real
//! AgentPool. The input is an `AgentScript` in its byte form. Any panic, or any invariant
//! `sentinel::fuzzing::check_session` finds broken, is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sentinel::fuzzing::{check_session, AgentScript};

fuzz_target!(|data: &[u8]| {
    let script = AgentScript::from_bytes(data);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    if let Err(violation) = runtime.block_on(check_session(&script)) {
        panic!("{violation}");
    }
});
