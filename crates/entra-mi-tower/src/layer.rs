//! The layer and its builder.

use std::fmt;

use entra_mi::middleware::TokenRouterBuilder;
use entra_mi::{Route, TokenProvider, TokenRouter};
use tower_layer::Layer;

use crate::replay::NoReplay;
use crate::service::BearerAuth;

/// Wraps a service in [`BearerAuth`]; see the [crate docs](crate).
#[derive(Clone)]
pub struct BearerAuthLayer<R = NoReplay> {
    router: TokenRouter,
    replay: R,
    recover: bool,
}

impl BearerAuthLayer {
    /// A builder whose routes get tokens from `provider`.
    pub fn builder(provider: &TokenProvider) -> BearerAuthLayerBuilder {
        BearerAuthLayerBuilder {
            router: TokenRouter::builder(provider),
            replay: NoReplay,
            recover: true,
        }
    }

    /// The layer for an existing router (shared, say, with a reqwest middleware), without
    /// replay.
    pub fn new(router: TokenRouter) -> Self {
        Self {
            router,
            replay: NoReplay,
            recover: true,
        }
    }
}

impl<R> BearerAuthLayer<R> {
    /// The same layer with another replay policy (see [`crate::ReplayRequest`]).
    pub fn with_replay<R2>(self, replay: R2) -> BearerAuthLayer<R2> {
        BearerAuthLayer {
            router: self.router,
            replay,
            recover: self.recover,
        }
    }

    /// The same layer with `401` recovery on or off; see
    /// [`BearerAuthLayerBuilder::recover_unauthorized`].
    pub fn recover_unauthorized(mut self, recover: bool) -> Self {
        self.recover = recover;
        self
    }

    /// The routing table.
    pub fn router(&self) -> &TokenRouter {
        &self.router
    }
}

impl<S, R: Clone> Layer<S> for BearerAuthLayer<R> {
    type Service = BearerAuth<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth::from_parts(
            inner,
            self.router.clone(),
            self.replay.clone(),
            self.recover,
        )
    }
}

impl<R: fmt::Debug> fmt::Debug for BearerAuthLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuthLayer")
            .field("routes", &self.router)
            .field("replay", &self.replay)
            .field("recover_unauthorized", &self.recover)
            .finish()
    }
}

/// Builds a [`BearerAuthLayer`].
///
/// Defaults: no routes, `http://` routes refused, no replay ([`NoReplay`]), `401` recovery
/// on.
#[derive(Debug)]
pub struct BearerAuthLayerBuilder<R = NoReplay> {
    router: TokenRouterBuilder,
    replay: R,
    recover: bool,
}

impl<R> BearerAuthLayerBuilder<R> {
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

    /// How to replay a request after a `401` a new token can fix: [`crate::CloneBody`] for
    /// `Clone` bodies, your own [`crate::ReplayRequest`], or the default [`NoReplay`].
    pub fn replay<R2>(self, replay: R2) -> BearerAuthLayerBuilder<R2> {
        BearerAuthLayerBuilder {
            router: self.router,
            replay,
            recover: self.recover,
        }
    }

    /// Whether to act on a `401` that a new token can fix (default `true`): drop the rejected
    /// token from the cache and, with replay, send the request once more. Off, a response is
    /// returned as it came and the response future is the inner service's plus nothing — the
    /// cheapest layer, for APIs that never answer with such a `401` or callers that handle it
    /// themselves (with [`entra_mi::TokenHandle::invalidate_header_if_current`]).
    pub fn recover_unauthorized(mut self, recover: bool) -> Self {
        self.recover = recover;
        self
    }

    /// The layer; fails on a refused route (see [`TokenRouterBuilder::build`]).
    pub fn build(self) -> Result<BearerAuthLayer<R>, entra_mi::Error> {
        Ok(BearerAuthLayer {
            router: self.router.build()?,
            replay: self.replay,
            recover: self.recover,
        })
    }
}
