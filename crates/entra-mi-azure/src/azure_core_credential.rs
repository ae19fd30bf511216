//! `azure_core` → entra-mi: any `azure_core` credential as an entra-mi credential.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use entra_mi::{AccessToken, TokenCredential, TokenRequest};

use crate::error::{Failure, to_entra};

/// Any [`azure_core::credentials::TokenCredential`] (one of the official identity crate's
/// credentials, for example a developer credential) as an entra-mi [`TokenCredential`], so it
/// sits behind entra-mi's [`TokenProvider`](entra_mi::TokenProvider) cache, its routing and
/// its `reqwest` and `tower` middlewares.
///
/// Each fetch asks the wrapped credential for the audience's `/.default` scope and keeps the
/// `expires_on` it returns. A token that has already expired is refused. The caller's
/// [deadline](TokenRequest::with_deadline) bounds the call.
///
/// The `azure_core` 1.x credential trait has no tenant and no claims parameter, so a request
/// for another tenant or with claims (a claims challenge) fails with an error that says so,
/// instead of returning a token that ignores them.
///
/// Official credentials keep a cache of their own and fetch again only within 5 minutes of
/// expiry; the provider's refresh may come a little earlier and get the same token back,
/// which it treats as a success and retries later with backoff.
///
/// Errors name the credential; the wrapped credential's message is kept with anything shaped
/// like a token removed. `Debug` shows only the name.
///
/// ```no_run
/// use std::sync::Arc;
/// use entra_mi::{Audience, TokenProvider};
/// use entra_mi_azure::AzureCoreCredential;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let cli: Arc<dyn azure_core::credentials::TokenCredential> =
///     azure_identity::AzureCliCredential::new(None)?;
/// let provider = TokenProvider::new(AzureCoreCredential::new("azure-identity/cli", cli));
/// let header = provider.header(&Audience::microsoft_graph()).await?;
/// # let _ = header; Ok(()) }
/// ```
#[derive(Clone)]
pub struct AzureCoreCredential {
    name: String,
    credential: Arc<dyn azure_core::credentials::TokenCredential>,
}

impl AzureCoreCredential {
    /// Wraps `credential`; `name` is what entra-mi's diagnostics and errors call it.
    pub fn new(
        name: impl Into<String>,
        credential: Arc<dyn azure_core::credentials::TokenCredential>,
    ) -> Self {
        Self {
            name: name.into(),
            credential,
        }
    }
}

#[async_trait]
impl TokenCredential for AzureCoreCredential {
    async fn get_token(&self, request: &TokenRequest) -> entra_mi::Result<AccessToken> {
        if request.tenant().is_some() {
            return Err(to_entra(
                &self.name,
                Failure::Unsupported("a token in another tenant"),
            ));
        }
        if request.claims().is_some() {
            return Err(to_entra(
                &self.name,
                Failure::Unsupported("claims (a claims challenge)"),
            ));
        }
        let scope = request.audience().scope();
        let scopes = [scope.as_str()];
        let fetch = self.credential.get_token(&scopes, None);
        let result = match request.deadline() {
            None => fetch.await,
            Some(deadline) => tokio::time::timeout(deadline, fetch)
                .await
                .map_err(|_| to_entra(&self.name, Failure::Deadline(deadline)))?,
        };
        let token = result.map_err(|e| to_entra(&self.name, Failure::Azure(e)))?;
        let expires_on = SystemTime::from(token.expires_on);
        if expires_on <= SystemTime::now() {
            return Err(to_entra(&self.name, Failure::AlreadyExpired));
        }
        Ok(AccessToken::new(token.token.secret(), expires_on))
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for AzureCoreCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureCoreCredential")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
