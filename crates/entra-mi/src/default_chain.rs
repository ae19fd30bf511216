//! `DefaultCredential`: environment → workload identity → managed identity → Azure CLI.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::azure_cli::AzureCliCredential;
use crate::client_certificate::ClientCertificateCredential;
use crate::client_secret::ClientSecretCredential;
use crate::credential::{TokenCredential, TokenRequest};
use crate::entra::AZURE_CLIENT_ID;
use crate::env::Environment;
use crate::error::{ChainAttempt, Error};
use crate::http::HttpClient;
use crate::managed_identity::detect;
use crate::managed_identity::{ManagedIdentityCredential, ManagedIdentityId, SourceKind};
use crate::time::{TimeSource, Until};
use crate::token::AccessToken;
use crate::workload_identity::WorkloadIdentityCredential;

const AZURE_TOKEN_CREDENTIALS: &str = "AZURE_TOKEN_CREDENTIALS";
const NONE: usize = usize::MAX;
/// How long a failed IMDS probe is remembered before the next call probes again.
const PROBE_NEGATIVE_TTL: Duration = Duration::from_secs(300);

/// A link of [`DefaultCredential`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChainLink {
    /// A client secret (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`), else a
    /// client certificate (`AZURE_CLIENT_CERTIFICATE_PATH`, …) from the environment.
    Environment,
    /// [`WorkloadIdentityCredential`] from its environment variables.
    WorkloadIdentity,
    /// [`ManagedIdentityCredential`], source detected from the environment.
    ManagedIdentity,
    /// [`AzureCliCredential`].
    AzureCli,
}

impl ChainLink {
    /// The link's name in errors and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ChainLink::Environment => "environment",
            ChainLink::WorkloadIdentity => "workload-identity",
            ChainLink::ManagedIdentity => "managed-identity",
            ChainLink::AzureCli => "azure-cli",
        }
    }

    /// The `AZURE_TOKEN_CREDENTIALS` value that selects only this link.
    pub fn env_name(self) -> &'static str {
        match self {
            ChainLink::Environment => "EnvironmentCredential",
            ChainLink::WorkloadIdentity => "WorkloadIdentityCredential",
            ChainLink::ManagedIdentity => "ManagedIdentityCredential",
            ChainLink::AzureCli => "AzureCliCredential",
        }
    }

    const ALL: [ChainLink; 4] = [
        ChainLink::Environment,
        ChainLink::WorkloadIdentity,
        ChainLink::ManagedIdentity,
        ChainLink::AzureCli,
    ];
}

impl fmt::Display for ChainLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// `AZURE_TOKEN_CREDENTIALS` selects).
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
    /// (the message lists the valid ones) or a link's variables are set but malformed.
    pub fn build(self) -> Result<DefaultCredential, Error> {
        let selected = match (&self.links, self.env.get(AZURE_TOKEN_CREDENTIALS)) {
            (Some(links), _) => links.clone(),
            (None, None) => ChainLink::ALL.to_vec(),
            (None, Some(v)) => parse_selection(&v)?,
        };
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
                        Err(Error::Credential(crate::error::CredentialError::Unavailable {
                            reason,
                            ..
                        })) => Slot::Unconfigured(reason),
                        Err(e) => return Err(e),
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
                        Err(
                            e @ Error::Configuration(crate::error::ConfigurationError::Setting {
                                ..
                            }),
                        ) if implicit => {
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
                ChainLink::AzureCli => Slot::Ready(Arc::new(
                    AzureCliCredential::builder()
                        .environment(self.env.clone())
                        .time_source(self.time.clone())
                        .timeout(self.cli_timeout)
                        .build()?,
                )),
            };
            links.push(Link {
                kind,
                slot,
                probe: None,
            });
        }
        Ok(DefaultCredential {
            inner: Arc::new(Inner {
                links,
                winner: AtomicUsize::new(NONE),
                announced: AtomicBool::new(false),
                time: self.time,
            }),
        })
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
            Err(Error::Credential(crate::error::CredentialError::Unavailable {
                reason, ..
            })) => reason,
            Err(e) => return Err(e),
        };
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
            Err(Error::Credential(crate::error::CredentialError::Unavailable { .. })) => {
                Ok(Slot::Unconfigured(format!(
                    "{secret} (and AZURE_CLIENT_CERTIFICATE_PATH is not set either)"
                )))
            }
            Err(e) => Err(e),
        }
    }
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

