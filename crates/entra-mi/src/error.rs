//! Errors.
//!
//! Every failure is a variant of [`Error`]. Messages say what went wrong and where (which
//! source, which endpoint, which field or variable) and never contain a token, a secret header
//! value or a response body: error bodies are reduced to their `error` / `error_description`
//! (or App Service `statusCode` / `message`) fields, and parse failures name the field and the
//! JSON kind, never the value.

use std::fmt;
use std::time::Duration;

use crate::managed_identity::SourceKind;

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong when getting a token.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The audience string cannot name an API.
    #[error("invalid audience {input:?}: {reason}")]
    InvalidAudience {
        /// The input as given (audiences are not secret).
        input: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A setting (builder option or environment variable) is missing or malformed.
    #[error("invalid configuration: {setting}: {reason}")]
    Configuration {
        /// The option or environment variable at fault.
        setting: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The environment selects a token source this version does not implement. Nothing else
    /// is tried in its place.
    #[error(
        "the environment selects the {source_kind} managed-identity source ({evidence}), which is not supported yet; no other source was tried"
    )]
    NotSupported {
        /// The detected source.
        source_kind: SourceKind,
        /// What in the environment selected it (variable names only).
        evidence: String,
    },

    /// The endpoint could not be reached or did not answer like a token endpoint: connection
    /// failure, timeout, redirect, HTML or other non-JSON body, oversized body, malformed
    /// token response, or a transient status that outlasted the retries.
    #[error("{source_kind} endpoint {endpoint} unavailable: {reason}")]
    Unavailable {
        /// The source that was asked.
        source_kind: SourceKind,
        /// The endpoint URL, without its query.
        endpoint: String,
        /// What happened.
        reason: Unavailable,
    },

    /// The endpoint answered with an error of its own: it is there and refused the request
    /// (no identity assigned, unknown user-assigned identity, bad resource, …).
    #[error("{source_kind} endpoint {endpoint} refused the token request: {error}")]
    Refused {
        /// The source that was asked.
        source_kind: SourceKind,
        /// The endpoint URL, without its query.
        endpoint: String,
        /// The service's own error.
        error: ServiceError,
    },

    /// A credential outside this crate failed.
    #[error("{credential}: {message}")]
    Credential {
        /// Which credential.
        credential: String,
        /// What it said (must not contain secrets).
        message: String,
    },

    /// A route of a [`crate::TokenRouter`] is refused: not an `https://` URL (or `http://` to
    /// a loopback host without the opt-in), user info, query or fragment in it, or a
    /// duplicate.
    #[error("invalid route {route}: {reason}")]
    InvalidRoute {
        /// The route (user info and query dropped).
        route: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// The token fetch stopped unexpectedly (the task running it panicked or its runtime shut
    /// down).
    #[error("the token fetch for {audience} ended without a result")]
    FetchAborted {
        /// The audience of the fetch.
        audience: String,
    },
}

impl Error {
    /// True when the source is not there or not usable (as opposed to present and refusing).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::NotSupported { .. })
    }

    /// The HTTP status of the answer that caused this error, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Refused { error, .. } => Some(error.status),
            Error::Unavailable { reason, .. } => reason.status(),
            _ => None,
        }
    }

    pub(crate) fn configuration(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Configuration {
            setting: setting.into(),
            reason: reason.into(),
        }
    }
}

/// Why an endpoint is considered unavailable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unavailable {
    /// The TCP connection could not be made.
    #[error("connection failed ({detail})")]
    Connect {
        /// The transport's description (no secrets: URLs carry none).
        detail: String,
    },
    /// No complete answer within the attempt's time limit.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection broke while the request or response was in flight.
    #[error("connection broke ({detail})")]
    Transport {
        /// The transport's description.
        detail: String,
    },
    /// The endpoint answered with a redirect; identity endpoints are never redirected.
    #[error("HTTP {status} redirect, which is not followed for identity endpoints")]
    Redirect {
        /// The 3xx status.
        status: u16,
    },
    /// An HTML page instead of JSON (a proxy's, gateway's or captive portal's page).
    #[error("HTTP {status} with an HTML page instead of a JSON token response")]
    Html {
        /// The status of the page.
        status: u16,
    },
    /// A body that is not a JSON object.
    #[error("HTTP {status} with a body that is not a JSON object ({what})")]
    NotJson {
        /// The status.
        status: u16,
        /// What the body was instead (kind only, never content).
        what: String,
    },
    /// A body larger than the limit; reading stopped there.
    #[error("response body larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A JSON object that is not a valid token response.
    #[error("invalid token response: {problem}")]
    InvalidResponse {
        /// What is wrong (field and kind, never values).
        problem: String,
    },
    /// A status that is retried for this source, still failing when retries ran out.
    #[error("HTTP {status} after {attempts} attempt(s){}", detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Status {
        /// The last status.
        status: u16,
        /// How many requests were made.
        attempts: u32,
        /// The service's error fields, when the body carried them.
        detail: Option<ServiceError>,
    },
    /// Any other non-success answer without a recognisable error body.
    #[error("HTTP {status} without a recognisable error body")]
    UnexpectedStatus {
        /// The status.
        status: u16,
    },
}

impl Unavailable {
    fn status(&self) -> Option<u16> {
        match self {
            Unavailable::Redirect { status }
            | Unavailable::Html { status }
            | Unavailable::NotJson { status, .. }
            | Unavailable::Status { status, .. }
            | Unavailable::UnexpectedStatus { status } => Some(*status),
            _ => None,
        }
    }
}

/// An error a token service reported in its response body.
///
/// Only the `error` code and `error_description` are kept (App Service's `statusCode` /
/// `message` map onto them); the rest of the body is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceError {
    /// HTTP status.
    pub status: u16,
    /// The `error` code (e.g. `invalid_request`), when present.
    pub code: Option<String>,
    /// The `error_description` or `message`, when present (truncated to 1 KiB).
    pub description: Option<String>,
}

impl ServiceError {
    /// True when the service says the requested identity does not exist on this resource.
    pub fn is_identity_not_found(&self) -> bool {
        let d = self
            .description
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase();
        d.contains("identity not found")
            || d.contains("no managed identity")
            || d.contains("not assigned")
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        if let Some(desc) = &self.description {
            write!(f, ": {desc}")?;
        }
        Ok(())
    }
}
