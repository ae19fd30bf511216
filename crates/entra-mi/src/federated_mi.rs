//! A managed identity as the federated credential of an app registration: the identity's
//! token for `api://AzureADTokenExchange` is the client assertion of the app, which may then
//! get tokens in any tenant it is consented in — with no secret anywhere.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use crate::audience::Audience;
use crate::credential::{TokenCredential, TokenRequest};
use crate::entra::{ClientAuth, ConfidentialClient, EntraOptions, entra_builder_methods};
use crate::error::{EntraError, Error};
use crate::managed_identity::ManagedIdentityCredential;
use crate::time::{TimeSource, Until};
use crate::token::AccessToken;

/// The audience of managed-identity tokens used as federated assertions.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// A cached assertion is reused until this long before it expires. Entra checks the
/// assertion's `exp` when the exchange arrives, which may be up to a request budget (100 s by
/// default, one retry included) after it is sent, on a clock that may be a little ahead of
/// this one; five minutes covers both with room to spare and is the refresh margin the Azure
/// SDKs use for tokens. Managed-identity tokens live about 24 hours, so the assertion is
/// fetched about once a day instead of once per exchange.
const REUSE_MARGIN: Duration = Duration::from_secs(5 * 60);

/// AADSTS codes by which Entra refuses the client assertion itself: not within its valid time
/// range (700024), bad signature (700027), malformed (50027), or no federated identity
/// credential of the app matching its issuer, subject and audience (70021, 700211–700213).
const ASSERTION_REFUSED: &[u32] = &[700024, 700027, 50027, 70021, 700211, 700212, 700213];

/// Tokens for a (possibly multi-tenant) app registration whose federated identity credential
/// is a managed identity.
///
/// Each request exchanges the managed identity's token for `api://AzureADTokenExchange` (the
/// assertion) at the token endpoint of the requested tenant ([`TokenRequest::with_tenant`],
/// else the tenant given here). The app registration and its federated credential must live
/// in the managed identity's **home** tenant (AADSTS700236 otherwise); the app may be
/// consented in other tenants.
///
/// The assertion is cached and shared by every audience and tenant: it is fetched again only
/// when less than five minutes of its life are left (measured on this credential's clock, so
/// give the managed-identity credential the same [`TimeSource`] in tests), and concurrent
/// callers that find it stale wait for one fetch instead of each making their own. An
/// assertion Entra refuses (expired, AADSTS700024; no matching federated credential,
/// AADSTS70021; …) is dropped from the cache; when it came from the cache, the exchange is
/// retried once with a freshly fetched assertion if the managed identity hands out a different
/// one. A caller's deadline ([`TokenRequest::with_deadline`]) bounds the whole call: waiting
/// for another caller's fetch, the fetch and the exchange. `Debug` never shows the assertion.
///
/// ```no_run
/// use entra_mi::credentials::FederatedManagedIdentityCredential;
/// use entra_mi::{Audience, ManagedIdentityCredential, TokenCredential, TokenRequest};
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
    time: TimeSource,
    exchange_audience: Audience,
    assertion: AssertionCache,
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
            time: self.opts.time,
            exchange_audience: Audience::new(TOKEN_EXCHANGE_AUDIENCE)?,
            assertion: AssertionCache::default(),
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

    /// The assertion, from the cache or fetched now (the flag says which). A `refused`
    /// assertion is never served from the cache, nor stored if the managed identity hands it
    /// out again.
    async fn assertion(
        &self,
        until: Option<Until>,
        refused: Option<&AccessToken>,
    ) -> Result<(AccessToken, bool), Error> {
        if let Some(token) = self.assertion.reusable(self.time.monotonic(), refused) {
            return Ok((token, false));
        }
        // One fetch at a time; the others wait for it and then find its assertion cached.
        let _fetching = match until {
            None => self.assertion.fetching.lock().await,
            Some(until) => {
                let left = until.left(&self.time);
                tokio::select! {
                    biased;
                    guard = self.assertion.fetching.lock() => guard,
                    () = self.time.sleep(left) => return Err(self.out_of_time(until)),
                }
            }
        };
        if let Some(token) = self.assertion.reusable(self.time.monotonic(), refused) {
            return Ok((token, false));
        }
        let mut request = TokenRequest::new(self.exchange_audience.clone());
        if let Some(until) = until {
            let left = until.left(&self.time);
            if left.is_zero() {
                return Err(self.out_of_time(until));
            }
            request = request.with_deadline(left);
        }
        let token = self.managed_identity.get_token(&request).await?;
        if !refused.is_some_and(|r| r.is_same_token(&token)) {
            self.assertion.store(&token, &self.time);
        }
        Ok((token, true))
    }

    /// Exchanges `assertion` for the token `request` asks for, within what is left of the
    /// caller's deadline.
    async fn exchange(
        &self,
        request: &TokenRequest,
        until: Option<Until>,
        assertion: &AccessToken,
    ) -> Result<AccessToken, Error> {
        let request = match until {
            None => Cow::Borrowed(request),
            Some(until) => {
                let left = until.left(&self.time);
                if left.is_zero() {
                    return Err(self.out_of_time(until));
                }
                Cow::Owned(request.clone().with_deadline(left))
            }
        };
        self.client
            .get_token(&request, ClientAuth::Assertion(assertion.secret()))
            .await
    }

    fn out_of_time(&self, until: Until) -> Error {
        Error::deadline_exceeded(&self.client.name, until.deadline, None)
    }
}

