//! `DefaultCredential`: environment → workload identity → managed identity → Azure CLI.
//!
//! [`ChainLink`] names the links; `builder` picks and configures them, `chain` tries them in
//! order at run time, and `probe` is the IMDS probe in front of the managed-identity link.

use std::fmt;

mod builder;
mod chain;
#[cfg(test)]
mod features;
mod probe;

pub use builder::DefaultCredentialBuilder;
pub use chain::DefaultCredential;

/// A link of [`DefaultCredential`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChainLink {
    /// A client secret (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`), else a
    /// client certificate (`AZURE_CLIENT_CERTIFICATE_PATH`, …; cargo feature
    /// `client-certificate`) from the environment.
    Environment,
    /// [`WorkloadIdentityCredential`](crate::credentials::WorkloadIdentityCredential) from its environment variables.
    WorkloadIdentity,
    /// [`ManagedIdentityCredential`](crate::ManagedIdentityCredential), source detected from the environment.
    ManagedIdentity,
    /// [`AzureCliCredential`](crate::credentials::AzureCliCredential) (cargo feature
    /// `azure-cli`; without it the default chain leaves this link out).
    AzureCli,
}

impl ChainLink {
    /// The link's name in errors and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ChainLink::Environment => "environment",
            ChainLink::WorkloadIdentity => "workload-identity",
            ChainLink::ManagedIdentity => "managed-identity",
            ChainLink::AzureCli => "azure-cli",
        }
    }

    /// The `AZURE_TOKEN_CREDENTIALS` value that selects only this link.
    pub fn env_name(self) -> &'static str {
        match self {
            ChainLink::Environment => "EnvironmentCredential",
            ChainLink::WorkloadIdentity => "WorkloadIdentityCredential",
            ChainLink::ManagedIdentity => "ManagedIdentityCredential",
            ChainLink::AzureCli => "AzureCliCredential",
        }
    }

    /// The cargo feature this link needs when this build leaves it off.
    pub(crate) fn disabled_feature(self) -> Option<&'static str> {
        match self {
            ChainLink::AzureCli if !cfg!(feature = "azure-cli") => Some("azure-cli"),
            _ => None,
        }
    }

    const ALL: [ChainLink; 4] = [
        ChainLink::Environment,
        ChainLink::WorkloadIdentity,
        ChainLink::ManagedIdentity,
        ChainLink::AzureCli,
    ];
}

impl fmt::Display for ChainLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
