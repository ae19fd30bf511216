//! The token cache: [`TokenProvider`] and per-audience [`TokenHandle`]s.
//!
//! Per key (audience, tenant) one slot. A slot's token is
//! * **fresh** until its refresh point: served with one clock read and one `HeaderValue` clone
//!   — no lock, no allocation, no await. The entry comes from this thread's copy while the
//!   slot's version says it is current (see `local`), else from one `ArcSwap` load;
//! * **stale** from the refresh point until `expires_on − buffer`: still served at once; the
//!   first caller to see it stale starts one background refresh on a spawned task;
//! * **expired** (or absent): callers wait for the single in-flight fetch and share its result.
//!
//! A failed refresh never evicts a token that is still valid; the next attempt waits at least
//! the failure backoff (30 s, doubling to 5 min). A refresh that returns a token that is already
//! due for refresh (managed-identity endpoints cache tokens and may return the very one held)
//! is a success whose next refresh is pushed back by the same backoff: never a tight loop.

mod local;
mod stats;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use http::HeaderValue;
use tokio::sync::watch;

use crate::audience::Audience;
use crate::credential::{TokenCredential, TokenRequest};
use crate::error::Error;
use crate::time::TimeSource;
use crate::token::AccessToken;

pub use stats::CacheStats;
use stats::Stats;

const TWO_HOURS: Duration = Duration::from_secs(2 * 3600);
const NO_GATE: u64 = 0;
const GATE_IN_FLIGHT: u64 = u64::MAX;

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
///   last error at once.
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

/// FxHash (rustc's hasher): audiences come from the application's own configuration, so a
/// fast non-keyed hash is fine here.
#[derive(Clone, Copy, Default)]
struct FxBuild;

struct FxHasher(u64);

impl std::hash::BuildHasher for FxBuild {
    type Hasher = FxHasher;
    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }
    #[inline]
    fn write_u8(&mut self, b: u8) {
        self.add(u64::from(b));
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

struct Slot {
    request: TokenRequest,
    /// The per-thread copies of `current`.
    lines: local::Lines,
    current: ArcSwapOption<Entry>,
    /// The version of the last write to `current` (the stored entry's, or a new one for an
    /// invalidation), published after the write. Writes happen under `state`'s lock, so
    /// versions only grow. A per-thread copy of an entry is current while its version is this.
    version: AtomicU64,
    /// Monotonic nanoseconds before which no background refresh starts; `GATE_IN_FLIGHT`
    /// while one runs.
    refresh_gate: AtomicU64,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    /// The entry invalidated last (a token an API rejected), until a different token is
    /// cached: lets a `401` handler tell whether the source handed back the same token.
    rejected: Option<Arc<Entry>>,
    flight: Option<watch::Receiver<Option<FlightResult>>>,
    failures: u32,
    last_failure: Option<(Duration, Error)>,
    early_streak: u32,
}

type FlightResult = Result<Arc<Entry>, Error>;

enum Joined {
    Ready(FlightResult),
    Flight(watch::Receiver<Option<FlightResult>>),
    Inline,
}

struct Entry {
    version: u64,
    header: HeaderValue,
    token: AccessToken,
    refresh_at: Duration,
    usable_until: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1)
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
        let slot = Arc::new(Slot {
            request,
            lines: local::Lines::default(),
            current: ArcSwapOption::empty(),
            version: AtomicU64::new(0),
            refresh_gate: AtomicU64::new(NO_GATE),
            state: Mutex::new(SlotState::default()),
        });
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
        if let Some(h) = self.try_header(audience) {
            return Ok(h);
        }
        let handle = self.handle(audience);
        Box::pin(async move { handle.header().await }).await
    }

    /// The header for `audience` if a valid token is cached, without waiting.
    pub fn try_header(&self, audience: &Audience) -> Option<HeaderValue> {
        let slots = self.inner.slots.load();
        let slot = slots.get(audience.resource(), None)?;
        try_header(&self.inner, slot, &mut 0)
    }

    /// The cached or freshly fetched token for `audience`.
    pub async fn token(&self, audience: &Audience) -> Result<AccessToken, Error> {
        self.handle(audience).token().await
    }

    /// Drops the cached token for `audience` only if it is still `token` (for example after an
    /// API rejected it with 401). Returns whether it was dropped. A token that was already
    /// replaced is left alone, so concurrent 401s cause one refetch, not many.
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

