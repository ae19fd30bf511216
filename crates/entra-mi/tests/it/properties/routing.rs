//! Property tests of routing against the reference matcher.

use super::*;

fn scheme_of(r: &Route) -> &'static str {
    if r.is_https() { "https" } else { "http" }
}

/// Checks one URL string against every routing property, on a table with a host index and
/// on a small one; returns the `match_url` route of the first.
fn check_routing(input: &str) -> Result<Option<Route>, TestCaseError> {
    check_routing_on(small_fixture_router(), input)?;
    check_routing_on(fixture_router(), input)
}

fn check_routing_on(router: &TokenRouter, input: &str) -> Result<Option<Route>, TestCaseError> {
    let url = url::Url::parse(input).ok();
    let hit = url
        .as_ref()
        .and_then(|u| router.match_url(u))
        .map(|b| b.route().clone());
    if let Some(u) = &url {
        prop_assert_eq!(
            hit.as_ref(),
            reference_match(router.routes(), u),
            "{}",
            input
        );
        if let Some(r) = &hit {
            prop_assert_eq!(u.scheme(), scheme_of(r));
            prop_assert_eq!(u.host_str(), Some(r.host()));
            prop_assert_eq!(u.port_or_known_default(), Some(r.port()));
            prop_assert!(u.username().is_empty() && u.password().is_none());
            prop_assert!(reference_prefix_matches(r.path_prefix(), u.path()));
        }
    }
    // On an input already in the URL parser's canonical form (up to the case of the scheme
    // and host) the request-URI matcher, which reads the authority and path as text, finds
    // what the URL matcher finds. (Elsewhere it may be stricter, never looser: the URL parser
    // drops an empty `:@`, resolves `..`, reads `127.0.0.1.` as an address, and so on.)
    if let (Some(url), Some(_)) = (&url, &hit)
        && let Ok(uri) = input.parse::<http::Uri>()
        && (url.as_str().eq_ignore_ascii_case(input)
            || url.as_str().eq_ignore_ascii_case(&format!("{input}/")))
    {
        prop_assert_eq!(
            router.match_uri(&uri).map(|b| b.route()),
            hit.as_ref(),
            "match_uri is less permissive on {}",
            input
        );
    }
    if let Ok(uri) = input.parse::<http::Uri>()
        && let Some(b) = router.match_uri(&uri)
    {
        let r = b.route();
        let authority = uri.authority().unwrap();
        prop_assert!(!authority.as_str().contains('@'), "{}", input);
        prop_assert!(authority.host().eq_ignore_ascii_case(r.host()));
        prop_assert!(reference_prefix_matches(r.path_prefix(), uri.path()));
        prop_assert_eq!(
            hit.as_ref(),
            Some(r),
            "match_uri is more permissive on {}",
            input
        );
    }
    Ok(hit)
}

