//! The fixture route table and the reference route matcher.

use std::sync::OnceLock;

use async_trait::async_trait;

use crate::audience::Audience;
use crate::cache::TokenProvider;
use crate::credential::{TokenCredential, TokenRequest};
use crate::error::Error;
use crate::routing::{INDEX_FROM, Route, TokenRouter};
use crate::token::AccessToken;

/// The hosts of [`fixture_routes`], as the URL parser writes them (lowercase, IDN in
/// punycode, IPv6 in brackets).
pub const FIXTURE_HOSTS: &[&str] = &[
    "graph.microsoft.com",
    "management.azure.com",
    "myvault.vault.azure.net",
    "orders.example.com",
    "xn--bcher-kva.example",
    "[::1]",
    "127.0.0.1",
];

/// Nine routes: Microsoft Graph, Azure Resource Manager, a Key Vault, an API at `/api` with a
/// second one nested at `/api/admin` on the same host, that host on port 8443, an
/// internationalised host (`bücher.example/shop`), an IPv6 host (`[::1]:9443/v6`) and a
/// plain-`http` loopback route (`127.0.0.1:8080/local`).
pub fn fixture_routes() -> Vec<Route> {
    let aud = |a: &str| Audience::new(a).expect("a valid audience");
    let route = |url: &str, a: &str| Route::new(url, aud(a)).expect("a valid route");
    vec![
        Route::microsoft_graph(),
        Route::azure_resource_manager(),
        Route::key_vault("https://myvault.vault.azure.net").expect("a valid route"),
        route("https://orders.example.com/api", "api://orders"),
        route("https://orders.example.com/api/admin/", "api://admin"),
        route("https://orders.example.com:8443", "api://alt"),
        route("https://bücher.example/shop", "api://idn"),
        route("https://[::1]:9443/v6", "api://v6"),
        route("http://127.0.0.1:8080/local", "api://local"),
    ]
}

/// A router of `routes`, plain-`http` loopback routes allowed, whose token provider has a
/// credential that routing never asks for a token (asking panics).
///
/// # Panics
///
/// When the routes do not make a valid router (two routes for one place, `http://` to a host
/// that is not loopback).
pub fn router_of(routes: impl IntoIterator<Item = Route>) -> TokenRouter {
    TokenRouter::builder(&TokenProvider::new(NeverAsked))
        .allow_http_loopback(true)
        .routes(routes)
        .build()
        .expect("a valid route table")
}

/// All of [`fixture_routes`]: a table large enough for the host index.
pub fn fixture_router() -> &'static TokenRouter {
    static ROUTER: OnceLock<TokenRouter> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let router = router_of(fixture_routes());
        assert!(router.routes().count() >= INDEX_FROM);
        router
    })
}

/// [`fixture_routes`] without the `/api` route and the internationalised host: seven routes, a
/// table small enough to be scanned in order instead of through the host index.
pub fn small_fixture_router() -> &'static TokenRouter {
    static ROUTER: OnceLock<TokenRouter> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let router = router_of(
            fixture_routes()
                .into_iter()
                .filter(|r| r.path_prefix() != "/api" && !r.host().starts_with("xn--")),
        );
        assert_eq!(router.routes().count(), 7);
        assert!(router.routes().count() < INDEX_FROM);
        router
    })
}

/// The reference matcher: the route of `routes` that serves `url` — the same scheme, host and
/// port, no user info in the URL, a path prefix that covers the path on whole segments with no
/// dot segment in the path, and of those the longest prefix.
///
/// ```
/// use entra_mi::test_util::{fixture_router, reference_match};
/// let router = fixture_router();
/// let url = url::Url::parse("https://orders.example.com/api/admin/users").unwrap();
/// let route = reference_match(router.routes(), &url).unwrap();
/// assert_eq!(route.path_prefix(), "/api/admin");
/// assert_eq!(router.match_url(&url).map(|b| b.route()), Some(route));
/// ```
pub fn reference_match<'a>(
    routes: impl IntoIterator<Item = &'a Route>,
    url: &url::Url,
) -> Option<&'a Route> {
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let scheme = url.scheme();
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    routes
        .into_iter()
        .filter(|r| {
            scheme == if r.is_https() { "https" } else { "http" }
                && host == r.host()
                && port == r.port()
                && reference_prefix_matches(r.path_prefix(), url.path())
        })
        .max_by_key(|r| r.path_prefix().len())
}

/// The reference rule for a route's path prefix (without a trailing slash): empty covers
/// everything; otherwise the path equals it or continues it with `/`, and no segment of the
/// path is a dot segment (see [`reference_is_dot_segment`]).
pub fn reference_prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix.is_empty() {
        return true;
    }
    let whole = path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'));
    whole && !path.split('/').any(reference_is_dot_segment)
}

/// `.` or `..`, with any dot percent-encoded (`%2e`, any case): a segment a server may resolve.
pub fn reference_is_dot_segment(segment: &str) -> bool {
    let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

/// The credential of [`router_of`]'s provider: routing resolves handles, never tokens.
#[derive(Debug)]
struct NeverAsked;

#[async_trait]
impl TokenCredential for NeverAsked {
    async fn get_token(&self, _: &TokenRequest) -> Result<AccessToken, Error> {
        unreachable!("routing never fetches a token")
    }

    fn name(&self) -> &str {
        "never-asked"
    }
}
