//! Choosing the credential from the command line.

use std::sync::Arc;

use clap::{Args, ValueEnum};
use entra_mi::{Environment, ManagedIdentityCredential, ManagedIdentityId, TokenCredential};

use crate::Failure;

/// Which credential to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum CredentialKind {
    /// The managed identity of this Azure resource (the default).
    Auto,
    /// The managed identity of this Azure resource.
    ManagedIdentity,
}

/// Which managed identity: at most one of the three ids; none = system-assigned.
#[derive(Args, Debug, Clone, Default)]
#[group(multiple = false)]
pub(crate) struct IdentityArgs {
    /// A user-assigned identity by client id.
    #[arg(long, value_name = "GUID")]
    pub(crate) client_id: Option<String>,
    /// A user-assigned identity by object (principal) id.
    #[arg(long, value_name = "GUID")]
    pub(crate) object_id: Option<String>,
    /// A user-assigned identity by ARM resource id.
    #[arg(long, value_name = "ID")]
    pub(crate) resource_id: Option<String>,
}

impl IdentityArgs {
    pub(crate) fn id(&self) -> ManagedIdentityId {
        if let Some(v) = &self.client_id {
            ManagedIdentityId::ClientId(v.clone())
        } else if let Some(v) = &self.object_id {
            ManagedIdentityId::ObjectId(v.clone())
        } else if let Some(v) = &self.resource_id {
            ManagedIdentityId::ResourceId(v.clone())
        } else {
            ManagedIdentityId::SystemAssigned
        }
    }
}

/// The credential and a name for where its tokens come from.
pub(crate) fn build(
    kind: CredentialKind,
    identity: &IdentityArgs,
    env: &Environment,
) -> Result<(Arc<dyn TokenCredential>, String), Failure> {
    match kind {
        CredentialKind::Auto | CredentialKind::ManagedIdentity => {
            let credential = ManagedIdentityCredential::builder()
                .identity(identity.id())
                .environment(env.clone())
                .build()
                .map_err(|e| match &e {
                    // A malformed --client-id / --object-id / --resource-id.
                    entra_mi::Error::Configuration { setting, .. }
                        if setting.starts_with("managed identity") =>
                    {
                        Failure::usage(e.to_string())
                    }
                    _ => Failure::from(e),
                })?;
            let name = credential.name().to_owned();
            Ok((Arc::new(credential), name))
        }
    }
}
