//! The axum extractor: [`Claims`] from the request's extensions, put there by
//! [`ValidateTokenLayer`](crate::ValidateTokenLayer).

use std::convert::Infallible;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use crate::claims::Claims;

/// The verified claims of the request's token. A handler taking `Claims` runs only behind a
/// [`ValidateTokenLayer`](crate::ValidateTokenLayer); `Option<Claims>` is `None` elsewhere.
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Claims>()
            .cloned()
            .ok_or(ClaimsRejection(()))
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> OptionalFromRequestParts<S> for Claims {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Claims>().cloned())
    }
}

/// A handler asked for [`Claims`] but no [`ValidateTokenLayer`](crate::ValidateTokenLayer)
/// stands in front of it: a server misconfiguration, answered `500` (fail closed).
#[derive(Debug)]
pub struct ClaimsRejection(());

impl IntoResponse for ClaimsRejection {
    fn into_response(self) -> Response {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "no verified token: the route has no ValidateTokenLayer in front of it",
        )
            .into_response()
    }
}
