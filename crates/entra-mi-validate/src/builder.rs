//! [`TokenValidatorBuilder`]: the validator's settings and their defaults.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::cache::VerifiedCache;
use crate::clock::Clock;
use crate::error::BuildError;
use crate::keys::fetch::{Fetcher, allowed, is_loopback};
use crate::keys::{KeyStore, KeyStoreConfig};
use crate::policy::Policy;
use crate::validator::{Inner, TokenValidator};

/// The public Entra authority (Azure's global cloud).
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

/// Settings of a [`TokenValidator`]; from [`TokenValidator::builder`].
///
/// ```no_run
/// use entra_mi_validate::{Policy, TokenValidator};
///
/// # async fn run(token: &str) -> Result<(), Box<dyn std::error::Error>> {
/// let validator = TokenValidator::builder()
///     .audience("api://orders")                               // App ID URI (v1 tokens)
///     .audience("11111111-2222-3333-4444-555555555555")       // client id (v2 tokens)
///     .tenant("4e7a1f2c-5b3d-4c8e-9a61-0d2f3b4c5e6f")
///     .policy(Policy::new().require_roles(["Orders.Read"]))
///     .build()?;
/// let claims = validator.validate(token).await?;
/// println!("called by {:?}", claims.app_id());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TokenValidatorBuilder {
    audiences: Vec<String>,
    tenants: Vec<String>,
    any_tenant: bool,
    authority: String,
    clock_skew: Duration,
    policy: Policy,
    refresh_interval: Duration,
    refetch_interval: Duration,
    connect_timeout: Duration,
    request_timeout: Duration,
    cache_capacity: usize,
    clock: Clock,
}

impl TokenValidator {
    /// A builder; see [`TokenValidatorBuilder`].
    pub fn builder() -> TokenValidatorBuilder {
        TokenValidatorBuilder::default()
    }
}

impl Default for TokenValidatorBuilder {
    fn default() -> Self {
        TokenValidatorBuilder {
            audiences: Vec::new(),
            tenants: Vec::new(),
            any_tenant: false,
            authority: DEFAULT_AUTHORITY.to_owned(),
            clock_skew: Duration::from_secs(300),
            policy: Policy::default(),
            refresh_interval: Duration::from_secs(24 * 3600),
            refetch_interval: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            cache_capacity: 1024,
            clock: Clock::System,
        }
    }
}

impl TokenValidatorBuilder {
    /// Accepts tokens whose `aud` is exactly `audience`. An API's v1 tokens carry its App ID
    /// URI (`api://…`) as requested; v2 tokens carry its client id: give both. Calls add up;
    /// at least one is required.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accepts tokens of this tenant (its id, the `tid` claim). Calls add up. Either tenants
    /// or [`any_tenant`](TokenValidatorBuilder::any_tenant) is required.
    pub fn tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenants.push(tenant_id.into());
        self
    }

    /// Accepts tokens of any tenant (a multi-tenant API): discovery uses `common`, whose
    /// issuers hold `{tenantid}`, resolved against each token's `tid`.
    pub fn any_tenant(mut self) -> Self {
        self.any_tenant = true;
        self
    }

    /// The authority host, scheme and host without a tenant (default
    /// [`DEFAULT_AUTHORITY`]; sovereign clouds have their own, e.g.
    /// `https://login.microsoftonline.us`). `http://` only for loopback hosts.
    pub fn authority(mut self, authority: impl Into<String>) -> Self {
        self.authority = authority.into();
        self
    }

    /// How far `exp` and `nbf` may be off (the two clocks' difference). Default: 5 minutes.
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// The policy [`TokenValidator::validate`] applies (default: none). Per-route policies
    /// go to [`TokenValidator::validate_with`] or the tower layer.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// How often the discovery documents and keys are fetched again in the background, while
    /// the keys in hand stay in use. Default: 24 hours. A failed refresh is tried again after
    /// the re-fetch interval.
    pub fn key_refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// The least time between two fetches of the key set for tokens naming an unknown `kid`
    /// (a new key after a rotation). Default: 5 minutes, so a flood of made-up `kid`s costs
    /// the authority at most one request per interval.
    pub fn unknown_key_refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
    }

    /// The connect timeout of requests to the authority. Default: 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The timeout of each request to the authority, body included. Default: 10 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How many verified tokens are remembered (0: none). Default: 1024 — about one per
    /// calling identity and audience; each takes the token's size and its claims' (a few
    /// KiB).
    pub fn verified_cache_capacity(mut self, tokens: usize) -> Self {
        self.cache_capacity = tokens;
        self
    }

    /// Uses `clock` instead of the system's (feature `test-util`).
    #[cfg(feature = "test-util")]
    #[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
    pub fn manual_clock(mut self, clock: crate::ManualClock) -> Self {
        self.clock = Clock::Manual(clock);
        self
    }

    /// Checks the settings and builds the validator. Nothing is fetched yet.
    pub fn build(self) -> Result<TokenValidator, BuildError> {
        if self.audiences.is_empty() {
            return Err(BuildError::NoAudience);
        }
        if self.any_tenant != self.tenants.is_empty() {
            return Err(BuildError::TenantChoice);
        }
        for t in &self.tenants {
            let ok = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
            if t.is_empty() || !t.chars().all(ok) {
                return Err(BuildError::Tenant(t.clone()));
            }
        }
        let authority = self.authority.trim_end_matches('/').to_owned();
        let bad = |reason| BuildError::Authority {
            authority: self.authority.clone(),
            reason,
        };
        let url = Url::parse(&authority).map_err(|_| bad("not a URL"))?;
        allowed(&url).map_err(bad)?;
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(bad("an authority has no user, query or fragment"));
        }
        let fetcher = Fetcher::new(
            self.connect_timeout,
            self.request_timeout,
            is_loopback(&url),
        )?;
        let cache = Arc::new(VerifiedCache::new(self.cache_capacity));
        let discovery_tenants = if self.any_tenant {
            vec!["common".to_owned()]
        } else {
            let mut unique: Vec<String> = Vec::new();
            for t in &self.tenants {
                if !unique.iter().any(|u| u.eq_ignore_ascii_case(t)) {
                    unique.push(t.clone());
                }
            }
            unique
        };
        let keys = KeyStore::new(
            KeyStoreConfig {
                authority: authority.clone(),
                discovery_tenants,
                fetcher,
                clock: self.clock.clone(),
                refresh_interval: self.refresh_interval,
                refetch_interval: self.refetch_interval,
            },
            cache.clone(),
        );
        Ok(TokenValidator::from_inner(Inner {
            authority,
            audiences: self.audiences,
            tenants: (!self.any_tenant).then_some(self.tenants),
            skew: i64::try_from(self.clock_skew.as_secs()).unwrap_or(i64::MAX),
            policy: self.policy,
            keys: Arc::new(keys),
            cache,
            clock: self.clock,
        }))
    }
}