/// Which token of a [`TokenHandle`] a header came from: a number that changes whenever the
/// cached token is replaced or invalidated. Requests keep it (instead of a copy of the header)
/// to drop exactly the token an API rejected, with
/// [`TokenHandle::invalidate_version_if_current`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenVersion(pub(crate) u64);

/// The cache slot of one audience (and tenant), resolved once.
///
/// [`TokenHandle::try_header`] is the hot path: a per-thread copy of the entry checked against
/// the slot's version (one `ArcSwap` load when it is out of date), one clock read, one
/// `HeaderValue` clone; no lock, no allocation, no hashing. Cheap to clone.
#[derive(Clone)]
pub struct TokenHandle {
    slot: Arc<Slot>,
    inner: Arc<Inner>,
}

impl fmt::Debug for TokenHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenHandle")
            .field("audience", self.slot.request.audience())
            .field("tenant", &self.slot.request.tenant())
            .finish()
    }
}

/// The hot path: this thread's copy of the entry when the slot's version says it is current
/// (a thread-id read, a bucket load and a plain load), one clock read, one `HeaderValue`
/// clone. Else the shared path: one `ArcSwap` load, after which the copy is refreshed. The
/// served token's version goes to `version` (an out-parameter: returning it with the header
/// costs more).
///
/// Forced inline (with `Lines::hit`): by LLVM's count the hit costs about 725, over the 325 an
/// `#[inline]` function may cost, so it stayed a call, and a call returns the cloned header
/// through memory where the caller's wider loads wait for its stores to drain. Inlined, that
/// wait overlaps the clock read, and a hit measures below the bare clone of a header in
/// criterion's loop too (BENCHMARKS.md). The miss path stays out of line, so each caller grows
/// by the hit alone.
#[inline(always)]
fn try_header(inner: &Arc<Inner>, slot: &Arc<Slot>, version: &mut u64) -> Option<HeaderValue> {
    let current = slot.version.load(Ordering::Acquire);
    if let Some(header) = slot
        .lines
        .hit(current, || inner.time.monotonic(), &inner.stats.hits)
    {
        *version = current;
        return Some(header);
    }
    try_header_shared(inner, slot, inner.time.monotonic(), version)
}

/// The cache hit through the shared store.
#[inline(never)]
fn try_header_shared(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    now: Duration,
    version: &mut u64,
) -> Option<HeaderValue> {
    let entry = slot.current.load_full()?;
    *version = entry.version;
    if now < entry.refresh_at {
        inner.stats.hits.incr();
        let header = entry.header.clone();
        slot.lines.remember(entry);
        return Some(header);
    }
    stale_or_expired(inner, slot, &entry, now).then(|| entry.header.clone())
}

/// Counts a stale-but-valid token as served and starts the background refresh; false when the
/// token is past its usable window.
#[cold]
fn stale_or_expired(inner: &Arc<Inner>, slot: &Arc<Slot>, entry: &Entry, now: Duration) -> bool {
    if now >= entry.usable_until {
        return false;
    }
    inner.stats.stale_hits.incr();
    if nanos(now) >= slot.refresh_gate.load(Ordering::Acquire) {
        refresh_now(inner, slot, now);
    }
    true
}

fn begin_flight(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    st: &mut SlotState,
    runtime: &tokio::runtime::Handle,
) -> watch::Receiver<Option<FlightResult>> {
    let (tx, rx) = watch::channel(None);
    st.flight = Some(rx.clone());
    slot.refresh_gate.store(GATE_IN_FLIGHT, Ordering::Release);
    inner.stats.fetches.fetch_add(1, Ordering::Relaxed);
    let guard = FlightGuard {
        inner: inner.clone(),
        slot: slot.clone(),
        done: false,
    };
    runtime.spawn(run_flight(guard, tx));
    rx
}

