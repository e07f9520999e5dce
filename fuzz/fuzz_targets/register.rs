//! Fuzz target: bytes as they arrive on a fresh reverse-listener connection, through the
//! listener's own handshake task (first frame, RegistrationRequest parsing, version, id, auth,
//! allowlist, connection limit, answer), on two connections at once. Any panic, or any
//! invariant `sentinel::fuzzing::check_registration` finds broken, is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    if let Err(violation) = runtime.block_on(sentinel::fuzzing::check_registration(data)) {
        panic!("{violation}");
    }
});