fn url_parts() -> impl Strategy<Value = (String, String, String, String, String, String)> {
    let hosts: Vec<String> = FIXTURE_HOSTS
        .iter()
        .flat_map(|h| {
            [
                (*h).to_owned(),
                h.to_ascii_uppercase(),
                format!("{h}.evil"),
                format!("evil{h}"),
                format!("{h}x"),
                format!("{h}."),
            ]
        })
        .collect();
    (
        prop::sample::select(vec!["https", "http", "HTTPS", "Http", "ftp", "ws"]),
        prop::sample::select(vec![
            "",
            "",
            "",
            "user@",
            "user:pw@",
            ":@",
            "graph.microsoft.com@",
        ]),
        prop::sample::select(hosts),
        prop::sample::select(vec![
            "", "", ":443", ":80", ":8443", ":9443", ":8080", ":0443", ":",
        ]),
        prop::collection::vec(
            prop::sample::select(vec![
                "api",
                "apix",
                "admin",
                "shop",
                "v6",
                "local",
                "x",
                "..",
                ".",
                "%2e",
                "%2E%2e",
                "",
                "v1.0",
                "%2f",
                "admin\\x",
                "api\\admin",
                "\\",
            ]),
            0..5,
        ),
        prop::sample::select(vec!["", "", "?q=1", "#frag", "?next=/api/admin"]),
    )
        .prop_map(|(s, u, h, p, segs, q)| {
            let path = segs.iter().map(|s| format!("/{s}")).collect::<String>();
            (
                s.to_owned(),
                u.to_owned(),
                h,
                p.to_owned(),
                path,
                q.to_owned(),
            )
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn routing_never_panics_on_arbitrary_text(input in "\\PC{0,64}") {
        check_routing(&input)?;
    }

    #[test]
    fn routing_matches_only_the_routes_own_origin((scheme, userinfo, host, port, path, query) in url_parts()) {
        let input = format!("{scheme}://{userinfo}{host}{port}{path}{query}");
        let hit = check_routing(&input)?;
        // Look-alikes (`host.evil`, `evilhost`, `hostx`, `host.`) and user info: nothing. The
        // parsed URL decides what the request really names: the URL standard reads `127.0.0.1.`
        // as `127.0.0.1` and drops an empty user info (`https://:@host/` is `https://host/`).
        let parsed = url::Url::parse(&input).ok();
        let own_host = parsed.as_ref().and_then(|u| u.host_str()).is_some_and(|h| FIXTURE_HOSTS.contains(&h));
        let user_info = parsed.as_ref().is_some_and(|u| !u.username().is_empty() || u.password().is_some());
        if !own_host || user_info || (!userinfo.is_empty() && userinfo != ":@") {
            prop_assert!(hit.is_none(), "{}", input);
        }
    }

    #[test]
    fn routing_prefixes_match_whole_segments(route_index in 0usize..9, tail in "[a-z0-9._~-]{1,8}", more in "(/[a-z0-9]{0,6}){0,3}") {
        let routes: Vec<&Route> = fixture_router().routes().collect();
        let r = routes[route_index % routes.len()];
        let origin = format!("{}://{}:{}", scheme_of(r), r.host(), r.port());
        // prefix + "x…": never this route (e.g. `/apix` is not `/api`).
        if !r.path_prefix().is_empty() && !reference_is_dot_segment(&tail) {
            let hit = check_routing(&format!("{origin}{}{tail}{more}", r.path_prefix()))?;
            prop_assert!(hit.as_ref() != Some(r));
        }
        // prefix + "/…": this route or a more specific one on the same origin.
        if !reference_is_dot_segment(&tail) {
            let hit = check_routing(&format!("{origin}{}/{tail}{more}", r.path_prefix()))?;
            let hit = hit.expect("a path under the prefix matches");
            prop_assert_eq!(hit.host(), r.host());
            prop_assert_eq!(hit.port(), r.port());
            prop_assert!(hit.path_prefix().starts_with(r.path_prefix()));
        }
    }
}

/// Every host of the routes, in lower, upper and mixed case, through both matchers on both
/// tables: `match_uri` finds the route `match_url` finds (the small table's first-byte filter
/// must compare case-insensitively).
#[test]
fn both_matchers_find_routes_for_hosts_in_any_case() {
    let mut matched = 0;
    for router in [fixture_router(), small_fixture_router()] {
        for r in router.routes() {
            let scheme = scheme_of(r);
            let default = if r.is_https() { 443 } else { 80 };
            let port = if r.port() == default {
                String::new()
            } else {
                format!(":{}", r.port())
            };
            let host = r.host();
            let mixed: String = host
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            for h in [host.to_owned(), host.to_ascii_uppercase(), mixed] {
                let input = format!("{scheme}://{h}{port}{}/x", r.path_prefix());
                let url = url::Url::parse(&input).unwrap();
                let uri: http::Uri = input.parse().unwrap();
                let by_url = router.match_url(&url).map(|b| b.route());
                assert_eq!(by_url, Some(r), "{input}");
                assert_eq!(router.match_uri(&uri).map(|b| b.route()), by_url, "{input}");
                matched += 1;
            }
        }
    }
    assert_eq!(matched, 3 * (9 + 7));
}

/// A raw backslash in the path: URL parsers read it as `/` (so `match_url` sees
/// `/api/admin/x`), while `match_uri` reads the text; it must then give no token rather than the
/// `/api` route's. Found by the `routing` fuzz target.
#[test]
fn a_backslash_in_a_request_uri_path_gets_no_token() {
    for input in [
        "https://orders.example.com/api/admin\\x",
        "https://orders.example.com/api\\admin/x",
        "https://graph.microsoft.com/v1.0\\me",
    ] {
        let uri: http::Uri = input.parse().unwrap();
        assert!(fixture_router().match_uri(&uri).is_none(), "{input}");
        assert!(small_fixture_router().match_uri(&uri).is_none(), "{input}");
    }
    let url = url::Url::parse("https://orders.example.com/api\\admin/x").unwrap();
    assert_eq!(url.path(), "/api/admin/x");
    assert_eq!(
        fixture_router()
            .match_url(&url)
            .map(|b| b.route().path_prefix()),
        Some("/api/admin")
    );
}
