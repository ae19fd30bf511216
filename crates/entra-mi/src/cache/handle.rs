//! [`TokenHandle`]: one audience's slot, resolved once, and the hot path that serves it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use http::HeaderValue;

use super::Inner;
use super::entry::{Entry, nanos};
use super::flight;
use super::flight::refresh_now;
use super::slot::{Slot, invalidate, lock};
use crate::audience::Audience;
use crate::error::Error;
use crate::token::AccessToken;

/// Which token of a [`TokenHandle`] a header came from: a number that changes whenever the
/// cached token is replaced or invalidated. Requests keep it (instead of a copy of the header)
/// to drop exactly the token an API rejected, with
/// [`TokenHandle::invalidate_version_if_current`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenVersion(pub(crate) u64);

/// The cache slot of one audience (and tenant), resolved once.
///
/// [`TokenHandle::cached_header`] is the hot path: a per-thread copy of the entry checked against
/// the slot's version (one `ArcSwap` load when it is out of date), one clock read, one
/// `HeaderValue` clone; no lock, no allocation, no hashing. Cheap to clone.
#[derive(Clone)]
pub struct TokenHandle {
    pub(super) slot: Arc<Slot>,
    pub(super) inner: Arc<Inner>,
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
/// (a thread-id read, a bucket load and a plain load), one read of the coarse wall clock, one
/// `HeaderValue` clone. Else the shared path: one `ArcSwap` load and both clocks, after which
/// the copy is refreshed. The served token's version goes to `version` (an out-parameter:
/// returning it with the header costs more).
///
/// The copy is judged on the wall clock alone, against its fresh period moved onto the wall
/// clock when the copy was made (see `Entry::fresh_until_wall`): the wall clock keeps counting
/// while the machine sleeps, which the monotonic clock does not, and a wall clock that was set
/// back since the last hit sends the caller to the shared path, which judges on both.
///
/// Forced inline (with `Lines::hit`): by LLVM's count the hit costs about 725, over the 325 an
/// `#[inline]` function may cost, so it stayed a call, and a call returns the cloned header
/// through memory where the caller's wider loads wait for its stores to drain. Inlined, that
/// wait overlaps the clock read. The miss path stays out of line, so each caller grows by the
/// hit alone.
#[inline(always)]
pub(super) fn try_header(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    version: &mut u64,
) -> Option<HeaderValue> {
    let current = slot.version.load(Ordering::Acquire);
    if let Some(header) = slot
        .lines
        .hit(current, || inner.time.wall_nanos(), &inner.stats.hits)
    {
        *version = current;
        return Some(header);
    }
    try_header_shared(inner, slot, version)
}

/// The cache hit through the shared store.
#[inline(never)]
fn try_header_shared(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    version: &mut u64,
) -> Option<HeaderValue> {
    let entry = slot.current.load_full()?;
    let now = inner.time.monotonic();
    let wall = inner.time.wall_nanos();
    *version = entry.version;
    if entry.fresh(now, wall) {
        inner.stats.hits.incr();
        let header = entry.header.clone();
        let until = entry.fresh_until_wall(now, wall);
        slot.lines.remember(entry, until, wall);
        return Some(header);
    }
    stale_or_expired(inner, slot, &entry).then(|| entry.header.clone())
}

/// Counts a stale-but-valid token as served and starts the background refresh; false when the
/// token is past its usable window.
#[cold]
fn stale_or_expired(inner: &Arc<Inner>, slot: &Arc<Slot>, entry: &Entry) -> bool {
    let now = inner.time.monotonic();
    if !entry.usable(now, inner.time.wall_nanos()) {
        return false;
    }
    inner.stats.stale_hits.incr();
    if nanos(now) >= slot.refresh_gate.load(Ordering::Acquire) {
        refresh_now(inner, slot, now);
    }
    true
}

impl TokenHandle {
    /// The audience of this handle.
    pub fn audience(&self) -> &Audience {
        self.slot.request.audience()
    }

    /// The header if a valid (fresh or stale) token is cached, without waiting — the hot
    /// path. A stale token also starts the background refresh (when called inside a tokio
    /// runtime). `None` means the caller has to wait: use [`header`](Self::header).
    #[inline]
    pub fn cached_header(&self) -> Option<HeaderValue> {
        try_header(&self.inner, &self.slot, &mut 0)
    }

    /// Sets `Authorization` in `headers` to the cached token's header (replacing any value it
    /// had) when a valid token is cached, and returns the token's [`TokenVersion`]; leaves
    /// `headers` alone and returns `None` otherwise, without waiting. What a middleware does
    /// per request, with the header going straight from the cache into the map.
    ///
    /// ```
    /// # async fn demo(handle: entra_mi::TokenHandle) {
    /// let mut headers = http::HeaderMap::new();
    /// if let Some(version) = handle.insert_cached_header(&mut headers) {
    ///     assert!(headers[http::header::AUTHORIZATION].is_sensitive());
    ///     # let _ = version;
    /// }
    /// # }
    /// ```
    #[inline]
    pub fn insert_cached_header(&self, headers: &mut http::HeaderMap) -> Option<TokenVersion> {
        let mut version = 0;
        let header = try_header(&self.inner, &self.slot, &mut version)?;
        headers.insert(http::header::AUTHORIZATION, header);
        Some(TokenVersion(version))
    }

