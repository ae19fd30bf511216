//! Which requests get which token: the routing table both middlewares share, and what to do
//! with a `401` challenge.
//!
//! A [`TokenRouter`] maps a request URL to the [`TokenHandle`] of one audience. A route
//! compares scheme, host and port **exactly** (never as string prefixes, so
//! `graph.microsoft.com.evil.example` is not Graph), and an optional path prefix on whole
//! segments (`/api` matches `/api` and `/api/x`, not `/apix`); the most specific route wins.
//! Everything else passes through untouched: a token for one API never reaches another host.
//!
//! ```
//! use entra_mi::{AccessToken, Audience, Route, TokenRouter, TokenProvider};
//! # #[derive(Debug)] struct Fixed;
//! # #[async_trait::async_trait]
//! # impl entra_mi::TokenCredential for Fixed {
//! #     async fn get_token(&self, _: &entra_mi::TokenRequest) -> entra_mi::Result<AccessToken> {
//! #         Ok(AccessToken::new("t", std::time::SystemTime::now() + std::time::Duration::from_secs(3600)))
//! #     }
//! #     fn name(&self) -> &str { "fixed" }
//! # }
//! # let provider = TokenProvider::new(Fixed);
//! let router = TokenRouter::builder(&provider)
//!     .route(Route::microsoft_graph())
//!     .route(Route::api("11111111-2222-3333-4444-555555555555", "https://orders.example.com/api")?)
//!     .build()?;
//!
//! let hit = |url: &str| router.match_url(&url.parse().unwrap()).map(|r| r.audience().to_string());
//! assert_eq!(hit("https://graph.microsoft.com/v1.0/me").as_deref(), Some("https://graph.microsoft.com"));
//! assert_eq!(
//!     hit("https://orders.example.com/api/orders/7").as_deref(),
//!     Some("api://11111111-2222-3333-4444-555555555555"),
//! );
//! assert_eq!(hit("https://orders.example.com/apix"), None);
//! assert_eq!(hit("https://graph.microsoft.com.evil.example/v1.0/me"), None);
//! assert_eq!(hit("http://graph.microsoft.com/v1.0/me"), None);
//! # Ok::<(), entra_mi::Error>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use http::{HeaderMap, HeaderValue};

use crate::audience::Audience;
use crate::cache::{TokenHandle, TokenProvider, TokenVersion};
use crate::error::Error;

/// One API: where it is served (scheme, host, port and an optional path prefix) and the
/// audience its tokens are for.
///
/// ```
/// use entra_mi::{Audience, Route};
/// let orders = Route::new("https://orders.example.com/api/", Audience::new("api://orders")?)?;
/// assert_eq!(orders.to_string(), "https://orders.example.com:443/api -> api://orders");
/// # Ok::<(), entra_mi::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Route {
    https: bool,
    /// Lowercase host as the URL parser serialises it (IPv6 in brackets).
    host: Box<str>,
    port: u16,
    /// `port` in decimal, to compare with a URI's authority without parsing it.
    port_text: Box<str>,
    /// The path prefix without its trailing slash; empty for the whole origin.
    prefix: Box<str>,
    audience: Audience,
}

