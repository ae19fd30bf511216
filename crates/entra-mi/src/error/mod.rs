//! Errors, in families.
//!
//! [`Error`] says which part failed: the [configuration](ConfigurationError), a
//! [managed-identity source](SourceError), [Entra's token endpoint](TokenEndpointError), a
//! [credential](CredentialError) outside those, a [chain](ChainError) of credentials, or a
//! [deadline](DeadlineError). Each family carries typed fields, and
//! [`source()`](std::error::Error::source) leads to the typed cause ([`Unavailable`],
//! [`ServiceError`], [`EntraError`], or the last failure before a deadline).
//!
//! `Display` is the whole message, on one line (a chain's on one line per link): it says what
//! went wrong and where (which source, which endpoint, which field or variable) and never
//! contains a token, a secret header value or a response body. Error bodies are reduced to
//! their `error` / `error_description` (or App Service `statusCode` / `message`) fields, and
//! parse failures name the field and the JSON kind, never the value.

mod chain;
mod configuration;
mod credential;
mod deadline;
mod endpoint;
mod source;

use std::time::Duration;

pub use crate::guid::NotAGuid;
pub use chain::{ChainAttempt, ChainError};
pub use configuration::ConfigurationError;
pub use credential::CredentialError;
pub use deadline::DeadlineError;
pub use endpoint::{EntraError, TokenEndpointError};
pub use source::{ServiceError, SourceError, Unavailable};

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong when getting a token: one variant per family.
///
/// Each variant holds its family boxed, so an `Error` is two words and a `Result` carrying one
/// is no larger than its `Ok` value needs: a `Result<HeaderValue, Error>` is the size of the
/// header, which keeps the cache's hot paths from moving a large error slot around. Each family
/// converts into its variant with `From`. Match a family through the box:
///
/// ```
/// use entra_mi::Error;
/// use entra_mi::error::{SourceError, TokenEndpointError};
///
/// fn status_of_refusal(e: &Error) -> Option<u16> {
///     match e {
///         Error::Source(source) if let SourceError::Refused { error, .. } = &**source => {
///             Some(error.status)
///         }
///         Error::TokenEndpoint(endpoint) => match &**endpoint {
///             TokenEndpointError::Refused { error, .. } => Some(error.status),
///             _ => None,
///         },
///         _ => None,
///     }
/// }
/// # let _ = status_of_refusal;
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting, builder option, environment variable, audience or route is wrong: nothing
    /// was sent.
    #[error(transparent)]
    Configuration(Box<ConfigurationError>),
    /// A managed-identity source failed: unreachable, refusing, not supported here, or (Azure
    /// Arc) its key file.
    #[error(transparent)]
    Source(Box<SourceError>),
    /// Entra's token endpoint refused the request or could not be used.
    #[error(transparent)]
    TokenEndpoint(Box<TokenEndpointError>),
    /// Another credential failed or cannot be used here (a developer tool, a custom
    /// credential), or its fetch ended without a result.
    #[error(transparent)]
    Credential(Box<CredentialError>),
    /// Every credential of a chain failed.
    #[error(transparent)]
    Chain(Box<ChainError>),
    /// A deadline passed first: the caller's, or a provider's fetch timeout.
    #[error(transparent)]
    Deadline(Box<DeadlineError>),
}

/// Each family converts into its variant, boxed.
macro_rules! from_family {
    ($($variant:ident($family:ty)),* $(,)?) => {$(
        impl From<$family> for Error {
            fn from(error: $family) -> Self {
                Error::$variant(Box::new(error))
            }
        }
    )*};
}

from_family!(
    Configuration(ConfigurationError),
    Source(SourceError),
    TokenEndpoint(TokenEndpointError),
    Credential(CredentialError),
    Chain(ChainError),
    Deadline(DeadlineError),
);

