//! The managed-identity credential: one fetch loop (deadlines, retries, back-off) over the
//! source the builder chose.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::ManagedIdentityId;
use super::source::{self, RequestContext, Source};
use crate::credential::{TokenCredential, TokenRequest};
use crate::env::Environment;
use crate::error::{Error, Unavailable};
use crate::http::{HttpClient, RawResponse};
use crate::response::{self, SentAt};
use crate::retry::RetryOptions;
use crate::source_kind::SourceKind;
use crate::time::TimeSource;
use crate::token::AccessToken;

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
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) source: Box<dyn Source>,
    pub(super) id: ManagedIdentityId,
    pub(super) env: Environment,
    pub(super) time: TimeSource,
    pub(super) retry: RetryOptions,
    pub(super) attempt_timeout: Duration,
    pub(super) http: HttpClient,
    pub(super) name: String,
}

impl ManagedIdentityCredential {
    /// The source's kind.
    pub fn source_kind(&self) -> SourceKind {
        self.inner.source.kind()
    }

    /// The selected identity.
    pub fn identity(&self) -> &ManagedIdentityId {
        &self.inner.id
    }

    /// The token endpoint URL (without query): after an App Service switch to the 2017-09-01
    /// protocol, `MSI_ENDPOINT`'s.
    pub fn endpoint(&self) -> &str {
        self.inner.source.endpoint().as_str()
    }

    /// One attempt: the source's request and its further legs. The outer error ends the
    /// fetch; the inner one is a transport failure (retried).
    async fn attempt(
        &self,
        request: &TokenRequest,
        timeout: Duration,
    ) -> Result<Result<RawResponse, Unavailable>, Error> {
        let inner = &*self.inner;
        let cx = RequestContext {
            client: inner.http.inner(),
            env: &inner.env,
            id: &inner.id,
        };
        let first = inner
            .http
            .send(inner.source.request(&cx, request)?, timeout)
            .await;
        match first {
            Ok(response) => {
                inner
                    .source
                    .next_leg(&inner.http, request, response, timeout)
                    .await
            }
            Err(e) => Ok(Err(e)),
        }
    }

    async fn fetch(&self, request: &TokenRequest) -> Result<AccessToken, Error> {
        let inner = &*self.inner;
        let time = &inner.time;
        let class = inner.source.retry_class();
        let kind = inner.source.kind();
        let unavailable = |reason| source::unavailable(kind, inner.source.endpoint(), reason);
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
        // At most one protocol switch per fetch.
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
            let protocol = inner.source.protocol();
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
                Ok(response)
                    if !fell_back && inner.source.switches_protocol(&response, protocol) =>
                {
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
                        inner.source.classify(&response, attempts, retryable),
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
                source = %self.source_kind(),
                audience = %request.audience(),
                expires_on = token.expires_on_unix(),
                "managed-identity token received"
            ),
            Err(e) => tracing::debug!(
                source = %self.source_kind(),
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
