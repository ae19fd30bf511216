//! What every managed-identity source provides, and the helpers the sources share.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use http::HeaderValue;

use super::ManagedIdentityId;
use crate::credential::TokenRequest;
use crate::env::Environment;
use crate::error::{Error, ServiceError, SourceError, Unavailable};
use crate::http::{HttpClient, RawResponse};
use crate::response::{self, ErrorBody};
use crate::retry::RetryClass;
use crate::source_kind::SourceKind;

/// What building a source takes besides its description.
pub(super) struct SourceConfig<'a> {
    pub(super) id: &'a ManagedIdentityId,
    pub(super) arc_key_directory: Option<PathBuf>,
    pub(super) client_capabilities: &'a [String],
    /// For App Service: the 2017-09-01 endpoint to switch to where 2019-08-01 is refused.
    pub(super) fallback_2017: Option<url::Url>,
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
    Error::from(SourceError::Unavailable {
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
            Error::from(SourceError::Refused {
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
