//! A route: the origin (and optional path prefix) an API is served at, and the audience of its
//! tokens; parsed and validated from a base URL.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use crate::audience::Audience;
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
    pub(super) https: bool,
    /// Lowercase host as the URL parser serialises it (IPv6 in brackets).
    pub(super) host: Box<str>,
    pub(super) port: u16,
    /// `port` in decimal, to compare with a URI's authority without parsing it.
    pub(super) port_text: Box<str>,
    /// The path prefix without its trailing slash; empty for the whole origin.
    pub(super) prefix: Box<str>,
    pub(super) audience: Audience,
}

impl Route {
    /// Requests under `base_url` get tokens for `audience`.
    ///
    /// `base_url` is an absolute `https://` (or, see
    /// [`TokenRouterBuilder::allow_http_loopback`](super::TokenRouterBuilder::allow_http_loopback),
    /// `http://`) URL without user info, query or fragment. Its path, if any, is a prefix
    /// matched on whole segments; a trailing `/` makes no difference.
    pub fn new(base_url: &str, audience: Audience) -> Result<Route, Error> {
        let refuse = |reason: &'static str| {
            Error::from(crate::error::ConfigurationError::Route {
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

    /// True for a loopback host: `localhost`, `127.0.0.0/8`, `[::1]` and IPv4-mapped loopback.
    pub(super) fn is_loopback(&self) -> bool {
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

    /// True when `other` is served at the same scheme, host, port and path prefix.
    pub(super) fn same_place(&self, other: &Route) -> bool {
        self.https == other.https
            && self.host == other.host
            && self.port == other.port
            && self.prefix == other.prefix
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
