//! No secret of any credential or middleware reaches a log line, a `Debug` or `Display`
//! output or an error chain, under a TRACE subscriber that captures everything.
//!
//! A binary of its own: the tests install the process-wide `tracing` subscriber (tasks log
//! from every worker thread, so a thread-local one would miss events), and every line any
//! test of the process logs is searched for the secrets. Tests of other binaries running here
//! would add their own canaries to the capture.
#![allow(unreachable_pub)]

use std::sync::OnceLock;

use entra_mi_test_support::Capture;

mod basic;
mod every_credential;

/// The capture of the process-wide TRACE subscriber, installed on first use. The tests of
/// this binary share it: each searches everything logged so far, its own lines included.
fn logs() -> Capture {
    static LOGS: OnceLock<Capture> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Capture::default();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(logs.clone())
            .with_ansi(false)
            .init();
        logs
    })
    .clone()
}
