//! Whether a URL names this machine's loopback interface.

/// True for `localhost`, `127.0.0.0/8` and `::1`. Anything else, including `0.0.0.0` and
/// IPv4-mapped IPv6 addresses, is not loopback here.
pub(crate) fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for (url, expected) in [
            ("http://localhost:1", true),
            ("http://LOCALHOST", true),
            ("http://127.0.0.1:8080", true),
            ("http://127.1.2.3", true),
            ("http://[::1]:80", true),
            ("http://0.0.0.0:80", false),
            ("http://[::ffff:127.0.0.1]", false),
            ("http://localhost.evil.example", false),
            ("https://graph.microsoft.com", false),
            ("http://169.254.169.254", false),
        ] {
            assert_eq!(
                is_loopback(&url::Url::parse(url).unwrap()),
                expected,
                "{url}"
            );
        }
    }
}
