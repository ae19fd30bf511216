//! A tower layer that lets through only requests with a valid Entra token.
//!
//! [`ValidateTokenLayer`] reads `Authorization: Bearer <token>`, validates the token with a
//! [`TokenValidator`](crate::TokenValidator) and a [`Policy`](crate::Policy), puts the
//! verified [`Claims`](crate::Claims) into the request's extensions and calls the inner
//! service; otherwise it answers itself, as RFC 6750 says
//! (<https://www.rfc-editor.org/rfc/rfc6750#section-3>), without calling the inner service:
//!
//! | the token | status | `WWW-Authenticate` |
//! |---|---|---|
//! | missing, malformed, expired, badly signed, for another audience or tenant … | `401` | `Bearer error="invalid_token", error_description="<check>"` |
//! | valid, but the policy refuses it (a missing app role, …) | `403` | `Bearer error="insufficient_scope", error_description="<check>"` |
//! | cannot be checked: the authority's keys are unreachable | `503` | — |
//!
//! The answer never holds the token; its body is empty. The request's `Authorization` header
//! is marked sensitive, so a `TraceLayer` inside this one prints `Sensitive`.
//!
//! Put a layer per route for per-route policies (axum's `route_layer`):
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use entra_mi_validate::{Claims, Policy, TokenValidator, ValidateTokenLayer};
//!
//! async fn list_orders(claims: Claims) -> String {
//!     format!("orders for {}", claims.app_id().unwrap_or("?"))
//! }
//!
//! # fn app() -> Result<Router, entra_mi_validate::BuildError> {
//! let validator = TokenValidator::builder()
//!     .audience("api://orders")
//!     .tenant("4e7a1f2c-5b3d-4c8e-9a61-0d2f3b4c5e6f")
//!     .build()?;
//! let read = Policy::new().require_roles(["Orders.Read"]);
//! let write = Policy::new().require_roles(["Orders.Write"]);
//! Ok(Router::new()
//!     .route("/orders", get(list_orders).route_layer(ValidateTokenLayer::with_policy(validator.clone(), read)))
//!     .route("/orders/new", get(list_orders).route_layer(ValidateTokenLayer::with_policy(validator, write))))
//! # }
//! ```
//!
//! # The request path
//!
//! A token seen before is answered synchronously in `call` (a lookup, no RSA) and the inner
//! service's future is returned inside [`ResponseFuture`] — no box. Only a token seen for the
//! first time is verified in a boxed future; the inner service polled ready then moves into
//! that future (clone + [`std::mem::replace`]), so the readiness reserved by `poll_ready` is
//! used by the call it was reserved for. Errors are the inner service's: refusals are
//! responses.
//!
//! This is a layer of its own rather than tower-http's `AsyncRequireAuthorizationLayer`,
//! whose authorizer returns a future for every request: the repeat-token path would then
//! box (or name) a future per request and copy the token out of the request. Measured
//! (`cargo bench --bench validate`, a remembered token, a whole axum request), the same
//! validator behind tower-http's layer takes about 1.08× as long per request as behind this
//! one; see `BENCHMARKS.md`.

mod future;
mod layer;
mod response;
mod service;

pub use future::ResponseFuture;
pub use layer::ValidateTokenLayer;
pub use service::ValidateToken;
