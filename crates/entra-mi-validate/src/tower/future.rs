//! [`ResponseFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::response::refused;
use crate::claims::Claims;
use crate::error::ValidationError;

type Check = Pin<Box<dyn Future<Output = Result<Claims, ValidationError>> + Send>>;

pin_project! {
    /// The response future of [`ValidateToken`](super::ValidateToken): the inner service's
    /// future, a refusal, or (for a token seen for the first time) the verification first.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        Inner {
            #[pin]
            fut: S::Future,
        },
        Validating {
            check: Check,
            req: Option<Request<B>>,
            inner: S,
        },
        Refused {
            response: Option<S::Response>,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(crate) fn inner(fut: S::Future) -> Self {
        ResponseFuture {
            state: State::Inner { fut },
        }
    }

    pub(crate) fn reject(response: S::Response) -> Self {
        ResponseFuture {
            state: State::Refused {
                response: Some(response),
            },
        }
    }

    pub(crate) fn validating(check: Check, req: Request<B>, inner: S) -> Self {
        ResponseFuture {
            state: State::Validating {
                check,
                req: Some(req),
                inner,
            },
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Inner { .. } => "inner",
            State::Validating { .. } => "validating",
            State::Refused { .. } => "refused",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Inner { fut } => return fut.poll(cx),
                StateProj::Refused { response } => {
                    return Poll::Ready(Ok(response
                        .take()
                        .expect("ResponseFuture polled after completion")));
                }
                StateProj::Validating { check, req, inner } => {
                    let result = ready!(check.as_mut().poll(cx));
                    let mut req = req.take().expect("ResponseFuture polled after completion");
                    let next = match result {
                        Ok(claims) => {
                            req.extensions_mut().insert(claims);
                            State::Inner {
                                fut: inner.call(req),
                            }
                        }
                        Err(e) => State::Refused {
                            response: Some(refused(&e)),
                        },
                    };
                    this.state.set(next);
                }
            }
        }
    }
}