impl Route {
    /// Requests under `base_url` get tokens for `audience`.
    ///
    /// `base_url` is an absolute `https://` (or, see
    /// [`TokenRouterBuilder::allow_http_loopback`], `http://`) URL without user info, query or
    /// fragment. Its path, if any, is a prefix matched on whole segments; a trailing `/` makes
    /// no difference.
    pub fn new(base_url: &str, audience: Audience) -> Result<Route, Error> {
        let refuse = |reason: &'static str| {
            Error::Configuration(crate::error::ConfigurationError::Route {
                route: crate::env::url_for_display(base_url),
                reason,
            })
        };
        let url = url::Url::parse(base_url).map_err(|_| refuse("it is not an absolute URL"))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(refuse("the scheme must be https (or http for loopback)")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("user info in a route URL is not allowed"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(refuse("a route URL has no query or fragment"));
        }
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h,
            _ => return Err(refuse("it names no host")),
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| refuse("it has no port"))?;
        let path = url.path();
        let prefix = path.strip_suffix('/').unwrap_or(path);
        Ok(Route {
            https,
            host: host.into(),
            port,
            port_text: port.to_string().into(),
            prefix: prefix.into(),
            audience,
        })
    }

    /// Microsoft Graph: `https://graph.microsoft.com`, audience `https://graph.microsoft.com`.
    pub fn microsoft_graph() -> Route {
        Self::known("graph.microsoft.com", Audience::microsoft_graph())
    }

    /// Azure Resource Manager: `https://management.azure.com`, audience
    /// `https://management.azure.com/`.
    pub fn azure_resource_manager() -> Route {
        Self::known("management.azure.com", Audience::azure_resource_manager())
    }

    /// One Key Vault (`https://<name>.vault.azure.net`), audience `https://vault.azure.net`.
    pub fn key_vault(vault_url: &str) -> Result<Route, Error> {
        Self::new(vault_url, Audience::key_vault())
    }

    /// One storage account endpoint (`https://<account>.blob.core.windows.net`, `.queue.`,
    /// `.dfs.`, …), audience `https://storage.azure.com/`.
    pub fn storage(account_url: &str) -> Result<Route, Error> {
        Self::new(account_url, Audience::storage())
    }

    /// Your own API, registered in Entra with application (client) id `client_id` and served
    /// at `base_url`: audience `api://<client_id>`.
    pub fn api(client_id: &str, base_url: &str) -> Result<Route, Error> {
        Self::new(base_url, Audience::new(&format!("api://{client_id}"))?)
    }

    fn known(host: &'static str, audience: Audience) -> Route {
        Route {
            https: true,
            host: host.into(),
            port: 443,
            port_text: "443".into(),
            prefix: "".into(),
            audience,
        }
    }

    /// The audience of the tokens this route attaches.
    pub fn audience(&self) -> &Audience {
        &self.audience
    }

    /// True for an `https://` route.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host (lowercase; IPv6 addresses in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (the scheme's default when the URL named none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path prefix, without a trailing slash; empty when the route covers the origin.
    pub fn path_prefix(&self) -> &str {
        &self.prefix
    }

    fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }

    fn is_loopback(&self) -> bool {
        let host = &*self.host;
        if host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        bare.parse::<IpAddr>().is_ok_and(|ip| match ip {
            IpAddr::V4(v4) => v4.is_loopback(),
            IpAddr::V6(v6) => {
                v6 == Ipv6Addr::LOCALHOST || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        })
    }

    /// Matches a URI's raw authority (`host` or `host:port`, any case) without parsing it; one
    /// with user info never equals a route's.
    #[inline]
    fn matches_authority(&self, https: bool, authority: &str, path: &str) -> bool {
        if self.https != https {
            return false;
        }
        let (a, host) = (authority.as_bytes(), self.host.as_bytes());
        let authority_ok = if a.len() == host.len() {
            self.port == if https { 443 } else { 80 } && (a == host || a.eq_ignore_ascii_case(host))
        } else {
            a.len() == host.len() + 1 + self.port_text.len()
                && a[..host.len()].eq_ignore_ascii_case(host)
                && a[host.len()] == b':'
                && &a[host.len() + 1..] == self.port_text.as_bytes()
        };
        authority_ok && prefix_matches(&self.prefix, path)
    }

    #[inline]
    fn matches(&self, https: bool, host: &str, port: u16, path: &str) -> bool {
        self.https == https
            && self.port == port
            && self.host.eq_ignore_ascii_case(host)
            && prefix_matches(&self.prefix, path)
    }
}

/// The host of a URI authority as routes store it (IPv6 with its brackets); with user info it
/// keeps the `user@` part, which no route's host has.
#[inline]
fn host_of(authority: &str) -> &[u8] {
    let a = authority.as_bytes();
    let end = if a.first() == Some(&b'[') {
        a.iter().position(|&b| b == b']').map_or(a.len(), |i| i + 1)
    } else {
        a.iter().position(|&b| b == b':').unwrap_or(a.len())
    };
    &a[..end]
}

/// `prefix` (no trailing slash) covers `path` on whole segments, and the path holds no dot
/// segments that a server could resolve out of the prefix.
#[inline]
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix.is_empty() {
        return true;
    }
    let Some(rest) = path.strip_prefix(prefix) else {
        return false;
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return false;
    }
    !path.split('/').any(is_dot_segment)
}

