#![doc = include_str!("../README.md")]
//!
//! # The request path
//!
//! * A request that matches no route (see [`entra_mi::TokenRouter`]: exact scheme, host and
//!   port, path prefix on whole segments), or that already carries `Authorization`, goes to
//!   the inner service untouched.
//! * With a fresh or stale token cached, the header is attached synchronously in `call` and
//!   the inner service's future is returned inside [`ResponseFuture`] — no box, no await.
//! * Only a cold cache waits. Then the inner service that was polled ready moves into the
//!   future (clone + [`std::mem::replace`]), so readiness reserved by `poll_ready` (a
//!   `Buffer` slot, a concurrency permit) is used by the very call it was reserved for.
//!
//! `poll_ready` is the inner service's. Errors are [`BoxError`]s: the inner service's error,
//! or an [`entra_mi::Error`] when no token could be had (downcast to read it).
//!
//! # 401 recovery
//!
//! A `401` whose `WWW-Authenticate` is a Bearer challenge with `error="invalid_token"`, or a
//! claims challenge (`error="insufficient_claims"`, base64 `claims`), drops the token from
//! the cache if it is still the cached one. If the request can be replayed — choose
//! [`CloneBody`] with [`BearerAuthLayerBuilder::replay`] when the body type is `Clone`, or
//! write a [`ReplayRequest`] — the new token is fetched (with the claims) and the request is
//! sent once more, after polling a clone of the inner service ready. Never more than one
//! retry; if the source returns the rejected token again (managed-identity endpoints cache
//! tokens), the `401` is returned as is. Replaying costs a clone of the request and of the
//! inner service per routed call, so it is opt-in.
//!
//! A request in flight keeps one word for this — an [`entra_mi::middleware::SentKey`]: its route's key and
//! the [`entra_mi::middleware::TokenVersion`] it was sent with — not a copy of the header, so the response
//! future is the inner one plus two words. Turn recovery off
//! with [`BearerAuthLayerBuilder::recover_unauthorized`]: responses then come back as they are
//! and the response future adds nothing to the inner one.
//!
//! # Ordering with tower-http
//!
//! Put this layer *inside* (after) `SetSensitiveRequestHeadersLayer` and `TraceLayer` in a
//! `ServiceBuilder`, so tracing sees the request as the caller made it, without the token;
//! the header this layer adds is marked sensitive anyway, so a `TraceLayer` placed inside it
//! prints `Sensitive` for it:
//!
//! ```
//! use entra_mi::{Route, TokenProvider};
//! use entra_mi_tower::BearerAuthLayer;
//! use http::header::AUTHORIZATION;
//! use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
//! use tower_http::trace::TraceLayer;
//!
//! # fn run<S: Clone>(provider: &TokenProvider, hyper_client: S) -> Result<(), entra_mi::Error> {
//! let bearer_auth = BearerAuthLayer::builder(provider)
//!     .route(Route::microsoft_graph())
//!     .build()?;
//! let client = tower::ServiceBuilder::new()
//!     .layer(SetSensitiveRequestHeadersLayer::new([AUTHORIZATION])) // outermost
//!     .layer(TraceLayer::new_for_http())
//!     .layer(bearer_auth) // adds the token closest to the wire
//!     .service(hyper_client);
//! # let _ = client; Ok(()) }
//! ```
//!
//! Under a `tower::buffer::Buffer`, either order works: `Buffer` clones are cheap and the
//! layer's futures are `Send + 'static` when the inner service's are.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod future;
mod layer;
mod replay;
mod service;

pub use future::ResponseFuture;
pub use layer::{BearerAuthLayer, BearerAuthLayerBuilder};
pub use replay::{CloneBody, NoReplay, ReplayRequest};
pub use service::BearerAuth;

/// The boxed error type of [`BearerAuth`]: `Box<dyn Error + Send + Sync>`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
