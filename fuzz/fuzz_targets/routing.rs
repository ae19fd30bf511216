//! URL routing (`TokenRouter::match_url` and `match_uri`) on arbitrary strings, against a
//! fixed table: Graph, Key Vault, an API with nested prefixes on one host, the same host on
//! another port, an IDN host, an IPv6 host and an `http://` loopback route.
//!
//! Asserts, beyond "never panics":
//! * a URL that matches a route has exactly the route's scheme, host and port, no user info,
//!   and a path that equals the route's prefix or extends it by whole segments;
//! * `match_url` picks exactly what an independent reference matcher picks (the longest
//!   matching prefix on the same origin);
//! * `match_uri` (raw authority, no parsing) implies the same of the URI, and is never more
//!   permissive than `match_url` on the same string.
#![no_main]

use std::sync::OnceLock;

use entra_mi::{AccessToken, Audience, Route, TokenCredential, TokenProvider, TokenRequest, TokenRouter};
use libfuzzer_sys::fuzz_target;

/// Never called: routing does not fetch tokens.
#[derive(Debug)]
struct NoCredential;

#[async_trait::async_trait]
impl TokenCredential for NoCredential {
    async fn get_token(&self, _: &TokenRequest) -> entra_mi::Result<AccessToken> {
        unreachable!("routing never fetches")
    }
    fn name(&self) -> &str {
        "none"
    }
}

/// Every route of the target.
fn routes() -> Vec<Route> {
    let aud = |a: &str| Audience::new(a).unwrap();
    vec![
        Route::microsoft_graph(),
        Route::azure_resource_manager(),
        Route::key_vault("https://myvault.vault.azure.net").unwrap(),
        Route::new("https://orders.example.com/api", aud("api://orders")).unwrap(),
        Route::new("https://orders.example.com/api/admin/", aud("api://admin")).unwrap(),
        Route::new("https://orders.example.com:8443", aud("api://alt")).unwrap(),
        Route::new("https://bücher.example/shop", aud("api://idn")).unwrap(),
        Route::new("https://[::1]:9443/v6", aud("api://v6")).unwrap(),
        Route::new("http://127.0.0.1:8080/local", aud("api://local")).unwrap(),
    ]
}

fn table(routes: impl IntoIterator<Item = Route>) -> TokenRouter {
    let provider = TokenProvider::new(NoCredential);
    routes
        .into_iter()
        .fold(
            TokenRouter::builder(&provider).allow_http_loopback(true),
            |b, r| b.route(r),
        )
        .build()
        .unwrap()
}

/// All the routes: a table with a host index.
fn router() -> &'static TokenRouter {
    static R: OnceLock<TokenRouter> = OnceLock::new();
    R.get_or_init(|| table(routes()))
}

/// A table under 8 routes: scanned in order behind the scheme and first-byte filter, instead
/// of through the host index.
fn small_router() -> &'static TokenRouter {
    static R: OnceLock<TokenRouter> = OnceLock::new();
    R.get_or_init(|| {
        table(
            routes()
                .into_iter()
                .filter(|r| r.path_prefix() != "/api" && !r.host().starts_with("xn--")),
        )
    })
}

fn is_dot_segment(seg: &str) -> bool {
    let lower = seg.to_ascii_lowercase().replace("%2e", ".");
    lower == "." || lower == ".."
}

/// Whole-segment prefix, and no dot segments a server could resolve out of it.
fn prefix_ok(prefix: &str, path: &str) -> bool {
    if prefix.is_empty() {
        return true;
    }
    let whole = path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'));
    whole && !path.split('/').any(is_dot_segment)
}

/// The reference matcher: exact origin, whole-segment prefix, longest prefix wins.
fn reference<'a>(router: &'a TokenRouter, url: &url::Url) -> Option<&'a Route> {
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let scheme = url.scheme();
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    router
        .routes()
        .filter(|r| {
            scheme == if r.is_https() { "https" } else { "http" }
                && host == r.host()
                && port == r.port()
                && prefix_ok(r.path_prefix(), url.path())
        })
        .max_by_key(|r| r.path_prefix().len())
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    check(router(), input);
    check(small_router(), input);
});

fn check(router: &TokenRouter, input: &str) {

    let parsed_url = url::Url::parse(input).ok();
    if let Some(url) = &parsed_url {
        let hit = router.match_url(url).map(|b| b.route());
        assert_eq!(hit, reference(router, url), "{input:?}");
        if let Some(r) = hit {
            assert_eq!(url.scheme(), if r.is_https() { "https" } else { "http" });
            assert_eq!(url.host_str(), Some(r.host()));
            assert_eq!(url.port_or_known_default(), Some(r.port()));
            assert!(url.username().is_empty() && url.password().is_none());
            assert!(prefix_ok(r.path_prefix(), url.path()));
        }
    }

    if let Ok(uri) = input.parse::<http::Uri>()
        && let Some(b) = router.match_uri(&uri)
    {
        let r = b.route();
        let scheme = uri.scheme_str().unwrap().to_ascii_lowercase();
        assert_eq!(scheme, if r.is_https() { "https" } else { "http" });
        let authority = uri.authority().unwrap();
        assert!(
            !authority.as_str().contains('@'),
            "user info matched: {input:?}"
        );
        assert!(authority.host().eq_ignore_ascii_case(r.host()));
        let default = if r.is_https() { 443 } else { 80 };
        assert_eq!(authority.port_u16().unwrap_or(default), r.port());
        assert!(prefix_ok(r.path_prefix(), uri.path()));
        // Never more permissive than the URL parser.
        let url = parsed_url
            .as_ref()
            .unwrap_or_else(|| panic!("match_uri matched what url rejects: {input:?}"));
        let by_url = router.match_url(url).map(|b| b.route());
        assert_eq!(
            by_url,
            Some(r),
            "match_uri and match_url differ on {input:?}"
        );
    }
}