fn is_dot_segment(seg: &str) -> bool {
    let s = seg.as_bytes();
    let dot = |b: &[u8]| b == b"." || b.eq_ignore_ascii_case(b"%2e");
    match s.len() {
        1 | 3 => dot(s),
        2 => s == b"..",
        4 => (dot(&s[..1]) && dot(&s[1..])) || (dot(&s[..3]) && dot(&s[3..])),
        6 => dot(&s[..3]) && dot(&s[3..]),
        _ => false,
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}:{}{} -> {}",
            self.scheme(),
            self.host,
            self.port,
            self.prefix,
            self.audience
        )
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Route({self})")
    }
}

/// Builds a [`TokenRouter`]; see [`TokenRouter::builder`].
///
/// Defaults: no routes; `http://` routes refused.
pub struct TokenRouterBuilder {
    provider: TokenProvider,
    routes: Vec<Route>,
    allow_http_loopback: bool,
}

impl TokenRouterBuilder {
    /// Adds a route.
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// Adds several routes.
    pub fn routes(mut self, routes: impl IntoIterator<Item = Route>) -> Self {
        self.routes.extend(routes);
        self
    }

    /// Accepts `http://` routes to loopback hosts (`127.0.0.0/8`, `[::1]`, `localhost`), for
    /// local development and tests. Default `false`. `http://` routes to any other host are
    /// refused even then: a bearer token is a password for as long as it lives.
    pub fn allow_http_loopback(mut self, allow: bool) -> Self {
        self.allow_http_loopback = allow;
        self
    }

    /// The router, with one [`TokenHandle`] resolved per route. Fails on an `http://` route
    /// that is not allowed and on two routes for the same scheme, host, port and prefix.
    pub fn build(self) -> Result<TokenRouter, Error> {
        let mut bound: Vec<BoundRoute> = Vec::with_capacity(self.routes.len());
        for route in self.routes {
            if !route.https {
                let reason = if !route.is_loopback() {
                    Some("http:// routes are only allowed to loopback hosts")
                } else if !self.allow_http_loopback {
                    Some("http:// routes need allow_http_loopback(true)")
                } else {
                    None
                };
                if let Some(reason) = reason {
                    return Err(Error::Configuration(
                        crate::error::ConfigurationError::Route {
                            route: route.to_string(),
                            reason,
                        },
                    ));
                }
            }
            if bound.iter().any(|b| {
                let r = &b.inner.route;
                r.https == route.https
                    && r.host == route.host
                    && r.port == route.port
                    && r.prefix == route.prefix
            }) {
                return Err(Error::Configuration(
                    crate::error::ConfigurationError::Route {
                        route: route.to_string(),
                        reason: "another route covers the same scheme, host, port and path",
                    },
                ));
            }
            let handle = self.provider.handle(&route.audience);
            bound.push(BoundRoute::register(route, handle));
        }
        // Most specific first: the first match is the longest prefix on that origin.
        bound.sort_by_key(|b| std::cmp::Reverse(b.inner.route.prefix.len()));
        let by_host = (bound.len() >= INDEX_FROM).then(|| {
            let mut index: HashMap<u64, Vec<u32>, BuildHostHash> = HashMap::default();
            for (i, b) in bound.iter().enumerate() {
                let i = u32::try_from(i).expect("fewer than 2^32 routes");
                index
                    .entry(host_hash(b.inner.route.host.as_bytes()))
                    .or_default()
                    .push(i);
            }
            Arc::new(index.into_iter().map(|(h, v)| (h, v.into())).collect())
        });
        let quick = bound
            .iter()
            .map(|b| Quick {
                https: b.inner.route.https,
                first: b.inner.route.host.as_bytes().first().copied().unwrap_or(0),
            })
            .collect();
        Ok(TokenRouter {
            routes: bound.into(),
            quick,
            by_host,
        })
    }
}

impl fmt::Debug for TokenRouterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRouterBuilder")
            .field("routes", &self.routes)
            .field("allow_http_loopback", &self.allow_http_loopback)
            .finish()
    }
}

/// The routing table: request URL → the [`TokenHandle`] of the route's audience.
///
/// Built once (see [`TokenRouter::builder`]); cheap to clone. Matching does not allocate: it
/// compares the URL's scheme, host, port and path with each route, most specific first —
/// every route of a small table, or, from 8 routes on, only the routes of the URL's host
/// (found by a case-insensitive hash of the host), so the cost does not grow with the table.
/// A URL with user info (`https://user@graph.microsoft.com/`) never matches.
#[derive(Clone)]
pub struct TokenRouter {
    /// Most specific first.
    routes: Arc<[BoundRoute]>,
    /// For large tables: the indices into `routes` (in order) of each host's routes, by
    /// [`host_hash`]. Candidates are then compared in full, so a hash collision only costs time.
    by_host: Option<Arc<HostIndex>>,
    /// Per route (in order), what a small table compares first.
    quick: Arc<[Quick]>,
}

