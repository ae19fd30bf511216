//! Choosing the credential from the command line.

use std::sync::Arc;

use clap::{Args, ValueEnum};
use entra_mi::{
    ChainLink, DefaultCredential, Environment, ManagedIdentityId, TokenCredential, detect_source,
};

use crate::Failure;

/// Which credential to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum CredentialKind {
    /// The default chain: environment → workload identity → managed identity → Azure CLI
    /// (`AZURE_TOKEN_CREDENTIALS` narrows it).
    Auto,
    /// The managed identity of this Azure resource.
    ManagedIdentity,
    /// Workload identity (`AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`).
    WorkloadIdentity,
    /// A client secret or certificate from `AZURE_*` variables.
    Environment,
    /// The signed-in Azure CLI (`az login`).
    AzureCli,
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

/// A credential chosen on the command line.
pub(crate) struct Chosen {
    chain: DefaultCredential,
    env: Environment,
}

impl Chosen {
    pub(crate) fn credential(&self) -> Arc<dyn TokenCredential> {
        Arc::new(self.chain.clone())
    }

    /// Where the last token came from: the chain link, and for a managed identity its source
    /// (`managed-identity/imds`).
    pub(crate) fn source(&self) -> String {
        match self.chain.selected() {
            Some(ChainLink::ManagedIdentity) => match detect_source(&self.env) {
                Ok(d) => format!("managed-identity/{}", d.kind().as_str()),
                Err(_) => "managed-identity".to_owned(),
            },
            Some(link) => link.as_str().to_owned(),
            None => "none".to_owned(),
        }
    }
}

/// The credential for `kind` (a one-link chain unless `auto`), validated up front.
pub(crate) fn build(
    kind: CredentialKind,
    identity: &IdentityArgs,
    env: &Environment,
) -> Result<Chosen, Failure> {
    let id = identity.id();
    if id != ManagedIdentityId::SystemAssigned
        && matches!(
            kind,
            CredentialKind::WorkloadIdentity
                | CredentialKind::Environment
                | CredentialKind::AzureCli
        )
    {
        return Err(Failure::usage(
            "--client-id/--object-id/--resource-id select a managed identity; they do not apply to this --credential",
        ));
    }
    let mut builder = DefaultCredential::builder()
        .environment(env.clone())
        .managed_identity(id);
    let links: &[ChainLink] = match kind {
        CredentialKind::Auto => &[],
        CredentialKind::ManagedIdentity => &[ChainLink::ManagedIdentity],
        CredentialKind::WorkloadIdentity => &[ChainLink::WorkloadIdentity],
        CredentialKind::Environment => &[ChainLink::Environment],
        CredentialKind::AzureCli => &[ChainLink::AzureCli],
    };
    if !links.is_empty() {
        builder = builder.links(links);
    }
    let chain = builder.build().map_err(|e| match &e {
        // A malformed --client-id / --object-id / --resource-id.
        entra_mi::Error::Configuration { setting, .. }
            if setting.starts_with("managed identity") =>
        {
            Failure::usage(e.to_string())
        }
        _ => Failure::from(e),
    })?;
    Ok(Chosen {
        chain,
        env: env.clone(),
    })
}
