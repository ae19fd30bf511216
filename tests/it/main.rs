//! Cross-crate integration tests of the entra-mi workspace, one binary: the fault matrix (a
//! module per token source) and routing security through both middlewares.
#![allow(unreachable_pub)]

mod fault_matrix;
mod routing;
