//! The deadline family.

use std::fmt;
use std::time::Duration;

use super::Error;

/// A deadline passed before a token was obtained.
///
/// Its [`source`](std::error::Error::source) is the last failure before the caller's
/// deadline, as an [`Error`] (so `downcast_ref::<Error>()` finds it).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DeadlineError {
    /// The caller's deadline ([`TokenRequest::with_deadline`](crate::TokenRequest::with_deadline))
    /// passed. Unlike the timeouts a credential sets itself (an IMDS probe, one attempt), this
    /// is not "unavailable": a chain stops here instead of trying its next link.
    Caller {
        /// Which credential.
        credential: String,
        /// The deadline the caller set.
        deadline: Duration,
        /// The last failure before the deadline, if an attempt failed.
        last: Option<Error>,
    },
    /// A [`crate::TokenProvider`]'s fetch did not finish within its fetch timeout
    /// ([`crate::TokenProviderBuilder::fetch_timeout`]); every caller waiting for it gets this.
    FetchTimeout {
        /// Which credential was asked.
        credential: String,
        /// The audience of the fetch.
        audience: String,
        /// The timeout that ran out.
        timeout: Duration,
    },
}

impl fmt::Display for DeadlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeadlineError::Caller {
                credential,
                deadline,
                last,
            } => {
                write!(
                    f,
                    "{credential}: no token within the caller's deadline of {deadline:?}"
                )?;
                match last {
                    Some(e) => write!(f, " (last failure: {e})"),
                    None => Ok(()),
                }
            }
            DeadlineError::FetchTimeout {
                credential,
                audience,
                timeout,
            } => write!(
                f,
                "{credential}: no token for {audience} within the provider's fetch timeout of {timeout:?}"
            ),
        }
    }
}

impl std::error::Error for DeadlineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DeadlineError::Caller { last: Some(e), .. } => Some(e),
            _ => None,
        }
    }
}
