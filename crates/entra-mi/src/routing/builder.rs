//! Building a [`TokenRouter`]: routes checked (plain `http` only to loopback, and only when
//! allowed; no two routes for one place) and bound to their audience's token handle.

use std::fmt;

use super::bound::BoundRoute;
use super::route::Route;
use super::table::TokenRouter;
use crate::cache::TokenProvider;
use crate::error::Error;

/// Builds a [`TokenRouter`]; see [`TokenRouter::builder`].
///
/// Defaults: no routes; `http://` routes refused.
pub struct TokenRouterBuilder {
    provider: TokenProvider,
    routes: Vec<Route>,
    allow_http_loopback: bool,
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

    /// The router, with one [`TokenHandle`](crate::TokenHandle) resolved per route. Fails on an
    /// `http://` route that is not allowed and on two routes for the same scheme, host, port
    /// and prefix.
    pub fn build(self) -> Result<TokenRouter, Error> {
        let mut bound: Vec<BoundRoute> = Vec::with_capacity(self.routes.len());
        for route in self.routes {
            if !route.is_https() {
                let reason = if !route.is_loopback() {
                    Some("http:// routes are only allowed to loopback hosts")
                } else if !self.allow_http_loopback {
                    Some("http:// routes need allow_http_loopback(true)")
                } else {
                    None
                };
                if let Some(reason) = reason {
                    return Err(Error::from(crate::error::ConfigurationError::Route {
                        route: route.to_string(),
                        reason,
                    }));
                }
            }
            if bound.iter().any(|b| b.route().same_place(&route)) {
                return Err(Error::from(crate::error::ConfigurationError::Route {
                    route: route.to_string(),
                    reason: "another route covers the same scheme, host, port and path",
                }));
            }
            let handle = self.provider.handle(route.audience());
            bound.push(BoundRoute::register(route, handle));
        }
        Ok(TokenRouter::from_routes(bound))
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