async fn run_flight(mut guard: FlightGuard, tx: watch::Sender<Option<FlightResult>>) {
    let result = guard.inner.credential.get_token(&guard.slot.request).await;
    let outcome = complete(&guard.inner, &guard.slot, result, true);
    guard.done = true;
    let _ = tx.send(Some(outcome));
}

/// Clears the in-flight marker if the fetch task ends without completing (panic, runtime
/// shutdown), so the next caller starts a new fetch instead of waiting on a dead one.
struct FlightGuard {
    inner: Arc<Inner>,
    slot: Arc<Slot>,
    done: bool,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if !self.done {
            let mut st = lock(&self.slot.state);
            st.flight = None;
            self.slot.refresh_gate.store(NO_GATE, Ordering::Release);
            self.inner.stats.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(audience = %self.slot.request.audience(), "token fetch ended without a result");
        }
    }
}

/// Stores a fetched token or records a failure; returns what the waiters get.
fn complete(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    result: Result<AccessToken, Error>,
    ends_flight: bool,
) -> FlightResult {
    let time = &inner.time;
    let opts = &inner.opts;
    let now = time.monotonic();
    let wall = time.system_now();
    let mut st = lock(&slot.state);
    if ends_flight {
        st.flight = None;
    }
    let audience = slot.request.audience();
    let result = result.and_then(|token| {
        let expires_at = match token.monotonic {
            Some(m) => m.expires_at,
            None => now + token.expires_on().duration_since(wall).unwrap_or_default(),
        };
        if expires_at <= now {
            return Err(Error::Credential {
                credential: inner.credential.name().to_owned(),
                message: format!("returned a token for {audience} that has already expired"),
            });
        }
        Ok((token, expires_at))
    });
    match result {
        Ok((mut token, expires_at)) => {
            let lifetime = expires_at - now;
            // At most a tenth of the lifetime, but at least 1 s (or half of a shorter
            // lifetime): `expires_in` counts whole seconds from when the endpoint answered, so
            // an expiry computed from it can be up to a second late.
            let buffer = opts
                .expiry_buffer
                .min(lifetime / 10)
                .max(Duration::from_secs(1).min(lifetime / 2));
            let usable_until = expires_at - buffer;
            let source_refresh = token.monotonic.and_then(|m| m.refresh_at).or_else(|| {
                token
                    .refresh_on()
                    .map(|r| now + r.duration_since(wall).unwrap_or_default())
            });
            let planned = match source_refresh {
                Some(r) => r,
                None if lifetime >= TWO_HOURS => now + lifetime / 2,
                None => expires_at - Duration::from_secs(300).min(lifetime / 2),
            };
            let jitter = opts.max_jitter.min(lifetime / 10).mul_f64(time.jitter());
            let mut refresh_at = planned.saturating_sub(jitter).min(usable_until).max(now);
            let previous = slot.current.load_full();
            let same = previous
                .as_ref()
                .is_some_and(|p| p.token.is_same_token(&token));
            // The endpoint returned the token already held (managed-identity endpoints cache
            // tokens), or one that is already due: keep it, and push the next attempt back by a
            // growing backoff instead of asking again at once.
            let min_gap = Duration::from_secs(1).min(lifetime / 4);
            if same || refresh_at <= now + min_gap {
                st.early_streak += 1;
                let backoff = failure_backoff(opts, st.early_streak, time.jitter());
                refresh_at = refresh_at.max(now + backoff).min(usable_until);
                tracing::debug!(
                    audience = %audience,
                    same_token = same,
                    next_attempt_in_s = (refresh_at - now).as_secs(),
                    "the refresh returned a token that is already due; the next attempt backs off"
                );
            } else {
                st.early_streak = 0;
            }
            token.set_refresh_on(wall + (refresh_at - now));
            let header = token.header_value();
            // Promote the header's bytes to shared storage now, so clones on the hot path are a
            // reference-count increment and never allocate.
            drop(header.clone());
            let version = slot.version.load(Ordering::Relaxed) + 1;
            let entry = Arc::new(Entry {
                version,
                header,
                token,
                refresh_at,
                usable_until,
            });
            slot.current.store(Some(entry.clone()));
            slot.version.store(version, Ordering::Release);
            if st
                .rejected
                .as_ref()
                .is_some_and(|r| !r.token.is_same_token(&entry.token))
            {
                st.rejected = None;
            }
            st.failures = 0;
            st.last_failure = None;
            slot.refresh_gate.store(NO_GATE, Ordering::Release);
            tracing::debug!(
                audience = %audience,
                expires_in_s = lifetime.as_secs(),
                refresh_in_s = (refresh_at - now).as_secs(),
                same_token = same,
                "token cached"
            );
            drop(st);
            if opts.eager {
                schedule_eager(inner, slot, refresh_at);
            }
            Ok(entry)
        }
        Err(error) => {
            inner.stats.failures.fetch_add(1, Ordering::Relaxed);
            st.failures += 1;
            st.last_failure = Some((now, error.clone()));
            let backoff = failure_backoff(opts, st.failures, time.jitter());
            let next = now + backoff;
            slot.refresh_gate.store(nanos(next), Ordering::Release);
            let still_valid = slot
                .current
                .load()
                .as_deref()
                .is_some_and(|e| now < e.usable_until);
            if still_valid {
                tracing::warn!(
                    audience = %audience,
                    error = %error,
                    retry_in_s = backoff.as_secs(),
                    "token refresh failed; the cached token stays in service"
                );
            } else {
                tracing::warn!(audience = %audience, error = %error, "token fetch failed");
            }
            drop(st);
            if opts.eager {
                schedule_eager(inner, slot, next);
            }
            Err(error)
        }
    }
}

