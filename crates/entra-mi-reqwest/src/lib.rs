#![doc = include_str!("../README.md")]
//!
//! # What gets a token
//!
//! Only requests whose scheme, host and port equal a route's, and whose path lies under the
//! route's prefix on whole segments, get a token — the token of that route's audience (see
//! [`entra_mi::TokenRouter`]). A request that already carries `Authorization` is left alone;
//! every other request passes through byte for byte. The header comes from the cache's
//! per-route handle (no hashing, no formatting per request) and is marked sensitive, so
//! `http`'s `Debug` and well-behaved loggers print `Sensitive` instead of the token.
//!
//! Redirects are followed by `reqwest` itself, below this middleware: `reqwest` drops
//! `Authorization` when a redirect leaves the origin, and this middleware does not put it
//! back. A `401` that comes from another origin than the route's (after a redirect) is never
//! acted upon.
//!
//! # 401 recovery
//!
//! When the API answers `401` with a Bearer challenge saying `error="invalid_token"`, or a
//! claims challenge (`error="insufficient_claims"` with base64 `claims`), the middleware
//! drops the token from the cache if it is still the cached one (so concurrent `401`s for one
//! token cause one refetch), gets the next one (asking for the claims), and — if the request
//! could be cloned and the new token differs from the rejected one — sends the request again,
//! **once**. A streaming body cannot be cloned: then the `401` is returned unchanged (and the
//! rejected token is still dropped, so the next request gets a new one). Managed-identity
//! endpoints cache tokens and may return the rejected token again: then there is no retry
//! either. When getting the new token fails, the original `401` is returned and the failure
//! is logged. Turn recovery off with [`BearerAuthMiddlewareBuilder::recover_unauthorized`].
//!
//! # Errors
//!
//! When no token can be had for a routed request, the middleware returns
//! [`reqwest_middleware::Error::Middleware`] holding the [`entra_mi::Error`]; downcast to
//! read it:
//!
//! ```no_run
//! # async fn run(client: reqwest_middleware::ClientWithMiddleware) {
//! match client.get("https://graph.microsoft.com/v1.0/me").send().await {
//!     Err(reqwest_middleware::Error::Middleware(e)) => {
//!         if let Some(token_error) = e.downcast_ref::<entra_mi::Error>() {
//!             eprintln!("no token: {token_error} (unavailable: {})", token_error.is_unavailable());
//!         }
//!     }
//!     Err(reqwest_middleware::Error::Reqwest(e)) => eprintln!("transport: {e}"),
//!     Ok(response) => println!("{}", response.status()),
//! }
//! # }
//! ```
//!
//! # With `reqwest-retry`
//!
//! Add this middleware **after** `RetryTransientMiddleware`, so it runs inside the retry loop
//! and every attempt carries the token that is current at that moment (a long backoff may
//! outlive a token):
//!
//! ```no_run
//! use reqwest_retry::{RetryTransientMiddleware, policies::ExponentialBackoff};
//! # fn run(auth: entra_mi_reqwest::BearerAuthMiddleware) {
//! let policy = ExponentialBackoff::builder().build_with_max_retries(3);
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(RetryTransientMiddleware::new_with_policy(policy))
//!     .with(auth) // after the retry middleware
//!     .build();
//! # let _ = client; }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::fmt;

use entra_mi::middleware::{BearerChallenge, BoundRoute, TokenRouterBuilder, TokenVersion};
use entra_mi::{Route, TokenProvider, TokenRouter};
use http::{Extensions, HeaderValue, StatusCode, header::AUTHORIZATION};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

/// Attaches managed-identity tokens to routed requests; see the [crate docs](crate).
#[derive(Clone)]
pub struct BearerAuthMiddleware {
    router: TokenRouter,
    recover: bool,
}

impl BearerAuthMiddleware {
    /// A builder whose routes get tokens from `provider`.
    pub fn builder(provider: &TokenProvider) -> BearerAuthMiddlewareBuilder {
        BearerAuthMiddlewareBuilder {
            router: TokenRouter::builder(provider),
            recover: true,
        }
    }

