//! [`ValidateToken`]: the service.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{Request, Response};
use tower_service::Service;

use super::future::ResponseFuture;
use super::response::{NoToken, no_token, refused};
use crate::policy::Policy;
use crate::validator::TokenValidator;

/// Lets through requests with a valid token; see the [module documentation](crate::tower).
#[derive(Debug, Clone)]
pub struct ValidateToken<S> {
    inner: S,
    validator: TokenValidator,
    policy: Arc<Policy>,
}

impl<S> ValidateToken<S> {
    pub(crate) fn new(inner: S, validator: TokenValidator, policy: Arc<Policy>) -> Self {
        ValidateToken {
            inner,
            validator,
            policy,
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

    /// The inner service, consuming this one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The bearer token of a request.
fn bearer<B>(req: &Request<B>) -> Result<&str, NoToken> {
    let mut values = req.headers().get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(NoToken::Missing)?;
    if values.next().is_some() {
        return Err(NoToken::Several);
    }
    let value = value.to_str().map_err(|_| NoToken::NotBearer)?;
    let (scheme, token) = value.split_once(' ').ok_or(NoToken::NotBearer)?;
    let token = token.trim_matches(' ');
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(NoToken::NotBearer);
    }
    Ok(token)
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ValidateToken<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        if let http::header::Entry::Occupied(mut entry) = req.headers_mut().entry(AUTHORIZATION) {
            for value in entry.iter_mut() {
                value.set_sensitive(true);
            }
        }
        let cached = match bearer(&req) {
            Err(why) => return ResponseFuture::reject(no_token(why)),
            Ok(token) => match self.validator.validate_cached_with(token, &self.policy) {
                Some(result) => Ok(result),
                None => Err(token.to_owned()),
            },
        };
        match cached {
            Ok(Ok(claims)) => {
                req.extensions_mut().insert(claims);
                ResponseFuture::inner(self.inner.call(req))
            }
            Ok(Err(e)) => ResponseFuture::reject(refused(&e)),
            Err(token) => {
                let validator = self.validator.clone();
                let policy = self.policy.clone();
                let check = Box::pin(async move { validator.validate_with(&token, &policy).await });
                // The service polled ready goes with the request; this one keeps a clone.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::validating(check, req, inner)
            }
        }
    }
}
