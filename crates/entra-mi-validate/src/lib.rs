#![doc = include_str!("../README.md")]
//!
//! # What is checked, in order
//!
//! The first failing check is reported ([`ValidationError::check`]):
//!
//! 1. **malformed** — at most 16 KiB; three base64url parts; header and payload JSON
//!    objects; no `crit` header member (no critical extension is understood); registered
//!    claims of their JSON types.
//! 2. **algorithm** — the header's `alg` is `RS256` (`none`, `HS256`, `ES256`, … are refused,
//!    so a token "signed" with the public key as an HMAC secret goes nowhere). The token's
//!    `jku`, `jwk`, `x5u` and `x5c` headers are ignored: keys come from the authority only.
//! 3. **key** — the key set entry whose `kid` is the header's. Entra's keys carry no `alg`
//!    member and are used as RSA signing keys. An unknown `kid` makes the validator fetch the
//!    key set again — at most once per [re-fetch
//!    interval](TokenValidatorBuilder::unknown_key_refetch_interval) (5 minutes; the first
//!    fetch does not count), so a key published by a rotation is picked up at once while a
//!    flood of invented `kid`s costs the authority one request. A key with an `issuer` member
//!    (v2 key sets put one on every key; the same keys sign v1 tokens) verifies only tokens
//!    whose issuer names the same tenant, `{tenantid}` being the token's `tid`.
//! 4. **signature** — RS256 (PKCS #1 v1.5, SHA-256) with that key.
//! 5. The claims, now verified: **tenant** (`tid` one of the [tenants], unless
//!    [any tenant](TokenValidatorBuilder::any_tenant)), **issuer** (`iss` is a discovery
//!    document's `issuer` with `{tenantid}` replaced by `tid`, and names the tenant `tid`),
//!    **audience** (`aud` exactly one of the [audiences]), **expired** (`exp` required;
//!    refused when `exp` plus the skew ≤ now) and **not_yet_valid** (`nbf` minus the skew >
//!    now), with a [skew](TokenValidatorBuilder::clock_skew) of 5 minutes.
//! 6. The [`Policy`]: **role** (all of / any of `roles`), **scope** (`scp`), **token_type**
//!    (app-only, `idtyp`), **caller** (`azp`/`appid` allow-list). These make
//!    [`Check::is_policy`] errors: the token is valid, the caller may not do this.
//!
//! Claims are never trusted before the signature verifies: a claim can only make a token be
//! refused earlier (the key's `issuer` rule reads `iss` and `tid` to refuse), never accepted.
//! [`ValidationError`] names the check and a detail that never holds the token or its
//! signature; header values it quotes are cut to 64 safe characters.
//!
//! [tenants]: TokenValidatorBuilder::tenant
//! [audiences]: TokenValidatorBuilder::audience
//!
//! # Keys and issuers
//!
//! The first validation fetches, for each tenant (or `common` for any tenant),
//! `{authority}/{tenant}/v2.0/.well-known/openid-configuration` (its `jwks_uri` and the v2
//! `issuer`) and `{authority}/{tenant}/.well-known/openid-configuration` (the v1 `issuer`:
//! managed-identity tokens are v1 tokens unless the API asks for v2), then the key set.
//! Concurrent first requests wait for that one fetch and share its result. The keys are
//! fetched again in the background after the [refresh
//! interval](TokenValidatorBuilder::key_refresh_interval) (a day) while the keys in hand stay
//! in use; a refresh that fails keeps them and is tried again after the re-fetch interval.
//! Tokens verified by a key the authority withdrew are forgotten. While there are no keys
//! yet, a failed fetch's error answers every validation for a while (1 s, doubling with each
//! failure in a row, at most 30 s) before the authority is asked again: one that is down or
//! throttling is not asked once per request.
//!
//! Only `https` URLs are fetched, or `http` on loopback hosts (127.0.0.0/8, `::1`,
//! `localhost`), through the proxy the environment names (except for a loopback
//! authority), with no redirects, a [timeout](TokenValidatorBuilder::request_timeout) per
//! request and bodies capped at [`MAX_DOCUMENT_BYTES`] (1 MiB; see there why). A failed,
//! timed-out or unreadable fetch is a [`Check::Discovery`] error. See
//! <https://learn.microsoft.com/en-us/entra/identity-platform/access-tokens#validate-tokens>.
//!
//! # Tokens seen before
//!
//! A verified token is remembered by its exact text until it expires (bounded, evicting; the
//! whole token is compared, never only a hash). Callers reuse their token — managed-identity
//! tokens live 24 hours — so most requests cost a lookup instead of an RSA verification, and
//! [`TokenValidator::validate_cached_with`] answers them without allocating or awaiting.
//!
//! # Crates used, and why
//!
//! RS256 is verified with `aws-lc-rs` directly, on keys parsed once when the key set is
//! fetched. `aws-lc-rs` is already the workspace's crypto (rustls's provider); measured on
//! the project's machine (2 cores), verifying a 2048-bit RS256 signature took 22 µs with a
//! pre-parsed `aws-lc-rs` key, 27 µs through `jsonwebtoken` 12 on its `aws_lc_rs` backend
//! (it rebuilds the key from `n` and `e` on every call) and 104 µs on its `rust_crypto`
//! backend. The token's own parsing is ours too (`base64` and `serde_json`), so each check
//! of the contract above reports its own error, in its order; `jsonwebtoken` serves as the
//! baseline of the benchmark. Keys and documents are fetched with `reqwest` (rustls); the
//! key set in force sits in an `arc-swap`.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_debug_implementations, rust_2018_idioms)]

mod builder;
mod cache;
mod claims;
mod clock;
mod error;
mod issuer;
mod jwt;
mod keys;
mod policy;
mod validator;

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

#[cfg(feature = "axum")]
mod extract;

pub use builder::{DEFAULT_AUTHORITY, TokenValidatorBuilder};
pub use claims::Claims;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub use clock::ManualClock;
pub use error::{BuildError, Check, ValidationError};
pub use jwt::MAX_TOKEN_LEN;
pub use keys::fetch::MAX_DOCUMENT_BYTES;
pub use policy::Policy;
pub use validator::TokenValidator;

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use crate::tower::{ValidateToken, ValidateTokenLayer};

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use extract::ClaimsRejection;

/// The token parser, for the fuzz targets only (feature `fuzzing`; not a supported API).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz {
    /// Parses `token` as the validator does before any key is involved: the length of the
    /// signed part, `alg` and `kid`, or the error.
    pub fn parse(
        token: &str,
    ) -> Result<(usize, Option<String>, Option<String>), crate::ValidationError> {
        crate::jwt::parse_summary(token)
    }
}
