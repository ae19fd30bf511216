//! entra-mi credentials for the official Azure SDK for Rust clients, and official credentials
//! behind entra-mi's cache: an [`azure_core::credentials::TokenCredential`] adapter, both
//! ways.
//!
//! * [`TokenProviderCredential`] — an entra-mi [`TokenProvider`](entra_mi::TokenProvider) (any
//!   entra-mi credential: every managed-identity source, workload identity, client secret or
//!   certificate, Azure CLI, the default chain) as the `Arc<dyn TokenCredential>` that the
//!   official clients (`SecretClient`, `BlobClient`, …) take. Scopes come from the client at
//!   run time, tokens carry their real `expires_on`, and the cache refreshes them before the
//!   client's bearer policy asks again.
//! * [`AzureCoreCredential`] — any `azure_core` credential (an official identity crate's
//!   developer credential, say) as an entra-mi [`TokenCredential`](entra_mi::TokenCredential),
//!   so it sits behind entra-mi's cache, routing and middlewares.
//!
//! ```no_run
//! use std::sync::Arc;
//! use azure_security_keyvault_secrets::SecretClient;
//! use entra_mi::{Audience, ManagedIdentityCredential, TokenProvider};
//! use entra_mi_azure::TokenProviderCredential;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = TokenProvider::new(ManagedIdentityCredential::system_assigned()?);
//! // Only Key Vault tokens: the client takes its scope from the vault's 401 challenge.
//! let credential = TokenProviderCredential::new(provider).only_audiences([Audience::key_vault()]);
//! let client = SecretClient::new("https://my-vault.vault.azure.net", Arc::new(credential), None)?;
//! let secret = client.get_secret("db-password", None).await?.into_model()?;
//! # let _ = secret; Ok(()) }
//! ```
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
