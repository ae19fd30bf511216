//! The authority's signing keys and issuers: found by OpenID discovery, fetched lazily once
//! (concurrent first requests share the fetch), re-fetched for an unknown `kid` at most once
//! per re-fetch interval, refreshed in the background, and kept when a refresh fails.

mod documents;
pub(crate) mod fetch;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use url::Url;

pub(crate) use documents::Key;
use fetch::Fetcher;

use crate::cache::VerifiedCache;
use crate::clock::Clock;
use crate::error::ValidationError;

/// The keys and issuers in force.
#[derive(Debug)]
pub(crate) struct KeySet {
    pub(crate) keys: Vec<Key>,
    /// The discovery documents' `issuer` values (templates with `{tenantid}` for `common`).
    pub(crate) issuers: Vec<String>,
    jwks_uris: Vec<Url>,
    generation: u64,
}

impl KeySet {
    /// The key with this `kid`. Allocates nothing.
    pub(crate) fn find(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|k| &*k.kid == kid)
    }
}

/// Settings of a [`KeyStore`].
pub(crate) struct KeyStoreConfig {
    pub(crate) authority: String,
    /// The tenant path segments to discover: the accepted tenants, or `common`.
    pub(crate) discovery_tenants: Vec<String>,
    pub(crate) fetcher: Fetcher,
    pub(crate) clock: Clock,
    pub(crate) refresh_interval: Duration,
    pub(crate) refetch_interval: Duration,
}

pub(crate) struct KeyStore {
    config: KeyStoreConfig,
    cache: Arc<VerifiedCache>,
    current: ArcSwapOption<KeySet>,
    flight: tokio::sync::Mutex<Flight>,
    /// Completed first-fetch attempts, so waiters share a failure too.
    attempts: AtomicU64,
    /// Monotonic milliseconds from which a background refresh is due.
    refresh_due_ms: AtomicU64,
    refreshing: AtomicBool,
}

#[derive(Default)]
struct Flight {
    /// When the key set was last fetched again (the first fetch does not count).
    last_refetch: Option<Duration>,
    /// The error of the last first fetch, while there is no key set.
    last_error: Option<ValidationError>,
    /// Failed first fetches in a row, and when the last one ended (monotonic).
    failures: u32,
    failed_at: Duration,
    generation: u64,
}

/// The longest a failed first fetch's error stands before the authority is asked again.
const MAX_FIRST_FETCH_BACKOFF: Duration = Duration::from_secs(30);

impl KeyStore {
    pub(crate) fn new(config: KeyStoreConfig, cache: Arc<VerifiedCache>) -> Self {
        KeyStore {
            config,
            cache,
            current: ArcSwapOption::empty(),
            flight: tokio::sync::Mutex::default(),
            attempts: AtomicU64::new(0),
            refresh_due_ms: AtomicU64::new(u64::MAX),
            refreshing: AtomicBool::new(false),
        }
    }

