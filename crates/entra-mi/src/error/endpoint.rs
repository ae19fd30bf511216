//! The token-endpoint family: Entra's v2.0 token endpoint.

use std::fmt;

use super::source::Unavailable;

/// Entra's token endpoint refused the request or could not be used.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TokenEndpointError {
    /// The Entra token endpoint refused the request: the service's error code, its AADSTS
    /// code, trace and correlation ids, and a hint for the common codes.
    #[error("{credential}: token endpoint {endpoint} refused the request: {error}")]
    Refused {
        /// Which credential asked.
        credential: String,
        /// The token endpoint URL.
        endpoint: String,
        /// The service's error.
        #[source]
        error: EntraError,
    },
    /// The Entra token endpoint could not be reached or did not answer like a token
    /// endpoint: connection failure, timeout, redirect, HTML or other non-JSON body, oversized
    /// body, or a malformed token response. Unlike a managed-identity source that is not
    /// there, this does not count as [`Error::is_unavailable`](crate::Error::is_unavailable):
    /// the credential is configured, so a chain stops here.
    #[error("{credential}: token endpoint {endpoint} unavailable: {reason}")]
    Unavailable {
        /// Which credential asked.
        credential: String,
        /// The token endpoint URL.
        endpoint: String,
        /// What happened.
        #[source]
        reason: Unavailable,
    },
}

/// An error answer of the Entra v2.0 token endpoint.
///
/// The `error_description` is cut at its first line (Entra appends trace, correlation id and
/// timestamp lines, kept separately here); the rest of the body is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntraError {
    /// HTTP status.
    pub status: u16,
    /// The OAuth `error` code (`invalid_client`, `unauthorized_client`, …).
    pub code: Option<String>,
    /// The first line of `error_description` (truncated to 1 KiB).
    pub description: Option<String>,
    /// The AADSTS codes (`error_codes`, or the `AADSTSnnnn:` prefix of the description).
    pub aadsts: Vec<u32>,
    /// `trace_id`.
    pub trace_id: Option<String>,
    /// `correlation_id`.
    pub correlation_id: Option<String>,
}

impl fmt::Display for EntraError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        if let Some(desc) = &self.description {
            write!(f, ": {desc}")?;
        } else if let Some(c) = self.aadsts.first() {
            write!(f, ": AADSTS{c}")?;
        }
        if let Some(t) = &self.trace_id {
            write!(f, " [trace id {t}")?;
            if let Some(c) = &self.correlation_id {
                write!(f, ", correlation id {c}")?;
            }
            f.write_str("]")?;
        } else if let Some(c) = &self.correlation_id {
            write!(f, " [correlation id {c}]")?;
        }
        if let Some(hint) = self.hint() {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for EntraError {}
