//! The service.

use std::fmt;
use std::task::{Context, Poll};

use entra_mi::TokenRouter;
use http::header::AUTHORIZATION;
use http::{Request, Response};
use tower_service::Service;

use crate::BoxError;
use crate::future::{ResponseFuture, Sent};
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

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if request.headers().contains_key(AUTHORIZATION) {
            return ResponseFuture::passthrough(self.inner.call(request));
        }
        let Some(route) = self.router.match_uri(request.uri()) else {
            return ResponseFuture::passthrough(self.inner.call(request));
        };
        let replay = self
            .recover
            .then(|| self.replay.replay(&request))
            .flatten()
            // The retry goes to a clone, polled ready when (and if) it is needed.
            .map(|again| Box::new((self.inner.clone(), again)));
        match route.handle().try_header_versioned() {
            Some((header, version)) => {
                request.headers_mut().insert(AUTHORIZATION, header);
                let fut = self.inner.call(request);
                if !self.recover {
                    // Nothing to act on afterwards: the inner future as it is.
                    return ResponseFuture::passthrough(fut);
                }
                let sent = Sent {
                    route: route.key(),
                    version: Some(version),
                    replay,
                };
                ResponseFuture::sent(fut, sent)
            }
            None => {
                // Cold cache: the instance polled ready goes with the request into the future;
                // `self` keeps a clone, which must be polled ready before its own next call.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::wait_token(ready, request, route.clone(), replay, self.recover)
            }
        }
    }
}
