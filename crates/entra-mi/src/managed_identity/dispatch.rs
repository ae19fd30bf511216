//! The public description of a source, and the one place that turns a description into a
//! working source.

use std::path::PathBuf;

use super::source::{Source, SourceConfig};
use super::{app_service, arc, azure_ml, cloud_shell, imds, service_fabric};
use crate::error::Error;
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

/// Turns a description into a working source: the one place the kinds are dispatched. Each
/// source refuses the identities it cannot select.
pub(super) fn build(
    description: ManagedIdentitySource,
    config: &SourceConfig<'_>,
) -> Result<Box<dyn Source>, Error> {
    Ok(match description {
        ManagedIdentitySource::Imds { token_url } => Box::new(imds::Imds::new(token_url)),
        ManagedIdentitySource::AppService { endpoint } => {
            Box::new(app_service::AppService::new(endpoint, config))
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
