//! The builder of [`ManagedIdentityCredential`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::credential::{Inner, ManagedIdentityCredential};
use super::dispatch::{self, ManagedIdentitySource};
use super::source::SourceConfig;
use super::{ManagedIdentityId, detect};
use crate::env::Environment;
use crate::error::Error;
use crate::retry::RetryOptions;
use crate::time::TimeSource;

/// Builds a [`ManagedIdentityCredential`].
///
/// Defaults: system-assigned identity, source detected from the process environment, connect
/// timeout 2 s, 20 s per attempt, [`RetryOptions::default`].
#[derive(Debug, Clone)]
pub struct ManagedIdentityCredentialBuilder {
    id: ManagedIdentityId,
    env: Environment,
    time: TimeSource,
    retry: RetryOptions,
    connect_timeout: Duration,
    attempt_timeout: Duration,
    allow_http_endpoint: bool,
    arc_key_directory: Option<PathBuf>,
    source: Option<ManagedIdentitySource>,
    client_capabilities: Vec<String>,
}

impl ManagedIdentityCredential {
    /// A builder with the defaults.
    pub fn builder() -> ManagedIdentityCredentialBuilder {
        ManagedIdentityCredentialBuilder::default()
    }

    /// The system-assigned identity, source detected from the process environment.
    pub fn system_assigned() -> Result<Self, Error> {
        Self::builder().build()
    }
}

impl Default for ManagedIdentityCredentialBuilder {
    fn default() -> Self {
        Self {
            id: ManagedIdentityId::SystemAssigned,
            env: Environment::process(),
            time: TimeSource::system(),
            retry: RetryOptions::default(),
            connect_timeout: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(20),
            allow_http_endpoint: false,
            arc_key_directory: None,
            source: None,
            client_capabilities: Vec::new(),
        }
    }
}

impl ManagedIdentityCredentialBuilder {
    /// Use this identity (default: system-assigned).
    pub fn identity(mut self, id: ManagedIdentityId) -> Self {
        self.id = id;
        self
    }

    /// Use the user-assigned identity with this client id.
    pub fn client_id(self, id: impl Into<String>) -> Self {
        self.identity(ManagedIdentityId::ClientId(id.into()))
    }

    /// Use the user-assigned identity with this object (principal) id.
    pub fn object_id(self, id: impl Into<String>) -> Self {
        self.identity(ManagedIdentityId::ObjectId(id.into()))
    }

    /// Use the user-assigned identity with this ARM resource id.
    pub fn resource_id(self, id: impl Into<String>) -> Self {
        self.identity(ManagedIdentityId::ResourceId(id.into()))
    }

    /// Read configuration from this environment instead of the process's.
    pub fn environment(mut self, env: Environment) -> Self {
        self.env = env;
        self
    }

    /// Clock, timer and jitter (tests step time with the `test-util` feature's `ManualClock`).
    pub fn time_source(mut self, time: TimeSource) -> Self {
        self.time = time;
        self
    }

    /// Retry settings.
    pub fn retry(mut self, retry: RetryOptions) -> Self {
        self.retry = retry;
        self
    }

    /// TCP connect timeout per attempt (default 2 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Time limit of one request, body included (default 20 s).
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = d;
        self
    }

    /// Allow a plain-`http` App Service `IDENTITY_ENDPOINT` whose host is not loopback or
    /// link-local (default: refused, since its secret header would cross the network).
    pub fn allow_http_endpoint(mut self, allow: bool) -> Self {
        self.allow_http_endpoint = allow;
        self
    }

    /// Use this source and endpoint instead of detecting them from the environment: for a
    /// proxied or relocated IMDS, a development bridge, or a test. Only code can do this; the
    /// environment's own overrides (`AZURE_POD_IDENTITY_AUTHORITY_HOST`, `IDENTITY_ENDPOINT`,
    /// `MSI_ENDPOINT`) still apply when no source is given. The endpoint meets the rules of
    /// one from the environment (`http`/`https` with a host, no credentials, query or fragment;
    /// plain `http` only to loopback or link-local hosts unless
    /// [`allow_http_endpoint`](Self::allow_http_endpoint)). Secret headers
    /// (`IDENTITY_HEADER`, `MSI_SECRET`) are still read from the environment per request.
    ///
    /// ```
    /// use entra_mi::ManagedIdentityCredential;
    /// use entra_mi::managed_identity::{ManagedIdentitySource, SourceKind};
    ///
    /// let credential = ManagedIdentityCredential::builder()
    ///     .source(ManagedIdentitySource::Imds {
    ///         token_url: "http://127.0.0.1:8080/metadata/identity/oauth2/token".parse().unwrap(),
    ///     })
    ///     .build()?;
    /// assert_eq!(credential.source_kind(), SourceKind::Imds);
    /// # Ok::<(), entra_mi::Error>(())
    /// ```
    pub fn source(mut self, source: ManagedIdentitySource) -> Self {
        self.source = Some(source);
        self
    }

    /// Client capabilities, such as `cp1` for Continuous Access Evaluation, declared to the
    /// sources that take them: Service Fabric, as `xms_cc` (the others ignore it). Default: none.
    pub fn client_capabilities<I, S>(mut self, capabilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.client_capabilities = capabilities.into_iter().map(Into::into).collect();
        self
    }

    /// The directory Azure Arc key files must lie in. Only code can change it (tests do); it
    /// is never read from the environment. Default: `/var/opt/azcmagent/tokens` on Linux,
    /// `%ProgramData%\AzureConnectedMachineAgent\Tokens` on Windows.
    pub fn arc_key_directory(mut self, dir: impl Into<PathBuf>) -> Self {
        self.arc_key_directory = Some(dir.into());
        self
    }

    /// Detects the source and validates the configuration.
    ///
    /// Fails with [`Error::Configuration`] when a variable is malformed or the source cannot
    /// serve the selected identity (Azure Arc, Service Fabric and Cloud Shell serve only their
    /// own identity; the 2017-09-01 protocol selects only by client id), and with
    /// [`Error::Source`] ([`SourceError::NotSupported`](crate::error::SourceError::NotSupported))
    /// for Azure Arc on an OS the agent does not run on.
    pub fn build(self) -> Result<ManagedIdentityCredential, Error> {
        self.id.validate()?;
        let detected = self.source.is_none();
        let description = match self.source.clone() {
            Some(source) => {
                detect::check_explicit(&source, self.allow_http_endpoint)?;
                source
            }
            None => detect::detect(&self.env, self.allow_http_endpoint)?,
        };
        // App Service's 2017-09-01 fallback: not for a source given in code (it replaces
        // detection). Whether the identity can use it is `AppService::new`'s to say.
        let fallback_2017 = detected
            .then(|| detect::app_service_2017_fallback(&self.env, self.allow_http_endpoint))
            .flatten();
        let config = SourceConfig {
            id: &self.id,
            arc_key_directory: self.arc_key_directory.clone(),
            client_capabilities: &self.client_capabilities,
            fallback_2017,
        };
        let source = dispatch::build(description, &config)?;
        let http = source.http_client(self.connect_timeout)?;
        let name = format!("managed-identity/{}", source.kind().as_str());
        Ok(ManagedIdentityCredential {
            inner: Arc::new(Inner {
                source,
                id: self.id,
                env: self.env,
                time: self.time,
                retry: self.retry,
                attempt_timeout: self.attempt_timeout,
                http,
                name,
            }),
        })
    }
}
