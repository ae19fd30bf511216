//! [`DefaultCredential`] at run time: the links tried in order, the IMDS probe before the
//! managed-identity link, the deadline shared by all, and the link that worked remembered.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use super::ChainLink;
use super::probe::{Probe, ProbeMiss};
use crate::credential::{TokenCredential, TokenRequest};
use crate::error::{ChainAttempt, Error};
use crate::time::{TimeSource, Until};
use crate::token::AccessToken;

/// No link selected.
const NONE: usize = usize::MAX;

/// The credential for code that runs both on Azure and on a developer's machine.
///
/// Links, in order: a client secret or certificate from the environment → workload identity → managed
/// identity → Azure CLI. `AZURE_TOKEN_CREDENTIALS` narrows it: `prod` (the first three), `dev`
/// (the Azure CLI), or one link's name (`EnvironmentCredential`, `WorkloadIdentityCredential`,
/// `ManagedIdentityCredential`, `AzureCliCredential`).
///
/// * A link whose cargo feature is off is left out: the Azure CLI without `azure-cli`, the
///   certificate half of the environment link without `client-certificate`. Asking for it
///   (`AZURE_TOKEN_CREDENTIALS=AzureCliCredential` or `dev`, a certificate configured in the
///   environment) fails [`build`](super::DefaultCredentialBuilder::build) with
///   [`ConfigurationError::FeatureDisabled`](crate::error::ConfigurationError::FeatureDisabled),
///   which names the feature.
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
///   ([`DeadlineError::Caller`](crate::error::DeadlineError::Caller)) stops the chain.
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

pub(super) struct Link {
    pub(super) kind: ChainLink,
    pub(super) slot: Slot,
    pub(super) probe: Option<Probe>,
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
pub(super) enum Slot {
    Ready(Arc<dyn TokenCredential>),
    Unconfigured(String),
    /// Configured, but unusable as configured: reported when reached, and the chain stops.
    Broken(Error),
}

impl DefaultCredential {
    /// The chain of `links`, none of them selected yet.
    pub(super) fn from_links(links: Vec<Link>, time: TimeSource) -> Self {
        DefaultCredential {
            inner: Arc::new(Inner {
                links,
                winner: AtomicUsize::new(NONE),
                announced: AtomicBool::new(false),
                time,
            }),
        }
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
                .then(|| Error::from(crate::error::ChainError::new(attempts.to_vec()))),
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
                    return Err(Error::from(crate::error::ChainError::new(attempts)));
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
                            None => Error::from(crate::error::ChainError::new(attempts)),
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
                    let out_of_time = matches!(&e, Error::Deadline(d) if matches!(**d, crate::error::DeadlineError::Caller { .. }));
                    attempts.push(ChainAttempt {
                        credential: name,
                        reason: e.to_string(),
                        unavailable: false,
                    });
                    return Err(match until {
                        Some(u) if out_of_time => Self::out_of_time(u, &attempts),
                        _ => Error::from(crate::error::ChainError::new(attempts)),
                    });
                }
            }
        }
        Err(Error::from(crate::error::ChainError::new(attempts)))
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
