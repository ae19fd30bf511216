//! Managed identity: the credential, source detection and identity selection.

mod app_service;
pub(crate) mod arc;
pub(crate) mod detect;
mod imds;
mod legacy;
mod service_fabric;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::audience::is_guid;
use crate::credential::{TokenCredential, TokenRequest};
use crate::env::Environment;
use crate::error::{Error, Unavailable};
use crate::http::{HttpClient, RawResponse};
use crate::response::{self, ErrorBody, SentAt};
use crate::retry::{RetryClass, RetryOptions};
use crate::secret::Secret;
use crate::time::TimeSource;
use crate::token::AccessToken;

pub use detect::{Detected, detect_source};

/// The managed-identity endpoints of the Azure hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SourceKind {
    /// Azure Instance Metadata Service (VMs, scale sets, AKS nodes).
    Imds,
    /// App Service, Azure Functions, Container Apps, Automation (api-version 2019-08-01).
    AppService,
    /// Azure Arc-enabled servers (the HIMDS agent).
    AzureArc,
    /// Service Fabric.
    ServiceFabric,
    /// `MSI_ENDPOINT` + `MSI_SECRET`: Azure Machine Learning and legacy App Service
    /// (api-version 2017-09-01).
    AzureMl,
    /// Azure Cloud Shell (`MSI_ENDPOINT` alone).
    CloudShell,
}

impl SourceKind {
    /// A short, stable name (`imds`, `app-service`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Imds => "imds",
            SourceKind::AppService => "app-service",
            SourceKind::AzureArc => "azure-arc",
            SourceKind::ServiceFabric => "service-fabric",
            SourceKind::AzureMl => "azure-ml",
            SourceKind::CloudShell => "cloud-shell",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::Imds => "IMDS",
            SourceKind::AppService => "App Service",
            SourceKind::AzureArc => "Azure Arc",
            SourceKind::ServiceFabric => "Service Fabric",
            SourceKind::AzureMl => "Azure ML (MSI_ENDPOINT + MSI_SECRET)",
            SourceKind::CloudShell => "Cloud Shell",
        })
    }
}

/// Which managed identity to use.
///
/// A resource has at most one system-assigned identity and any number of user-assigned ones.
/// A user-assigned identity is named by its **client id** (the `clientId` of the identity, not
/// of an app registration), its **object (principal) id**, or its ARM **resource id**
/// (`/subscriptions/…/resourceGroups/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`,
/// known before deployment). Each source renders the choice with its own parameter name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ManagedIdentityId {
    /// The resource's system-assigned identity.
    #[default]
    SystemAssigned,
    /// A user-assigned identity by client id.
    ClientId(String),
    /// A user-assigned identity by object (principal) id.
    ObjectId(String),
    /// A user-assigned identity by ARM resource id.
    ResourceId(String),
}

impl ManagedIdentityId {
    fn validate(&self) -> Result<(), Error> {
        let (what, value) = match self {
            ManagedIdentityId::SystemAssigned => return Ok(()),
            ManagedIdentityId::ClientId(v) => ("client id", v),
            ManagedIdentityId::ObjectId(v) => ("object id", v),
            ManagedIdentityId::ResourceId(v) => ("resource id", v),
        };
        let bad = |reason: &str| {
            Err(Error::configuration(
                format!("managed identity {what}"),
                reason,
            ))
        };
        if value.is_empty() {
            return bad("it is empty");
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("it contains whitespace");
        }
        match self {
            ManagedIdentityId::ResourceId(v) => {
                let lower = v.to_ascii_lowercase();
                if !lower.starts_with("/subscriptions/")
                    || !lower
                        .contains("/providers/microsoft.managedidentity/userassignedidentities/")
                {
                    return bad(
                        "expected /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>",
                    );
                }
            }
            _ if !is_guid(value) => {
                return bad("expected a GUID such as 00000000-0000-0000-0000-000000000000");
            }
            _ => {}
        }
        Ok(())
    }
}

/// The setting errors from parsing a [`ManagedIdentityId`] name.
const ID_SETTING: &str = "managed identity id";

impl std::str::FromStr for ManagedIdentityId {
    type Err = Error;