    /// The middleware for an existing router (shared, say, with a tower layer), with `401`
    /// recovery on.
    pub fn new(router: TokenRouter) -> Self {
        Self {
            router,
            recover: true,
        }
    }

    /// The routing table.
    pub fn router(&self) -> &TokenRouter {
        &self.router
    }
}

impl fmt::Debug for BearerAuthMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuthMiddleware")
            .field("routes", &self.router)
            .field("recover_unauthorized", &self.recover)
            .finish()
    }
}

/// Builds a [`BearerAuthMiddleware`].
///
/// Defaults: no routes, `http://` routes refused, `401` recovery on.
#[derive(Debug)]
pub struct BearerAuthMiddlewareBuilder {
    router: TokenRouterBuilder,
    recover: bool,
}

impl BearerAuthMiddlewareBuilder {
    /// Adds a route: requests under its base URL get tokens for its audience.
    pub fn route(mut self, route: Route) -> Self {
        self.router = self.router.route(route);
        self
    }

    /// Accepts `http://` routes to loopback hosts (local development, tests). Default
    /// `false`; see [`TokenRouterBuilder::allow_http_loopback`].
    pub fn allow_http_loopback(mut self, allow: bool) -> Self {
        self.router = self.router.allow_http_loopback(allow);
        self
    }

    /// Whether to refresh the token and retry once after a `401` a new token can fix
    /// (default `true`). When off, a `401` with such a challenge still drops the rejected
    /// token from the cache.
    pub fn recover_unauthorized(mut self, on: bool) -> Self {
        self.recover = on;
        self
    }

    /// The middleware; fails on a refused route (see [`TokenRouterBuilder::build`]).
    pub fn build(self) -> Result<BearerAuthMiddleware, entra_mi::Error> {
        Ok(BearerAuthMiddleware {
            router: self.router.build()?,
            recover: self.recover,
        })
    }
}

fn token_error(e: entra_mi::Error) -> reqwest_middleware::Error {
    reqwest_middleware::Error::middleware(e)
}

#[async_trait::async_trait]
impl Middleware for BearerAuthMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if req.headers().contains_key(AUTHORIZATION) {
            return next.run(req, extensions).await;
        }
        let Some(route) = self.router.match_url(req.url()) else {
            return next.run(req, extensions).await;
        };
        // Cloned before the header goes in: the retry gets the new token instead.
        let again = if self.recover { req.try_clone() } else { None };
        // A cached token goes straight from the cache into the headers; only a miss waits.
        let handle = route.handle();
        let version = match handle.insert_cached_header(req.headers_mut()) {
            Some(version) => version,
            None => {
                let (header, version) = handle.header_with_version().await.map_err(token_error)?;
                req.headers_mut().insert(AUTHORIZATION, header);
                version
            }
        };
        let response = next.clone().run(req, extensions).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let Some(new_header) = self
            .after_unauthorized(route, version, &response, again.is_some())
            .await
        else {
            return Ok(response);
        };
        let Some(mut again) = again else {
            return Ok(response);
        };
        again.headers_mut().insert(AUTHORIZATION, new_header);
        drop(response);
        next.run(again, extensions).await
    }
}

impl BearerAuthMiddleware {
    /// Acts on a `401`: returns the header to retry with, if a retry can help.
    async fn after_unauthorized(
        &self,
        route: &BoundRoute,
        sent: TokenVersion,
        response: &Response,
        can_retry: bool,
    ) -> Option<HeaderValue> {
        let challenge = BearerChallenge::from_headers(response.headers())?;
        // Only the route's own origin may make us drop its token (not a redirect target).
        if !self
            .router
            .match_url(response.url())
            .is_some_and(|r| r.same_route(route))
        {
            tracing::debug!(route = ?route.route(), "401 challenge from another origin ignored");
            return None;
        }
        if !can_retry {
            // Cannot resend (streaming body, or recovery off): the next request gets a new
            // token at least.
            route.handle().invalidate_version_if_current(sent);
            return None;
        }
        match route.recover(sent, &challenge).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(audience = %route.audience(), error = %e, "no new token after a 401; returning the 401");
                None
            }
        }
    }
}
