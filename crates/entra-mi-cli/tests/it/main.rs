//! Integration tests of entra-mi-cli, one binary, a module per topic.
#![allow(unreachable_pub)]

mod common;

mod cli;
mod control_characters;
mod doctor;
mod documented_commands;
mod emulator_args;
mod exit_codes;
mod expired;
mod graph_limits;
mod loopback_graph;
mod perms;
mod proxy;
mod usage_errors;
mod validate;
