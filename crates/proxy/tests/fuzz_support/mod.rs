//! What the fuzz regression and property tests share: the paused-time runtime the drivers of
//! `sentinel::fuzzing` need, and a panic counter, because a panic inside a task the proxy
//! spawned is caught by tokio and would otherwise go unnoticed.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

static PANICS: AtomicUsize = AtomicUsize::new(0);
static HOOK: Once = Once::new();

/// Runs `future` on a fresh current-thread runtime whose clock is paused, as the fuzz targets
/// do, and fails if anything panicked meanwhile (in any task).
pub fn run<F: std::future::Future>(future: F) -> F::Output {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    let output = runtime.block_on(future);
    drop(runtime);
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "something panicked while the proxy handled fuzz input (see the output above)"
    );
    output
}

/// Proptest cases per property: `SENTINEL_PROPTEST_CASES` or `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("SENTINEL_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
