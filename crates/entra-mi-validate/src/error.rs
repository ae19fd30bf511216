//! Why a token was refused, and why a validator could not be built.

use std::fmt;

/// The check a token failed, in the order they run: [`Malformed`](Check::Malformed),
/// [`Algorithm`](Check::Algorithm), [`Key`](Check::Key), [`Signature`](Check::Signature),
/// then the claims ([`Tenant`](Check::Tenant), [`Issuer`](Check::Issuer),
/// [`Audience`](Check::Audience), [`Expired`](Check::Expired) /
/// [`NotYetValid`](Check::NotYetValid)), then the policy ([`Role`](Check::Role),
/// [`Scope`](Check::Scope), [`TokenType`](Check::TokenType), [`Caller`](Check::Caller)).
/// [`Discovery`](Check::Discovery) is the authority's fault, not the token's.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// Not a compact JWS of three base64url parts with JSON header and payload, over
    /// 16 KiB, a `crit` header, or a registered claim of the wrong JSON type.
    Malformed,
    /// The header's `alg` is not `RS256`.
    Algorithm,
    /// No key of the authority's key set has the header's `kid`, or the key's `issuer` names
    /// another tenant than the token's issuer.
    Key,
    /// The RS256 signature does not verify with that key.
    Signature,
    /// The issuer is not one the discovery documents name, or its tenant is not the `tid`.
    Issuer,
    /// The `tid` claim is missing or not an allowed tenant.
    Tenant,
    /// The `aud` claim is none of the accepted audiences.
    Audience,
    /// `exp` is missing or `exp` + clock skew is not after now.
    Expired,
    /// `nbf` − clock skew is after now.
    NotYetValid,
    /// A required app role is missing from `roles`.
    Role,
    /// None of the accepted delegated scopes is in `scp`.
    Scope,
    /// An app-only token was required (`idtyp` = `app`).
    TokenType,
    /// The calling application (`azp`, or `appid` in v1 tokens) is not allowed.
    Caller,
    /// The authority's discovery document or key set could not be fetched or read.
    Discovery,
}

impl Check {
    /// The name used in messages and by `entra-mi validate`: `malformed`, `algorithm`, `key`,
    /// `signature`, `issuer`, `tenant`, `audience`, `expired`, `not_yet_valid`, `role`,
    /// `scope`, `token_type`, `caller`, `discovery`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Check::Malformed => "malformed",
            Check::Algorithm => "algorithm",
            Check::Key => "key",
            Check::Signature => "signature",
            Check::Issuer => "issuer",
            Check::Tenant => "tenant",
            Check::Audience => "audience",
            Check::Expired => "expired",
            Check::NotYetValid => "not_yet_valid",
            Check::Role => "role",
            Check::Scope => "scope",
            Check::TokenType => "token_type",
            Check::Caller => "caller",
            Check::Discovery => "discovery",
        }
    }

    /// Whether the token itself is valid and only a policy (roles, scopes, token type,
    /// calling app) refused it: an API answers `403 insufficient_scope` then, `401
    /// invalid_token` otherwise.
    pub const fn is_policy(self) -> bool {
        matches!(
            self,
            Check::Role | Check::Scope | Check::TokenType | Check::Caller
        )
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A refused token: which check failed and a human detail.
///
/// It displays as `<check>: <detail>`. The detail never holds the token or its signature;
/// it may quote a claim of a verified token (an unexpected audience, say) and, cut to 64
/// characters, a header's `alg` or `kid`.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", check.as_str())]
pub struct ValidationError {
    check: Check,
    detail: Box<str>,
}

impl fmt::Debug for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidationError")
            .field("check", &self.check)
            .field("detail", &self.detail)
            .finish()
    }
}

impl ValidationError {
    pub(crate) fn new(check: Check, detail: impl Into<Box<str>>) -> Self {
        ValidationError {
            check,
            detail: detail.into(),
        }
    }

    /// The check that failed.
    pub fn check(&self) -> Check {
        self.check
    }

    /// The human detail (the text after `<check>: `).
    pub fn detail(&self) -> &str {
        &self.detail
    }

    pub(crate) fn malformed(detail: impl Into<Box<str>>) -> Self {
        Self::new(Check::Malformed, detail)
    }

    pub(crate) fn discovery(detail: impl Into<Box<str>>) -> Self {
        Self::new(Check::Discovery, detail)
    }
}

/// Why [`TokenValidatorBuilder::build`](crate::TokenValidatorBuilder::build) refused its
/// settings.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No audience was given: every token would be refused.
    #[error("no audience: give the API's App ID URI and/or client id with `audience`")]
    NoAudience,
    /// Neither tenants nor "any tenant" were chosen (or both were).
    #[error("choose the tenants to accept with `tenant`, or `any_tenant` (not both)")]
    TenantChoice,
    /// The authority is not an `https` URL (or `http` on a loopback host).
    #[error("authority {authority:?}: {reason}")]
    Authority {
        /// The authority as given.
        authority: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A tenant id is empty or holds characters other than letters, digits, `-`, `_`, `.`.
    #[error("tenant {0:?} is not a tenant id or domain name")]
    Tenant(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
}

/// A value from the token's header, safe to show: at most 64 characters of `[A-Za-z0-9._~+/=-]`,
/// otherwise a placeholder.
pub(crate) fn shown(value: &str) -> String {
    let ok = |c: char| c.is_ascii_alphanumeric() || "._~+/=-".contains(c);
    if value.len() <= 64 && value.chars().all(ok) {
        format!("{value:?}")
    } else {
        "<a value not shown>".to_owned()
    }
}

/// The kind of a JSON error, never its text (which can quote the input).
pub(crate) fn json_error_kind(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "a member of the wrong type or a duplicate",
        serde_json::error::Category::Eof => "truncated",
    }
}