fn failure_backoff(opts: &Options, consecutive: u32, jitter: f64) -> Duration {
    let exp = consecutive.saturating_sub(1).min(16);
    let base = opts
        .failure_backoff
        .saturating_mul(1 << exp)
        .min(opts.max_failure_backoff.max(opts.failure_backoff));
    base + base.mul_f64(0.2 * jitter)
}

fn schedule_eager(inner: &Arc<Inner>, slot: &Arc<Slot>, at: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak_inner: Weak<Inner> = Arc::downgrade(inner);
    let weak_slot: Weak<Slot> = Arc::downgrade(slot);
    let delay = at.saturating_sub(inner.time.monotonic());
    let sleep = inner.time.sleep(delay);
    runtime.spawn(async move {
        sleep.await;
        let (Some(inner), Some(slot)) = (weak_inner.upgrade(), weak_slot.upgrade()) else {
            return;
        };
        // The timer has run its course, so it is at least `at`: the coarse clock can read up
        // to a tick behind the timer's, and the refresh must not then be judged not yet due
        // and dropped (nothing would schedule it again).
        let now = inner.time.monotonic().max(at);
        refresh_now(&inner, &slot, now);
    });
}

/// Starts a background fetch if the slot is due (stale, expired or empty) and none runs.
fn refresh_now(inner: &Arc<Inner>, slot: &Arc<Slot>, now: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let mut st = lock(&slot.state);
    if st.flight.is_some() || nanos(now) < slot.refresh_gate.load(Ordering::Acquire) {
        return;
    }
    let due = slot
        .current
        .load()
        .as_deref()
        .is_none_or(|e| now >= e.refresh_at);
    if due {
        tracing::debug!(audience = %slot.request.audience(), "token due for refresh; refreshing in the background");
        let _rx = begin_flight(inner, slot, &mut st, &runtime);
    }
}

fn invalidate(inner: &Inner, slot: &Slot, matches: impl Fn(&Entry) -> bool) -> bool {
    // Every write to `current` happens under the slot lock (see `Slot::version`).
    let mut st = lock(&slot.state);
    let Some(entry) = slot.current.load_full() else {
        return false;
    };
    if !matches(&entry) {
        return false;
    }
    slot.current.store(None);
    slot.version.store(entry.version + 1, Ordering::Release);
    st.rejected = Some(entry);
    inner.stats.invalidations.fetch_add(1, Ordering::Relaxed);
    // The token was rejected: the next caller fetches at once.
    st.last_failure = None;
    if st.flight.is_none() {
        slot.refresh_gate.store(NO_GATE, Ordering::Release);
    }
    tracing::debug!(audience = %slot.request.audience(), "cached token invalidated");
    true
}

