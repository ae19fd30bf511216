//! The token cache: [`TokenProvider`] and per-audience [`TokenHandle`]s.
//!
//! Per key (audience, tenant) one slot. A slot's token is
//! * **fresh** until its refresh point: served with one clock read and one `HeaderValue` clone
//!   — no lock, no allocation, no await. The entry comes from this thread's copy while the
//!   slot's version says it is current (see `local`), else from one `ArcSwap` load;
//! * **stale** from the refresh point until `expires_on − buffer`: still served at once; the
//!   first caller to see it stale starts one background refresh on a spawned task;
//! * **expired** (or absent): callers wait for the single in-flight fetch and share its result
//!   (see `flight`).
//!
//! Freshness is judged on the monotonic clock and on the wall clock: the first is immune to
//! a wall clock set back, the second keeps counting while the machine is suspended, so a
//! laptop or VM that slept past a token's refresh point or expiry never serves it as fresh.
//!
//! A failed refresh never evicts a token that is still valid; the next attempt waits at least
//! the failure backoff (30 s, doubling to 5 min). A refresh that returns a token that is already
//! due for refresh (managed-identity endpoints cache tokens and may return the very one held)
//! is a success whose next refresh is pushed back by the same backoff: never a tight loop. The
//! same holds after a `401`: a token the source hands back right after an API rejected it is
//! not dropped again before that backoff (see `slot::invalidate`). Every wait is bounded: a
//! fetch that does not finish within the provider's fetch timeout fails every waiter.

mod entry;
mod flight;
mod handle;
mod local;
mod refresh;
mod slot;
mod stats;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderValue;

use crate::audience::Audience;
use crate::credential::{TokenCredential, TokenRequest};
use crate::error::Error;
use crate::hash::FxBuild;
use crate::time::TimeSource;
use crate::token::AccessToken;

pub use handle::{TokenHandle, TokenVersion};
use slot::{Slot, invalidate, lock};
pub use stats::CacheStats;
use stats::Stats;

/// Builds a [`TokenProvider`].
///
/// Defaults, with a 24-hour managed-identity token as the worked example:
/// * refresh at the source's `refresh_in` when given, else at half the lifetime for tokens
///   living 2 h or more (here: after 12 h), else 5 minutes before expiry (at most half the
///   lifetime);
/// * minus an early jitter of up to `max_jitter` (default 5 min) or a tenth of the lifetime,
///   whichever is smaller, so a fleet started together does not refresh together;
/// * stop serving `expiry_buffer` (default 60 s, at most a tenth of the lifetime, at least 1 s
///   or half of a shorter lifetime) before the token expires, so a token is never handed out
///   just as it expires in flight;
/// * after a failed fetch, wait `failure_backoff` (default 30 s, doubling to
///   `max_failure_backoff`, 5 min) before the next background attempt; callers with no valid
///   token retry at most once per `cold_retry_interval` (default 1 s) and otherwise get the
///   last error at once;
/// * end a fetch that has not finished after `fetch_timeout` (default 120 s, longer than the
///   managed-identity credential's own 100 s retry budget), failing every caller that waits
///   for it.
pub struct TokenProviderBuilder {
    credential: Arc<dyn TokenCredential>,
    time: TimeSource,
    opts: Options,
}

#[derive(Clone, Debug)]
struct Options {
    expiry_buffer: Duration,
    max_jitter: Duration,
    failure_backoff: Duration,
    max_failure_backoff: Duration,
    cold_retry_interval: Duration,
    fetch_timeout: Duration,
    eager: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            expiry_buffer: Duration::from_secs(60),
            max_jitter: Duration::from_secs(300),
            failure_backoff: Duration::from_secs(30),
            max_failure_backoff: Duration::from_secs(300),
            cold_retry_interval: Duration::from_secs(1),
            fetch_timeout: Duration::from_secs(120),
            eager: false,
        }
    }
}

impl TokenProviderBuilder {
    /// Clock, timer and jitter (default: the system's).
    pub fn time_source(mut self, time: TimeSource) -> Self {
        self.time = time;
        self
    }

    /// How long before expiry a token stops being served (default 60 s; never more than a
    /// tenth of the token's lifetime).
    pub fn expiry_buffer(mut self, d: Duration) -> Self {
        self.opts.expiry_buffer = d;
        self
    }

