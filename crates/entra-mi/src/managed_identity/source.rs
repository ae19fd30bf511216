//! What every managed-identity source provides, the public description of a source, and the
//! one place that turns a description into a working source.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use http::HeaderValue;

use super::ManagedIdentityId;
use super::{app_service, arc, azure_ml, cloud_shell, imds, service_fabric};
use crate::credential::TokenRequest;
use crate::env::Environment;
use crate::error::{Error, ServiceError, SourceError, Unavailable};
use crate::http::{HttpClient, RawResponse};
use crate::response::{self, ErrorBody};
use crate::retry::RetryClass;
use crate::source_kind::SourceKind;

/// A managed-identity source and its endpoint: what detection finds in the environment, or
/// what code names with
/// [`ManagedIdentityCredentialBuilder::source`](super::ManagedIdentityCredentialBuilder::source).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManagedIdentitySource {
    /// IMDS at this token URL.
    Imds {
        /// `…/metadata/identity/oauth2/token`, from `AZURE_POD_IDENTITY_AUTHORITY_HOST` or
        /// the well-known address.
        token_url: url::Url,
    },
    /// App Service 2019-08-01 at `IDENTITY_ENDPOINT`.
    AppService {
        /// The endpoint.
        endpoint: url::Url,
    },
    /// Service Fabric at `IDENTITY_ENDPOINT` (https), its certificate pinned to
    /// `IDENTITY_SERVER_THUMBPRINT`.
    ServiceFabric {
        /// The endpoint.
        endpoint: url::Url,
        /// The SHA-1 thumbprint of the endpoint's certificate (20 bytes).
        thumbprint: [u8; 20],
    },
    /// Azure Arc's HIMDS agent at `IDENTITY_ENDPOINT` or its fixed local address.
    AzureArc {
        /// The token endpoint.
        endpoint: url::Url,
    },
    /// The 2017-09-01 protocol at `MSI_ENDPOINT` (Azure ML, legacy App Service).
    AzureMl {
        /// The endpoint.
        endpoint: url::Url,
    },
    /// Cloud Shell at `MSI_ENDPOINT`.
    CloudShell {
        /// The endpoint.
        endpoint: url::Url,
    },
}

impl ManagedIdentitySource {
    /// The source kind.
    pub fn kind(&self) -> SourceKind {
        match self {
            ManagedIdentitySource::Imds { .. } => SourceKind::Imds,
            ManagedIdentitySource::AppService { .. } => SourceKind::AppService,
            ManagedIdentitySource::ServiceFabric { .. } => SourceKind::ServiceFabric,
            ManagedIdentitySource::AzureArc { .. } => SourceKind::AzureArc,
            ManagedIdentitySource::AzureMl { .. } => SourceKind::AzureMl,
            ManagedIdentitySource::CloudShell { .. } => SourceKind::CloudShell,
        }
    }

    /// The api-version this library sends to it (`None` for Cloud Shell, which takes a POST
    /// form without one).
    pub fn api_version(&self) -> Option<&'static str> {
        match self {
            ManagedIdentitySource::Imds { .. } => Some(imds::API_VERSION),
            ManagedIdentitySource::AppService { .. } => Some(app_service::API_VERSION),
            ManagedIdentitySource::ServiceFabric { .. } => Some(service_fabric::API_VERSION),
            ManagedIdentitySource::AzureArc { .. } => Some(arc::API_VERSION),
            ManagedIdentitySource::AzureMl { .. } => Some(azure_ml::API_VERSION),
            ManagedIdentitySource::CloudShell { .. } => None,
        }
    }

    /// The directory the Azure Arc agent keeps its key files in on this OS, which
    /// [`ManagedIdentityCredential`](super::ManagedIdentityCredential) requires a challenge's
    /// key file to lie in (`None` where Arc does not run).
    pub fn arc_key_directory() -> Option<PathBuf> {
        arc::default_key_directory()
    }

    /// The token endpoint.
    pub fn endpoint(&self) -> &url::Url {
        match self {
            ManagedIdentitySource::Imds { token_url } => token_url,
            ManagedIdentitySource::AppService { endpoint }
            | ManagedIdentitySource::ServiceFabric { endpoint, .. }
            | ManagedIdentitySource::AzureArc { endpoint }
            | ManagedIdentitySource::AzureMl { endpoint }
            | ManagedIdentitySource::CloudShell { endpoint } => endpoint,
        }
    }
}

/// What building a source takes besides its description.
pub(super) struct SourceConfig<'a> {
    pub(super) id: &'a ManagedIdentityId,
    pub(super) env: &'a Environment,
    /// False when code named the source: then nothing else is read from the environment at
    /// build time (App Service's 2017-09-01 fallback is not looked for).
    pub(super) detected: bool,
    pub(super) allow_http_endpoint: bool,
    pub(super) arc_key_directory: Option<PathBuf>,
    pub(super) client_capabilities: &'a [String],
}

/// Turns a description into a working source: the one place the kinds are dispatched. Each
/// source refuses the identities it cannot select.
pub(super) fn build(
    description: ManagedIdentitySource,
    config: &SourceConfig<'_>,
) -> Result<Box<dyn Source>, Error> {
    Ok(match description {
        ManagedIdentitySource::Imds { token_url } => Box::new(imds::Imds::new(token_url)),
        ManagedIdentitySource::AppService { endpoint } => {
            Box::new(app_service::AppService::new(endpoint, config)?)
        }
        ManagedIdentitySource::AzureArc { endpoint } => Box::new(arc::Arc::new(endpoint, config)?),
        ManagedIdentitySource::ServiceFabric {
            endpoint,
            thumbprint,
        } => Box::new(service_fabric::ServiceFabric::new(
            endpoint, thumbprint, config,
        )?),
        ManagedIdentitySource::AzureMl { endpoint } => {
            Box::new(azure_ml::Legacy2017::new(endpoint, config.id, true)?)
        }
        ManagedIdentitySource::CloudShell { endpoint } => {
            Box::new(cloud_shell::CloudShell::new(endpoint, config.id)?)
        }
    })
}