    /// Parses the text forms [`Display`](fmt::Display) writes:
    ///
    /// * `system-assigned` (or `system`);
    /// * `client_id=<GUID>` and `object_id=<GUID>` (also `clientid`, `objectid`,
    ///   `principal_id`, and `-` for `_`, in any case);
    /// * an ARM resource id, `/subscriptions/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`,
    ///   alone or as `resource_id=…` (or `mi_res_id=`, `msi_res_id=`).
    ///
    /// A GUID alone is refused: a user-assigned identity has a client id *and* an object id,
    /// both GUIDs, and sending one as the other selects nothing (or, with an app
    /// registration's id, the wrong thing). The identity's Overview page in the portal shows
    /// both ("Client ID", "Object (principal) ID").
    ///
    /// ```
    /// use entra_mi::ManagedIdentityId;
    ///
    /// let id: ManagedIdentityId = "client_id=11111111-2222-3333-4444-555555555555".parse()?;
    /// assert_eq!(id, ManagedIdentityId::ClientId("11111111-2222-3333-4444-555555555555".into()));
    /// assert_eq!(id.to_string().parse::<ManagedIdentityId>()?, id);
    /// assert!("11111111-2222-3333-4444-555555555555".parse::<ManagedIdentityId>().is_err());
    /// # Ok::<(), entra_mi::Error>(())
    /// ```
    fn from_str(s: &str) -> Result<Self, Error> {
        let text = s.trim();
        let id = if text.eq_ignore_ascii_case("system-assigned")
            || text.eq_ignore_ascii_case("system")
        {
            ManagedIdentityId::SystemAssigned
        } else if text.starts_with('/') {
            ManagedIdentityId::ResourceId(text.to_owned())
        } else if let Some((key, value)) = text.split_once('=') {
            let value = value.trim().to_owned();
            match key.trim().to_ascii_lowercase().replace('-', "_").as_str() {
                "client_id" | "clientid" => ManagedIdentityId::ClientId(value),
                "object_id" | "objectid" | "principal_id" => ManagedIdentityId::ObjectId(value),
                "resource_id" | "mi_res_id" | "msi_res_id" => ManagedIdentityId::ResourceId(value),
                _ => {
                    return Err(Error::configuration(
                        ID_SETTING,
                        format!(
                            "unknown kind {:?}: expected client_id=, object_id= or resource_id=",
                            key.trim()
                        ),
                    ));
                }
            }
        } else if is_guid(text) {
            return Err(Error::configuration(
                ID_SETTING,
                "a GUID alone does not say which id it is: write client_id=<GUID> or object_id=<GUID> (the identity's Overview page shows both)",
            ));
        } else {
            return Err(Error::configuration(
                ID_SETTING,
                "expected system-assigned, client_id=<GUID>, object_id=<GUID> or an ARM resource id (/subscriptions/…/userAssignedIdentities/<name>)",
            ));
        };
        id.validate()?;
        Ok(id)
    }
}

