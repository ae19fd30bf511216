//! The credential family: credentials other than a managed-identity source or Entra's token
//! endpoint (developer tools, custom credentials), and fetches that ended without a result.

/// A credential failed or cannot be used here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// A credential cannot be used here (its configuration is absent, or the tool it runs is
    /// missing or not signed in); a chain moves on to its next link.
    #[error("{credential} unavailable: {reason}")]
    Unavailable {
        /// Which credential.
        credential: String,
        /// Why (never contains secrets).
        reason: String,
    },
    /// A credential failed (a custom credential's own error, a tool's failure, a token no
    /// header can carry).
    #[error("{credential}: {message}")]
    Failed {
        /// Which credential.
        credential: String,
        /// What it said (must not contain secrets).
        message: String,
    },
    /// The token fetch stopped unexpectedly (the credential panicked, or the runtime running
    /// the fetch shut down).
    #[error(
        "the token fetch for {audience} ended without a result (the credential panicked or its runtime shut down)"
    )]
    Aborted {
        /// The audience of the fetch.
        audience: String,
    },
}