/// What a small table compares before looking at a route: the scheme and the first byte of the
/// host (lowercase, as routes store hosts). One contiguous array, so a route of another host
/// mostly costs a byte compare and no pointer chase. A route that matches always passes.
#[derive(Clone, Copy)]
struct Quick {
    https: bool,
    first: u8,
}

type HostIndex = HashMap<u64, Box<[u32]>, BuildHostHash>;

/// Tables of this many routes or more get a host index.
const INDEX_FROM: usize = 8;

/// A hash of a host that ignores ASCII case, eight bytes at a time. Setting bit 5 of every
/// byte lowercases letters; it also maps a few other bytes together (`@` and `` ` ``), which
/// can only make two hosts collide, never make a comparison succeed.
#[inline]
fn host_hash(host: &[u8]) -> u64 {
    const K: u64 = 0xf135_7aea_2e62_a9c5;
    let mut h = host.len() as u64;
    let mut chunks = host.chunks_exact(8);
    for c in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(c);
        h = (h ^ (u64::from_le_bytes(word) | 0x2020_2020_2020_2020)).wrapping_mul(K);
        h = h.rotate_left(26);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = (h ^ (u64::from_le_bytes(word) | 0x2020_2020_2020_2020)).wrapping_mul(K);
    }
    h ^ (h >> 29)
}

/// The index's keys are already hashes.
#[derive(Clone, Copy, Default)]
struct BuildHostHash;

impl std::hash::BuildHasher for BuildHostHash {
    type Hasher = HostHasher;
    fn build_hasher(&self) -> HostHasher {
        HostHasher(0)
    }
}

struct HostHasher(u64);

impl std::hash::Hasher for HostHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl TokenRouter {
    /// A builder whose routes get their tokens from `provider`.
    pub fn builder(provider: &TokenProvider) -> TokenRouterBuilder {
        TokenRouterBuilder {
            provider: provider.clone(),
            routes: Vec::new(),
            allow_http_loopback: false,
        }
    }

    /// The route for a parsed URL (what `reqwest` requests carry), if any.
    #[inline]
    pub fn match_url(&self, url: &url::Url) -> Option<&BoundRoute> {
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        if !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        let host = url.host_str()?;
        let port = url.port_or_known_default()?;
        let path = url.path();
        self.first(
            https,
            host.as_bytes(),
            || host.as_bytes(),
            |r| r.matches(https, host, port, path),
        )
    }

    /// The route for a request URI (what `http::Request`s carry), if any. Only absolute URIs
    /// (`https://host/path`) can match; origin-form URIs (`/path`) never do, nor do paths with a
    /// raw backslash (which URL parsers read as `/`).
    #[inline]
    pub fn match_uri(&self, uri: &http::Uri) -> Option<&BoundRoute> {
        let scheme = uri.scheme_str()?;
        let https = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else {
            return None;
        };
        let authority = uri.authority()?.as_str();
        let path = uri.path();
        // A raw backslash is not valid in a URI path, but URL parsers (WHATWG, so browsers and
        // `url`) and some servers read it as `/`: `/api\admin` would reach the route of
        // `/api/admin` there while it matches `/api` here. Such a request gets no token.
        if path.contains('\\') {
            return None;
        }
        self.first(
            https,
            authority.as_bytes(),
            || host_of(authority),
            |r| r.matches_authority(https, authority, path),
        )
    }

