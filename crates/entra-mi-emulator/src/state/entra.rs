//! What the Entra endpoints keep: registered apps, additional tenants, the client-assertion
//! ids already seen.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::directory::App;

/// Builder settings of the token endpoint.
#[derive(Debug, Clone, Default)]
pub(crate) struct EntraConfig {
    pub(crate) apps: Vec<App>,
    pub(crate) tenants: Vec<String>,
}

/// Its state.
#[derive(Debug)]
pub(crate) struct EntraState {
    pub(crate) apps: Vec<App>,
    pub(crate) tenants: Vec<String>,
    /// `jti`s of the certificate assertions accepted so far (a replay is refused).
    pub(crate) seen_jti: Mutex<HashSet<String>>,
}

impl EntraState {
    pub(crate) fn new(config: EntraConfig) -> Self {
        EntraState {
            apps: config.apps,
            tenants: config.tenants,
            seen_jti: Default::default(),
        }
    }

    /// The additional tenant named `segment` (ignoring case), as configured.
    pub(crate) fn tenant(&self, segment: &str) -> Option<&str> {
        self.tenants
            .iter()
            .find(|t| t.eq_ignore_ascii_case(segment))
            .map(String::as_str)
    }
}
