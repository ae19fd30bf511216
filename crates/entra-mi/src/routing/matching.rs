//! Whether one route serves a request: scheme, host and port compared exactly (the host
//! ignoring ASCII case), and the path prefix on whole segments, with no dot segments a server
//! could resolve out of it.

use super::route::Route;

/// `route` serves a URI with this scheme, raw authority (`host` or `host:port`, any case) and
/// path. The authority is not parsed; one with user info never equals a route's.
#[inline]
pub(super) fn matches_authority(route: &Route, https: bool, authority: &str, path: &str) -> bool {
    if route.https != https {
        return false;
    }
    let (a, host) = (authority.as_bytes(), route.host.as_bytes());
    let authority_ok = if a.len() == host.len() {
        route.port == if https { 443 } else { 80 } && (a == host || a.eq_ignore_ascii_case(host))
    } else {
        a.len() == host.len() + 1 + route.port_text.len()
            && a[..host.len()].eq_ignore_ascii_case(host)
            && a[host.len()] == b':'
            && &a[host.len() + 1..] == route.port_text.as_bytes()
    };
    authority_ok && prefix_matches(&route.prefix, path)
}

/// `route` serves a parsed URL with this scheme, host, port and path.
#[inline]
pub(super) fn matches(route: &Route, https: bool, host: &str, port: u16, path: &str) -> bool {
    route.https == https
        && route.port == port
        && route.host.eq_ignore_ascii_case(host)
        && prefix_matches(&route.prefix, path)
}

/// The host of a URI authority as routes store it (IPv6 with its brackets); with user info it
/// keeps the `user@` part, which no route's host has.
#[inline]
pub(super) fn host_of(authority: &str) -> &[u8] {
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

/// `.` or `..`, with either dot written `%2e` (any case).
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

#[cfg(test)]
mod tests {
    use super::*;

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
