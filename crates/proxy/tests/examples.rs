//! Every configuration under `examples/` must be accepted by the loader (`sentinel check`).

use std::path::Path;

#[test]
fn every_example_config_is_valid() {
    // remote-agents.kdl reads its token from the environment.
    std::env::set_var("SENTINEL_WAF_TOKEN", "example-token");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/ exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "kdl") {
            if let Err(e) = sentinel::config::load(&path) {
                panic!("{e}");
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 3,
        "found only {checked} example configs in {}",
        dir.display()
    );
}
