//! Building a [`DefaultCredential`]: which links (`AZURE_TOKEN_CREDENTIALS` or the builder's
//! choice), each configured from the environment, and the IMDS probe where it applies.

use std::sync::Arc;
use std::time::Duration;

use super::ChainLink;
use super::chain::{DefaultCredential, Link, Slot};
use super::probe::Probe;
#[cfg(feature = "azure-cli")]
use crate::azure_cli::AzureCliCredential;
#[cfg(feature = "client-certificate")]
use crate::client_certificate::ClientCertificateCredential;
use crate::client_secret::ClientSecretCredential;
use crate::entra::AZURE_CLIENT_ID;
use crate::env::Environment;
use crate::error::Error;
use crate::http::HttpClient;
use crate::managed_identity::detect;
use crate::managed_identity::{ManagedIdentityCredential, ManagedIdentityId, SourceKind};
use crate::time::TimeSource;
use crate::workload_identity::WorkloadIdentityCredential;

const AZURE_TOKEN_CREDENTIALS: &str = "AZURE_TOKEN_CREDENTIALS";

/// Builds a [`DefaultCredential`].
#[derive(Debug, Clone)]
pub struct DefaultCredentialBuilder {
    env: Environment,
    time: TimeSource,
    links: Option<Vec<ChainLink>>,
    managed_identity: Option<ManagedIdentityId>,
    imds_probe_timeout: Duration,
    cli_timeout: Duration,
    authority_host: Option<String>,
    allow_loopback_http: bool,
    client_capabilities: Vec<String>,
}

impl DefaultCredentialBuilder {
    /// Read configuration from this environment instead of the process's.
    pub fn environment(mut self, env: Environment) -> Self {
        self.env = env;
        self
    }

    /// Clock, timer and jitter for every link.
    pub fn time_source(mut self, time: TimeSource) -> Self {
        self.time = time;
        self
    }

    /// Use exactly these links, in this order (default: all four, or what
    /// `AZURE_TOKEN_CREDENTIALS` selects). A link whose cargo feature is off (the Azure CLI
    /// without `azure-cli`) makes [`build`](Self::build) fail with
    /// [`ConfigurationError::FeatureDisabled`](crate::error::ConfigurationError::FeatureDisabled).
    pub fn links(mut self, links: &[ChainLink]) -> Self {
        self.links = Some(links.to_vec());
        self
    }

    /// The managed identity to use (default: the client id in `AZURE_CLIENT_ID` when set,
    /// else the system-assigned identity).
    pub fn managed_identity(mut self, id: ManagedIdentityId) -> Self {
        self.managed_identity = Some(id);
        self
    }

    /// Time limit of the one IMDS probe (default 1 s).
    pub fn imds_probe_timeout(mut self, d: Duration) -> Self {
        self.imds_probe_timeout = d;
        self
    }

    /// Time limit of the Azure CLI (default 10 s).
    pub fn cli_timeout(mut self, d: Duration) -> Self {
        self.cli_timeout = d;
        self
    }

    /// The authority host of the token-endpoint links (default `AZURE_AUTHORITY_HOST`, else
    /// the public cloud).
    pub fn authority_host(mut self, host: impl Into<String>) -> Self {
        self.authority_host = Some(host.into());
        self
    }

    /// Allows a plain-`http` loopback authority (a local emulator).
    pub fn allow_loopback_http(mut self, allow: bool) -> Self {
        self.allow_loopback_http = allow;
        self
    }

    /// Client capabilities (`cp1` for Continuous Access Evaluation) for every link that
    /// declares them: the token-endpoint links, and the managed identity where its source
    /// takes them (Service Fabric). Default: none.
    pub fn client_capabilities<I, S>(mut self, capabilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.client_capabilities = capabilities.into_iter().map(Into::into).collect();
        self
    }