impl TokenHandle {
    /// The audience of this handle.
    pub fn audience(&self) -> &Audience {
        self.slot.request.audience()
    }

    /// The header if a valid (fresh or stale) token is cached — the hot path. A stale token
    /// also starts the background refresh (when called inside a tokio runtime).
    #[inline]
    pub fn try_header(&self) -> Option<HeaderValue> {
        try_header(&self.inner, &self.slot, &mut 0)
    }

    /// [`try_header`](Self::try_header) with the [`TokenVersion`] of the token served: keep
    /// the version (a number) instead of a copy of the header to act on a `401` later with
    /// [`invalidate_version_if_current`](Self::invalidate_version_if_current).
    #[inline]
    pub fn try_header_versioned(&self) -> Option<(HeaderValue, TokenVersion)> {
        let mut version = 0;
        try_header(&self.inner, &self.slot, &mut version).map(|h| (h, TokenVersion(version)))
    }

    /// Sets `Authorization` in `headers` to the cached token's header (replacing any value it
    /// had) when a valid token is cached, and returns the token's [`TokenVersion`]; leaves
    /// `headers` alone and returns `None` otherwise. What a middleware does per request, with
    /// the header going straight from the cache into the map.
    ///
    /// ```
    /// # async fn demo(handle: entra_mi::TokenHandle) {
    /// let mut headers = http::HeaderMap::new();
    /// if let Some(version) = handle.try_insert_header(&mut headers) {
    ///     assert!(headers[http::header::AUTHORIZATION].is_sensitive());
    ///     # let _ = version;
    /// }
    /// # }
    /// ```
    #[inline]
    pub fn try_insert_header(&self, headers: &mut http::HeaderMap) -> Option<TokenVersion> {
        let mut version = 0;
        let header = try_header(&self.inner, &self.slot, &mut version)?;
        headers.insert(http::header::AUTHORIZATION, header);
        Some(TokenVersion(version))
    }

    /// The `Authorization` header value (`Bearer …`, marked sensitive): at once when a valid
    /// token is cached, else after the single in-flight fetch.
    pub async fn header(&self) -> Result<HeaderValue, Error> {
        if let Some(h) = self.try_header() {
            return Ok(h);
        }
        // The waiting path is boxed so the future of a cache hit stays small.
        Ok(Box::pin(self.wait()).await?.header.clone())
    }

    /// [`header`](Self::header) with the [`TokenVersion`] of the token served.
    pub async fn header_versioned(&self) -> Result<(HeaderValue, TokenVersion), Error> {
        if let Some(found) = self.try_header_versioned() {
            return Ok(found);
        }
        let entry = Box::pin(self.wait()).await?;
        Ok((entry.header.clone(), TokenVersion(entry.version)))
    }

    /// Drops the cached token only if it is still the one of `version` (what a request was
    /// sent with). Returns whether it was dropped; like
    /// [`invalidate_if_current`](Self::invalidate_if_current), concurrent `401`s for one token
    /// cause one refetch.
    pub fn invalidate_version_if_current(&self, version: TokenVersion) -> bool {
        invalidate(&self.inner, &self.slot, |e| e.version == version.0)
    }

    /// True when the token of `version` was the last one invalidated and the token cached now
    /// (of `current`) is that same token again: the source handed back a rejected token
    /// (managed-identity endpoints cache tokens and have no "force new").
    pub(crate) fn is_rejected_again(&self, version: TokenVersion, current: TokenVersion) -> bool {
        let st = lock(&self.slot.state);
        let Some(rejected) = st.rejected.as_ref().filter(|r| r.version == version.0) else {
            return false;
        };
        self.slot
            .current
            .load()
            .as_deref()
            .is_some_and(|e| e.version == current.0 && e.token.is_same_token(&rejected.token))
    }

