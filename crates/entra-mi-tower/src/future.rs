//! The response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use entra_mi::middleware::{BearerChallenge, BoundRoute, RouteKey, SentKey, TokenVersion};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::BoxError;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a request needs beyond its [`SentKey`] to act on a `401`, boxed (like every cold-path
/// state) so the hot-path future stays small.
pub(crate) struct Replay<S, B> {
    /// A service clone (not yet polled ready) and a copy of the request, when it can be
    /// replayed.
    pub(crate) again: Option<(S, Request<B>)>,
    /// The route and token version, when they did not fit a [`SentKey`].
    pub(crate) sent: Option<(RouteKey, TokenVersion)>,
}

impl<S, B> Replay<S, B> {
    /// What a request sent on `route` with the token of `version` keeps: the key, and the box
    /// (`replay`, the copy to replay if any) only when there is something to replay or the key
    /// did not fit one word.
    #[inline]
    pub(crate) fn keep(
        route: &BoundRoute,
        version: TokenVersion,
        mut replay: Option<Box<Self>>,
    ) -> (Option<SentKey>, Option<Box<Self>>) {
        let key = route.sent_key(version);
        if key.is_none() {
            replay
                .get_or_insert_with(|| {
                    Box::new(Self {
                        again: None,
                        sent: None,
                    })
                })
                .sent = Some((route.key(), version));
        }
        (key, replay)
    }
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
        // Which route and token the request was sent with (a number: no reference-counted
        // pointer, no copy of the header), while a `401` can still be acted on.
        key: Option<SentKey>,
        replay: Option<Box<Replay<S, B>>>,
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
            // The route, when a `401` is to be acted on.
            route: Option<BoundRoute>,
        },
        Recover {
            next: BoxFuture<Result<Option<HeaderValue>, entra_mi::Error>>,
            first: Option<Box<S::Response>>,
            again: Option<Box<Replay<S, B>>>,
        },
        RetryReady {
            again: Option<Box<Replay<S, B>>>,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    #[inline]
    pub(crate) fn sent(
        fut: S::Future,
        key: Option<SentKey>,
        replay: Option<Box<Replay<S, B>>>,
    ) -> Self {
        Self {
            state: State::Called { fut },
            key,
            replay,
        }
    }

    pub(crate) fn wait_token(
        ready: S,
        request: Request<B>,
        route: BoundRoute,
        replay: Option<Box<Replay<S, B>>>,
        recover: bool,
    ) -> Self {
        let handle = route.handle().clone();
        let token: BoxFuture<_> = Box::pin(async move { handle.header_with_version().await });
        Self {
            state: State::WaitToken {
                token,
                call: Some(Box::new((ready, request))),
                route: recover.then_some(route),
            },
            key: None,
            // The route and version are known once the token arrives.
            replay,
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
            if response.status() != StatusCode::UNAUTHORIZED
                || (this.key.is_none() && this.replay.is_none())
            {
                return Poll::Ready(Ok(response));
            }
            if let Err(response) =
                start_recovery(this.state.as_mut(), this.key, this.replay, response)
            {
                return Poll::Ready(Ok(response));
            }
        }
        poll_states(this.state, this.key, this.replay, cx)
    }
}

/// After a `401` to a request sent with a cached token (what it kept is taken): moves to the
/// recovery state when the challenge and the request allow a retry; otherwise drops the
/// rejected token if a new one can fix it, and gives the response back.
#[cold]
#[inline(never)]
fn start_recovery<S, B, RB>(
    mut state: Pin<&mut State<S, B>>,
    key: &mut Option<SentKey>,
    replay: &mut Option<Box<Replay<S, B>>>,
    response: Response<RB>,
) -> Result<(), Response<RB>>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    let replay = replay.take();
    let sent = match (key.take(), replay.as_ref().and_then(|r| r.sent)) {
        (Some(key), _) => (key.route_key(), key.version()),
        (None, Some(sent)) => sent,
        (None, None) => return Err(response),
    };
    let (route, version) = sent;
    let Some(challenge) = BearerChallenge::from_headers(response.headers()) else {
        return Err(response);
    };
    // Gone only when the router was dropped while the request was in flight.
    let Some(route) = route.route() else {
        return Err(response);
    };
    let Some(again) = replay.filter(|r| r.again.is_some()) else {
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
    key: &mut Option<SentKey>,
    replay: &mut Option<Box<Replay<S, B>>>,
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
                if let Err(response) = start_recovery(state.as_mut(), key, replay, response) {
                    return Poll::Ready(Ok(response));
                }
            }
            StateProj::WaitToken { token, call, route } => {
                let (header, version) = ready!(token.as_mut().poll(cx))?;
                let (mut ready_svc, mut request) = *call.take().expect("polled after completion");
                request.headers_mut().insert(AUTHORIZATION, header);
                if let Some(route) = route.take() {
                    (*key, *replay) = Replay::keep(&route, version, replay.take());
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
                        if let Some((_, request)) = again.again.as_mut() {
                            request.headers_mut().insert(AUTHORIZATION, header);
                        }
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
                let (svc, _) = again
                    .as_mut()
                    .and_then(|r| r.again.as_mut())
                    .expect("polled after completion");
                ready!(svc.poll_ready(cx)).map_err(Into::into)?;
                let (mut svc, request) = again
                    .take()
                    .and_then(|r| r.again)
                    .expect("polled after completion");
                let fut = svc.call(request);
                // What the first attempt kept is gone: the retry's answer is final.
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
