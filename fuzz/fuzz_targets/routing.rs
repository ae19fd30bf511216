//! URL routing (`TokenRouter::match_url` and `match_uri`) on arbitrary strings, against the
//! fixture table of `entra_mi::test_util` (Graph, Key Vault, an API with nested prefixes on one
//! host, the same host on another port, an IDN host, an IPv6 host and an `http://` loopback
//! route), as one table with a host index and as a small one scanned in order.
//!
//! Asserts, beyond "never panics":
//! * a URL that matches a route has exactly the route's scheme, host and port, no user info,
//!   and a path that equals the route's prefix or extends it by whole segments;
//! * `match_url` picks exactly what the reference matcher (`test_util::reference_match`) picks
//!   (the longest matching prefix on the same origin);
//! * `match_uri` (raw authority, no parsing) implies the same of the URI, and is never more
//!   permissive than `match_url` on the same string.
#![no_main]

use entra_mi::TokenRouter;
use entra_mi::test_util::{
    fixture_router, reference_match, reference_prefix_matches, small_fixture_router,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    check(fixture_router(), input);
    check(small_fixture_router(), input);
});

fn check(router: &TokenRouter, input: &str) {
    let parsed_url = url::Url::parse(input).ok();
    if let Some(url) = &parsed_url {
        let hit = router.match_url(url).map(|b| b.route());
        assert_eq!(hit, reference_match(router.routes(), url), "{input:?}");
        if let Some(r) = hit {
            assert_eq!(url.scheme(), if r.is_https() { "https" } else { "http" });
            assert_eq!(url.host_str(), Some(r.host()));
            assert_eq!(url.port_or_known_default(), Some(r.port()));
            assert!(url.username().is_empty() && url.password().is_none());
            assert!(reference_prefix_matches(r.path_prefix(), url.path()));
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
        assert!(reference_prefix_matches(r.path_prefix(), uri.path()));
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