impl fmt::Display for ManagedIdentityId {
    /// The text form [`FromStr`](std::str::FromStr) reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManagedIdentityId::SystemAssigned => f.write_str("system-assigned"),
            ManagedIdentityId::ClientId(v) => write!(f, "client_id={v}"),
            ManagedIdentityId::ObjectId(v) => write!(f, "object_id={v}"),
            ManagedIdentityId::ResourceId(v) => f.write_str(v),
        }
    }
}

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
    source: Option<Detected>,
    client_capabilities: Vec<String>,
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
    /// use entra_mi::{Detected, ManagedIdentityCredential, SourceKind};
    ///
    /// let credential = ManagedIdentityCredential::builder()
    ///     .source(Detected::Imds {
    ///         token_url: "http://127.0.0.1:8080/metadata/identity/oauth2/token".parse().unwrap(),
    ///     })
    ///     .build()?;
    /// assert_eq!(credential.source(), SourceKind::Imds);
    /// # Ok::<(), entra_mi::Error>(())
    /// ```
    pub fn source(mut self, source: Detected) -> Self {
        self.source = Some(source);
        self
    }

    /// Client capabilities, such as `cp1` for Continuous Access Evaluation, declared to the
    /// sources that take them: Service Fabric, as `xms_cc` (protocols §13.3: the others
    /// ignore it). Default: none.
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
    /// [`Error::NotSupported`] for Azure Arc on an OS the agent does not run on.
    pub fn build(self) -> Result<ManagedIdentityCredential, Error> {
        self.id.validate()?;
        let explicit = self.source.is_some();
        let detected = match self.source.clone() {
            Some(source) => {
                detect::check_explicit(&source, self.allow_http_endpoint)?;
                source
            }
            None => detect::detect(&self.env, self.allow_http_endpoint)?,
        };
        let kind = detected.kind();
        let refuse_user_assigned = |why: &str| -> Result<(), Error> {
            if self.id == ManagedIdentityId::SystemAssigned {
                Ok(())
            } else {
                Err(Error::configuration(
                    "managed identity",
                    format!("{kind} cannot select a user-assigned identity: {why}"),
                ))
            }
        };
        let mut http = None;
        let endpoint = match detected {
            Detected::Imds { token_url } => Endpoint::Imds { token_url },
            Detected::AppService { endpoint } => Endpoint::AppService {
                endpoint,
                // Not for a source given in code (it replaces detection), and not for object or
                // resource ids (the 2017 protocol selects a user-assigned identity only by
                // client id).
                fallback_2017: match self.id {
                    _ if explicit => None,
                    ManagedIdentityId::ObjectId(_) | ManagedIdentityId::ResourceId(_) => None,
                    _ => detect::app_service_2017_fallback(&self.env, self.allow_http_endpoint),
                },
            },
            Detected::AzureArc { endpoint } => {
                refuse_user_assigned(
                    "the Arc agent serves only the machine's system-assigned identity",
                )?;
                let key_dir = match self
                    .arc_key_directory
                    .clone()
                    .or_else(arc::default_key_directory)
                {
                    Some(d) => d,
                    None => {
                        return Err(Error::NotSupported {
                            source_kind: SourceKind::AzureArc,
                            evidence: "the Arc agent runs only on Linux and Windows".into(),
                        });
                    }
                };
                Endpoint::Arc { endpoint, key_dir }
            }
            Detected::ServiceFabric {
                endpoint,
                thumbprint,
            } => {
                refuse_user_assigned(
                    "the application's identity is fixed by the cluster configuration",
                )?;
                http = Some(HttpClient::with_tls(
                    self.connect_timeout,
                    service_fabric::tls_config(thumbprint)?,
                )?);
                Endpoint::ServiceFabric { endpoint }
            }
            Detected::AzureMl { endpoint } => {
                if matches!(
                    self.id,
                    ManagedIdentityId::ObjectId(_) | ManagedIdentityId::ResourceId(_)
                ) {
                    return Err(Error::configuration(
                        "managed identity",
                        "the 2017-09-01 protocol (MSI_ENDPOINT + MSI_SECRET: Azure ML, legacy App Service) selects a user-assigned identity only by client id",
                    ));
                }
                Endpoint::Legacy2017 { endpoint }
            }
            Detected::CloudShell { endpoint } => {
                refuse_user_assigned(
                    "Cloud Shell returns the signed-in user's token whatever identity is asked for",
                )?;
                Endpoint::CloudShell { endpoint }
            }
        };
        let http = match http {
            Some(h) => h,
            None => HttpClient::new(self.connect_timeout)?,
        };
        let detected_kind = kind;
        let name = format!("managed-identity/{}", detected_kind.as_str());
        Ok(ManagedIdentityCredential {
            inner: Arc::new(Inner {
                endpoint,
                id: self.id,
                env: self.env,
                time: self.time,
                retry: self.retry,
                attempt_timeout: self.attempt_timeout,
                http,
                name,
                on_2017: AtomicBool::new(false),
                client_capabilities: self.client_capabilities.join(","),
            }),
        })
    }
}

