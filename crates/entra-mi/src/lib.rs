#![doc = include_str!("../README.md")]
//!
//! # Where things are
//!
//! The root holds what most code needs: [`ManagedIdentityCredential`], [`DefaultCredential`],
//! [`TokenProvider`] and its [`TokenHandle`]s, [`Audience`], [`Route`] and [`TokenRouter`],
//! [`Error`]. [`credentials`] has the other credentials; [`managed_identity`] source detection
//! and the sources' descriptions; [`error`] the error families; [`middleware`] what the reqwest
//! and tower middlewares build on; [`time`] the clock, timer and jitter the cache runs on;
//! `test_util` (feature `test-util`) a manual clock for tests.
//!
//! # Crates used for cryptography and TLS
//!
//! No cryptography is written here. `reqwest`'s `rustls` backend (with its default provider,
//! `aws-lc-rs`) does TLS; Service Fabric's self-signed token service is trusted through a
//! custom `rustls` certificate verifier that accepts exactly the certificate whose SHA-1
//! matches `IDENTITY_SERVER_THUMBPRINT` (handshake signatures still verified by the provider),
//! on a client of its own. `aws-lc-rs` — already the TLS provider, so one crypto library —
//! computes thumbprints and signs certificate assertions (RSA-PSS/SHA-256). PEM is read with
//! `rustls-pki-types`, PKCS#12 with `p12-keystore` (pure Rust, maintained, PBES2/AES and legacy
//! PBES1 files), and certificate validity and key matching with `x509-parser`.
//!
//! # Cargo features
//!
//! All on by default; a build that needs only managed identity can turn them off
//! (`entra-mi = { version = "0.1", default-features = false }`) and compiles neither
//! certificate parsing nor process spawning.
//!
//! | feature | what it adds | dependencies it brings |
//! |---|---|---|
//! | `client-certificate` | `ClientCertificateCredential`, and the certificate half of [`DefaultCredential`]'s environment link | `x509-parser`, `p12-keystore` |
//! | `azure-cli` | `AzureCliCredential`, and [`DefaultCredential`]'s Azure CLI link | tokio's `process` support |
//! | `test-util` | `test_util`: a manual clock, an instant sleep and a fixed jitter for tests | none |
//!
//! With a feature off, [`DefaultCredential`] leaves its link out of the default chain, and
//! naming that credential (in `AZURE_TOKEN_CREDENTIALS`, with
//! [`links`](credentials::DefaultCredentialBuilder::links), or by setting
//! `AZURE_CLIENT_CERTIFICATE_PATH` for the environment link) is a configuration error,
//! [`ConfigurationError::FeatureDisabled`](error::ConfigurationError::FeatureDisabled), that
//! names the feature to enable. Service Fabric's pinned TLS needs only `rustls` and
//! `aws-lc-rs`, which `reqwest`'s TLS brings anyway, so every managed-identity source is
//! always built.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
#[path = "fuzzing.rs"]
pub mod __fuzz;
mod audience;
#[cfg(feature = "azure-cli")]
mod azure_cli;
mod cache;
#[cfg(feature = "client-certificate")]
mod client_certificate;
mod client_secret;
mod credential;
mod default_chain;
mod entra;
mod env;
pub mod error;
mod federated_mi;
mod fs;
mod guid;
mod hash;
mod http;
pub mod managed_identity;
mod response;
mod retry;
mod routing;
mod secret;
mod source_kind;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod test_util;
pub mod time;
mod token;
mod workload_identity;

pub use audience::Audience;
pub use cache::{CacheStats, TokenHandle, TokenProvider, TokenProviderBuilder};
pub use credential::{TokenCredential, TokenRequest};
pub use default_chain::DefaultCredential;
pub use env::Environment;
pub use error::{Error, Result};
pub use guid::Guid;
pub use managed_identity::{ManagedIdentityCredential, ManagedIdentityId};
pub use retry::RetryOptions;
pub use routing::{Route, TokenRouter};
pub use token::AccessToken;

/// The credentials besides [`ManagedIdentityCredential`] and [`DefaultCredential`]: client
/// secret and certificate, workload identity, a managed identity as an app's federated
/// credential, the Azure CLI, and the pieces of the default chain.
pub mod credentials {
    #[cfg(feature = "azure-cli")]
    #[cfg_attr(docsrs, doc(cfg(feature = "azure-cli")))]
    pub use crate::azure_cli::{AzureCliCredential, AzureCliCredentialBuilder};
    #[cfg(feature = "client-certificate")]
    #[cfg_attr(docsrs, doc(cfg(feature = "client-certificate")))]
    pub use crate::client_certificate::{
        ClientCertificate, ClientCertificateCredential, ClientCertificateCredentialBuilder,
    };
    pub use crate::client_secret::{ClientSecretCredential, ClientSecretCredentialBuilder};
    pub use crate::default_chain::{ChainLink, DefaultCredentialBuilder};
    pub use crate::entra::authority;
    pub use crate::federated_mi::{
        FederatedManagedIdentityCredential, FederatedManagedIdentityCredentialBuilder,
        TOKEN_EXCHANGE_AUDIENCE,
    };
    pub use crate::workload_identity::{
        WorkloadIdentityCredential, WorkloadIdentityCredentialBuilder,
    };
}

/// What the middlewares (`entra-mi-reqwest`, `entra-mi-tower`) build on: a router's builder,
/// the keys a request is routed and remembered by, the token version a `401` is matched
/// against, and the `WWW-Authenticate: Bearer` challenge parser.
pub mod middleware {
    pub use crate::cache::TokenVersion;
    pub use crate::routing::{BearerChallenge, BoundRoute, RouteKey, SentKey, TokenRouterBuilder};
}