    /// The `Authorization` header value (`Bearer …`, marked sensitive): at once when a valid
    /// token is cached, else after the single in-flight fetch.
    ///
    /// The cache is looked at when the future is first polled; on a hit it is ready then and
    /// costs about what [`cached_header`](Self::cached_header) does.
    #[inline]
    pub fn header(&self) -> impl Future<Output = Result<HeaderValue, Error>> + Send + '_ {
        Header {
            handle: self,
            wait: None,
        }
    }

    /// [`header`](Self::header) with the [`TokenVersion`] of the token served: keep the
    /// version (a number) instead of a copy of the header to act on a `401` later with
    /// [`invalidate_version_if_current`](Self::invalidate_version_if_current).
    pub async fn header_with_version(&self) -> Result<(HeaderValue, TokenVersion), Error> {
        let mut version = 0;
        if let Some(header) = try_header(&self.inner, &self.slot, &mut version) {
            return Ok((header, TokenVersion(version)));
        }
        let entry = Box::pin(self.wait()).await?;
        Ok((entry.header.clone(), TokenVersion(entry.version)))
    }

    /// Drops the cached token only if it is still the one of `version` (what a request was
    /// sent with). Returns whether it was dropped; like
    /// [`invalidate_if_current`](Self::invalidate_if_current), concurrent `401`s for one token
    /// cause one refetch, and a token the source handed back right after it was rejected is
    /// not dropped again before a back-off (30 s, doubling to 5 min) has passed.
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
        if let Some(entry) = self.slot.current.load_full() {
            let now = self.inner.time.monotonic();
            if entry.fresh(now, self.inner.time.wall_nanos()) {
                self.inner.stats.hits.incr();
                return Ok(entry.token.clone());
            }
            if stale_or_expired(&self.inner, &self.slot, &entry) {
                return Ok(entry.token.clone());
            }
        }
        Ok(Box::pin(self.wait()).await?.token.clone())
    }

    /// Drops the cached token only if it is still `token`; see
    /// [`TokenProvider::invalidate_if_current`](crate::TokenProvider::invalidate_if_current).
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
        flight::wait(&self.inner, &self.slot, None).await
    }

    /// Fetches a new token with a claims request (the decoded JSON of a claims challenge) as
    /// the slot's next single flight: a fetch already running ends first, callers arriving
    /// meanwhile join this one, and no plain fetch can replace its token. On success the new
    /// token replaces the cached one; a failure does not evict a valid cached token.
    /// Managed-identity endpoints take no claims: Service Fabric is told which token to
    /// replace (its SHA-256), the others return their current token.
    pub async fn fetch_with_claims(&self, claims: &str) -> Result<AccessToken, Error> {
        let entry = Box::pin(flight::wait(&self.inner, &self.slot, Some(claims))).await?;
        Ok(entry.token.clone())
    }
}

/// The future of [`TokenHandle::header`]: the handle, and the boxed wait once a poll found no
/// valid token.
///
/// The hit is looked for in `poll` itself, not when the future is made, so the header is
/// written once, straight into the poll's result: a header kept in the future and moved out
/// of it at the poll travels through the stack in stores narrower than the loads that read it
/// back, and each such move stalls on store forwarding. (For the same reason [`Error`] boxes
/// its families: the poll's result is no larger than the header.)
struct Header<'a> {
    handle: &'a TokenHandle,
    wait: Option<Wait<'a>>,
}

/// The waiting part of [`Header`]: joining or starting the slot's fetch.
type Wait<'a> = Pin<Box<dyn Future<Output = Result<HeaderValue, Error>> + Send + 'a>>;

impl Future for Header<'_> {
    type Output = Result<HeaderValue, Error>;

    // Forced inline for the reason `try_header` is. Not `try_header` itself: the per-thread
    // hit returns from here, and the shared store's answer from `poll_slow`, so the two never
    // meet in one `Option` that the hit would have to be stored into (calling `try_header`
    // here measures 1.69x `cached_header()` in the cache bench, against 1.05x).
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.wait.is_none() {
            let (inner, slot) = (&this.handle.inner, &this.handle.slot);
            let current = slot.version.load(Ordering::Acquire);
            if let Some(header) =
                slot.lines
                    .hit(current, || inner.time.wall_nanos(), &inner.stats.hits)
            {
                return Poll::Ready(Ok(header));
            }
        }
        this.poll_slow(cx)
    }
}

impl<'a> Header<'a> {
    /// Everything but the per-thread hit: the shared store, then the wait.
    #[inline(never)]
    fn poll_slow(&mut self, cx: &mut Context<'_>) -> Poll<Result<HeaderValue, Error>> {
        let handle = self.handle;
        let wait = match &mut self.wait {
            Some(wait) => wait,
            None => {
                if let Some(header) = try_header_shared(&handle.inner, &handle.slot, &mut 0) {
                    return Poll::Ready(Ok(header));
                }
                self.wait.insert(Box::pin(
                    async move { Ok(handle.wait().await?.header.clone()) },
                ))
            }
        };
        let result = wait.as_mut().poll(cx);
        if result.is_ready() {
            self.wait = None;
        }
        result
    }
}