    /// The first route, most specific first, among those that may serve `host`, that
    /// `matches`. `host` is only worked out for a table with an index; a small table first
    /// compares `https` and the first byte of `starts` (the URL's host, or its authority).
    #[inline(always)]
    fn first<'h>(
        &self,
        https: bool,
        starts: &[u8],
        host: impl FnOnce() -> &'h [u8],
        matches: impl Fn(&Route) -> bool,
    ) -> Option<&BoundRoute> {
        match &self.by_host {
            None => {
                let first = starts.first()?.to_ascii_lowercase();
                let i = self
                    .quick
                    .iter()
                    .zip(self.routes.iter())
                    .position(|(q, b)| {
                        q.https == https && q.first == first && matches(&b.inner.route)
                    })?;
                self.routes.get(i)
            }
            Some(index) => self.first_indexed(index, host(), &matches),
        }
    }

    /// [`first`](Self::first) through the host index; kept out of line so the small-table
    /// path stays small.
    #[inline(never)]
    fn first_indexed(
        &self,
        index: &HostIndex,
        host: &[u8],
        matches: &dyn Fn(&Route) -> bool,
    ) -> Option<&BoundRoute> {
        index
            .get(&host_hash(host))?
            .iter()
            .map(|&i| &self.routes[i as usize])
            .find(|b| matches(&b.inner.route))
    }

    /// The routes, most specific first.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().map(|b| &b.inner.route)
    }
}

impl fmt::Debug for TokenRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.routes()).finish()
    }
}

/// A route with its token handle, as matched by a [`TokenRouter`]. Cheap to clone.
#[derive(Clone)]
pub struct BoundRoute {
    inner: Arc<BoundInner>,
}

struct BoundInner {
    key: RouteKey,
    route: Route,
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

    fn register(route: Route, handle: TokenHandle) -> Self {
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
    /// `sent` (from [`TokenHandle::try_header_versioned`] or
    /// [`TokenHandle::header_versioned`]): drops the token if it is still the cached one (so
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
                Box::pin(handle.header_versioned()).await?
            }
            _ => Box::pin(handle.header_versioned()).await?,
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

/// What a `401` response's `WWW-Authenticate` Bearer challenge asks the client to do, when
/// it is something a new token can fix.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BearerChallenge {
    /// `error="invalid_token"`: the token expired, was revoked or is otherwise not accepted.
    InvalidToken,
    /// `error="insufficient_claims"` with a `claims` parameter (a Continuous Access Evaluation
    /// or conditional-access claims challenge): get a token carrying these claims.
    InsufficientClaims {
        /// The decoded claims request (JSON).
        claims: String,
    },
}

impl fmt::Debug for BearerChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BearerChallenge::InvalidToken => f.write_str("InvalidToken"),
            BearerChallenge::InsufficientClaims { claims } => f
                .debug_struct("InsufficientClaims")
                .field("claims", claims)
                .finish(),
        }
    }
}

impl BearerChallenge {
    /// Reads every `WWW-Authenticate` header of a response and returns the Bearer challenge a
    /// new token can answer, if any. A claims challenge wins over `invalid_token`.
    ///
    /// The parser follows RFC 9110's grammar: several challenges in one header (`Basic
    /// realm="x", Bearer error="invalid_token"`), several headers, case-insensitive scheme and
    /// parameter names, quoted strings with escapes, and `claims` in base64 or base64url,
    /// padded or not. Anything it cannot read is ignored.
    ///
    /// ```
    /// use entra_mi::middleware::BearerChallenge;
    /// let mut headers = http::HeaderMap::new();
    /// headers.append("www-authenticate", r#"Basic realm="x", Bearer realm="", error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnt9fQ==""#.parse().unwrap());
    /// assert_eq!(
    ///     BearerChallenge::from_headers(&headers),
    ///     Some(BearerChallenge::InsufficientClaims { claims: r#"{"access_token":{}}"#.into() })
    /// );
    /// ```
    pub fn from_headers(headers: &HeaderMap) -> Option<BearerChallenge> {
        let mut found = None;
        for value in headers.get_all(http::header::WWW_AUTHENTICATE) {
            for_each_bearer_challenge(value.as_bytes(), &mut |error, claims| {
                let this = match error {
                    Some(e) if e.eq_ignore_ascii_case(b"insufficient_claims") => claims
                        .and_then(decode_claims)
                        .map(|claims| BearerChallenge::InsufficientClaims { claims }),
                    Some(e) if e.eq_ignore_ascii_case(b"invalid_token") => {
                        Some(BearerChallenge::InvalidToken)
                    }
                    _ => None,
                };
                match (&found, this) {
                    (_, None) | (Some(BearerChallenge::InsufficientClaims { .. }), _) => {}
                    (_, Some(c)) => found = Some(c),
                }
            });
        }
        found
    }
}

/// The challenge being read.
#[derive(Default)]
struct Reading {
    bearer: bool,
    error: Option<Vec<u8>>,
    claims: Option<Vec<u8>>,
}