/// The credential for code that runs both on Azure and on a developer's machine.
///
/// Links, in order: a client secret or certificate from the environment → workload identity → managed
/// identity → Azure CLI. `AZURE_TOKEN_CREDENTIALS` narrows it: `prod` (the first three), `dev`
/// (the Azure CLI), or one link's name (`EnvironmentCredential`, `WorkloadIdentityCredential`,
/// `ManagedIdentityCredential`, `AzureCliCredential`).
///
/// * A link whose configuration is absent is skipped; a configured link that fails stops the
///   chain with its error (no silent switch to another identity).
/// * When the managed-identity link would use IMDS and no other managed-identity variable is
///   set, IMDS is first probed once (1 s, no retries, no `Metadata` header); no answer means
///   "not on Azure" and the chain moves on. Any answer means something is there; a
///   managed-identity failure is then reported as such and never falls through to the Azure
///   CLI — unless the probed IMDS's answer shows it is no IMDS at all (Docker Desktop's `403`
///   "unreachable network", an HTML page, a redirect, a body that is not JSON, an error
///   status without a token service's error body): that link counts as unavailable and the
///   chain moves on. A source named by the environment (App Service, Arc, …) stops the chain
///   whatever it answers.
/// * After a success, that link is used directly for the life of this instance (each
///   instance remembers its own; there is no global state) until it reports itself
///   unavailable.
/// * When every link fails, [`Error::Chain`] lists each one with its reason, one line each.
/// * A deadline on the request ([`TokenRequest::with_deadline`]) bounds the whole chain, probe
///   included: each link gets what is left of it, and a link that runs out of it
///   ([`Error::Deadline`]) stops the chain.
#[derive(Clone, Debug)]
pub struct DefaultCredential {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    links: Vec<Link>,
    winner: AtomicUsize,
    announced: AtomicBool,
    time: TimeSource,
}

struct Link {
    kind: ChainLink,
    slot: Slot,
    probe: Option<Probe>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("kind", &self.kind)
            .field("slot", &self.slot)
            .field("probe", &self.probe.is_some())
            .finish()
    }
}

#[derive(Debug)]
enum Slot {
    Ready(Arc<dyn TokenCredential>),
    Unconfigured(String),
    /// Configured, but unusable as configured: reported when reached, and the chain stops.
    Broken(Error),
}

/// The one IMDS probe: its result (and when it was taken).
#[derive(Debug)]
struct Probe {
    url: String,
    http: HttpClient,
    timeout: Duration,
    state: tokio::sync::Mutex<Option<(Result<(), String>, Duration)>>,
}

/// Why a probe let the chain go no further with its link.
enum ProbeMiss {
    /// No IMDS here (the reason).
    Absent(String),
    /// The caller's deadline ended the probe before its own timeout: nothing is known, and
    /// nothing is remembered.
    OutOfTime,
}

impl Probe {
    /// Probes unless a result is known (a success forever; a failure for five minutes), for at
    /// most its timeout or `limit` (what is left of the caller's deadline), whichever is
    /// shorter. Concurrent callers wait for the same probe.
    async fn check(&self, time: &TimeSource, limit: Option<Duration>) -> Result<(), ProbeMiss> {
        let mut state = self.state.lock().await;
        if let Some((result, at)) = state.as_ref()
            && (result.is_ok() || time.monotonic() - *at < PROBE_NEGATIVE_TTL)
        {
            return result.clone().map_err(ProbeMiss::Absent);
        }
        let timeout = limit.map_or(self.timeout, |l| l.min(self.timeout));
        // No `Metadata` header: a real IMDS answers 400 at once; any answer means it is there.
        let request = self.http.inner().get(&self.url);
        let result = match self.http.send(request, timeout).await {
            Ok(_) => Ok(()),
            Err(_) if timeout < self.timeout => return Err(ProbeMiss::OutOfTime),
            Err(e) => Err(format!(
                "IMDS did not answer a probe within {:?} ({e}): not on an Azure VM",
                self.timeout
            )),
        };
        tracing::debug!(ok = result.is_ok(), "IMDS probe");
        *state = Some((result.clone(), time.monotonic()));
        result.map_err(ProbeMiss::Absent)
    }
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

    /// The links, in order.
    pub fn links(&self) -> Vec<ChainLink> {
        self.inner.links.iter().map(|l| l.kind).collect()
    }

    /// The link that produced the last token, if one has.
    pub fn selected(&self) -> Option<ChainLink> {
        let w = self.inner.winner.load(Ordering::Acquire);
        self.inner.links.get(w).map(|l| l.kind)
    }

    /// The chain's answer once the caller's deadline has run out, with what each link said.
    fn out_of_time(until: Until, attempts: &[ChainAttempt]) -> Error {
        Error::deadline_exceeded(
            "default",
            until.deadline,
            (!attempts.is_empty())
                .then(|| Error::Chain(crate::error::ChainError::new(attempts.to_vec()))),
        )
    }