    /// The key set, fetched first if there is none yet (one fetch for all who wait). After a
    /// failed fetch its error is the answer until the [back-off](KeyStore::backoff) has
    /// passed; `force` fetches at once all the same.
    pub(crate) async fn get(&self, force: bool) -> Result<Arc<KeySet>, ValidationError> {
        if let Some(set) = self.current.load_full() {
            return Ok(set);
        }
        let seen = self.attempts.load(Ordering::Acquire);
        let mut flight = self.flight.lock().await;
        if let Some(set) = self.current.load_full() {
            return Ok(set);
        }
        if let Some(e) = &flight.last_error
            && !force
        {
            let waited = self.attempts.load(Ordering::Acquire) != seen;
            let resting = self
                .config
                .clock
                .monotonic()
                .saturating_sub(flight.failed_at)
                < self.backoff(flight.failures);
            if waited || resting {
                return Err(e.clone());
            }
        }
        let result = self.fetch_all(&mut flight).await;
        self.attempts.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(set) => {
                flight.last_error = None;
                flight.failures = 0;
                Ok(self.install(set))
            }
            Err(e) => {
                flight.failures = flight.failures.saturating_add(1);
                flight.failed_at = self.config.clock.monotonic();
                flight.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// How long the error of the `failures`-th failed first fetch in a row stands before the
    /// authority is asked again: 1 s, doubling, at most [`MAX_FIRST_FETCH_BACKOFF`] and the
    /// re-fetch interval. An authority that is down or throttling is then asked a few times a
    /// minute, not once per request, and a caller with many tokens (`entra-mi validate`
    /// reading a file) does not wait a timeout per token.
    fn backoff(&self, failures: u32) -> Duration {
        let doubled = Duration::from_secs(1_u64 << failures.saturating_sub(1).min(16));
        doubled
            .min(MAX_FIRST_FETCH_BACKOFF)
            .min(self.config.refetch_interval)
    }

    /// The key set after looking for a `kid` that `seen` lacks: fetched again unless that
    /// happened less than the re-fetch interval ago (then the set as it is).
    pub(crate) async fn refetch_for(
        &self,
        kid: &str,
        seen: &Arc<KeySet>,
    ) -> Result<Arc<KeySet>, ValidationError> {
        let mut flight = self.flight.lock().await;
        let current = self.current.load_full().unwrap_or_else(|| seen.clone());
        if current.generation != seen.generation && current.find(kid).is_some() {
            return Ok(current);
        }
        let now = self.config.clock.monotonic();
        if flight
            .last_refetch
            .is_some_and(|t| now.saturating_sub(t) < self.config.refetch_interval)
        {
            return Ok(current);
        }
        flight.last_refetch = Some(now);
        tracing::debug!(
            kid = %crate::error::shown(kid),
            "a token names a key not in the key set; fetching the key set again"
        );
        let keys = self.fetch_keys(&current.jwks_uris).await?;
        flight.generation += 1;
        let set = KeySet {
            keys,
            issuers: current.issuers.clone(),
            jwks_uris: current.jwks_uris.clone(),
            generation: flight.generation,
        };
        Ok(self.install(set))
    }

    /// Starts a background refresh when one is due (cheap to call on every request).
    pub(crate) fn maybe_refresh(self: &Arc<Self>) {
        let now = millis(self.config.clock.monotonic());
        if now < self.refresh_due_ms.load(Ordering::Relaxed) {
            return;
        }
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.refreshing.store(false, Ordering::Release);
            return;
        };
        let this = self.clone();
        runtime.spawn(async move {
            // A failure is logged and retried by `refresh` itself.
            let _ = this.refresh().await;
            this.refreshing.store(false, Ordering::Release);
        });
    }

    /// Fetches discovery documents and keys again; on failure keeps what it had and tries
    /// again after the re-fetch interval.
    pub(crate) async fn refresh(&self) -> Result<(), ValidationError> {
        let mut flight = self.flight.lock().await;
        let started = self.config.clock.monotonic();
        flight.last_refetch = Some(started);
        match self.fetch_all(&mut flight).await {
            Ok(set) => {
                self.install(set);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "refreshing the signing keys failed; the keys in hand stay in use");
                let retry = self
                    .config
                    .refetch_interval
                    .min(self.config.refresh_interval);
                self.refresh_due_ms
                    .store(millis(started + retry), Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Puts `set` in force, forgets tokens verified by keys it no longer has, and schedules
    /// the next refresh.
    fn install(&self, set: KeySet) -> Arc<KeySet> {
        let set = Arc::new(set);
        let previous = self.current.swap(Some(set.clone()));
        if let Some(previous) = previous {
            let dropped: Vec<&str> = previous
                .keys
                .iter()
                .map(|k| &*k.kid)
                .filter(|kid| set.find(kid).is_none())
                .collect();
            if !dropped.is_empty() {
                tracing::info!(keys = dropped.len(), "signing keys were withdrawn");
                self.cache.forget_keys(|kid| dropped.contains(&kid));
            }
        }
        let due = self.config.clock.monotonic() + self.config.refresh_interval;
        self.refresh_due_ms.store(millis(due), Ordering::Relaxed);
        set
    }

    async fn fetch_all(&self, flight: &mut Flight) -> Result<KeySet, ValidationError> {
        let authority = self.config.authority.trim_end_matches('/');
        let mut issuers: Vec<String> = Vec::new();
        let mut jwks_uris: Vec<Url> = Vec::new();
        for tenant in &self.config.discovery_tenants {
            let v2 = format!("{authority}/{tenant}/v2.0/.well-known/openid-configuration");
            let v1 = format!("{authority}/{tenant}/.well-known/openid-configuration");
            let (issuer, jwks_uri) = self.document(&v2).await?;
            let Some(jwks_uri) = jwks_uri else {
                return Err(ValidationError::discovery(format!(
                    "{v2}: the document has no `jwks_uri`"
                )));
            };
            fetch::allowed(&jwks_uri).map_err(|reason| {
                ValidationError::discovery(format!("{v2}: `jwks_uri` {jwks_uri}: {reason}"))
            })?;
            let (v1_issuer, _) = self.document(&v1).await?;
            for i in [issuer, v1_issuer] {
                if !issuers.contains(&i) {
                    issuers.push(i);
                }
            }
            if !jwks_uris.contains(&jwks_uri) {
                jwks_uris.push(jwks_uri);
            }
        }
        let keys = self.fetch_keys(&jwks_uris).await?;
        flight.generation += 1;
        tracing::debug!(
            keys = keys.len(),
            issuers = issuers.len(),
            "signing keys fetched"
        );
        Ok(KeySet {
            keys,
            issuers,
            jwks_uris,
            generation: flight.generation,
        })
    }

    async fn document(&self, url: &str) -> Result<(String, Option<Url>), ValidationError> {
        let parsed =
            Url::parse(url).map_err(|_| ValidationError::discovery(format!("{url}: not a URL")))?;
        let body = self
            .config
            .fetcher
            .get(&parsed)
            .await
            .map_err(ValidationError::discovery)?;
        documents::discovery(&body, &parsed).map_err(ValidationError::discovery)
    }

    async fn fetch_keys(&self, uris: &[Url]) -> Result<Vec<Key>, ValidationError> {
        let mut keys: Vec<Key> = Vec::new();
        for uri in uris {
            let body = self
                .config
                .fetcher
                .get(uri)
                .await
                .map_err(ValidationError::discovery)?;
            for key in documents::key_set(&body, uri).map_err(ValidationError::discovery)? {
                if !keys.iter().any(|k| k.kid == key.kid) {
                    keys.push(key);
                }
            }
        }
        Ok(keys)
    }

    /// The key set in force, if any.
    pub(crate) fn current(&self) -> Option<Arc<KeySet>> {
        self.current.load_full()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
