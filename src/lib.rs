//! The `entra-mi-suite` package owns the workspace's examples, benches and cross-crate tests.
//! Its library exists only to compile the code of the README and of the `docs/` pages as
//! doctests.

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/cache.md")]
struct CacheDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/default-chain.md")]
struct DefaultChainDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/middleware.md")]
struct MiddlewareDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/validation.md")]
struct ValidationDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/azure-sdk.md")]
struct AzureSdkDoctests;
