//! Client secret: an app registration's secret at the v2.0 token endpoint.

use async_trait::async_trait;

use crate::credential::{TokenCredential, TokenRequest};
use crate::entra::{
    AZURE_CLIENT_ID, AZURE_TENANT_ID, ClientAuth, ConfidentialClient, EntraOptions,
    entra_builder_methods,
};
use crate::env::Environment;
use crate::error::Error;
use crate::secret::Secret;
use crate::token::AccessToken;

pub(crate) const AZURE_CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";

/// Tokens for an app registration, with its client secret (local development and CI; in
/// production prefer a managed identity).
///
/// The secret is sent form-encoded in the body; `Debug` never shows it.
///
/// ```no_run
/// use entra_mi::credentials::ClientSecretCredential;
/// use entra_mi::{Audience, TokenCredential, TokenRequest};
/// # async fn run() -> Result<(), entra_mi::Error> {
/// let credential = ClientSecretCredential::builder(
///     "contoso.onmicrosoft.com",
///     "11111111-2222-3333-4444-555555555555",
///     std::env::var("APP_SECRET").unwrap_or_default(),
/// )
/// .build()?;
/// let token = credential.get_token(&TokenRequest::new(Audience::microsoft_graph())).await?;
/// # let _ = token; Ok(()) }
/// ```
#[derive(Debug)]
pub struct ClientSecretCredential {
    client: ConfidentialClient,
    secret: Secret,
}

/// Builds a [`ClientSecretCredential`].
#[derive(Debug)]
pub struct ClientSecretCredentialBuilder {
    tenant: String,
    client_id: String,
    secret: Secret,
    opts: EntraOptions,
}

impl ClientSecretCredentialBuilder {
    entra_builder_methods!();

    /// Validates the settings.
    pub fn build(self) -> Result<ClientSecretCredential, Error> {
        if self.secret.expose().is_empty() {
            return Err(Error::configuration(
                AZURE_CLIENT_SECRET,
                "the client secret is empty",
            ));
        }
        Ok(ClientSecretCredential {
            client: ConfidentialClient::new(
                "client-secret",
                &self.tenant,
                &self.client_id,
                &self.opts,
            )?,
            secret: self.secret,
        })
    }
}

impl ClientSecretCredential {
    /// A builder for the app `client_id` in `tenant` (a GUID or a domain name).
    pub fn builder(
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> ClientSecretCredentialBuilder {
        ClientSecretCredentialBuilder {
            tenant: tenant.into(),
            client_id: client_id.into(),
            secret: Secret::new(secret),
            opts: EntraOptions::default(),
        }
    }

    /// From `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET` and
    /// `AZURE_AUTHORITY_HOST`; [`CredentialError::Unavailable`](crate::error::CredentialError::Unavailable) when one of the first three
    /// is not set.
    pub fn from_environment(env: &Environment) -> Result<Self, Error> {
        Self::builder_from_environment(env)?.build()
    }

    pub(crate) fn builder_from_environment(
        env: &Environment,
    ) -> Result<ClientSecretCredentialBuilder, Error> {
        let (tenant, client_id, secret) = (
            env.get(AZURE_TENANT_ID),
            env.get(AZURE_CLIENT_ID),
            env.get(AZURE_CLIENT_SECRET),
        );
        match (tenant, client_id, secret) {
            (Some(t), Some(c), Some(s)) => {
                let mut b = Self::builder(t, c, s);
                b.opts = b.opts.with_env_authority(env);
                Ok(b)
            }
            (t, c, s) => Err(Error::from(crate::error::CredentialError::Unavailable {
                credential: "client-secret".into(),
                reason: missing(&[
                    (AZURE_TENANT_ID, t.is_some()),
                    (AZURE_CLIENT_ID, c.is_some()),
                    (AZURE_CLIENT_SECRET, s.is_some()),
                ]),
            })),
        }
    }

    /// The application (client) id.
    pub fn client_id(&self) -> &str {
        self.client.client_id()
    }
}

/// "X and Y are not set".
pub(crate) fn missing(vars: &[(&str, bool)]) -> String {
    let names: Vec<&str> = vars
        .iter()
        .filter(|(_, set)| !set)
        .map(|(n, _)| *n)
        .collect();
    match names.as_slice() {
        [one] => format!("{one} is not set"),
        many => format!("{} are not set", many.join(", ")),
    }
}

#[async_trait]
impl TokenCredential for ClientSecretCredential {
    async fn get_token(&self, request: &TokenRequest) -> Result<AccessToken, Error> {
        self.client
            .get_token(request, ClientAuth::Secret(self.secret.expose()))
            .await
    }

    fn name(&self) -> &str {
        &self.client.name
    }
}
