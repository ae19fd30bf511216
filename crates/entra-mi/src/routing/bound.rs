//! A route bound to its token handle, and the numbers a request in flight keeps instead of it:
//! [`RouteKey`] (the route) and [`SentKey`] (the route and the version of the token sent).

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use http::HeaderValue;

use super::challenge::BearerChallenge;
use super::route::Route;
use crate::audience::Audience;
use crate::cache::{TokenHandle, TokenVersion};
use crate::error::Error;

/// A route with its token handle, as matched by a [`TokenRouter`](super::TokenRouter). Cheap
/// to clone.
#[derive(Clone)]
pub struct BoundRoute {
    pub(super) inner: Arc<BoundInner>,
}

pub(super) struct BoundInner {
    key: RouteKey,
    pub(super) route: Route,
    handle: TokenHandle,
}

/// Every live [`BoundRoute`] by key, so a request in flight can name its route with a number
/// and find it again only when it needs it (after a `401`).
type Registry = Mutex<HashMap<u64, Weak<BoundInner>>>;

fn registry() -> MutexGuard<'static, HashMap<u64, Weak<BoundInner>>> {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY
        .get_or_init(Registry::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

impl Drop for BoundInner {
    fn drop(&mut self) {
        registry().remove(&self.key.0);
    }
}

/// Names a [`BoundRoute`] without holding it: a number that a request in flight keeps instead
/// of a reference-counted pointer, to find its route again after a `401` with
/// [`RouteKey::route`]. Keys are never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RouteKey(u64);

impl RouteKey {
    /// The route, while its router (or a clone of the route) still exists.
    pub fn route(self) -> Option<BoundRoute> {
        let inner = registry().get(&self.0)?.upgrade()?;
        Some(BoundRoute { inner })
    }
}

/// The route a request was sent on and the [`TokenVersion`] of the token it carried, in one
/// word: what a request in flight keeps to act on a `401` (see [`BoundRoute::recover`]), made
/// by [`BoundRoute::sent_key`].
///
/// One word keeps the response futures that hold it small: a future that moves by a few
/// register-sized copies instead of a `memcpy` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SentKey(NonZeroU64);

impl SentKey {
    /// The route's key.
    #[inline]
    pub fn route_key(self) -> RouteKey {
        RouteKey(self.0.get() >> 32)
    }

    /// The version of the token the request carried.
    #[inline]
    pub fn version(self) -> TokenVersion {
        TokenVersion(self.0.get() & u64::from(u32::MAX))
    }

    /// The route, while its router (or a clone of the route) still exists.
    pub fn route(self) -> Option<BoundRoute> {
        self.route_key().route()
    }
}

/// The next route key; keys start at 1.
static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

/// Makes every route built from now on in this process take a key over 32 bits, so requests
/// on it keep their route and version apart instead of in a [`SentKey`]: the path of a
/// process that has built over four billion routes, for tests.
#[cfg(feature = "test-util")]
#[doc(hidden)]
pub fn __route_keys_past_32_bits() {
    NEXT_KEY.fetch_max(1 << 33, Ordering::Relaxed);
}

impl BoundRoute {
    /// This route and the token of `version` as one [`SentKey`]; `None` when either number
    /// needs more than 32 bits (a process that has built over four billion routes, or a token
    /// replaced over four billion times): keep the [`RouteKey`] and the version apart then.
    #[inline]
    pub fn sent_key(&self, version: TokenVersion) -> Option<SentKey> {
        let key = u32::try_from(self.inner.key.0).ok()?;
        let version = u32::try_from(version.0).ok()?;
        // Route keys start at 1, so the word is never zero.
        NonZeroU64::new(u64::from(key) << 32 | u64::from(version)).map(SentKey)
    }

    /// `route` with `handle`, under a new key.
    pub(super) fn register(route: Route, handle: TokenHandle) -> Self {
        let key = RouteKey(NEXT_KEY.fetch_add(1, Ordering::Relaxed));
        let inner = Arc::new(BoundInner { key, route, handle });
        registry().insert(key.0, Arc::downgrade(&inner));
        BoundRoute { inner }
    }

    /// This route's key: see [`RouteKey`].
    #[inline]
    pub fn key(&self) -> RouteKey {
        self.inner.key
    }

    /// The route.
    pub fn route(&self) -> &Route {
        &self.inner.route
    }

    /// The audience of the route.
    pub fn audience(&self) -> &Audience {
        &self.inner.route.audience
    }

    /// The token handle of the route's audience.
    pub fn handle(&self) -> &TokenHandle {
        &self.inner.handle
    }

    /// True when `other` is the same route of the same router.
    pub fn same_route(&self, other: &BoundRoute) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// After the API answered `401` with `challenge` to a request sent with the token of
    /// `sent` (from [`TokenHandle::header_with_version`] or
    /// [`TokenHandle::header_with_version`]): drops the token if it is still the cached one (so
    /// concurrent `401`s for one token cause one refetch), gets the next one — with the
    /// challenge's claims when it asked for claims — and returns its header when it is another
    /// token. `None` means a retry cannot help: the source handed back the rejected token
    /// (managed-identity endpoints cache tokens and have no "force new").
    pub async fn recover(
        &self,
        sent: TokenVersion,
        challenge: &BearerChallenge,
    ) -> Result<Option<HeaderValue>, Error> {
        let handle = self.handle();
        let dropped = handle.invalidate_version_if_current(sent);
        let (next, version) = match challenge {
            BearerChallenge::InsufficientClaims { claims } if dropped => {
                tracing::debug!(audience = %self.audience(), "claims challenge; fetching a token with the requested claims");
                Box::pin(handle.fetch_with_claims(claims)).await?;
                Box::pin(handle.header_with_version()).await?
            }
            _ => Box::pin(handle.header_with_version()).await?,
        };
        if version == sent || handle.is_rejected_again(sent, version) {
            tracing::debug!(audience = %self.audience(), "the token source returned the rejected token again; not retrying");
            return Ok(None);
        }
        Ok(Some(next))
    }
}

impl fmt::Debug for BoundRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner.route, f)
    }
}
