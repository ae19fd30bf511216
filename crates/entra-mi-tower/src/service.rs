//! The service.

use std::fmt;
use std::task::{Context, Poll};

use entra_mi::TokenRouter;
use entra_mi::middleware::{BoundRoute, SentKey};
use http::header::AUTHORIZATION;
use http::{Request, Response};
use tower_service::Service;

use crate::BoxError;
use crate::future::{Replay, ResponseFuture};
use crate::replay::{NoReplay, ReplayRequest};

/// Attaches managed-identity tokens to the routed requests of an inner service; see the
/// [crate docs](crate). Made by [`crate::BearerAuthLayer`].
#[derive(Clone)]
pub struct BearerAuth<S, R = NoReplay> {
    inner: S,
    router: TokenRouter,
    replay: R,
    recover: bool,
}

impl<S> BearerAuth<S> {
    /// Wraps `inner`, without replay.
    pub fn new(inner: S, router: TokenRouter) -> Self {
        Self::from_parts(inner, router, NoReplay, true)
    }
}

impl<S, R> BearerAuth<S, R> {
    pub(crate) fn from_parts(inner: S, router: TokenRouter, replay: R, recover: bool) -> Self {
        Self {
            inner,
            router,
            replay,
            recover,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug, R: fmt::Debug> fmt::Debug for BearerAuth<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuth")
            .field("inner", &self.inner)
            .field("routes", &self.router)
            .field("replay", &self.replay)
            .field("recover_unauthorized", &self.recover)
            .finish()
    }
}

impl<S, R, B, RB> Service<Request<B>> for BearerAuth<S, R>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    R: ReplayRequest<B>,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // One call of the inner service for every request with a cached token or no route,
        // so the inner `call` can be inlined here.
        let (key, replay) = match self.attach(&mut request) {
            Ok(kept) => kept,
            Err((route, again)) => return self.wait_token(request, route, again),
        };
        ResponseFuture::sent(self.inner.call(request), key, replay)
    }
}

/// What a request sent with a cached token keeps to act on a `401`.
type Kept<S, B> = (Option<SentKey>, Option<Box<Replay<S, B>>>);

impl<S: Clone, R> BearerAuth<S, R> {
    /// Adds the cached token's header to a routed request without `Authorization`, and returns
    /// what the request keeps (nothing for a request left alone); the route when no token is
    /// cached, with the copy to replay.
    #[inline]
    #[allow(clippy::type_complexity)]
    fn attach<B>(
        &mut self,
        request: &mut Request<B>,
    ) -> Result<Kept<S, B>, (BoundRoute, Option<Box<Replay<S, B>>>)>
    where
        S: Service<Request<B>>,
        R: ReplayRequest<B>,
    {
        // A request without headers (the usual case) skips hashing the header name.
        if !request.headers().is_empty() && request.headers().contains_key(AUTHORIZATION) {
            return Ok((None, None));
        }
        let Some(route) = self.router.match_uri(request.uri()) else {
            return Ok((None, None));
        };
        // The copy to replay is made before the header is added.
        let again = if self.recover {
            self.again(request)
        } else {
            None
        };
        let Some(version) = route.handle().insert_cached_header(request.headers_mut()) else {
            return Err((route.clone(), again));
        };
        if !self.recover {
            // Nothing to act on afterwards: the inner future as it is.
            return Ok((None, None));
        }
        Ok(Replay::keep(route, version, again))
    }

    /// A copy of the request to send again after a `401`, with the clone of the service to
    /// send it to (polled ready when, and if, it is needed).
    #[inline]
    fn again<B>(&self, request: &Request<B>) -> Option<Box<Replay<S, B>>>
    where
        R: ReplayRequest<B>,
    {
        let again = self.replay.replay(request)?;
        Some(Box::new(Replay {
            again: Some((self.inner.clone(), again)),
            sent: None,
        }))
    }

    /// Cold cache: the instance polled ready goes with the request into the future; `self`
    /// keeps a clone, which must be polled ready before its own next call.
    #[cold]
    #[inline(never)]
    fn wait_token<B>(
        &mut self,
        request: Request<B>,
        route: BoundRoute,
        again: Option<Box<Replay<S, B>>>,
    ) -> ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
        R: ReplayRequest<B>,
    {
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::wait_token(ready, request, route, again, self.recover)
    }
}
