//! Microsoft Entra ID tokens from the **managed identity** of the Azure resource your code
//! runs on — no app registration, no client secret, no Key Vault.
//!
//! * [`ManagedIdentityCredential`] gets tokens from the platform's managed-identity endpoint,
//!   detected from the environment (IMDS on VMs and AKS nodes, App Service / Functions /
//!   Container Apps, …).
//! * [`TokenProvider`] caches them per [`Audience`], refreshes them before they expire, and
//!   hands out ready `Authorization` header values on a lock-free, allocation-free hot path.
//!
//! ```no_run
//! use entra_mi::{Audience, ManagedIdentityCredential, TokenProvider};
//! # async fn run() -> Result<(), entra_mi::Error> {
//! // One provider per process: it is cheap to clone and shares its cache.
//! let provider = TokenProvider::new(ManagedIdentityCredential::system_assigned()?);
//! // Resolve a handle once per API; each call then costs one atomic load and a clone.
//! let graph = provider.handle(&Audience::microsoft_graph());
//! let header = graph.header().await?; // `Bearer …`, marked sensitive
//! # let _ = header; Ok(()) }
//! ```
//!
//! Tokens never appear in `Debug`, `Display`, errors or logs.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod audience;
mod azure_cli;
mod cache;
mod client_certificate;
mod client_secret;
mod credential;
mod default_chain;
mod entra;
mod env;
mod error;
mod federated_mi;
mod http;
mod managed_identity;
mod response;
mod retry;
pub mod time;
mod token;
mod workload_identity;

pub use audience::Audience;
pub use azure_cli::{AzureCliCredential, AzureCliCredentialBuilder};
pub use cache::{CacheStats, TokenHandle, TokenProvider, TokenProviderBuilder};
pub use client_certificate::{
    ClientCertificate, ClientCertificateCredential, ClientCertificateCredentialBuilder,
};
pub use client_secret::{ClientSecretCredential, ClientSecretCredentialBuilder};
pub use credential::{TokenCredential, TokenRequest};
pub use default_chain::{ChainLink, DefaultCredential, DefaultCredentialBuilder};
pub use entra::authority;
pub use env::Environment;
pub use error::{ChainAttempt, EntraError, Error, Result, ServiceError, Unavailable};
pub use federated_mi::{
    FederatedManagedIdentityCredential, FederatedManagedIdentityCredentialBuilder,
    TOKEN_EXCHANGE_AUDIENCE,
};
pub use managed_identity::{
    Detected, ManagedIdentityCredential, ManagedIdentityCredentialBuilder, ManagedIdentityId,
    SourceKind, detect_source,
};
pub use retry::RetryOptions;
pub use time::TimeSource;
pub use token::AccessToken;
pub use workload_identity::{WorkloadIdentityCredential, WorkloadIdentityCredentialBuilder};