/// True when `result` is Entra refusing the client assertion itself.
fn assertion_refused(result: &Result<AccessToken, Error>) -> bool {
    result
        .as_ref()
        .err()
        .and_then(Error::entra_error)
        .is_some_and(blames_assertion)
}

fn blames_assertion(error: &EntraError) -> bool {
    if error.aadsts.is_empty() {
        return error.code.as_deref() == Some("invalid_client");
    }
    error.aadsts.iter().any(|c| ASSERTION_REFUSED.contains(c))
}

/// The managed identity's assertion and until when it is reused.
#[derive(Default)]
struct AssertionCache {
    /// Held only to read, replace or drop the assertion: never across an `await`.
    slot: Mutex<Option<Cached>>,
    /// Held by the one caller fetching a new assertion, for the fetch only.
    fetching: tokio::sync::Mutex<()>,
}

struct Cached {
    token: AccessToken,
    /// Monotonic reading (on the credential's clock) from which the assertion is refetched.
    reuse_until: Duration,
}

impl AssertionCache {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Cached>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached assertion if it is still reused at `now` and is not `refused`.
    fn reusable(&self, now: Duration, refused: Option<&AccessToken>) -> Option<AccessToken> {
        match &*self.slot() {
            Some(c)
                if now < c.reuse_until && !refused.is_some_and(|r| r.is_same_token(&c.token)) =>
            {
                Some(c.token.clone())
            }
            _ => None,
        }
    }

    /// Caches `token` until [`REUSE_MARGIN`] before it expires; one with less life left than
    /// that is used once and not cached.
    ///
    /// Its remaining life is its earliest stated deadline on the monotonic clock (computed
    /// from `expires_in` against the moment the request was sent, so it errs on the short
    /// side), and is counted on that clock, so a change of the wall clock does not stretch it.
    fn store(&self, token: &AccessToken, time: &TimeSource) {
        let left = token.remaining(time);
        let cached = left
            .checked_sub(REUSE_MARGIN)
            .filter(|reuse| !reuse.is_zero())
            .map(|reuse| Cached {
                token: token.clone(),
                reuse_until: time.monotonic().saturating_add(reuse),
            });
        if cached.is_none() {
            tracing::debug!(
                left_s = left.as_secs(),
                "the managed identity's assertion expires within the reuse margin: used once, not cached"
            );
        }
        *self.slot() = cached;
    }

    /// Drops the cached assertion if it is `token`.
    fn forget(&self, token: &AccessToken) {
        let mut slot = self.slot();
        if slot.as_ref().is_some_and(|c| c.token.is_same_token(token)) {
            *slot = None;
        }
    }
}

impl fmt::Debug for AssertionCache {
    /// Whether an assertion is cached and until when it is reused; never the assertion.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reuse_until = self.slot().as_ref().map(|c| c.reuse_until);
        f.debug_struct("AssertionCache")
            .field("cached", &reuse_until.is_some())
            .field("reuse_until_monotonic", &reuse_until)
            .finish()
    }
}

