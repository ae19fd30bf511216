//! What the managed-identity sources beyond IMDS and App Service keep: Arc's key files,
//! the 2017-09-01 secret, Service Fabric's TLS endpoint.

use std::path::PathBuf;
use std::sync::Mutex;

use crate::REDACTED;
use crate::model::guid;

/// Builder settings of these sources.
#[derive(Clone, Default)]
pub(crate) struct SourcesConfig {
    /// Where Arc's challenge writes its key files.
    pub(crate) arc_key_directory: Option<PathBuf>,
    /// `MSI_SECRET` of the 2017-09-01 protocol (random when unset).
    pub(crate) msi_secret: Option<String>,
}

impl std::fmt::Debug for SourcesConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourcesConfig")
            .field("arc_key_directory", &self.arc_key_directory)
            .field("msi_secret", &self.msi_secret.as_ref().map(|_| REDACTED))
            .finish()
    }
}

/// Their state.
pub(crate) struct SourcesState {
    pub(crate) arc_key_directory: Option<PathBuf>,
    /// A path the Arc challenge names instead of a fresh key file.
    pub(crate) arc_realm: Mutex<Option<PathBuf>>,
    /// The contents of the key files handed out: each is a credential.
    pub(crate) arc_keys: Mutex<Vec<String>>,
    pub(crate) msi_secret: Mutex<String>,
    /// Service Fabric's token URL and certificate thumbprint, once its listener is bound.
    pub(crate) service_fabric: Mutex<Option<(String, String)>>,
}

impl std::fmt::Debug for SourcesState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourcesState")
            .field("arc_key_directory", &self.arc_key_directory)
            .field("arc_realm", &self.arc_realm)
            .field("arc_keys", &REDACTED)
            .field("msi_secret", &REDACTED)
            .field("service_fabric", &self.service_fabric)
            .finish()
    }
}

impl SourcesState {
    pub(crate) fn new(config: SourcesConfig) -> Self {
        SourcesState {
            arc_key_directory: config.arc_key_directory,
            arc_realm: Mutex::new(None),
            arc_keys: Mutex::new(Vec::new()),
            msi_secret: Mutex::new(config.msi_secret.unwrap_or_else(guid)),
            service_fabric: Mutex::new(None),
        }
    }
}