/// Tokens from the managed identity of the Azure resource the code runs on.
///
/// The source is detected from the environment once, when the credential is built, in this
/// order: Service Fabric → App Service → Azure Arc → `MSI_ENDPOINT` + `MSI_SECRET` (the
/// 2017-09-01 protocol of Azure ML and legacy App Service) → `MSI_ENDPOINT` (Cloud Shell) →
/// IMDS. Secret headers (`IDENTITY_HEADER`, `MSI_SECRET`) are read from the environment on
/// every request, since the platform rotates them. Where App Service refuses its 2019-08-01
/// protocol with `UnsupportedApiVersion` (Linux Consumption Functions) and also set
/// `MSI_ENDPOINT` + `MSI_SECRET`, the credential switches to the 2017-09-01 protocol there
/// for the rest of its life (it selects a user-assigned identity only by client id).
///
/// The credential does not cache: put a [`crate::TokenProvider`] in front of it. It holds one
/// pooled HTTP client that never uses a proxy and never follows redirects.
///
/// ```no_run
/// use entra_mi::{Audience, ManagedIdentityCredential, TokenCredential, TokenRequest};
/// # async fn run() -> Result<(), entra_mi::Error> {
/// let credential = ManagedIdentityCredential::builder()
///     .client_id("11111111-2222-3333-4444-555555555555")
///     .build()?;
/// let token = credential
///     .get_token(&TokenRequest::new(Audience::microsoft_graph()))
///     .await?;
/// println!("{token}"); // never shows the secret
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ManagedIdentityCredential {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    endpoint: Endpoint,
    id: ManagedIdentityId,
    env: Environment,
    time: TimeSource,
    retry: RetryOptions,
    attempt_timeout: Duration,
    http: HttpClient,
    name: String,
    /// Set once App Service refused its 2019-08-01 protocol and `fallback_2017` is used.
    on_2017: AtomicBool,
    /// `xms_cc` for Service Fabric: the capabilities joined by `,` (empty: none).
    client_capabilities: String,
}

#[derive(Debug)]
enum Endpoint {
    Imds {
        token_url: url::Url,
    },
    AppService {
        endpoint: url::Url,
        /// `MSI_ENDPOINT` when App Service also set it with `MSI_SECRET`.
        fallback_2017: Option<url::Url>,
    },
    Arc {
        endpoint: url::Url,
        key_dir: PathBuf,
    },
    ServiceFabric {
        endpoint: url::Url,
    },
    Legacy2017 {
        endpoint: url::Url,
    },
    CloudShell {
        endpoint: url::Url,
    },
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

    /// The detected source.
    pub fn source(&self) -> SourceKind {
        match self.inner.endpoint {
            Endpoint::Imds { .. } => SourceKind::Imds,
            Endpoint::AppService { .. } => SourceKind::AppService,
            Endpoint::Arc { .. } => SourceKind::AzureArc,
            Endpoint::ServiceFabric { .. } => SourceKind::ServiceFabric,
            Endpoint::Legacy2017 { .. } => SourceKind::AzureMl,
            Endpoint::CloudShell { .. } => SourceKind::CloudShell,
        }
    }

    /// The selected identity.
    pub fn identity(&self) -> &ManagedIdentityId {
        &self.inner.id
    }

    /// The token endpoint URL (without query): after an App Service switch to the 2017-09-01
    /// protocol, `MSI_ENDPOINT`'s.
    pub fn endpoint(&self) -> &str {
        match &self.inner.endpoint {
            Endpoint::Imds { token_url } => token_url.as_str(),
            Endpoint::AppService {
                fallback_2017: Some(endpoint),
                ..
            } if self.inner.on_2017.load(Ordering::Relaxed) => endpoint.as_str(),
            Endpoint::AppService { endpoint, .. }
            | Endpoint::Arc { endpoint, .. }
            | Endpoint::ServiceFabric { endpoint }
            | Endpoint::Legacy2017 { endpoint }
            | Endpoint::CloudShell { endpoint } => endpoint.as_str(),
        }
    }

    fn retry_class(&self) -> RetryClass {
        match self.inner.endpoint {
            Endpoint::Imds { .. } | Endpoint::Arc { .. } => RetryClass::Imds,
            Endpoint::ServiceFabric { .. } => RetryClass::ServiceFabric,
            Endpoint::AppService { .. }
            | Endpoint::Legacy2017 { .. }
            | Endpoint::CloudShell { .. } => RetryClass::ManagedIdentityDefault,
        }
    }

    /// A secret from the environment, read per request: the platform rotates it.
    fn secret(&self, name: &str) -> Result<Secret, Error> {
        self.inner
            .env
            .get(name)
            .map(Secret::new)
            .ok_or_else(|| Error::configuration(name, "it is no longer set"))
    }