#[async_trait]
impl TokenCredential for FederatedManagedIdentityCredential {
    async fn get_token(&self, request: &TokenRequest) -> Result<AccessToken, Error> {
        let until = Until::start(request.deadline(), &self.time);
        let (assertion, fetched) = self.assertion(until, None).await?;
        let result = self.exchange(request, until, &assertion).await;
        if !assertion_refused(&result) {
            return result;
        }
        self.assertion.forget(&assertion);
        if fetched {
            return result;
        }
        // A cached assertion was refused (its expiry misjudged, or the clocks disagree): once
        // more with a fresh one, if the managed identity hands out another.
        let (fresh, _) = self.assertion(until, Some(&assertion)).await?;
        if fresh.is_same_token(&assertion) {
            return result;
        }
        tracing::debug!(
            credential = %self.client.name,
            "the cached assertion was refused; retrying once with a fresh one"
        );
        let retried = self.exchange(request, until, &fresh).await;
        if assertion_refused(&retried) {
            self.assertion.forget(&fresh);
        }
        retried
    }

    fn name(&self) -> &str {
        &self.client.name
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;
    use crate::time::{Clock, RandomJitter, TokioSleep};

    /// A clock stepped by hand: monotonic and wall readings move together.
    #[derive(Debug, Default)]
    struct Stepped(AtomicU64);

    impl Stepped {
        fn advance(&self, secs: u64) {
            self.0.fetch_add(secs, Ordering::SeqCst);
        }
    }

    impl Clock for Stepped {
        fn monotonic(&self) -> Duration {
            Duration::from_secs(1000 + self.0.load(Ordering::SeqCst))
        }
        fn system_now(&self) -> SystemTime {
            UNIX_EPOCH + Duration::from_secs(1_767_225_600 + self.0.load(Ordering::SeqCst))
        }
    }

    fn stepped() -> (Arc<Stepped>, TimeSource) {
        let clock = Arc::new(Stepped::default());
        let time = TimeSource::new(clock.clone(), Arc::new(TokioSleep), Arc::new(RandomJitter));
        (clock, time)
    }

    fn token(secret: &str, time: &TimeSource, lifetime: u64) -> AccessToken {
        AccessToken::new(secret, time.system_now() + Duration::from_secs(lifetime))
    }

    #[test]
    fn an_assertion_is_reused_until_five_minutes_before_it_expires() {
        let (clock, time) = stepped();
        let cache = AssertionCache::default();
        let t = token("eyJ.first.sig", &time, 3600);
        cache.store(&t, &time);
        assert!(cache.reusable(time.monotonic(), None).is_some());
        clock.advance(3600 - 300 - 1);
        assert!(
            cache
                .reusable(time.monotonic(), None)
                .unwrap()
                .is_same_token(&t)
        );
        clock.advance(1);
        assert!(cache.reusable(time.monotonic(), None).is_none());
    }

    #[test]
    fn a_short_lived_or_refused_assertion_is_not_served_from_the_cache() {
        let (_, time) = stepped();
        let cache = AssertionCache::default();
        cache.store(&token("eyJ.short.sig", &time, 300), &time);
        assert!(cache.reusable(time.monotonic(), None).is_none());
        let t = token("eyJ.long.sig", &time, 3600);
        cache.store(&t, &time);
        assert!(cache.reusable(time.monotonic(), Some(&t)).is_none());
        // Forgetting another token leaves it; forgetting it drops it.
        cache.forget(&token("eyJ.other.sig", &time, 3600));
        assert!(cache.reusable(time.monotonic(), None).is_some());
        cache.forget(&t);
        assert!(cache.reusable(time.monotonic(), None).is_none());
    }

    #[test]
    fn debug_never_shows_the_assertion() {
        let (_, time) = stepped();
        let cache = AssertionCache::default();
        cache.store(&token("eyJ.CANARY-assertion.sig", &time, 3600), &time);
        let shown = format!("{cache:?}");
        assert!(!shown.contains("CANARY"), "{shown}");
        assert!(shown.contains("cached: true"), "{shown}");
    }

    #[test]
    fn which_refusals_blame_the_assertion() {
        let error = |code: &str, aadsts: &[u32]| EntraError {
            status: 400,
            code: Some(code.into()),
            description: None,
            aadsts: aadsts.to_vec(),
            trace_id: None,
            correlation_id: None,
        };
        assert!(blames_assertion(&error("invalid_client", &[700024])));
        assert!(blames_assertion(&error("invalid_client", &[70021])));
        assert!(blames_assertion(&error("invalid_client", &[])));
        assert!(!blames_assertion(&error("invalid_scope", &[])));
        assert!(!blames_assertion(&error("invalid_resource", &[500011])));
        assert!(!blames_assertion(&error("invalid_client", &[700236])));
    }
}
