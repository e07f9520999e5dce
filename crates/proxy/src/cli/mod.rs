//! Modules of the `sentinel` binary (not of the library): what the command line runs besides
//! the proxy itself. Today that is [`demo`]; argument parsing and the thin `run`, `check`,
//! `agents` and `status` commands stay in `main.rs`. Nothing here is reachable from the
//! `sentinel` library, and nothing here holds proxy behaviour: it only drives the library.

pub mod demo;
