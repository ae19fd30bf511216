//! Integration tests of entra-mi-reqwest: the middleware against a protected API that
//! validates the emulator's tokens, one binary, a module per topic.
#![allow(unreachable_pub)]

mod middleware;
mod unauthorized_storm;