/// Receives `(error, claims)` of each Bearer challenge.
type OnBearer<'a> = &'a mut dyn FnMut(Option<&[u8]>, Option<&[u8]>);

/// Calls `f(error, claims)` for each Bearer challenge in one header value.
fn for_each_bearer_challenge(input: &[u8], f: OnBearer<'_>) {
    let mut lex = Lexer { s: input, i: 0 };
    let mut current: Option<Reading> = None;
    let mut flush = |c: Option<Reading>| {
        if let Some(Reading {
            bearer: true,
            error,
            claims,
        }) = c
        {
            f(error.as_deref(), claims.as_deref());
        }
    };
    loop {
        lex.skip(|b| b == b' ' || b == b'\t' || b == b',');
        if lex.done() {
            break;
        }
        let Some(name) = lex.token() else {
            // Unreadable: stop here rather than guess.
            break;
        };
        lex.skip_ws();
        if lex.peek() == Some(b'=') && current.is_some() {
            // `name = value`: a parameter of the current challenge.
            lex.i += 1;
            lex.skip_ws();
            let value = if lex.peek() == Some(b'"') {
                lex.quoted()
            } else {
                lex.token().map(<[u8]>::to_vec)
            };
            let Some(value) = value else { break };
            if let Some(c) = current.as_mut() {
                if name.eq_ignore_ascii_case(b"error") {
                    c.error = Some(value);
                } else if name.eq_ignore_ascii_case(b"claims") {
                    c.claims = Some(value);
                }
            }
        } else {
            // A new challenge: `scheme`, maybe followed by a token68 or the first parameter.
            flush(current.take());
            current = Some(Reading {
                bearer: name.eq_ignore_ascii_case(b"bearer"),
                ..Reading::default()
            });
            // `scheme token68` (`Negotiate YII…==`): skip the token68; otherwise rewind to read
            // the first parameter.
            let save = lex.i;
            lex.skip(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
            let run = lex.i > save;
            lex.skip(|b| b == b'=');
            lex.skip_ws();
            if !(run && (lex.done() || lex.peek() == Some(b','))) {
                lex.i = save;
            }
        }
    }
    flush(current);
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl<'a> Lexer<'a> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip(&mut self, mut pred: impl FnMut(u8) -> bool) {
        while self.peek().is_some_and(&mut pred) {
            self.i += 1;
        }
    }
    fn skip_ws(&mut self) {
        self.skip(|b| b == b' ' || b == b'\t');
    }
    fn token(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        self.skip(is_tchar);
        (self.i > start).then(|| &self.s[start..self.i])
    }
    /// A quoted string with `\` escapes; `None` when unterminated.
    fn quoted(&mut self) -> Option<Vec<u8>> {
        self.i += 1;
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'"' => return Some(out),
                b'\\' => {
                    out.push(self.peek()?);
                    self.i += 1;
                }
                _ => out.push(b),
            }
        }
        None
    }
}

/// Decodes a `claims` parameter: base64 or base64url, padded or not, holding a JSON object.
fn decode_claims(raw: &[u8]) -> Option<String> {
    let bytes = decode_base64_any(raw)?;
    let text = String::from_utf8(bytes).ok()?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(_)) => Some(text),
        _ => None,
    }
}

