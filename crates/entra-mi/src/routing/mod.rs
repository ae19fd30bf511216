//! Which requests get which token: the routing table both middlewares share, and what to do
//! with a `401` challenge.
//!
//! A [`TokenRouter`] maps a request URL to the [`TokenHandle`](crate::TokenHandle) of one
//! audience. A route compares scheme, host and port **exactly** (never as string prefixes, so
//! `graph.microsoft.com.evil.example` is not Graph), and an optional path prefix on whole
//! segments (`/api` matches `/api` and `/api/x`, not `/apix`); the most specific route wins.
//! Everything else passes through untouched: a token for one API never reaches another host.
//!
//! ```
//! use entra_mi::{AccessToken, Audience, Route, TokenRouter, TokenProvider};
//! # #[derive(Debug)] struct Fixed;
//! # #[async_trait::async_trait]
//! # impl entra_mi::TokenCredential for Fixed {
//! #     async fn get_token(&self, _: &entra_mi::TokenRequest) -> entra_mi::Result<AccessToken> {
//! #         Ok(AccessToken::new("t", std::time::SystemTime::now() + std::time::Duration::from_secs(3600)))
//! #     }
//! #     fn name(&self) -> &str { "fixed" }
//! # }
//! # let provider = TokenProvider::new(Fixed);
//! let router = TokenRouter::builder(&provider)
//!     .route(Route::microsoft_graph())
//!     .route(Route::api("11111111-2222-3333-4444-555555555555", "https://orders.example.com/api")?)
//!     .build()?;
//!
//! let hit = |url: &str| router.match_url(&url.parse().unwrap()).map(|r| r.audience().to_string());
//! assert_eq!(hit("https://graph.microsoft.com/v1.0/me").as_deref(), Some("https://graph.microsoft.com"));
//! assert_eq!(
//!     hit("https://orders.example.com/api/orders/7").as_deref(),
//!     Some("api://11111111-2222-3333-4444-555555555555"),
//! );
//! assert_eq!(hit("https://orders.example.com/apix"), None);
//! assert_eq!(hit("https://graph.microsoft.com.evil.example/v1.0/me"), None);
//! assert_eq!(hit("http://graph.microsoft.com/v1.0/me"), None);
//! # Ok::<(), entra_mi::Error>(())
//! ```

mod bound;
mod builder;
mod challenge;
mod matching;
mod route;
mod table;

#[cfg(feature = "test-util")]
pub use bound::__route_keys_past_32_bits;
pub use bound::{BoundRoute, RouteKey, SentKey};
pub use builder::TokenRouterBuilder;
pub use challenge::BearerChallenge;
pub use route::Route;
#[cfg(feature = "test-util")]
pub(crate) use table::INDEX_FROM;
pub use table::TokenRouter;