    /// Tries the links in order. `until` is the caller's deadline, shared by the probe and
    /// every link: each gets what is left of it.
    async fn walk(
        &self,
        request: &TokenRequest,
        until: Option<Until>,
    ) -> Result<AccessToken, Error> {
        let inner = &*self.inner;
        let mut attempts = Vec::new();
        for (i, link) in inner.links.iter().enumerate() {
            let name = link.kind.as_str().to_owned();
            let cred = match &link.slot {
                Slot::Unconfigured(reason) => {
                    attempts.push(ChainAttempt {
                        credential: name,
                        reason: format!("not configured: {reason}"),
                        unavailable: true,
                    });
                    continue;
                }
                Slot::Broken(e) => {
                    attempts.push(ChainAttempt {
                        credential: name,
                        reason: format!(
                            "{e} (AZURE_CLIENT_ID was taken as the managed identity's client id)"
                        ),
                        unavailable: false,
                    });
                    return Err(Error::Chain(crate::error::ChainError::new(attempts)));
                }
                Slot::Ready(c) => c,
            };
            let left = until.map(|u| u.left(&inner.time));
            if let (Some(until), Some(Duration::ZERO)) = (until, left) {
                return Err(Self::out_of_time(until, &attempts));
            }
            if let Some(probe) = &link.probe {
                match probe.check(&inner.time, left).await {
                    Ok(()) => {}
                    Err(ProbeMiss::Absent(reason)) => {
                        attempts.push(ChainAttempt {
                            credential: name,
                            reason,
                            unavailable: true,
                        });
                        continue;
                    }
                    // Only a deadline cuts a probe short.
                    Err(ProbeMiss::OutOfTime) => {
                        return Err(match until {
                            Some(u) => Self::out_of_time(u, &attempts),
                            None => Error::Chain(crate::error::ChainError::new(attempts)),
                        });
                    }
                }
            }
            let request = match until {
                Some(u) => match u.left(&inner.time) {
                    Duration::ZERO => return Err(Self::out_of_time(u, &attempts)),
                    left => request.clone().with_deadline(left),
                },
                None => request.clone(),
            };
            match cred.get_token(&request).await {
                Ok(token) => {
                    inner.winner.store(i, Ordering::Release);
                    if !inner.announced.swap(true, Ordering::AcqRel) {
                        tracing::info!(
                            credential = cred.name(),
                            "default credential: using the {} link",
                            link.kind
                        );
                    }
                    return Ok(token);
                }
                // Developer links that are not set up here, and a probed IMDS (no managed-
                // identity variable set) that something other than IMDS answered (Docker
                // Desktop's 403 for 169.254.169.254, a proxy's page): move on. A source the
                // environment names stops the chain whatever it answers.
                Err(e)
                    if e.is_unavailable()
                        && (link.kind != ChainLink::ManagedIdentity
                            || (link.probe.is_some() && e.is_foreign_answer())) =>
                {
                    attempts.push(ChainAttempt {
                        credential: name,
                        reason: e.to_string(),
                        unavailable: true,
                    });
                }
                // A configured link that fails — and any failure of a managed-identity endpoint
                // once it is known to exist — stops the chain; so does the caller's deadline.
                Err(e) => {
                    let out_of_time = matches!(
                        e,
                        Error::Deadline(crate::error::DeadlineError::Caller { .. })
                    );
                    attempts.push(ChainAttempt {
                        credential: name,
                        reason: e.to_string(),
                        unavailable: false,
                    });
                    return Err(match until {
                        Some(u) if out_of_time => Self::out_of_time(u, &attempts),
                        _ => Error::Chain(crate::error::ChainError::new(attempts)),
                    });
                }
            }
        }
        Err(Error::Chain(crate::error::ChainError::new(attempts)))
    }
}

#[async_trait]
impl TokenCredential for DefaultCredential {
    async fn get_token(&self, request: &TokenRequest) -> Result<AccessToken, Error> {
        // The caller's deadline bounds the whole call: the remembered link and the walk.
        let until = Until::start(request.deadline(), &self.inner.time);
        let w = self.inner.winner.load(Ordering::Acquire);
        if let Some(Link {
            slot: Slot::Ready(cred),
            ..
        }) = self.inner.links.get(w)
        {
            match cred.get_token(request).await {
                Err(e) if e.is_unavailable() => {
                    self.inner.winner.store(NONE, Ordering::Release);
                }
                other => return other,
            }
        }
        self.walk(request, until).await
    }

    fn name(&self) -> &str {
        "default"
    }
}