/// Base64 in either alphabet (`+/` or `-_`), with or without `=` padding.
fn decode_base64_any(input: &[u8]) -> Option<Vec<u8>> {
    let trimmed = input.trim_ascii();
    let data = {
        let mut end = trimmed.len();
        while end > 0 && trimmed[end - 1] == b'=' {
            end -= 1;
        }
        if trimmed.len() - end > 2 {
            return None;
        }
        &trimmed[..end]
    };
    if data.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in data {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(values: &[&str]) -> Option<BearerChallenge> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(http::header::WWW_AUTHENTICATE, v.parse().unwrap());
        }
        BearerChallenge::from_headers(&h)
    }

    const CLAIMS: &str = r#"{"access_token":{"nbf":{"essential":true,"value":"1604106651"}}}"#;

    fn b64(s: &str, url: bool, pad: bool) -> String {
        const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in s.as_bytes().chunks(3) {
            let n =
                chunk.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b)) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                let mut c = STD[((n >> (18 - 6 * i)) & 63) as usize] as char;
                if url {
                    c = match c {
                        '+' => '-',
                        '/' => '_',
                        c => c,
                    };
                }
                out.push(c);
            }
            if pad {
                for _ in chunk.len()..3 {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn base64_both_alphabets_padded_or_not() {
        for s in ["", "a", "ab", "abc", "abcd", CLAIMS, "\u{fb}\u{ff}?>"] {
            for url in [false, true] {
                for pad in [false, true] {
                    let enc = b64(s, url, pad);
                    assert_eq!(
                        decode_base64_any(enc.as_bytes()).as_deref(),
                        Some(s.as_bytes()),
                        "{enc}"
                    );
                }
            }
        }
        assert_eq!(decode_base64_any(b"a"), None);
        assert_eq!(decode_base64_any(b"ab!c"), None);
        assert_eq!(decode_base64_any(b"YQ==="), None);
    }

    #[test]
    fn challenges_are_parsed_robustly() {
        let enc = b64(CLAIMS, false, true);
        let url = b64(CLAIMS, true, false);
        let claims = Some(BearerChallenge::InsufficientClaims {
            claims: CLAIMS.into(),
        });
        assert_eq!(
            challenge(&[r#"Bearer error="invalid_token""#]),
            Some(BearerChallenge::InvalidToken)
        );
        assert_eq!(
            challenge(&["bearer ERROR=invalid_token"]),
            Some(BearerChallenge::InvalidToken)
        );
        assert_eq!(
            challenge(&[
                r#"Bearer realm="a, \"quoted\" error=insufficient_claims", error = "invalid_token""#
            ]),
            Some(BearerChallenge::InvalidToken)
        );
        assert_eq!(
            challenge(&[&format!(
                r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000", error="insufficient_claims", claims="{enc}""#
            )]),
            claims
        );
        assert_eq!(
            challenge(&[&format!("Bearer error=insufficient_claims, claims={url}")]),
            claims
        );
        // Several schemes in one header, and a token68 scheme before ours.
        assert_eq!(
            challenge(&[&format!(
                r#"Negotiate YIIabc==, Basic realm="x, error=invalid_token", Bearer error="insufficient_claims", claims="{url}""#
            )]),
            claims
        );
        // Several headers: the claims challenge wins whatever the order.
        assert_eq!(
            challenge(&[
                r#"Bearer error="invalid_token""#,
                &format!(r#"Bearer error="insufficient_claims", claims="{enc}""#)
            ]),
            claims
        );
        assert_eq!(
            challenge(&[
                &format!(r#"Bearer error="insufficient_claims", claims="{enc}""#),
                r#"Bearer error="invalid_token""#
            ]),
            claims
        );
        // Not ours to act on.
        assert_eq!(
            challenge(&[r#"Basic realm="x", error="invalid_token""#]),
            None
        );
        assert_eq!(
            challenge(&[r#"Bearer realm="", error="insufficient_scope""#]),
            None
        );
        assert_eq!(challenge(&[r#"Bearer realm="""#]), None);
        assert_eq!(challenge(&[r#"Bearer error="insufficient_claims""#]), None);
        assert_eq!(
            challenge(&[r#"Bearer error="insufficient_claims", claims="not base64!""#]),
            None
        );
        assert_eq!(
            challenge(&[&format!(
                r#"Bearer error="insufficient_claims", claims="{}""#,
                b64("[1]", false, true)
            )]),
            None
        );
        assert_eq!(challenge(&[r#"Bearer error="invalid_token"#]), None);
        assert_eq!(challenge(&[""]), None);
        assert_eq!(challenge(&[]), None);
    }

    #[test]
    fn dot_segments_never_match_a_prefix() {
        for seg in [".", "..", "%2e", "%2E", "%2e%2e", ".%2e", "%2e."] {
            assert!(is_dot_segment(seg), "{seg}");
        }
        for seg in ["", "a", "...", ".a", "%2f", "v1.0"] {
            assert!(!is_dot_segment(seg), "{seg}");
        }
        assert!(prefix_matches("/api", "/api"));
        assert!(prefix_matches("/api", "/api/"));
        assert!(prefix_matches("/api", "/api/x"));
        assert!(!prefix_matches("/api", "/apix"));
        assert!(!prefix_matches("/api", "/ap"));
        assert!(!prefix_matches("/api", "/api/../admin"));
        assert!(!prefix_matches("/api", "/api/%2e%2E/admin"));
        assert!(prefix_matches("", "/anything/../x"));
    }
}
