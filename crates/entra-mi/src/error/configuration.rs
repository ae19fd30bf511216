//! The configuration family: nothing was sent.

/// A setting, audience or route is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigurationError {
    /// A setting (builder option or environment variable) is missing or malformed.
    #[error("invalid configuration: {setting}: {reason}")]
    Setting {
        /// The option or environment variable at fault.
        setting: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A credential this build of entra-mi leaves out was asked for: its cargo feature is off.
    #[error(
        "invalid configuration: {setting}: {credential} needs entra-mi's `{feature}` cargo feature, which this build does not enable"
    )]
    FeatureDisabled {
        /// Where the credential was asked for (an environment variable or builder option).
        setting: String,
        /// The credential asked for.
        credential: &'static str,
        /// The cargo feature of the `entra-mi` crate that brings it.
        feature: &'static str,
    },
    /// The audience string cannot name an API.
    #[error("invalid audience {input:?}: {reason}")]
    Audience {
        /// The input as given (audiences are not secret).
        input: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A route of a [`crate::TokenRouter`] is refused: not an `https://` URL (or `http://` to
    /// a loopback host without the opt-in), user info, query or fragment in it, or a
    /// duplicate.
    #[error("invalid route {route}: {reason}")]
    Route {
        /// The route (user info and query dropped).
        route: String,
        /// Why it was refused.
        reason: &'static str,
    },
}
