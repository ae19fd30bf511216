//! `MSI_ENDPOINT` + `MSI_SECRET`: the 2017-09-01 protocol of Azure Machine Learning and legacy
//! App Service (which [`super::app_service`] falls back to).

use super::ManagedIdentityId;
use super::source::{self, RequestContext, Source};
use super::vars::{DEFAULT_IDENTITY_CLIENT_ID, MSI_SECRET};
use crate::credential::TokenRequest;
use crate::error::Error;
use crate::retry::RetryClass;
use crate::source_kind::SourceKind;

pub(super) const API_VERSION: &str = "2017-09-01";

/// The 2017-09-01 protocol at `MSI_ENDPOINT`. It selects a user-assigned identity only by
/// client id.
#[derive(Debug)]
pub(super) struct Legacy2017 {
    endpoint: url::Url,
    /// Azure ML's system-assigned identity is the one `DEFAULT_IDENTITY_CLIENT_ID` names; App
    /// Service's has no such variable.
    azure_ml_default: bool,
}

impl Legacy2017 {
    pub(super) fn new(
        endpoint: url::Url,
        id: &ManagedIdentityId,
        azure_ml_default: bool,
    ) -> Result<Self, Error> {
        if matches!(
            id,
            ManagedIdentityId::ObjectId(_) | ManagedIdentityId::ResourceId(_)
        ) {
            return Err(Error::configuration(
                "managed identity",
                "the 2017-09-01 protocol (MSI_ENDPOINT + MSI_SECRET: Azure ML, legacy App Service) selects a user-assigned identity only by client id",
            ));
        }
        Ok(Self {
            endpoint,
            azure_ml_default,
        })
    }

    /// The client id sent: the user-assigned one, else (Azure ML) `DEFAULT_IDENTITY_CLIENT_ID`.
    fn client_id(&self, cx: &RequestContext<'_>) -> Result<Option<String>, Error> {
        let default = if self.azure_ml_default {
            cx.env.get(DEFAULT_IDENTITY_CLIENT_ID)
        } else {
            None
        };
        client_id(cx.id, default)
    }
}

/// The client id sent by the 2017-09-01 protocol.
fn client_id(
    id: &ManagedIdentityId,
    default_client_id: Option<String>,
) -> Result<Option<String>, Error> {
    match id {
        ManagedIdentityId::ClientId(v) => Ok(Some(v.clone())),
        ManagedIdentityId::SystemAssigned => match default_client_id {
            // Azure ML compute without an identity sets the placeholder itself.
            Some(v) if v.eq_ignore_ascii_case("clientid") => Err(Error::configuration(
                DEFAULT_IDENTITY_CLIENT_ID,
                "it holds the placeholder `clientid`: this compute has no managed identity enabled",
            )),
            Some(v) if !crate::guid::Guid::is_guid(&v) => Err(Error::configuration(
                DEFAULT_IDENTITY_CLIENT_ID,
                "expected the client id of the compute's identity, a GUID",
            )),
            other => Ok(other),
        },
        // Refused when the source is built.
        _ => Ok(None),
    }
}

/// `{MSI_ENDPOINT}?api-version=2017-09-01&resource=…[&clientid=…]`.
fn url(endpoint: &url::Url, resource: &str, client_id: Option<&str>) -> url::Url {
    let mut url = source::token_url(endpoint, API_VERSION, resource);
    if let Some(id) = client_id {
        url.query_pairs_mut().append_pair("clientid", id);
    }
    url
}

impl Source for Legacy2017 {
    fn kind(&self) -> SourceKind {
        SourceKind::AzureMl
    }

    fn endpoint(&self) -> &url::Url {
        &self.endpoint
    }

    fn retry_class(&self) -> RetryClass {
        RetryClass::ManagedIdentityDefault
    }

    /// `GET` with the `secret` header (`MSI_SECRET`) and `Metadata: true`.
    fn request(
        &self,
        cx: &RequestContext<'_>,
        request: &TokenRequest,
    ) -> Result<reqwest::RequestBuilder, Error> {
        let secret = source::secret_header(cx.env, MSI_SECRET)?;
        let client_id = self.client_id(cx)?;
        let url = url(
            &self.endpoint,
            request.audience().resource(),
            client_id.as_deref(),
        );
        Ok(cx
            .client
            .get(url)
            .header("secret", secret)
            .header("Metadata", "true"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUID: &str = "11111111-2222-3333-4444-555555555555";

    #[test]
    fn the_request_names_the_client_id_as_clientid() {
        let base: url::Url = "http://127.0.0.1:8081/msi/token".parse().unwrap();
        assert_eq!(
            url(&base, "https://vault.azure.net", Some(GUID)).as_str(),
            "http://127.0.0.1:8081/msi/token?api-version=2017-09-01&resource=https%3A%2F%2Fvault.azure.net&clientid=11111111-2222-3333-4444-555555555555"
        );
        assert!(!url(&base, "x", None).as_str().contains("clientid"));
    }

    #[test]
    fn the_default_identity_variable_is_checked() {
        let sys = ManagedIdentityId::SystemAssigned;
        assert_eq!(client_id(&sys, None).unwrap(), None);
        assert_eq!(
            client_id(&sys, Some(GUID.into())).unwrap().as_deref(),
            Some(GUID)
        );
        assert!(client_id(&sys, Some("clientid".into())).is_err());
        assert!(client_id(&sys, Some("not-a-guid".into())).is_err());
        let chosen = ManagedIdentityId::ClientId("c".into());
        assert_eq!(
            client_id(&chosen, Some(GUID.into())).unwrap().as_deref(),
            Some("c")
        );
    }
}
