//! Integration tests of entra-mi against real loopback servers (the emulator, or a scripted
//! raw HTTP server), one binary, a module per topic.
#![allow(unreachable_pub)]

mod azure_cli;
mod cache;
mod cache_bounds;
mod certificate;
mod connection_reuse;
mod credential_wire;
mod default_chain;
mod detection;
mod emulator_sources;
mod entra;
mod federated_mi_cache;
mod properties;
mod sources;
