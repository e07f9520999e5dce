//! What the fuzz regression and property tests share: the paused-time runtime the drivers of
//! `sentinel::fuzzing` need, and a panic counter, because a panic inside a task the proxy
//! spawned is caught by tokio and would otherwise go unnoticed.
#![allow(dead_code)]

use std::cell::Cell;
use std::sync::Once;

static HOOK: Once = Once::new();

thread_local! {
    /// Panics on this thread. A current-thread runtime runs every task on the thread that
    /// calls `block_on`, so this counts the panics of one run, whatever task they were in.
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

/// Runs `future` on a fresh current-thread runtime whose clock is paused, as the fuzz targets
/// do, and fails if anything panicked meanwhile (in any task).
pub fn run<F: std::future::Future>(future: F) -> F::Output {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            previous(info);
        }));
    });
    let before = PANICS.with(Cell::get);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    let output = runtime.block_on(future);
    drop(runtime);
    assert_eq!(
        PANICS.with(Cell::get),
        before,
        "something panicked while the proxy handled fuzz input (see the output above)"
    );
    output
}

/// Proptest cases per property: `default`, or more with `SENTINEL_PROPTEST_CASES`. The variable
/// can only raise the count: a value below the default (0 included) or one that is not a number
/// fails the test, so a stray setting cannot turn a property into a test that proves nothing.
pub fn cases(default: u32) -> u32 {
    let Ok(value) = std::env::var("SENTINEL_PROPTEST_CASES") else {
        return default;
    };
    match value.trim().parse::<u32>() {
        Ok(cases) if cases >= default => cases,
        Ok(cases) => panic!(
            "SENTINEL_PROPTEST_CASES={cases} is below this property's {default} cases: \
             it may only raise the count"
        ),
        Err(_) => panic!("SENTINEL_PROPTEST_CASES={value:?} is not a whole number of cases"),
    }
}