    fn build_request(&self, request: &TokenRequest) -> Result<reqwest::RequestBuilder, Error> {
        let resource = request.audience().resource();
        let client = self.inner.http.inner();
        match &self.inner.endpoint {
            Endpoint::Imds { token_url } => {
                Ok(imds::request(client, token_url, resource, &self.inner.id))
            }
            Endpoint::AppService {
                fallback_2017: Some(endpoint),
                ..
            } if self.inner.on_2017.load(Ordering::Relaxed) => {
                self.request_2017(endpoint, resource, false)
            }
            Endpoint::AppService { endpoint, .. } => {
                let secret = self.secret(detect::IDENTITY_HEADER)?;
                app_service::request(client, endpoint, resource, &self.inner.id, secret.expose())
            }
            Endpoint::ServiceFabric { endpoint } => {
                let secret = self.secret(detect::IDENTITY_HEADER)?;
                // With a claims challenge, the token it rejected, so that the service issues a
                // new one instead of its cached one (protocols §13.3: Service Fabric only).
                let refresh = request.claims().and(request.token_to_refresh_sha256());
                let capabilities =
                    Some(self.inner.client_capabilities.as_str()).filter(|c| !c.is_empty());
                service_fabric::request(
                    client,
                    endpoint,
                    resource,
                    secret.expose(),
                    capabilities,
                    refresh,
                )
            }
            Endpoint::Legacy2017 { endpoint } => self.request_2017(endpoint, resource, true),
            Endpoint::CloudShell { endpoint } => {
                Ok(legacy::request_cloud_shell(client, endpoint, resource))
            }
            Endpoint::Arc { endpoint, .. } => arc::request(client, endpoint, resource, None),
        }
    }

    /// A request in the 2017-09-01 protocol (`MSI_ENDPOINT` + `MSI_SECRET`). Azure ML's
    /// system-assigned identity is the one `DEFAULT_IDENTITY_CLIENT_ID` names
    /// (`azure_ml_default`); App Service's has no such variable.
    fn request_2017(
        &self,
        endpoint: &url::Url,
        resource: &str,
        azure_ml_default: bool,
    ) -> Result<reqwest::RequestBuilder, Error> {
        let secret = self.secret(detect::MSI_SECRET)?;
        let default = if azure_ml_default {
            self.inner.env.get(detect::DEFAULT_IDENTITY_CLIENT_ID)
        } else {
            None
        };
        let client_id = legacy::client_id_2017(&self.inner.id, default)?;
        legacy::request_2017(
            self.inner.http.inner(),
            endpoint,
            resource,
            client_id.as_deref(),
            secret.expose(),
        )
    }

    /// True when App Service refused a 2019-08-01 request (`sent_2017` false: the protocol in
    /// use when it was sent) with `UnsupportedApiVersion` and there is a 2017-09-01 endpoint to
    /// fall back to: from then on this credential uses it, and the request is sent again. A
    /// request that raced the switch is sent again too.
    fn falls_back_to_2017(&self, response: &RawResponse, sent_2017: bool) -> bool {
        let Endpoint::AppService {
            fallback_2017: Some(fallback),
            ..
        } = &self.inner.endpoint
        else {
            return false;
        };
        if response.status != 400 || sent_2017 {
            return false;
        }
        let ErrorBody::Service(e) = response::error_body(response) else {
            return false;
        };
        let unsupported = e.code.as_deref() == Some("UnsupportedApiVersion")
            || e.description.as_deref().is_some_and(|d| {
                d.contains("UnsupportedApiVersion")
                    || d.contains("does not support the API version")
            });
        if unsupported && !self.inner.on_2017.swap(true, Ordering::Relaxed) {
            tracing::info!(
                endpoint = %fallback,
                "App Service refused api-version 2019-08-01 (UnsupportedApiVersion); using the 2017-09-01 protocol at MSI_ENDPOINT"
            );
        }
        unsupported
    }

