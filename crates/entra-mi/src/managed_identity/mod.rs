//! Managed identity: the credential, its sources, source detection and identity selection.
//!
//! Each source has a module of its own that builds its requests and reads its answers
//! (`imds`, `app_service`, `azure_ml`, `cloud_shell`, `arc`, `service_fabric`); the token
//! response they share is parsed in one place. [`detect_source`] says which source the
//! environment selects and why.

mod app_service;
pub(crate) mod arc;
mod azure_ml;
mod builder;
mod cloud_shell;
mod credential;
pub(crate) mod detect;
mod dispatch;
mod hints;
mod id;
mod imds;
mod service_fabric;
mod source;
mod vars;

pub use crate::source_kind::SourceKind;
pub use builder::ManagedIdentityCredentialBuilder;
pub use credential::ManagedIdentityCredential;
pub use detect::{Detection, VARIABLES, detect_source};
pub use dispatch::ManagedIdentitySource;
pub use id::ManagedIdentityId;