impl Error {
    /// True when the source is not there or not usable (as opposed to present and refusing).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Source(source) => matches!(
                **source,
                SourceError::Unavailable { .. } | SourceError::NotSupported { .. }
            ),
            Error::Credential(credential) => {
                matches!(**credential, CredentialError::Unavailable { .. })
            }
            Error::Chain(chain) => chain.attempts.iter().all(|a| a.unavailable),
            _ => false,
        }
    }

    /// The managed-identity endpoint's own error, when it refused the request
    /// ([`SourceError::Refused`]).
    pub fn service_error(&self) -> Option<&ServiceError> {
        match self {
            Error::Source(source) => match &**source {
                SourceError::Refused { error, .. } => Some(error),
                _ => None,
            },
            _ => None,
        }
    }

    /// Entra's error, when its token endpoint refused the request
    /// ([`TokenEndpointError::Refused`]).
    pub fn entra_error(&self) -> Option<&EntraError> {
        match self {
            Error::TokenEndpoint(endpoint) => match &**endpoint {
                TokenEndpointError::Refused { error, .. } => Some(error),
                TokenEndpointError::Unavailable { .. } => None,
            },
            _ => None,
        }
    }

    /// The HTTP status of the answer that caused this error, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Source(source) => match &**source {
                SourceError::Refused { error, .. } => Some(error.status),
                SourceError::Unavailable { reason, .. } => reason.status(),
                _ => None,
            },
            Error::TokenEndpoint(endpoint) => match &**endpoint {
                TokenEndpointError::Refused { error, .. } => Some(error.status),
                TokenEndpointError::Unavailable { reason, .. } => reason.status(),
            },
            _ => None,
        }
    }

    /// True when a managed-identity source's answer shows no managed-identity endpoint is
    /// there (see [`Unavailable::is_foreign_answer`]).
    pub(crate) fn is_foreign_answer(&self) -> bool {
        matches!(self, Error::Source(family) if matches!(family.as_ref(), SourceError::Unavailable { reason, .. } if reason.is_foreign_answer()))
    }

    /// [`DeadlineError::Caller`] for `credential`, with the last failure if there was one.
    pub(crate) fn deadline_exceeded(
        credential: impl Into<String>,
        deadline: Duration,
        last: Option<Error>,
    ) -> Self {
        Error::from(DeadlineError::Caller {
            credential: credential.into(),
            deadline,
            last,
        })
    }

    /// [`ConfigurationError::Setting`].
    pub(crate) fn configuration(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::from(ConfigurationError::Setting {
            setting: setting.into(),
            reason: reason.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::source_kind::SourceKind;

    #[test]
    fn errors_are_two_words_so_results_stay_small() {
        assert!(size_of::<Error>() <= 2 * size_of::<usize>());
        // The hot path's result: no larger than a header and a discriminant.
        assert!(
            size_of::<Result<http::HeaderValue, Error>>()
                <= size_of::<http::HeaderValue>() + size_of::<usize>()
        );
    }

    #[test]
    fn families_chain_to_their_typed_cause() {
        let e = Error::from(SourceError::Refused {
            source_kind: SourceKind::Imds,
            endpoint: "http://127.0.0.1/".into(),
            error: ServiceError {
                status: 400,
                code: Some("invalid_request".into()),
                description: Some("Identity not found".into()),
            },
        });
        let cause = e.source().expect("a cause");
        let service = cause.downcast_ref::<ServiceError>().expect("ServiceError");
        assert!(service.is_identity_not_found());
        assert_eq!(e.status(), Some(400));
        assert!(e.service_error().unwrap().is_identity_not_found());
        assert!(e.entra_error().is_none());

        let last = Error::from(SourceError::Unavailable {
            source_kind: SourceKind::Imds,
            endpoint: "http://127.0.0.1/".into(),
            reason: Unavailable::Timeout(Duration::from_secs(1)),
        });
        let e = Error::deadline_exceeded("x", Duration::from_secs(2), Some(last));
        let cause = e.source().expect("the last failure");
        assert!(cause.downcast_ref::<Error>().is_some());
        let leaf = cause.source().expect("its reason");
        assert!(matches!(
            leaf.downcast_ref::<Unavailable>(),
            Some(Unavailable::Timeout(_))
        ));
    }
}
