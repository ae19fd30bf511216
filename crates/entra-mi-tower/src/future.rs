//! The response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use entra_mi::{BearerChallenge, BoundRoute, RouteKey, TokenVersion};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::BoxError;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a routed request was sent with, kept to act on a `401`.
pub(crate) struct Sent<S, B> {
    /// The route, by key: a number, so a request holds no reference-counted pointer.
    pub(crate) route: RouteKey,
    /// Which token the request carried (a number: no copy of the header is kept).
    pub(crate) version: Option<TokenVersion>,
    /// A service clone (not yet polled ready) and a copy of the request, when it can be
    /// replayed. Boxed, like every cold-path state, so the hot-path future stays small.
    pub(crate) replay: Option<Box<(S, Request<B>)>>,
}

pin_project! {
    /// The response future of [`crate::BearerAuth`].
    ///
    /// With a cached token it is the inner service's future plus a check of the status; it
    /// only waits for a token on a cold cache, and after a `401` it may send the request once
    /// more.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
        sent: Option<Sent<S, B>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        Called {
            #[pin]
            fut: S::Future,
        },
        WaitToken {
            token: BoxFuture<Result<(HeaderValue, TokenVersion), entra_mi::Error>>,
            // The instance that was polled ready, and the request.
            call: Option<Box<(S, Request<B>)>>,
        },
        Recover {
            next: BoxFuture<Result<Option<HeaderValue>, entra_mi::Error>>,
            first: Option<Box<S::Response>>,
            again: Option<Box<(S, Request<B>)>>,
        },
        RetryReady {
            again: Option<Box<(S, Request<B>)>>,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(crate) fn passthrough(fut: S::Future) -> Self {
        Self {
            state: State::Called { fut },
            sent: None,
        }
    }

    pub(crate) fn sent(fut: S::Future, sent: Sent<S, B>) -> Self {
        Self {
            state: State::Called { fut },
            sent: Some(sent),
        }
    }

    pub(crate) fn wait_token(
        ready: S,
        request: Request<B>,
        route: BoundRoute,
        replay: Option<Box<(S, Request<B>)>>,
        recover: bool,
    ) -> Self {
        let handle = route.handle().clone();
        let token: BoxFuture<_> = Box::pin(async move { handle.header_versioned().await });
        Self {
            state: State::WaitToken {
                token,
                call: Some(Box::new((ready, request))),
            },
            sent: recover.then(|| Sent {
                route: route.key(),
                // Set once the token arrives.
                version: None,
                replay,
            }),
        }
    }
}

impl<S, B, RB> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Response<RB>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // The hot path, small enough to inline into the caller: the inner future of the first
        // attempt answers with anything but a `401` to a request sent with a cached token.
        if let StateProj::Called { fut } = this.state.as_mut().project() {
            let response = match ready!(fut.poll(cx)) {
                Ok(response) => response,
                Err(e) => return Poll::Ready(Err(e.into())),
            };
            if response.status() != StatusCode::UNAUTHORIZED || this.sent.is_none() {
                return Poll::Ready(Ok(response));
            }
            if let Err(response) = start_recovery(this.state.as_mut(), this.sent, response) {
                return Poll::Ready(Ok(response));
            }
        }
        poll_states(this.state, this.sent, cx)
    }
}

/// After a `401` to a request sent with a cached token (`sent` is taken): moves to the
/// recovery state when the challenge and the request allow a retry; otherwise drops the
/// rejected token if a new one can fix it, and gives the response back.
#[cold]
#[inline(never)]
fn start_recovery<S, B, RB>(
    mut state: Pin<&mut State<S, B>>,
    sent: &mut Option<Sent<S, B>>,
    response: Response<RB>,
) -> Result<(), Response<RB>>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    let Some(Sent {
        route,
        version: Some(version),
        replay,
    }) = sent.take()
    else {
        return Err(response);
    };
    let Some(challenge) = BearerChallenge::from_headers(response.headers()) else {
        return Err(response);
    };
    // Gone only when the router was dropped while the request was in flight.
    let Some(route) = route.route() else {
        return Err(response);
    };
    let Some(again) = replay else {
        route.handle().invalidate_version_if_current(version);
        return Err(response);
    };
    let next: BoxFuture<_> = Box::pin(async move { route.recover(version, &challenge).await });
    state.set(State::Recover {
        next,
        first: Some(Box::new(response)),
        again: Some(again),
    });
    Ok(())
}

/// Every state but the first attempt's answer: waiting for a token, recovering, the retry.
#[inline(never)]
fn poll_states<S, B, RB>(
    mut state: Pin<&mut State<S, B>>,
    sent: &mut Option<Sent<S, B>>,
    cx: &mut Context<'_>,
) -> Poll<Result<Response<RB>, BoxError>>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
{
    loop {
        match state.as_mut().project() {
            StateProj::Called { fut } => {
                let response = ready!(fut.poll(cx)).map_err(Into::into)?;
                if response.status() != StatusCode::UNAUTHORIZED {
                    return Poll::Ready(Ok(response));
                }
                if let Err(response) = start_recovery(state.as_mut(), sent, response) {
                    return Poll::Ready(Ok(response));
                }
            }
            StateProj::WaitToken { token, call } => {
                let (header, version) = ready!(token.as_mut().poll(cx))?;
                let (mut ready_svc, mut request) = *call.take().expect("polled after completion");
                request.headers_mut().insert(AUTHORIZATION, header);
                if let Some(sent) = sent.as_mut() {
                    sent.version = Some(version);
                }
                let fut = ready_svc.call(request);
                state.set(State::Called { fut });
            }
            StateProj::Recover { next, first, again } => {
                let outcome = ready!(next.as_mut().poll(cx));
                let first = *first.take().expect("polled after completion");
                match outcome {
                    Ok(Some(header)) => {
                        let mut again = again.take().expect("polled after completion");
                        again.1.headers_mut().insert(AUTHORIZATION, header);
                        state.set(State::RetryReady { again: Some(again) });
                    }
                    Ok(None) => return Poll::Ready(Ok(first)),
                    Err(e) => {
                        tracing::warn!(error = %e, "no new token after a 401; returning the 401");
                        return Poll::Ready(Ok(first));
                    }
                }
            }
            StateProj::RetryReady { again } => {
                let svc = &mut again.as_mut().expect("polled after completion").0;
                ready!(svc.poll_ready(cx)).map_err(Into::into)?;
                let (mut svc, request) = *again.take().expect("polled after completion");
                let fut = svc.call(request);
                // `sent` is gone: the retry's answer is final.
                state.set(State::Called { fut });
            }
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
