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

    /// The Entra token endpoint refused the request: the service's error code, its AADSTS
    /// code, trace and correlation ids, and a hint for the common codes.
    #[error("{credential}: token endpoint {endpoint} refused the request: {error}")]
    TokenEndpoint {
        /// Which credential asked.
        credential: String,
        /// The token endpoint URL.
        endpoint: String,
        /// The service's error.
        error: Box<EntraError>,
    },

    /// The Entra token endpoint could not be reached or did not answer like a token
    /// endpoint: connection failure, timeout, redirect, HTML or other non-JSON body, oversized
    /// body, or a malformed token response. Unlike [`Error::Unavailable`] this does not count
    /// as [`Error::is_unavailable`]: the credential is configured, so a chain stops here.
    #[error("{credential}: token endpoint {endpoint} unavailable: {reason}")]
    TokenEndpointUnavailable {
        /// Which credential asked.
        credential: String,
        /// The token endpoint URL.
        endpoint: String,
        /// What happened.
        reason: Unavailable,
    },

    /// Every credential of a chain failed; one entry per link, in order.
    #[error("{}", ChainDisplay(.0))]
    Chain(Vec<ChainAttempt>),

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

    /// A credential cannot be used here (its configuration is absent, or the tool it runs is
    /// missing or not signed in); a chain moves on to its next link.
    #[error("{credential} unavailable: {reason}")]
    CredentialUnavailable {
        /// Which credential.
        credential: String,
        /// Why (never contains secrets).
        reason: String,
    },

    /// The token fetch stopped unexpectedly (the credential panicked, or the runtime running
    /// the fetch shut down).
    #[error(
        "the token fetch for {audience} ended without a result (the credential panicked or its runtime shut down)"
    )]
    FetchAborted {
        /// The audience of the fetch.
        audience: String,
    },

    /// A [`crate::TokenProvider`]'s fetch did not finish within its fetch timeout
    /// ([`crate::TokenProviderBuilder::fetch_timeout`]); every caller waiting for it gets this.
    #[error(
        "{credential}: no token for {audience} within the provider's fetch timeout of {timeout:?}"
    )]
    FetchTimeout {
        /// Which credential was asked.
        credential: String,
        /// The audience of the fetch.
        audience: String,
        /// The timeout that ran out.
        timeout: Duration,
    },

    /// The caller's deadline ([`TokenRequest::with_deadline`](crate::TokenRequest::with_deadline))
    /// passed before a token was obtained. Unlike the timeouts a credential sets itself (an IMDS
    /// probe, one attempt), this is not "unavailable": a chain stops here instead of trying its
    /// next link.
    #[error(
        "{credential}: no token within the caller's deadline of {deadline:?}{}",
        last_failure(last)
    )]
    DeadlineExceeded {
        /// Which credential.
        credential: String,
        /// The deadline the caller set.
        deadline: Duration,
        /// The last failure before the deadline, if an attempt failed.
        last: Option<Box<Error>>,
    },
}

fn last_failure(last: &Option<Box<Error>>) -> String {
    last.as_ref()
        .map(|e| format!(" (last failure: {e})"))
        .unwrap_or_default()
}

