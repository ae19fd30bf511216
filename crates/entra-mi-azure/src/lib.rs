#![doc = include_str!("../README.md")]
//!
//! # Errors
//!
//! A failed fetch reaches the client as an `azure_core` error of kind
//! [`Credential`](azure_core::error::ErrorKind::Credential) (the kind the official identity
//! crate uses; the clients' retry policies do not retry it, entra-mi having retried within its
//! own budget already), a scope that is not one audience as
//! [`DataConversion`](azure_core::error::ErrorKind::DataConversion). The
//! [`entra_mi::Error`] is the error's source: `error.downcast_ref::<entra_mi::Error>()` reads
//! it. No message contains a token.
//!
//! # Versions
//!
//! The crate depends on `azure_core = "1"` without default features (no HTTP client, no
//! runtime of its own: the trait, the error and the time types are all it uses). The
//! `TokenCredential` trait is the same in `azure_core` 1.1.0 and 1.2.0-beta.1.
//!
//! Tested against, in one dependency graph: `azure_core` 1.1.0,
//! `azure_security_keyvault_secrets` 1.0.1 (a real `SecretClient` through the adapter, against
//! the emulator's Key Vault over TLS) and `azure_identity` 1.0.0 (its `ClientSecretCredential`
//! behind [`AzureCoreCredential`], and its `ManagedIdentityCredential` in the benchmarks).
//! `azure_storage_blob` 1.1.0 resolves in the same graph (it asks for `azure_core` 1.1.0).
//! `azure_security_keyvault_secrets` 1.1.0-beta.1 and `azure_identity` 1.1.0-beta.1 require
//! `azure_core` 1.2.0-beta.1, and Cargo cannot resolve them beside this crate: a requirement
//! without a pre-release (`"1"`) never matches a pre-release, and two semver-compatible
//! `azure_core` versions cannot coexist, so resolution fails. Use the released clients.
//!
//! # Key Vault's challenge
//!
//! The Key Vault clients send their first request without a token, read the scope from the
//! `401` challenge's `resource` (`https://vault.azure.net` → `https://vault.azure.net/.default`)
//! and check that the vault's host ends with `.` + that resource's host (`*.vault.azure.net`),
//! unless `verify_challenge_resource` is turned off in `SecretClientOptions`. A vault
//! emulated on `https://127.0.0.1:<port>` would fail that check; the tests use a
//! `*.vault.azure.net` name that their HTTP client resolves to the emulator's loopback address,
//! so the check runs as it does against Azure.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod azure_core_credential;
mod error;
mod provider_credential;

pub use azure_core_credential::AzureCoreCredential;
pub use provider_credential::TokenProviderCredential;
