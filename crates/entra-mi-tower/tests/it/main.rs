//! Integration tests of entra-mi-tower: the layer in front of a protected API that validates
//! the emulator's tokens, one binary, a module per topic.
#![allow(unreachable_pub)]

mod layer;
mod wide_keys;