impl Error {
    /// True when the source is not there or not usable (as opposed to present and refusing).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Unavailable { .. }
            | Error::NotSupported { .. }
            | Error::CredentialUnavailable { .. } => true,
            Error::Chain(attempts) => attempts.iter().all(|a| a.unavailable),
            _ => false,
        }
    }

    /// The HTTP status of the answer that caused this error, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Refused { error, .. } => Some(error.status),
            Error::TokenEndpoint { error, .. } => Some(error.status),
            Error::Unavailable { reason, .. } | Error::TokenEndpointUnavailable { reason, .. } => {
                reason.status()
            }
            _ => None,
        }
    }

    /// True when a managed-identity source's answer shows no managed-identity endpoint is
    /// there (see [`Unavailable::is_foreign_answer`]).
    pub(crate) fn is_foreign_answer(&self) -> bool {
        matches!(self, Error::Unavailable { reason, .. } if reason.is_foreign_answer())
    }

    /// [`Error::DeadlineExceeded`] for `credential`, with the last failure if there was one.
    pub(crate) fn deadline_exceeded(
        credential: impl Into<String>,
        deadline: Duration,
        last: Option<Error>,
    ) -> Self {
        Error::DeadlineExceeded {
            credential: credential.into(),
            deadline,
            last: last.map(Box::new),
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
    pub(crate) fn is_foreign_answer(&self) -> bool {
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
    /// Docker Desktop answers requests to 169.254.169.254 with a `403` whose body says the
    /// network is unreachable (in its `error` or its description): no IMDS is there.
    pub(crate) fn says_unreachable(&self) -> bool {
        [&self.code, &self.description]
            .into_iter()
            .flatten()
            .any(|s| s.to_ascii_lowercase().contains("unreachable"))
    }

    /// Advice for errors users commonly hit, if this is one of them.
    pub fn hint(&self) -> Option<&'static str> {
        let d = self.description.as_deref().unwrap_or("");
        if d.contains("Multiple user assigned identities")
            || d.contains("multiple user assigned identities")
        {
            Some(
                "the resource has several user-assigned identities: select one by client id, object id or resource id",
            )
        } else if d.contains("AudienceNotSupported")
            || self.code.as_deref() == Some("AudienceNotSupported")
        {
            Some(
                "Cloud Shell serves only some audiences; for others run `az login --scope <resource>/.default` and use the Azure CLI credential",
            )
        } else if d.contains("AADSTS500011") {
            Some(HINT_500011)
        } else if self.is_identity_not_found() {
            Some(
                "no identity with that id is assigned to this resource: use the identity's client id or object id (not an app registration's), or its resource id; an identity assigned minutes ago may not have reached the endpoint yet, so retry",
            )
        } else {
            None
        }
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

const HINT_500011: &str = "the resource (audience) is not known in this tenant: check the exact audience string (a trailing `/` matters), the tenant and the cloud";

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

impl EntraError {
    /// Advice for the AADSTS codes users commonly hit.
    pub fn hint(&self) -> Option<&'static str> {
        self.aadsts.iter().copied().find_map(aadsts_hint)
    }
}

/// Advice for an AADSTS code users commonly hit.
pub(crate) fn aadsts_hint(code: u32) -> Option<&'static str> {
    match code {
        7000215 => Some(
            "invalid client secret: send the secret's Value, not its Secret ID, and check that it has not expired",
        ),
        700016 => Some(
            "the application (client id) is not in this tenant: check AZURE_CLIENT_ID, AZURE_TENANT_ID and the cloud (AZURE_AUTHORITY_HOST)",
        ),
        700024 => Some(
            "the client assertion is outside its valid time range: the federated token is stale (the token file is re-read on every request, so check that it is being rotated) or the clock is wrong",
        ),
        70021 | 700211 | 700213 => Some(
            "no federated identity credential of the app matches the assertion's issuer, subject and audience (api://AzureADTokenExchange): compare them with the app registration's federated credentials",
        ),
        500011 => Some(HINT_500011),
        700236 => Some(
            "a managed identity can be a federated credential only of an app registration in its own home tenant: register the (multi-tenant) app there and request tokens in the other tenant",
        ),
        70043 | 700082 | 50173 => Some("the sign-in has expired: run `az login` again"),
        _ => None,
    }
}

/// The AADSTS codes quoted in `text` (`AADSTS700082: …`), in order.
pub(crate) fn aadsts_codes(text: &str) -> Vec<u32> {
    text.match_indices("AADSTS")
        .filter_map(|(i, m)| {
            let digits: String = text[i + m.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .collect()
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

/// One link of a credential chain and why it did not produce a token.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChainAttempt {
    /// The link's name (`environment`, `workload-identity`, `managed-identity`, `azure-cli`).
    pub credential: String,
    /// Why it failed: its error rendered on one line.
    pub reason: String,
    /// True when the link was not usable here (the chain moved on).
    pub unavailable: bool,
}

struct ChainDisplay<'a>(&'a [ChainAttempt]);

impl fmt::Display for ChainDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no credential of the chain could get a token:")?;
        for a in self.0 {
            let line: String = a
                .reason
                .chars()
                .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
                .collect();
            write!(f, "\n  {}: {}", a.credential, line)?;
        }
        Ok(())
    }
}

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
        assert_eq!(
            aadsts_codes("ERROR: AADSTS700082: expired. AADSTS50173 and AADSTS x"),
            [700082, 50173]
        );
        for (code, needle) in [
            (7000215, "not its Secret ID"),
            (700016, "AZURE_CLIENT_ID"),
            (700024, "re-read"),
            (70021, "federated credentials"),
            (500011, "trailing `/`"),
            (700236, "home tenant"),
            (70043, "az login"),
            (700082, "az login"),
            (50173, "az login"),
        ] {
            let e = EntraError {
                status: 400,
                code: Some("invalid_client".into()),
                description: Some(format!("AADSTS{code}: something")),
                aadsts: vec![code],
                trace_id: Some("t".into()),
                correlation_id: Some("c".into()),
            };
            let shown = e.to_string();
            assert!(
                shown.contains(needle) && shown.contains("trace id t, correlation id c"),
                "{shown}"
            );
        }
    }

    #[test]
    fn chain_errors_render_one_line_per_link() {
        let e = Error::Chain(vec![
            ChainAttempt {
                credential: "a".into(),
                reason: "line one\r\nline two".into(),
                unavailable: true,
            },
            ChainAttempt {
                credential: "b".into(),
                reason: "x".into(),
                unavailable: false,
            },
        ]);
        assert_eq!(e.to_string().lines().count(), 3);
        assert!(!e.is_unavailable());
    }
}
