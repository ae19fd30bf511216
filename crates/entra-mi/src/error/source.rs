//! The managed-identity source family, and the transport failures both token services share.

use std::fmt;
use std::time::Duration;

use crate::source_kind::SourceKind;

/// A managed-identity source failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
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
        #[source]
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
        #[source]
        error: ServiceError,
    },
    /// The environment selects a managed-identity source that cannot work on this platform.
    /// Nothing else is tried in its place.
    #[error(
        "the environment selects the {source_kind} managed-identity source, which is not supported here ({evidence}); no other source was tried"
    )]
    NotSupported {
        /// The detected source.
        source_kind: SourceKind,
        /// What in the environment selected it (variable names only).
        evidence: String,
    },
    /// Azure Arc named a key file that fails the checks made before reading it (it must be a
    /// `.key` file of at most 4096 bytes directly in the agent's token directory, after
    /// resolving `..` and symbolic links), or it cannot be read.
    #[error("Azure Arc key file {path}: {reason}")]
    ArcKeyFile {
        /// The path from the challenge (paths are not secret; the file's content is).
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl SourceError {
    /// The source that failed.
    pub fn source_kind(&self) -> SourceKind {
        match self {
            SourceError::Unavailable { source_kind, .. }
            | SourceError::Refused { source_kind, .. }
            | SourceError::NotSupported { source_kind, .. } => *source_kind,
            SourceError::ArcKeyFile { .. } => SourceKind::AzureArc,
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
    /// The endpoint's TLS certificate failed verification: it is not the certificate trusted
    /// for it (for Service Fabric, not the one `IDENTITY_SERVER_THUMBPRINT` pins). Permanent:
    /// never retried.
    #[error(
        "TLS certificate verification failed ({detail}); not retried, since the endpoint presents a certificate that is not trusted for it"
    )]
    TlsVerification {
        /// The TLS library's description.
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
    /// True when retrying cannot help: a certificate that failed verification.
    pub(crate) fn is_permanent(&self) -> bool {
        matches!(self, Unavailable::TlsVerification { .. })
    }

    /// True when the answer shows that what answered is no managed-identity endpoint at all:
    /// a redirect, an HTML page, a body that is not JSON (but not JSON cut short or an empty
    /// body, which a real endpoint can send), an error status without a token service's error
    /// body, or Docker Desktop's `403` "… unreachable network" for 169.254.169.254. A default
    /// chain moves past a probed IMDS that answers so (see `DefaultCredential`).
    pub fn is_foreign_answer(&self) -> bool {
        match self {
            Unavailable::Redirect { .. }
            | Unavailable::Html { .. }
            | Unavailable::UnexpectedStatus { .. } => true,
            Unavailable::NotJson { what, .. } => {
                !(what.starts_with("truncated") || what == "empty body")
            }
            Unavailable::Status {
                status: 403,
                detail: Some(e),
                ..
            } => e.says_unreachable(),
            _ => false,
        }
    }

    pub(crate) fn status(&self) -> Option<u16> {
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
    /// Docker Desktop answers requests to 169.254.169.254 with a `403` whose body says the
    /// network is unreachable (in its `error` or its description): no IMDS is there.
    pub(crate) fn says_unreachable(&self) -> bool {
        [&self.code, &self.description]
            .into_iter()
            .flatten()
            .any(|s| s.to_ascii_lowercase().contains("unreachable"))
    }

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
        if let Some(hint) = self.hint() {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ServiceError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_for_the_common_errors() {
        let imds = ServiceError {
            status: 400,
            code: Some("invalid_request".into()),
            description: Some("Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request".into()),
        };
        assert!(
            imds.to_string().contains("select one by client id"),
            "{imds}"
        );
        let not_found = ServiceError {
            status: 400,
            code: Some("invalid_request".into()),
            description: Some("Identity not found".into()),
        };
        assert!(
            not_found
                .to_string()
                .contains("not have reached the endpoint yet"),
            "{not_found}"
        );
        let gone = Unavailable::Timeout(Duration::from_secs(1));
        assert_eq!(gone.status(), None);
    }
}
