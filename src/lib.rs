//! The `entra-mi-suite` package owns the workspace's examples, benches and cross-crate tests.
//! Its library exists only to compile the README's code as a doctest.

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
