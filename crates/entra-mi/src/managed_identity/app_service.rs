//! App Service / Azure Functions / Container Apps, api-version 2019-08-01, with the switch to
//! the 2017-09-01 protocol where 2019-08-01 is refused.

use std::sync::atomic::{AtomicBool, Ordering};

use super::ManagedIdentityId;
use super::azure_ml::Legacy2017;
use super::source::{self, RequestContext, Source, SourceConfig};
use super::vars::IDENTITY_HEADER;
use crate::credential::TokenRequest;
use crate::error::Error;
use crate::http::RawResponse;
use crate::response::{self, ErrorBody};
use crate::retry::RetryClass;
use crate::source_kind::SourceKind;

pub(super) const API_VERSION: &str = "2019-08-01";

/// App Service at `IDENTITY_ENDPOINT`. Where App Service refuses 2019-08-01 with
/// `UnsupportedApiVersion` (Linux Consumption Functions) and also set `MSI_ENDPOINT` +
/// `MSI_SECRET`, the source switches to the 2017-09-01 protocol there for the rest of its
/// life.
#[derive(Debug)]
pub(super) struct AppService {
    endpoint: url::Url,
    /// `MSI_ENDPOINT` when App Service also set it with `MSI_SECRET`.
    fallback: Option<Legacy2017>,
    /// Set once App Service refused 2019-08-01 and `fallback` is used.
    on_2017: AtomicBool,
}

impl AppService {
    pub(super) fn new(endpoint: url::Url, config: &SourceConfig<'_>) -> Self {
        // Not for object or resource ids: the 2017 protocol selects a user-assigned identity
        // only by client id.
        let fallback = config
            .fallback_2017
            .clone()
            .and_then(|url| Legacy2017::new(url, config.id, false).ok());
        Self {
            endpoint,
            fallback,
            on_2017: AtomicBool::new(false),
        }
    }

    fn switched(&self) -> Option<&Legacy2017> {
        self.fallback
            .as_ref()
            .filter(|_| self.on_2017.load(Ordering::Relaxed))
    }
}

/// `{IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=…` with a user-assigned identity as
/// `client_id`, `principal_id` or `mi_res_id`.
fn url(endpoint: &url::Url, resource: &str, id: &ManagedIdentityId) -> url::Url {
    let mut url = source::token_url(endpoint, API_VERSION, resource);
    match id {
        ManagedIdentityId::SystemAssigned => {}
        ManagedIdentityId::ClientId(v) => {
            url.query_pairs_mut().append_pair("client_id", v);
        }
        ManagedIdentityId::ObjectId(v) => {
            url.query_pairs_mut().append_pair("principal_id", v);
        }
        ManagedIdentityId::ResourceId(v) => {
            url.query_pairs_mut().append_pair("mi_res_id", v);
        }
    }
    url
}

/// True when a `400` says the api-version is not supported.
fn refuses_api_version(response: &RawResponse) -> bool {
    if response.status != 400 {
        return false;
    }
    let ErrorBody::Service(e) = response::error_body(response) else {
        return false;
    };
    e.code.as_deref() == Some("UnsupportedApiVersion")
        || e.description.as_deref().is_some_and(|d| {
            d.contains("UnsupportedApiVersion") || d.contains("does not support the API version")
        })
}

impl Source for AppService {
    fn kind(&self) -> SourceKind {
        SourceKind::AppService
    }

    /// After a switch to the 2017-09-01 protocol, `MSI_ENDPOINT`.
    fn endpoint(&self) -> &url::Url {
        match self.switched() {
            Some(fallback) => fallback.endpoint(),
            None => &self.endpoint,
        }
    }

    fn retry_class(&self) -> RetryClass {
        RetryClass::ManagedIdentityDefault
    }

    /// `GET` with `X-IDENTITY-HEADER` (`IDENTITY_HEADER`) and `Metadata: true`.
    fn request(
        &self,
        cx: &RequestContext<'_>,
        request: &TokenRequest,
    ) -> Result<reqwest::RequestBuilder, Error> {
        if let Some(fallback) = self.switched() {
            return fallback.request(cx, request);
        }
        let secret = source::secret_header(cx.env, IDENTITY_HEADER)?;
        let url = url(&self.endpoint, request.audience().resource(), cx.id);
        Ok(cx
            .client
            .get(url)
            .header("X-IDENTITY-HEADER", secret)
            .header("Metadata", "true"))
    }

    fn protocol(&self) -> u32 {
        u32::from(self.on_2017.load(Ordering::Relaxed))
    }

    /// A 2019-08-01 request refused with `UnsupportedApiVersion` when there is a 2017-09-01
    /// endpoint: from then on the source uses it, and the request is sent again. A request
    /// that raced the switch is sent again too.
    fn switches_protocol(&self, response: &RawResponse, sent_in: u32) -> bool {
        let Some(fallback) = &self.fallback else {
            return false;
        };
        if sent_in != 0 || !refuses_api_version(response) {
            return false;
        }
        if !self.on_2017.swap(true, Ordering::Relaxed) {
            tracing::info!(
                endpoint = %fallback.endpoint(),
                "App Service refused api-version 2019-08-01 (UnsupportedApiVersion); using the 2017-09-01 protocol at MSI_ENDPOINT"
            );
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> RawResponse {
        RawResponse::for_tests(status, "application/json", body)
    }

    #[test]
    fn the_request_names_the_identity_as_app_service_does() {
        let base: url::Url = "http://127.0.0.1:41000/msi/token".parse().unwrap();
        for (id, pair) in [
            (ManagedIdentityId::ClientId("c".into()), "client_id=c"),
            (ManagedIdentityId::ObjectId("o".into()), "principal_id=o"),
            (
                ManagedIdentityId::ResourceId("/subscriptions/s".into()),
                "mi_res_id=%2Fsubscriptions%2Fs",
            ),
        ] {
            let u = url(&base, "api://x", &id);
            assert_eq!(
                u.query().unwrap(),
                format!("api-version=2019-08-01&resource=api%3A%2F%2Fx&{pair}")
            );
        }
    }

    #[test]
    fn unsupported_api_version_is_read_from_code_or_message() {
        assert!(refuses_api_version(&answer(
            400,
            r#"{"error":"UnsupportedApiVersion","error_description":"x"}"#
        )));
        assert!(refuses_api_version(&answer(
            400,
            r#"{"statusCode":400,"message":"The HTTP resource does not support the API version '2019-08-01'."}"#
        )));
        assert!(!refuses_api_version(&answer(
            401,
            r#"{"error":"UnsupportedApiVersion"}"#
        )));
        assert!(!refuses_api_version(&answer(
            400,
            r#"{"error":"invalid_request","error_description":"bad resource"}"#
        )));
    }
}
