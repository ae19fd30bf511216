//! entra-mi → `azure_core`: a [`TokenProvider`] as an `azure_core` credential.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_core::time::OffsetDateTime;
use entra_mi::{Audience, TokenHandle, TokenProvider};

use crate::error::to_azure;

/// An entra-mi [`TokenProvider`] (any entra-mi credential and its cache) as an
/// [`azure_core::credentials::TokenCredential`], for the official Azure SDK clients.
///
/// `get_token` takes the one scope the client asks for (`https://vault.azure.net/.default`,
/// `https://storage.azure.com/.default`, …), reads it as an [`Audience`] and answers from the
/// provider's cache: a valid cached token at once, else after the provider's single in-flight
/// fetch. Key Vault clients learn their scope from the vault's `401` challenge at run time;
/// any scope is accepted unless [`only_audiences`](Self::only_audiences) restricts them.
///
/// The token carries its **real** `expires_on`. The official bearer-token policy keeps the
/// token and calls `get_token` again only within 5 minutes of that expiry, on every request
/// until it holds a token that expires later. The provider's refresh point is earlier (half
/// the lifetime of a 24 h managed-identity token): with
/// [`eager_refresh(true)`](entra_mi::TokenProviderBuilder::eager_refresh) the new token is
/// already cached then; without it, that first call finds the token stale, is served it at
/// once and starts the refresh in the background, and a call moments later gets the new
/// token. No call waits for the endpoint while a valid token is cached.
///
/// Resolving a scope to its cache handle happens once per scope; later calls cost a
/// lock-free map lookup, the cache hit, and a copy of the token string (the `azure_core`
/// token owns its secret).
///
/// `Debug` shows the provider's credential name, audiences and counters, never a token.
///
/// ```no_run
/// use std::sync::Arc;
/// use entra_mi::{ManagedIdentityCredential, TokenProvider};
/// use entra_mi_azure::TokenProviderCredential;
///
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let provider = TokenProvider::new(ManagedIdentityCredential::system_assigned()?);
/// let credential: Arc<dyn azure_core::credentials::TokenCredential> =
///     Arc::new(TokenProviderCredential::new(provider));
/// let secrets = azure_security_keyvault_secrets::SecretClient::new(
///     "https://my-vault.vault.azure.net",
///     credential,
///     None,
/// )?;
/// # let _ = secrets; Ok(()) }
/// ```
pub struct TokenProviderCredential {
    provider: TokenProvider,
    allowed: Option<Vec<Audience>>,
    /// Scope string, exactly as the client sent it → the handle of its audience.
    handles: ArcSwap<HashMap<Box<str>, TokenHandle>>,
    insert: Mutex<()>,
}

impl TokenProviderCredential {
    /// An `azure_core` credential serving tokens from `provider` for any audience.
    pub fn new(provider: TokenProvider) -> Self {
        Self {
            provider,
            allowed: None,
            handles: ArcSwap::default(),
            insert: Mutex::new(()),
        }
    }

    /// Serves tokens only for these audiences: a client that asks for another scope gets an
    /// [`ErrorKind::Credential`] error and no token. Use it when a client learns its scope
    /// from the server (as Key Vault's do from the `401` challenge), so that no server can
    /// obtain a token for an API it is not.
    pub fn only_audiences(mut self, audiences: impl IntoIterator<Item = Audience>) -> Self {
        self.allowed = Some(audiences.into_iter().collect());
        self
    }

    /// The provider tokens come from.
    pub fn provider(&self) -> &TokenProvider {
        &self.provider
    }

    /// The cache handle for `scope`, resolved once per scope string.
    fn handle(&self, scope: &str) -> azure_core::Result<TokenHandle> {
        if let Some(handle) = self.handles.load().get(scope) {
            return Ok(handle.clone());
        }
        let credential = self.provider.credential_name();
        let audience =
            Audience::new(scope).map_err(|e| to_azure(ErrorKind::DataConversion, credential, e))?;
        if let Some(allowed) = &self.allowed
            && !allowed.contains(&audience)
        {
            return Err(azure_core::Error::with_message(
                ErrorKind::Credential,
                format!(
                    "entra-mi credential {credential}: the client asked for a token for {audience}, which this credential does not serve (allowed: {})",
                    allowed
                        .iter()
                        .map(Audience::resource)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let _guard = self.insert.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.handles.load_full();
        if let Some(handle) = current.get(scope) {
            return Ok(handle.clone());
        }
        let handle = self.provider.handle(&audience);
        let mut next = (*current).clone();
        next.insert(Box::from(scope), handle.clone());
        self.handles.store(Arc::new(next));
        Ok(handle)
    }
}

#[async_trait]
impl TokenCredential for TokenProviderCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let [scope] = scopes else {
            return Err(azure_core::Error::with_message(
                ErrorKind::DataConversion,
                format!(
                    "entra-mi credential {}: a token is for exactly one audience, but the client asked for {} scopes",
                    self.provider.credential_name(),
                    scopes.len()
                ),
            ));
        };
        let handle = self.handle(scope)?;
        let token = handle
            .token()
            .await
            .map_err(|e| to_azure(ErrorKind::Credential, self.provider.credential_name(), e))?;
        Ok(AccessToken::new(
            Secret::new(token.secret().to_owned()),
            offset_date_time(token.expires_on()),
        ))
    }
}

/// `SystemTime` as `azure_core`'s time type (whole-second precision is all a token has).
fn offset_date_time(t: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(t)
}

impl fmt::Debug for TokenProviderCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenProviderCredential")
            .field("provider", &self.provider)
            .field("only_audiences", &self.allowed)
            .field("scopes", &self.handles.load().keys().collect::<Vec<_>>())
            .finish()
    }
}