    /// Reads the environment, validates every configured link and builds the chain.
    ///
    /// Fails with [`Error::Configuration`] when `AZURE_TOKEN_CREDENTIALS` has an unknown value
    /// (the message lists the valid ones), a link's variables are set but malformed, or a
    /// link is asked for whose cargo feature this build leaves off
    /// ([`ConfigurationError::FeatureDisabled`](crate::error::ConfigurationError::FeatureDisabled)).
    /// Without being asked for, such a link is left out of the chain.
    pub fn build(self) -> Result<DefaultCredential, Error> {
        let (selected, selected_by) = match (&self.links, self.env.get(AZURE_TOKEN_CREDENTIALS)) {
            (Some(links), _) => (links.clone(), LINKS_OPTION),
            (None, None) => (
                ChainLink::ALL
                    .into_iter()
                    .filter(|l| l.disabled_feature().is_none())
                    .collect(),
                LINKS_OPTION,
            ),
            (None, Some(v)) => (parse_selection(&v)?, AZURE_TOKEN_CREDENTIALS),
        };
        if let Some((link, feature)) = selected
            .iter()
            .find_map(|l| l.disabled_feature().map(|f| (l, f)))
        {
            return Err(feature_disabled(selected_by, link.env_name(), feature));
        }
        let explicit_mi = selected == [ChainLink::ManagedIdentity];
        let mut links = Vec::new();
        for kind in selected {
            let slot = match kind {
                ChainLink::Environment => self.environment_link()?,
                ChainLink::WorkloadIdentity => {
                    match WorkloadIdentityCredential::builder_from_environment(&self.env) {
                        Ok(mut b) => {
                            if let Some(h) = &self.authority_host {
                                b = b.authority_host(h.clone());
                            }
                            Slot::Ready(Arc::new(
                                b.allow_loopback_http(self.allow_loopback_http)
                                    .time_source(self.time.clone())
                                    .client_capabilities(self.client_capabilities.clone())
                                    .build()?,
                            ))
                        }
                        Err(e) => Slot::Unconfigured(unconfigured(e)?),
                    }
                }
                ChainLink::ManagedIdentity => {
                    let (id, implicit) = match &self.managed_identity {
                        Some(id) => (id.clone(), false),
                        None => match self.env.get(AZURE_CLIENT_ID) {
                            Some(c) => (ManagedIdentityId::ClientId(c), true),
                            None => (ManagedIdentityId::SystemAssigned, false),
                        },
                    };
                    let built = ManagedIdentityCredential::builder()
                        .environment(self.env.clone())
                        .time_source(self.time.clone())
                        .client_capabilities(self.client_capabilities.clone())
                        .identity(id)
                        .build();
                    let mi = match built {
                        Ok(mi) => mi,
                        // AZURE_CLIENT_ID (meant for another link, perhaps) names an identity
                        // this source cannot select: the link reports it when reached and the
                        // chain stops there, rather than the whole chain failing to build.
                        Err(e)
                            if implicit
                                && matches!(&e, Error::Configuration(c) if matches!(**c, crate::error::ConfigurationError::Setting { .. })) =>
                        {
                            links.push(Link {
                                kind,
                                slot: Slot::Broken(e),
                                probe: None,
                            });
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    let probe = (mi.source_kind() == SourceKind::Imds
                        && !explicit_mi
                        && !detect::other_source_configured(&self.env))
                    .then(|| -> Result<Probe, Error> {
                        Ok(Probe {
                            url: mi.endpoint().to_owned(),
                            http: HttpClient::new(self.imds_probe_timeout)?,
                            timeout: self.imds_probe_timeout,
                            state: tokio::sync::Mutex::new(None),
                        })
                    })
                    .transpose()?;
                    links.push(Link {
                        kind,
                        slot: Slot::Ready(Arc::new(mi)),
                        probe,
                    });
                    continue;
                }
                ChainLink::AzureCli => self.azure_cli_link(selected_by)?,
            };
            links.push(Link {
                kind,
                slot,
                probe: None,
            });
        }
        Ok(DefaultCredential::from_links(links, self.time))
    }
}

impl DefaultCredentialBuilder {
    /// The environment link: a client secret when `AZURE_CLIENT_SECRET` is set, else a
    /// client certificate when `AZURE_CLIENT_CERTIFICATE_PATH` is.
    fn environment_link(&self) -> Result<Slot, Error> {
        let secret = match ClientSecretCredential::builder_from_environment(&self.env) {
            Ok(mut b) => {
                if let Some(h) = &self.authority_host {
                    b = b.authority_host(h.clone());
                }
                let c = b
                    .allow_loopback_http(self.allow_loopback_http)
                    .time_source(self.time.clone())
                    .client_capabilities(self.client_capabilities.clone())
                    .build()?;
                return Ok(Slot::Ready(Arc::new(c)));
            }
            Err(e) => unconfigured(e)?,
        };
        self.certificate_link(secret)
    }

    #[cfg(feature = "client-certificate")]
    fn certificate_link(&self, secret: String) -> Result<Slot, Error> {
        match ClientCertificateCredential::builder_from_environment(&self.env) {
            Ok(mut b) => {
                if let Some(h) = &self.authority_host {
                    b = b.authority_host(h.clone());
                }
                let c = b
                    .allow_loopback_http(self.allow_loopback_http)
                    .time_source(self.time.clone())
                    .client_capabilities(self.client_capabilities.clone())
                    .build()?;
                Ok(Slot::Ready(Arc::new(c)))
            }
            Err(e) => {
                unconfigured(e)?;
                Ok(Slot::Unconfigured(format!(
                    "{secret} (and AZURE_CLIENT_CERTIFICATE_PATH is not set either)"
                )))
            }
        }
    }

    /// Without the `client-certificate` feature: an environment that configures a certificate
    /// (tenant, client id and certificate path all set) is refused with the feature to enable,
    /// rather than skipped in favour of another identity.
    #[cfg(not(feature = "client-certificate"))]
    fn certificate_link(&self, secret: String) -> Result<Slot, Error> {
        let configured = [
            crate::entra::AZURE_TENANT_ID,
            AZURE_CLIENT_ID,
            AZURE_CLIENT_CERTIFICATE_PATH,
        ]
        .iter()
        .all(|name| self.env.get(name).is_some());
        if configured {
            return Err(feature_disabled(
                AZURE_CLIENT_CERTIFICATE_PATH,
                "ClientCertificateCredential",
                "client-certificate",
            ));
        }
        Ok(Slot::Unconfigured(format!(
            "{secret} (and AZURE_CLIENT_CERTIFICATE_PATH is not set either)"
        )))
    }

    #[cfg(feature = "azure-cli")]
    fn azure_cli_link(&self, _selected_by: &str) -> Result<Slot, Error> {
        Ok(Slot::Ready(Arc::new(
            AzureCliCredential::builder()
                .environment(self.env.clone())
                .time_source(self.time.clone())
                .timeout(self.cli_timeout)
                .build()?,
        )))
    }

    #[cfg(not(feature = "azure-cli"))]
    fn azure_cli_link(&self, selected_by: &str) -> Result<Slot, Error> {
        Err(feature_disabled(
            selected_by,
            ChainLink::AzureCli.env_name(),
            "azure-cli",
        ))
    }
}

/// Where a selection of links came from when it was not `AZURE_TOKEN_CREDENTIALS`.
const LINKS_OPTION: &str = "DefaultCredentialBuilder::links";

#[cfg(not(feature = "client-certificate"))]
const AZURE_CLIENT_CERTIFICATE_PATH: &str = "AZURE_CLIENT_CERTIFICATE_PATH";

fn feature_disabled(setting: &str, credential: &'static str, feature: &'static str) -> Error {
    Error::from(crate::error::ConfigurationError::FeatureDisabled {
        setting: setting.to_owned(),
        credential,
        feature,
    })
}

fn parse_selection(value: &str) -> Result<Vec<ChainLink>, Error> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("prod") {
        return Ok(vec![
            ChainLink::Environment,
            ChainLink::WorkloadIdentity,
            ChainLink::ManagedIdentity,
        ]);
    }
    if v.eq_ignore_ascii_case("dev") {
        return Ok(vec![ChainLink::AzureCli]);
    }
    if let Some(link) = ChainLink::ALL
        .iter()
        .find(|l| l.env_name().eq_ignore_ascii_case(v))
    {
        return Ok(vec![*link]);
    }
    let names: Vec<&str> = ChainLink::ALL.iter().map(|l| l.env_name()).collect();
    Err(Error::configuration(
        AZURE_TOKEN_CREDENTIALS,
        format!(
            "{value:?} is not a valid value; use `prod`, `dev` or one of {}",
            names.join(", ")
        ),
    ))
}

impl DefaultCredential {
    /// A builder reading the process environment.
    pub fn builder() -> DefaultCredentialBuilder {
        DefaultCredentialBuilder {
            env: Environment::process(),
            time: TimeSource::system(),
            links: None,
            managed_identity: None,
            imds_probe_timeout: Duration::from_secs(1),
            cli_timeout: Duration::from_secs(10),
            authority_host: None,
            allow_loopback_http: false,
            client_capabilities: Vec::new(),
        }
    }

    /// The chain for the process environment.
    pub fn new() -> Result<Self, Error> {
        Self::builder().build()
    }
}

/// Why a link is not configured, when building its credential failed with
/// `CredentialError::Unavailable` (its variables are not set); any other failure as it is.
fn unconfigured(e: Error) -> Result<String, Error> {
    match e {
        Error::Credential(family) => match *family {
            crate::error::CredentialError::Unavailable { reason, .. } => Ok(reason),
            other => Err(other.into()),
        },
        e => Err(e),
    }
}