/// What a request builder gets: the pooled client, the environment (secret headers are read
/// per request: the platform rotates them) and the selected identity.
pub(super) struct RequestContext<'a> {
    pub(super) client: &'a reqwest::Client,
    pub(super) env: &'a Environment,
    pub(super) id: &'a ManagedIdentityId,
}

/// One managed-identity source: how it asks for a token and how it reads the answers. The
/// token response itself is parsed by the shared parser.
#[async_trait]
pub(super) trait Source: Send + Sync + fmt::Debug {
    /// Which source this is.
    fn kind(&self) -> SourceKind;

    /// The endpoint requests go to now (without query).
    fn endpoint(&self) -> &url::Url;

    /// How failures are retried.
    fn retry_class(&self) -> RetryClass;

    /// The HTTP client (Service Fabric pins its endpoint's certificate).
    fn http_client(&self, connect_timeout: Duration) -> Result<HttpClient, Error> {
        HttpClient::new(connect_timeout)
    }

    /// The first (usually only) request of an attempt.
    fn request(
        &self,
        cx: &RequestContext<'_>,
        request: &TokenRequest,
    ) -> Result<reqwest::RequestBuilder, Error>;

    /// The legs after the first answer: the answer of the attempt. The default has none.
    async fn next_leg(
        &self,
        _http: &HttpClient,
        _request: &TokenRequest,
        first: RawResponse,
        _timeout: Duration,
    ) -> Result<Result<RawResponse, Unavailable>, Error> {
        Ok(Ok(first))
    }

    /// Which protocol the source speaks now (a source that switches protocol counts up).
    fn protocol(&self) -> u32 {
        0
    }

    /// True when `response`, to a request sent in protocol `sent_in`, means the same request
    /// goes again in another protocol (which the source now uses). The default never switches.
    fn switches_protocol(&self, _response: &RawResponse, _sent_in: u32) -> bool {
        false
    }

    /// The error for a failed answer, after `attempts` requests; `retryable` when its status
    /// is retried for this source.
    fn classify(&self, response: &RawResponse, attempts: u32, retryable: bool) -> Error {
        classify(self.kind(), self.endpoint(), response, attempts, retryable)
    }
}

/// [`SourceError::Unavailable`] of `kind` at `endpoint`.
pub(super) fn unavailable(kind: SourceKind, endpoint: &url::Url, reason: Unavailable) -> Error {
    Error::Source(SourceError::Unavailable {
        source_kind: kind,
        endpoint: endpoint.to_string(),
        reason,
    })
}

/// How every source reads a failed answer: a redirect, HTML or unrecognisable body is
/// "unavailable", a retried status that ran out of retries too, and a service error in a
/// `4xx` is a refusal.
pub(super) fn classify(
    kind: SourceKind,
    endpoint: &url::Url,
    response: &RawResponse,
    attempts: u32,
    retryable: bool,
) -> Error {
    let status = response.status;
    let unavailable = |reason| unavailable(kind, endpoint, reason);
    if (300..400).contains(&status) {
        return unavailable(Unavailable::Redirect { status });
    }
    let status_failure = |detail: Option<ServiceError>| {
        unavailable(Unavailable::Status {
            status,
            attempts,
            detail,
        })
    };
    match response::error_body(response) {
        ErrorBody::Service(e) if retryable => status_failure(Some(e)),
        _ if retryable => status_failure(None),
        ErrorBody::Html => unavailable(Unavailable::Html { status }),
        ErrorBody::Service(error) if (400..500).contains(&status) => {
            Error::Source(SourceError::Refused {
                source_kind: kind,
                endpoint: endpoint.to_string(),
                error,
            })
        }
        ErrorBody::Service(e) => status_failure(Some(e)),
        ErrorBody::Other => unavailable(Unavailable::UnexpectedStatus { status }),
    }
}

/// The secret header a source sends, read from the environment now (the platform rotates it)
/// and marked sensitive.
pub(super) fn secret_header(env: &Environment, name: &str) -> Result<HeaderValue, Error> {
    let secret = env
        .get(name)
        .map(crate::secret::Secret::new)
        .ok_or_else(|| Error::configuration(name, "it is no longer set"))?;
    crate::http::sensitive_header(secret.expose()).ok_or_else(|| {
        Error::configuration(
            name,
            "its value contains characters not allowed in an HTTP header",
        )
    })
}

/// The query every source but Cloud Shell starts with.
pub(super) fn token_url(endpoint: &url::Url, api_version: &str, resource: &str) -> url::Url {
    let mut url = endpoint.clone();
    url.query_pairs_mut()
        .append_pair("api-version", api_version)
        .append_pair("resource", resource);
    url
}

/// Refuses a user-assigned identity for a source that serves only its own.
pub(super) fn system_assigned_only(
    kind: SourceKind,
    id: &ManagedIdentityId,
    why: &str,
) -> Result<(), Error> {
    if *id == ManagedIdentityId::SystemAssigned {
        Ok(())
    } else {
        Err(Error::configuration(
            "managed identity",
            format!("{kind} cannot select a user-assigned identity: {why}"),
        ))
    }
}