    /// Upper bound of the early refresh jitter (default 5 min; never more than a tenth of the
    /// token's lifetime). `Duration::ZERO` disables jitter.
    pub fn max_jitter(mut self, d: Duration) -> Self {
        self.opts.max_jitter = d;
        self
    }

    /// Wait after a failed fetch before the next background attempt (default 30 s, doubling
    /// per consecutive failure). Values below 30 s are raised to 30 s.
    pub fn failure_backoff(mut self, d: Duration) -> Self {
        self.opts.failure_backoff = d.max(Duration::from_secs(30));
        self
    }

    /// Cap of the doubling failure backoff (default 5 min).
    pub fn max_failure_backoff(mut self, d: Duration) -> Self {
        self.opts.max_failure_backoff = d;
        self
    }

    /// Minimum time between fetches for callers that hold no valid token, after a failure
    /// (default 1 s). Within it, callers get the last error at once.
    pub fn cold_retry_interval(mut self, d: Duration) -> Self {
        self.opts.cold_retry_interval = d;
        self
    }

    /// The longest a fetch may take (default 120 s) before every caller waiting for it gets
    /// [`DeadlineError::FetchTimeout`](crate::error::DeadlineError::FetchTimeout); the fetch is then abandoned and counts as a failure. A token
    /// request with a longer deadline of its own ([`TokenRequest::with_deadline`], given to
    /// [`TokenProvider::handle_for`]) extends it for that slot. It needs a tokio runtime:
    /// outside one, a fetch runs in the caller's task, bounded by the credential's own
    /// timeouts.
    pub fn fetch_timeout(mut self, d: Duration) -> Self {
        self.opts.fetch_timeout = d;
        self
    }

    /// Refresh on a timer at each token's refresh point even without traffic (default off:
    /// refresh is triggered by the first request that sees the token stale).
    pub fn eager_refresh(mut self, eager: bool) -> Self {
        self.opts.eager = eager;
        self
    }

    /// The provider.
    pub fn build(self) -> TokenProvider {
        TokenProvider {
            inner: Arc::new(Inner {
                credential: self.credential,
                time: self.time,
                opts: self.opts,
                slots: ArcSwap::from_pointee(SlotMaps::default()),
                insert_lock: Mutex::new(()),
                stats: Stats::default(),
            }),
        }
    }
}

impl fmt::Debug for TokenProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenProviderBuilder")
            .field("credential", &self.credential.name())
            .field("options", &self.opts)
            .finish()
    }
}

/// The token cache in front of a credential, shared by both middlewares.
///
/// Cheap to clone (an `Arc` inside); make one per process and share it. For each API you call,
/// resolve a [`TokenHandle`] once with [`TokenProvider::handle`]: the handle's hot path does no
/// hashing and no locking. [`TokenProvider::header`] is the ad-hoc form (one lock-free map
/// lookup per call).
///
/// Fetches run on a spawned tokio task, so a caller that is dropped does not cancel the fetch
/// the others wait for.
///
/// ```no_run
/// use entra_mi::{Audience, ManagedIdentityCredential, TokenProvider};
/// # async fn run() -> Result<(), entra_mi::Error> {
/// let provider = TokenProvider::builder(ManagedIdentityCredential::system_assigned()?)
///     .eager_refresh(true)
///     .build();
/// let arm = provider.handle(&Audience::azure_resource_manager());
/// let header = arm.header().await?;
/// # let _ = header; Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenProvider {
    inner: Arc<Inner>,
}

struct Inner {
    credential: Arc<dyn TokenCredential>,
    time: TimeSource,
    opts: Options,
    slots: ArcSwap<SlotMaps>,
    insert_lock: Mutex<()>,
    stats: Stats,
}

/// The slots, copied on write (new audiences are rare) and read without a lock. Slots of the
/// credential's own tenant are keyed by the resource string alone so a lookup needs no
/// allocation.
#[derive(Clone, Default)]
struct SlotMaps {
    home: HashMap<Arc<str>, Arc<Slot>, FxBuild>,
    tenants: HashMap<(Arc<str>, Arc<str>), Arc<Slot>, FxBuild>,
}

impl SlotMaps {
    fn get(&self, resource: &str, tenant: Option<&str>) -> Option<&Arc<Slot>> {
        match tenant {
            None => self.home.get(resource),
            Some(t) => self.tenants.get(&(Arc::from(resource), Arc::from(t))),
        }
    }

