//! Integration tests of entra-mi-emulator, one binary, a module per topic.
#![allow(unreachable_pub)]

mod common;

mod discovery;
mod endpoints;
mod graph;
mod keyvault;
mod python_sdk;
mod quirks;
mod redaction;
mod sources;
mod tokens;
