//! The answers to refused requests (RFC 6750 section 3).

use http::header::{HeaderValue, WWW_AUTHENTICATE};
use http::{Response, StatusCode};

use crate::error::{Check, ValidationError};

/// Why no token could be read from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoToken {
    Missing,
    NotBearer,
    Several,
}

pub(crate) fn no_token<B: Default>(why: NoToken) -> Response<B> {
    let description = match why {
        NoToken::Missing => "no bearer token",
        NoToken::NotBearer => "the Authorization header is not a bearer token",
        NoToken::Several => "more than one Authorization header",
    };
    challenge(StatusCode::UNAUTHORIZED, "invalid_token", description)
}

pub(crate) fn refused<B: Default>(e: &ValidationError) -> Response<B> {
    let check = e.check();
    if check == Check::Discovery {
        let mut r = Response::new(B::default());
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return r;
    }
    // The check's name only: a detail may quote claims, which are not for the header.
    if check.is_policy() {
        challenge(StatusCode::FORBIDDEN, "insufficient_scope", check.as_str())
    } else {
        challenge(StatusCode::UNAUTHORIZED, "invalid_token", check.as_str())
    }
}

fn challenge<B: Default>(status: StatusCode, error: &str, description: &str) -> Response<B> {
    let mut r = Response::new(B::default());
    *r.status_mut() = status;
    let value = format!("Bearer error=\"{error}\", error_description=\"{description}\"");
    if let Ok(v) = HeaderValue::try_from(value) {
        r.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    r
}