    fn len(&self) -> usize {
        self.home.len() + self.tenants.len()
    }
}

impl TokenProvider {
    /// A provider with the default settings.
    pub fn new(credential: impl TokenCredential + 'static) -> Self {
        Self::builder(credential).build()
    }

    /// A builder.
    pub fn builder(credential: impl TokenCredential + 'static) -> TokenProviderBuilder {
        Self::builder_shared(Arc::new(credential))
    }

    /// A builder for a credential that is already shared.
    pub fn builder_shared(credential: Arc<dyn TokenCredential>) -> TokenProviderBuilder {
        TokenProviderBuilder {
            credential,
            time: TimeSource::system(),
            opts: Options::default(),
        }
    }

    /// The handle for `audience` in the credential's own tenant. Resolve it once and keep it.
    pub fn handle(&self, audience: &Audience) -> TokenHandle {
        self.handle_for(&TokenRequest::new(audience.clone()))
    }

    /// The handle for the audience and tenant of `request` (its claims and deadline are not
    /// part of the key; the deadline bounds each fetch).
    pub fn handle_for(&self, request: &TokenRequest) -> TokenHandle {
        TokenHandle {
            slot: self.slot(request),
            inner: self.inner.clone(),
        }
    }

    fn slot(&self, template: &TokenRequest) -> Arc<Slot> {
        let resource = template.audience().resource();
        let tenant = template.tenant();
        if let Some(slot) = self.inner.slots.load().get(resource, tenant) {
            return slot.clone();
        }
        let _guard = lock(&self.inner.insert_lock);
        let current = self.inner.slots.load_full();
        if let Some(slot) = current.get(resource, tenant) {
            return slot.clone();
        }
        let mut request = TokenRequest::new(template.audience().clone());
        if let Some(t) = tenant {
            request = request.with_tenant(t);
        }
        if let Some(d) = template.deadline() {
            request = request.with_deadline(d);
        }
        let slot = Arc::new(Slot::new(request));
        let mut next = (*current).clone();
        match tenant {
            None => next.home.insert(Arc::from(resource), slot.clone()),
            Some(t) => next
                .tenants
                .insert((Arc::from(resource), Arc::from(t)), slot.clone()),
        };
        self.inner.slots.store(Arc::new(next));
        slot
    }

    fn existing_slot(&self, audience: &Audience) -> Option<Arc<Slot>> {
        self.inner
            .slots
            .load()
            .get(audience.resource(), None)
            .cloned()
    }

    /// An `Authorization` header value for `audience`, waiting for a fetch only when no valid
    /// token is cached. Marked sensitive.
    pub async fn header(&self, audience: &Audience) -> Result<HeaderValue, Error> {
        if let Some(h) = self.cached_header(audience) {
            return Ok(h);
        }
        self.handle(audience).header().await
    }

    /// The header for `audience` if a valid token is cached, without waiting.
    pub fn cached_header(&self, audience: &Audience) -> Option<HeaderValue> {
        let slots = self.inner.slots.load();
        let slot = slots.get(audience.resource(), None)?;
        handle::try_header(&self.inner, slot, &mut 0)
    }

    /// The cached or freshly fetched token for `audience`.
    pub async fn token(&self, audience: &Audience) -> Result<AccessToken, Error> {
        self.handle(audience).token().await
    }

    /// Drops the cached token for `audience` only if it is still `token` (for example after an
    /// API rejected it with 401). Returns whether it was dropped. A token that was already
    /// replaced is left alone, so concurrent 401s cause one refetch, not many; a token the
    /// source handed back right after it was rejected is kept until a back-off (30 s, doubling
    /// to 5 min) has passed, so a stream of 401s does not become a stream of fetches.
    pub fn invalidate_if_current(&self, audience: &Audience, token: &AccessToken) -> bool {
        self.existing_slot(audience)
            .is_some_and(|slot| invalidate(&self.inner, &slot, |e| e.token.is_same_token(token)))
    }

    /// Counters over all audiences.
    pub fn stats(&self) -> CacheStats {
        self.inner.stats.snapshot()
    }

    /// The credential's name.
    pub fn credential_name(&self) -> &str {
        self.inner.credential.name()
    }
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenProvider")
            .field("credential", &self.inner.credential.name())
            .field("audiences", &self.inner.slots.load().len())
            .field("stats", &self.stats())
            .finish()
    }
}
