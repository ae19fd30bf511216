//! A managed identity as the federated credential of an app registration: the identity's
//! token for `api://AzureADTokenExchange` is the client assertion of the app, which may then
//! get tokens in any tenant it is consented in — with no secret anywhere.

use async_trait::async_trait;

use crate::audience::Audience;
use crate::credential::{TokenCredential, TokenRequest};
use crate::entra::{ClientAuth, ConfidentialClient, EntraOptions, entra_builder_methods};
use crate::error::Error;
use crate::managed_identity::ManagedIdentityCredential;
use crate::token::AccessToken;

/// The audience of managed-identity tokens used as federated assertions.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Tokens for a (possibly multi-tenant) app registration whose federated identity credential
/// is a managed identity.
///
/// Each request first gets the managed identity's token for `api://AzureADTokenExchange`
/// (managed-identity endpoints cache it), then exchanges it at the token endpoint of the
/// requested tenant ([`TokenRequest::with_tenant`], else the tenant given here). The app
/// registration and its federated credential must live in the managed identity's **home**
/// tenant (AADSTS700236 otherwise); the app may be consented in other tenants.
///
/// ```no_run
/// use entra_mi::{Audience, FederatedManagedIdentityCredential, ManagedIdentityCredential, TokenCredential, TokenRequest};
/// # async fn run() -> Result<(), entra_mi::Error> {
/// let credential = FederatedManagedIdentityCredential::builder(
///     "contoso.onmicrosoft.com",
///     "11111111-2222-3333-4444-555555555555", // the app registration
///     ManagedIdentityCredential::system_assigned()?,
/// )
/// .build()?;
/// let request = TokenRequest::new(Audience::microsoft_graph()).with_tenant("fabrikam.onmicrosoft.com");
/// let token = credential.get_token(&request).await?;
/// # let _ = token; Ok(()) }
/// ```
#[derive(Debug)]
pub struct FederatedManagedIdentityCredential {
    managed_identity: ManagedIdentityCredential,
    client: ConfidentialClient,
}

/// Builds a [`FederatedManagedIdentityCredential`].
#[derive(Debug)]
pub struct FederatedManagedIdentityCredentialBuilder {
    tenant: String,
    client_id: String,
    managed_identity: ManagedIdentityCredential,
    opts: EntraOptions,
}

impl FederatedManagedIdentityCredentialBuilder {
    entra_builder_methods!();

    /// Validates the settings.
    pub fn build(self) -> Result<FederatedManagedIdentityCredential, Error> {
        Ok(FederatedManagedIdentityCredential {
            client: ConfidentialClient::new(
                "federated-managed-identity",
                &self.tenant,
                &self.client_id,
                &self.opts,
            )?,
            managed_identity: self.managed_identity,
        })
    }
}

impl FederatedManagedIdentityCredential {
    /// A builder for the app `client_id`, by default in `tenant`, with `managed_identity` as
    /// its federated credential.
    pub fn builder(
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        managed_identity: ManagedIdentityCredential,
    ) -> FederatedManagedIdentityCredentialBuilder {
        FederatedManagedIdentityCredentialBuilder {
            tenant: tenant.into(),
            client_id: client_id.into(),
            managed_identity,
            opts: EntraOptions::default(),
        }
    }
}

#[async_trait]
impl TokenCredential for FederatedManagedIdentityCredential {
    async fn get_token(&self, request: &TokenRequest) -> Result<AccessToken, Error> {
        let audience = Audience::new(TOKEN_EXCHANGE_AUDIENCE)?;
        let mut mi_request = TokenRequest::new(audience);
        if let Some(d) = request.deadline() {
            mi_request = mi_request.with_deadline(d);
        }
        let assertion = self.managed_identity.get_token(&mi_request).await?;
        self.client
            .get_token(request, ClientAuth::Assertion(assertion.secret()))
            .await
    }

    fn name(&self) -> &str {
        &self.client.name
    }
}
