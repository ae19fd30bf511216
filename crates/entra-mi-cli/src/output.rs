//! Writing a command's result to standard output.
//!
//! `println!` panics when standard output is closed or full (exit code 101); a command's
//! output goes through [`emit`] instead, so a failed write is an ordinary failure (exit 1)
//! with a message on standard error.

use std::io::Write;

use crate::Failure;

/// Writes `bytes` to standard output and flushes it.
pub(crate) fn emit(bytes: impl AsRef<[u8]>) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes.as_ref())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::new(format!("cannot write to standard output: {e}")))
}