    /// One attempt: one request, or Arc's two legs. The outer error ends the fetch; the inner
    /// one is a transport failure (retried).
    async fn attempt(
        &self,
        request: &TokenRequest,
        timeout: Duration,
    ) -> Result<Result<RawResponse, Unavailable>, Error> {
        let inner = &*self.inner;
        let resource = request.audience().resource();
        let first = inner.http.send(self.build_request(request)?, timeout).await;
        let Endpoint::Arc { endpoint, key_dir } = &inner.endpoint else {
            return Ok(first);
        };
        let response = match first {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        if (200..300).contains(&response.status) {
            return Err(Error::Unavailable {
                source_kind: SourceKind::AzureArc,
                endpoint: endpoint.to_string(),
                reason: Unavailable::InvalidResponse {
                    problem: "the first request was answered without the `401` Basic challenge the Arc agent sends".into(),
                },
            });
        }
        if response.status != 401 {
            return Ok(Ok(response));
        }
        let path =
            arc::challenge_path(response.www_authenticate.as_deref()).map_err(|problem| {
                Error::Unavailable {
                    source_kind: SourceKind::AzureArc,
                    endpoint: endpoint.to_string(),
                    reason: Unavailable::InvalidResponse { problem },
                }
            })?;
        let key = arc::read_key(&path, key_dir).await?;
        let second = arc::request(inner.http.inner(), endpoint, resource, Some(key.expose()))
            .map_err(|_| Error::ArcKeyFile {
                path: path.clone(),
                reason: "its content cannot be sent in an HTTP header".into(),
            })?;
        Ok(inner.http.send(second, timeout).await)
    }

    async fn fetch(&self, request: &TokenRequest) -> Result<AccessToken, Error> {
        let inner = &*self.inner;
        let time = &inner.time;
        let class = self.retry_class();
        let kind = self.source();
        let unavailable = |reason| Error::Unavailable {
            source_kind: kind,
            endpoint: self.endpoint().to_owned(),
            reason,
        };
        let budget = request
            .deadline()
            .map_or(inner.retry.deadline, |d| d.min(inner.retry.deadline));
        let started = time.monotonic();
        let deadline = started.saturating_add(budget);
        // The caller's deadline, not the credential's own retry budget, is what ends the fetch:
        // running out of it is `DeadlineExceeded` (a chain stops), not "unavailable".
        let caller_bound = request
            .deadline()
            .is_some_and(|d| d <= inner.retry.deadline);
        let out_of_time = |last| Error::deadline_exceeded(&inner.name, budget, last);
        let mut last: Option<Error> = None;
        // At most one switch to the 2017-09-01 protocol per fetch.
        let mut fell_back = false;
        let mut attempts: u32 = 0;
        // IMDS `410 Gone` is retried for at least 70 s from the first one, outside the retry
        // budget, which counts the other failures only.
        let mut gone_since: Option<Duration> = None;
        let mut other_failures: u32 = 0;
        loop {
            attempts += 1;
            let now = time.monotonic();
            let remaining = deadline.saturating_sub(now);
            if remaining.is_zero() {
                return Err(if caller_bound {
                    out_of_time(last)
                } else {
                    unavailable(Unavailable::Timeout(budget))
                });
            }
            let sent = SentAt {
                monotonic: now,
                wall: time.system_now(),
            };
            let resource = request.audience().resource();
            let sent_2017 = inner.on_2017.load(Ordering::Relaxed);
            // An attempt the caller's deadline cuts short: its timeout is that deadline's.
            let cut_by_caller = caller_bound && remaining < inner.attempt_timeout;
            let outcome = self
                .attempt(request, inner.attempt_timeout.min(remaining))
                .await?;
            let (error, retryable, retry_after) = match outcome {
                Ok(response) if (200..300).contains(&response.status) => {
                    let client_id = match &inner.id {
                        ManagedIdentityId::ClientId(id) => Some(id.as_str()),
                        _ => None,
                    };
                    let map = response::json_object(&response).map_err(unavailable)?;
                    if let Some(problem) = response::answered_for_another(&map, resource, client_id)
                    {
                        return Err(unavailable(Unavailable::InvalidResponse { problem }));
                    }
                    return response::token_from_map(
                        &map,
                        sent,
                        time.system_now(),
                        time.monotonic(),
                    )
                    .map_err(unavailable);
                }
                // Not counted against the retries: the same request in the other protocol.
                Ok(response) if !fell_back && self.falls_back_to_2017(&response, sent_2017) => {
                    fell_back = true;
                    attempts -= 1;
                    continue;
                }
                Ok(response) => {
                    let retryable = class.retries_status(response.status);
                    let retry_after = response
                        .retry_after
                        .as_deref()
                        .and_then(|v| response::retry_after(v, time.system_now()));
                    if response.status == 410 && class.gone_min_retry().is_some() {
                        gone_since.get_or_insert(now);
                    }
                    (
                        self.classify_failure(&response, attempts, retryable),
                        retryable,
                        retry_after,
                    )
                }
                Err(reason @ Unavailable::Timeout(_)) if cut_by_caller => {
                    return Err(out_of_time(Some(unavailable(reason))));
                }
                Err(reason) => {
                    let retryable = !reason.is_permanent();
                    (unavailable(reason), retryable, None)
                }
            };
            if !retryable {
                return Err(error);
            }
            let retries_done = attempts - 1;
            let gone = error.status() == Some(410) && gone_since.is_some();
            let may_retry = if gone {
                let since = gone_since.unwrap_or(now);
                class.gone_min_retry().is_some_and(|min| now - since < min)
                    || other_failures < inner.retry.max_retries
            } else {
                other_failures += 1;
                other_failures <= inner.retry.max_retries
            };
            if !may_retry {
                return Err(error);
            }
            let mut delay = inner.retry.backoff(retries_done, time.jitter());
            if let Some(ra) = retry_after {
                delay = delay.max(ra);
            }
            if time
                .monotonic()
                .checked_add(delay)
                .is_none_or(|at| at >= deadline)
            {
                tracing::debug!(
                    source = %kind,
                    attempts,
                    delay_ms = delay.as_millis() as u64,
                    "not retrying: the next attempt would start after the deadline"
                );
                return Err(if caller_bound {
                    out_of_time(Some(error))
                } else {
                    error
                });
            }
            tracing::debug!(
                source = %kind,
                attempt = attempts,
                status = error.status(),
                delay_ms = delay.as_millis() as u64,
                error = %error,
                "retrying managed-identity token request"
            );
            time.sleep(delay).await;
            last = Some(error);
        }
    }

    fn classify_failure(&self, response: &RawResponse, attempts: u32, retryable: bool) -> Error {
        let kind = self.source();
        let endpoint = self.endpoint();
        let status = response.status;
        let unavailable = |reason| Error::Unavailable {
            source_kind: kind,
            endpoint: endpoint.to_owned(),
            reason,
        };
        if (300..400).contains(&status) {
            return unavailable(Unavailable::Redirect { status });
        }
        let body = response::error_body(response);
        if retryable {
            return unavailable(Unavailable::Status {
                status,
                attempts,
                detail: match body {
                    ErrorBody::Service(e) => Some(e),
                    _ => None,
                },
            });
        }
        match body {
            ErrorBody::Html => unavailable(Unavailable::Html { status }),
            // Docker Desktop answers IMDS requests with 403 "… unreachable …": no IMDS here.
            ErrorBody::Service(e) if status == 403 && e.says_unreachable() => {
                unavailable(Unavailable::Status {
                    status,
                    attempts,
                    detail: Some(e),
                })
            }
            ErrorBody::Service(error) if (400..500).contains(&status) => Error::Refused {
                source_kind: kind,
                endpoint: endpoint.to_owned(),
                error,
            },
            ErrorBody::Service(e) => unavailable(Unavailable::Status {
                status,
                attempts,
                detail: Some(e),
            }),
            ErrorBody::Other => unavailable(Unavailable::UnexpectedStatus { status }),
        }
    }
}

#[async_trait]
impl TokenCredential for ManagedIdentityCredential {
    async fn get_token(&self, request: &TokenRequest) -> Result<AccessToken, Error> {
        if let Some(tenant) = request.tenant() {
            return Err(Error::configuration(
                "tenant",
                format!(
                    "a managed identity gets tokens only from its home tenant, not {tenant:?}; to act in another tenant use the identity as a federated credential of an app registration"
                ),
            ));
        }
        // Managed-identity endpoints take no claims (IMDS and App Service 2019-08-01 ignore
        // them); the cache already bypassed its entry for a claims request, and Service Fabric
        // is told which token to replace (see `build_request`).
        let result = self.fetch(request).await;
        match &result {
            Ok(token) => tracing::debug!(
                source = %self.source(),
                audience = %request.audience(),
                expires_on = token.expires_on_unix(),
                "managed-identity token received"
            ),
            Err(e) => tracing::debug!(
                source = %self.source(),
                audience = %request.audience(),
                error = %e,
                "managed-identity token request failed"
            ),
        }
        result
    }

    fn name(&self) -> &str {
        &self.inner.name
    }
}
