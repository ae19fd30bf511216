//! Integration tests of `entra-mi-azure`: real official clients and credentials against the
//! emulator on loopback.

mod errors;
mod keyvault;
mod redaction;
mod reverse;
mod support;
