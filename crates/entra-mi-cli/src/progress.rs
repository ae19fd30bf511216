//! Progress on slow network steps, shown only when stderr is a terminal.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::time::Duration;

fn interactive() -> bool {
    std::io::stderr().is_terminal()
}

/// Runs `work` while a spinner with `label` turns on stderr (terminals only).
pub(crate) async fn step<T>(label: &str, work: impl Future<Output = T>) -> T {
    if !interactive() {
        return work.await;
    }
    let label = label.to_owned();
    let spinner = tokio::spawn(async move {
        const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
        for i in 0usize.. {
            eprint!("\r{} {label}…", FRAMES[i % FRAMES.len()]);
            let _ = std::io::stderr().flush();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let out = work.await;
    spinner.abort();
    eprint!("\r\x1b[2K");
    let _ = std::io::stderr().flush();
    out
}

/// A one-line note on stderr (terminals only), made safe to print: it may quote Graph.
pub(crate) fn note(message: &str) {
    if interactive() {
        eprintln!("\r\x1b[2K{}", crate::printable::text(message));
    }
}