    /// The token itself (cached or fetched), with the cache's refresh point as `refresh_on`.
    pub async fn token(&self) -> Result<AccessToken, Error> {
        {
            let guard = self.slot.current.load();
            if let Some(entry) = guard.as_deref() {
                let now = self.inner.time.monotonic();
                if now < entry.refresh_at {
                    self.inner.stats.hits.incr();
                    return Ok(entry.token.clone());
                }
                if stale_or_expired(&self.inner, &self.slot, entry, now) {
                    return Ok(entry.token.clone());
                }
            }
        }
        Ok(Box::pin(self.wait()).await?.token.clone())
    }

    /// Drops the cached token only if it is still `token`; see
    /// [`TokenProvider::invalidate_if_current`].
    pub fn invalidate_if_current(&self, token: &AccessToken) -> bool {
        invalidate(&self.inner, &self.slot, |e| e.token.is_same_token(token))
    }

    /// Drops the cached token only if its header is still `header` (the value a request was
    /// sent with).
    pub fn invalidate_header_if_current(&self, header: &HeaderValue) -> bool {
        invalidate(&self.inner, &self.slot, |e| {
            e.header.as_bytes() == header.as_bytes()
        })
    }

    /// Waits for a valid token: joins the in-flight fetch or starts one.
    async fn wait(&self) -> Result<Arc<Entry>, Error> {
        let inner = &self.inner;
        let mut rx = match self.join_or_start() {
            Joined::Ready(result) => return result,
            Joined::Inline => return self.fetch_inline().await,
            Joined::Flight(rx) => rx,
        };
        inner.stats.waits.fetch_add(1, Ordering::Relaxed);
        let waited = rx.wait_for(Option::is_some).await.map(|v| v.clone());
        let outcome = match waited {
            Ok(value) => value,
            Err(_) => rx.borrow().clone(),
        };
        outcome.unwrap_or_else(|| {
            Err(Error::FetchAborted {
                audience: self.audience().to_string(),
            })
        })
    }

    /// Under the slot lock: a token that became valid meanwhile, the in-flight fetch to join,
    /// the last error (within the cold retry interval), or a new fetch.
    fn join_or_start(&self) -> Joined {
        let inner = &self.inner;
        let mut st = lock(&self.slot.state);
        let now = inner.time.monotonic();
        if let Some(entry) = self.slot.current.load_full()
            && now < entry.usable_until
        {
            return Joined::Ready(Ok(entry));
        }
        if let Some(rx) = &st.flight {
            return Joined::Flight(rx.clone());
        }
        if let Some((at, error)) = &st.last_failure
            && now < *at + inner.opts.cold_retry_interval
        {
            return Joined::Ready(Err(error.clone()));
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => Joined::Flight(begin_flight(inner, &self.slot, &mut st, &runtime)),
            Err(_) => Joined::Inline,
        }
    }

    /// Without a tokio runtime there is nothing to spawn on: fetch in this task.
    async fn fetch_inline(&self) -> Result<Arc<Entry>, Error> {
        self.inner.stats.fetches.fetch_add(1, Ordering::Relaxed);
        self.inner.stats.waits.fetch_add(1, Ordering::Relaxed);
        let result = self.inner.credential.get_token(&self.slot.request).await;
        complete(&self.inner, &self.slot, result, true)
    }

    /// Fetches a new token with a claims request (the decoded JSON of a claims challenge),
    /// bypassing the cache; on success the new token replaces the cached one. Failures do not
    /// evict a valid cached token. Managed-identity endpoints take no claims: Service Fabric
    /// is told which token to replace (its SHA-256), the others return their current token.
    pub async fn fetch_with_claims(&self, claims: &str) -> Result<AccessToken, Error> {
        let mut request = self.slot.request.clone().with_claims(claims);
        if let Some(current) = self.slot.current.load_full() {
            request = request.with_token_to_refresh(&current.token);
        }
        self.inner.stats.fetches.fetch_add(1, Ordering::Relaxed);
        let result = self.inner.credential.get_token(&request).await;
        complete(&self.inner, &self.slot, result, false).map(|e| e.token.clone())
    }
}
