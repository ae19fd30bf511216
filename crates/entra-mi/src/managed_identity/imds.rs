//! Azure Instance Metadata Service, api-version 2018-02-01.

use super::ManagedIdentityId;
use super::source::{self, RequestContext, Source};
use crate::credential::TokenRequest;
use crate::error::{Error, Unavailable};
use crate::http::RawResponse;
use crate::response::{self, ErrorBody};
use crate::retry::RetryClass;
use crate::source_kind::SourceKind;

pub(super) const API_VERSION: &str = "2018-02-01";
pub(super) const DEFAULT_HOST: &str = "http://169.254.169.254";
pub(super) const TOKEN_PATH: &str = "/metadata/identity/oauth2/token";

/// IMDS at its token URL. Any identity can be selected; `410 Gone` (IMDS upgrading) is
/// retried for at least 70 s (its retry class).
#[derive(Debug)]
pub(super) struct Imds {
    token_url: url::Url,
}

impl Imds {
    pub(super) fn new(token_url: url::Url) -> Self {
        Self { token_url }
    }
}

/// `…/token?api-version=2018-02-01&resource=…` with a user-assigned identity as `client_id`,
/// `object_id` or `msi_res_id`.
fn url(token_url: &url::Url, resource: &str, id: &ManagedIdentityId) -> url::Url {
    let mut url = source::token_url(token_url, API_VERSION, resource);
    match id {
        ManagedIdentityId::SystemAssigned => {}
        ManagedIdentityId::ClientId(v) => {
            url.query_pairs_mut().append_pair("client_id", v);
        }
        ManagedIdentityId::ObjectId(v) => {
            url.query_pairs_mut().append_pair("object_id", v);
        }
        ManagedIdentityId::ResourceId(v) => {
            url.query_pairs_mut().append_pair("msi_res_id", v);
        }
    }
    url
}

impl Source for Imds {
    fn kind(&self) -> SourceKind {
        SourceKind::Imds
    }

    fn endpoint(&self) -> &url::Url {
        &self.token_url
    }

    fn retry_class(&self) -> RetryClass {
        RetryClass::Imds
    }

    /// `GET` with `Metadata: true`.
    fn request(
        &self,
        cx: &RequestContext<'_>,
        request: &TokenRequest,
    ) -> Result<reqwest::RequestBuilder, Error> {
        let url = url(&self.token_url, request.audience().resource(), cx.id);
        Ok(cx.client.get(url).header("Metadata", "true"))
    }

    /// Docker Desktop answers requests to 169.254.169.254 with `403` "… unreachable …": no
    /// IMDS is there, so that is "unavailable", not a refusal.
    fn classify(&self, response: &RawResponse, attempts: u32, retryable: bool) -> Error {
        if response.status == 403
            && let ErrorBody::Service(e) = response::error_body(response)
            && e.says_unreachable()
        {
            return source::unavailable(
                SourceKind::Imds,
                &self.token_url,
                Unavailable::Status {
                    status: 403,
                    attempts,
                    detail: Some(e),
                },
            );
        }
        source::classify(
            SourceKind::Imds,
            &self.token_url,
            response,
            attempts,
            retryable,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SourceError;

    fn imds() -> Imds {
        Imds::new(
            "http://169.254.169.254/metadata/identity/oauth2/token"
                .parse()
                .unwrap(),
        )
    }

    #[test]
    fn docker_desktops_403_is_no_imds_and_other_403s_are_refusals() {
        let docker = RawResponse::for_tests(
            403,
            "application/json",
            r#"{"error":"connection_error","error_description":"A socket operation was attempted to an unreachable network."}"#,
        );
        let e = imds().classify(&docker, 1, false);
        assert!(e.is_unavailable(), "{e}");
        assert!(e.is_foreign_answer(), "{e}");
        let refused = RawResponse::for_tests(
            403,
            "application/json",
            r#"{"error":"invalid_request","error_description":"Identity not found"}"#,
        );
        let e = imds().classify(&refused, 1, false);
        assert!(
            matches!(&e, Error::Source(family) if matches!(family.as_ref(), SourceError::Refused { .. })),
            "{e:?}"
        );
        let html = RawResponse::for_tests(403, "text/html", "<html><body>Proxy</body></html>");
        assert!(imds().classify(&html, 1, false).is_foreign_answer());
    }

    #[test]
    fn the_request_names_the_identity_as_imds_does() {
        let base: url::Url = "http://169.254.169.254/metadata/identity/oauth2/token"
            .parse()
            .unwrap();
        let resource = "https://management.azure.com/";
        assert_eq!(
            url(&base, resource, &ManagedIdentityId::SystemAssigned).as_str(),
            "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F"
        );
        for (id, pair) in [
            (ManagedIdentityId::ClientId("c".into()), "client_id=c"),
            (ManagedIdentityId::ObjectId("o".into()), "object_id=o"),
            (
                ManagedIdentityId::ResourceId("/subscriptions/s".into()),
                "msi_res_id=%2Fsubscriptions%2Fs",
            ),
        ] {
            let u = url(&base, resource, &id);
            assert!(u.query().unwrap().ends_with(&format!("&{pair}")), "{u}");
        }
    }
}
