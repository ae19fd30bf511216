//! Integration tests of entra-mi-validate against the emulator, one binary, a module per
//! topic.
#![allow(unreachable_pub)]

mod support;

mod cache;
mod keys;
mod layer;
mod limits;
mod policy;
mod secret_leak;
mod table;
