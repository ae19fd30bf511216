//! Access tokens.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;

use crate::secret::Secret;

/// An access token: the secret string, its type and when it expires.
///
/// `Debug` and `Display` never show the secret; read it with [`AccessToken::secret`] where it
/// is really needed, or take a ready, sensitive-marked header with
/// [`AccessToken::header_value`]. Cloning is cheap (the secret is shared).
#[derive(Clone)]
pub struct AccessToken {
    secret: Arc<Secret>,
    token_type: Arc<str>,
    expires_on: SystemTime,
    refresh_on: Option<SystemTime>,
    pub(crate) monotonic: Option<MonotonicDeadlines>,
}

/// Deadlines on the monotonic clock of the credential's [`crate::TimeSource`], computed from
/// `expires_in` / `refresh_in` against the instant the request was sent: immune to wall-clock
/// skew between this machine and the token service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MonotonicDeadlines {
    pub(crate) expires_at: Duration,
    pub(crate) refresh_at: Option<Duration>,
}

impl AccessToken {
    /// A bearer token expiring at `expires_on`.
    pub fn new(secret: impl Into<String>, expires_on: SystemTime) -> Self {
        Self {
            secret: Arc::new(Secret::new(secret)),
            token_type: Arc::from("Bearer"),
            expires_on,
            refresh_on: None,
            monotonic: None,
        }
    }

    /// Sets the time after which the token should be refreshed (the source's `refresh_in`).
    pub fn with_refresh_on(mut self, refresh_on: SystemTime) -> Self {
        self.refresh_on = Some(refresh_on);
        self
    }

    /// Sets the token type (default `Bearer`).
    pub fn with_token_type(mut self, token_type: &str) -> Self {
        self.token_type = Arc::from(token_type);
        self
    }

    /// The secret token string. Handle with care: never log it.
    pub fn secret(&self) -> &str {
        self.secret.expose()
    }

    /// The token type, `Bearer` unless the source said otherwise.
    pub fn token_type(&self) -> &str {
        &self.token_type
    }

    /// When the token expires.
    pub fn expires_on(&self) -> SystemTime {
        self.expires_on
    }

    /// When the token should be refreshed, if known. Tokens served by a
    /// [`crate::TokenProvider`] carry the refresh point the cache computed.
    pub fn refresh_on(&self) -> Option<SystemTime> {
        self.refresh_on
    }

    /// `expires_on` as seconds since the Unix epoch.
    pub fn expires_on_unix(&self) -> u64 {
        self.expires_on
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// True when `other` carries the same secret.
    pub fn is_same_token(&self, other: &AccessToken) -> bool {
        Arc::ptr_eq(&self.secret, &other.secret) || self.secret() == other.secret()
    }

    /// `Authorization` header value (`Bearer <token>`), marked sensitive so `http`'s `Debug`
    /// and well-behaved loggers redact it. `None` when the token or its type holds characters
    /// an HTTP header cannot carry, or the type is empty: only a token built by hand (a custom
    /// credential's) can be so, since this crate's parsers refuse such answers.
    pub fn header_value(&self) -> Option<HeaderValue> {
        if !Self::is_header_safe(self.secret()) || !Self::is_header_safe(&self.token_type) {
            return None;
        }
        crate::http::sensitive_authorization(&self.token_type, self.secret())
    }

    /// How long the token stays valid from now: by the deadline on `time`'s monotonic clock
    /// when a parser of this crate set one (the earliest the answer stated), else by
    /// `expires_on` on the wall clock.
    pub(crate) fn remaining(&self, time: &crate::time::TimeSource) -> Duration {
        match self.monotonic {
            Some(m) => m.expires_at.saturating_sub(time.monotonic()),
            None => self
                .expires_on
                .duration_since(time.system_now())
                .unwrap_or_default(),
        }
    }

    pub(crate) fn with_monotonic(mut self, deadlines: MonotonicDeadlines) -> Self {
        self.monotonic = Some(deadlines);
        self
    }

    pub(crate) fn set_refresh_on(&mut self, refresh_on: SystemTime) {
        self.refresh_on = Some(refresh_on);
    }

    /// True if `secret` is usable in an HTTP header (visible ASCII, no spaces or controls).
    pub(crate) fn is_header_safe(secret: &str) -> bool {
        !secret.is_empty() && secret.bytes().all(|b| (0x21..0x7f).contains(&b))
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field(
                "token",
                &format_args!("<redacted {} chars>", self.secret().len()),
            )
            .field("token_type", &&*self.token_type)
            .field("expires_on_unix", &self.expires_on_unix())
            .field(
                "refresh_on_unix",
                &self
                    .refresh_on
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs()),
            )
            .finish()
    }
}

impl fmt::Display for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} token (redacted), expires at unix time {}",
            self.token_type,
            self.expires_on_unix()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_secret() {
        let t = AccessToken::new(
            "eyJ.canary-secret.sig",
            UNIX_EPOCH + Duration::from_secs(10),
        );
        let header = t.header_value().unwrap();
        let shown = format!("{t:?} {t} {header:?}");
        assert!(!shown.contains("canary"), "{shown}");
        assert!(header.is_sensitive());
        assert_eq!(header.as_bytes(), b"Bearer eyJ.canary-secret.sig");
    }

    #[test]
    fn a_token_a_header_cannot_carry_has_no_header_value() {
        let at = UNIX_EPOCH + Duration::from_secs(10);
        for t in [
            AccessToken::new("two words", at),
            AccessToken::new("line\nbreak", at),
            AccessToken::new("", at),
            AccessToken::new("ok", at).with_token_type(""),
            AccessToken::new("ok", at).with_token_type("Bear er"),
        ] {
            assert!(t.header_value().is_none(), "{t:?}");
        }
    }
}
