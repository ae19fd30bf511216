//! The credential trait and token requests.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::audience::Audience;
use crate::error::Error;
use crate::token::AccessToken;

/// What a token is requested for.
///
/// ```
/// use entra_mi::{Audience, TokenRequest};
/// let req = TokenRequest::new(Audience::microsoft_graph())
///     .with_deadline(std::time::Duration::from_secs(30));
/// assert_eq!(req.audience().resource(), "https://graph.microsoft.com");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRequest {
    audience: Audience,
    tenant: Option<String>,
    claims: Option<String>,
    deadline: Option<Duration>,
    /// Lowercase hex SHA-256 of the token a claims request replaces.
    refresh_sha256: Option<String>,
}

impl TokenRequest {
    /// A request for `audience` in the credential's own tenant, without claims.
    pub fn new(audience: Audience) -> Self {
        Self {
            audience,
            tenant: None,
            claims: None,
            deadline: None,
            refresh_sha256: None,
        }
    }

    /// Asks for a token from another tenant (credentials that can do so).
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Adds a claims request (the decoded JSON of a claims challenge).
    pub fn with_claims(mut self, claims: impl Into<String>) -> Self {
        self.claims = Some(claims.into());
        self
    }

    /// Names the token a claims request replaces (the one an API rejected), by its SHA-256:
    /// managed-identity endpoints that cache tokens (Service Fabric) take it as
    /// `token_sha256_to_refresh` and then issue a new token instead of the cached one.
    /// [`TokenHandle::fetch_with_claims`](crate::TokenHandle::fetch_with_claims) sets it to the
    /// cached token.
    pub fn with_token_to_refresh(mut self, token: &AccessToken) -> Self {
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.secret().as_bytes());
        self.refresh_sha256 = Some(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect());
        self
    }

    /// The lowercase hex SHA-256 of the token to refresh, if one was named.
    pub fn token_to_refresh_sha256(&self) -> Option<&str> {
        self.refresh_sha256.as_deref()
    }

    /// Bounds the whole fetch, retries included, to `deadline` from when it starts.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The audience.
    pub fn audience(&self) -> &Audience {
        &self.audience
    }

    /// The tenant, if one was asked for.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// The claims request, if any.
    pub fn claims(&self) -> Option<&str> {
        self.claims.as_deref()
    }

    /// The caller's deadline, if any.
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest")
            .field("audience", &self.audience)
            .field("tenant", &self.tenant)
            .field("claims", &self.claims.as_ref().map(|_| "<present>"))
            .field("deadline", &self.deadline)
            .field(
                "token_to_refresh",
                &self.refresh_sha256.as_ref().map(|_| "<sha-256>"),
            )
            .finish()
    }
}

/// Something that can get access tokens: one implementation per token source.
///
/// A credential does not cache; put a [`crate::TokenProvider`] in front of it. The trait is
/// object safe, and `Arc<dyn TokenCredential>` is the usual way to hold one.
#[async_trait]
pub trait TokenCredential: Send + Sync + fmt::Debug {
    /// Gets a fresh token for `request`.
    async fn get_token(&self, request: &TokenRequest) -> Result<AccessToken, Error>;

    /// A short name for diagnostics (`managed-identity/imds`, `azure-cli`, …).
    fn name(&self) -> &str;
}

#[async_trait]
impl<T: TokenCredential + ?Sized> TokenCredential for Arc<T> {
    async fn get_token(&self, request: &TokenRequest) -> Result<AccessToken, Error> {
        (**self).get_token(request).await
    }
    fn name(&self) -> &str {
        (**self).name()
    }
}

#[async_trait]
impl<T: TokenCredential + ?Sized> TokenCredential for Box<T> {
    async fn get_token(&self, request: &TokenRequest) -> Result<AccessToken, Error> {
        (**self).get_token(request).await
    }
    fn name(&self) -> &str {
        (**self).name()
    }
}
