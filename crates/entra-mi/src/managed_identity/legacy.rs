//! `MSI_ENDPOINT` + `MSI_SECRET`: the 2017-09-01 protocol of Azure Machine Learning and legacy
//! App Service; and `MSI_ENDPOINT` alone: Cloud Shell.

use http::HeaderValue;

use super::ManagedIdentityId;
use super::detect::MSI_SECRET;
use crate::error::Error;

pub(super) const API_VERSION: &str = "2017-09-01";

/// `GET {MSI_ENDPOINT}?api-version=2017-09-01&resource=…[&clientid=…]` with `secret`.
/// `client_id` is the user-assigned client id, else `DEFAULT_IDENTITY_CLIENT_ID` when set.
pub(super) fn request_2017(
    client: &reqwest::Client,
    endpoint: &url::Url,
    resource: &str,
    client_id: Option<&str>,
    secret: &str,
) -> Result<reqwest::RequestBuilder, Error> {
    let mut url = endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("api-version", API_VERSION);
        q.append_pair("resource", resource);
        if let Some(id) = client_id {
            q.append_pair("clientid", id);
        }
    }
    let mut header = HeaderValue::from_str(secret).map_err(|_| {
        Error::configuration(
            MSI_SECRET,
            "its value contains characters not allowed in an HTTP header",
        )
    })?;
    header.set_sensitive(true);
    Ok(client
        .get(url)
        .header("secret", header)
        .header("Metadata", "true"))
}

/// The client id sent by the 2017-09-01 protocol.
pub(super) fn client_id_2017(
    id: &ManagedIdentityId,
    default_client_id: Option<String>,
) -> Result<Option<String>, Error> {
    match id {
        ManagedIdentityId::ClientId(v) => Ok(Some(v.clone())),
        ManagedIdentityId::SystemAssigned => match default_client_id {
            // Azure ML compute without an identity sets the placeholder itself.
            Some(v) if v.eq_ignore_ascii_case("clientid") => Err(Error::configuration(
                super::detect::DEFAULT_IDENTITY_CLIENT_ID,
                "it holds the placeholder `clientid`: this compute has no managed identity enabled",
            )),
            Some(v) if !crate::audience::is_guid(&v) => Err(Error::configuration(
                super::detect::DEFAULT_IDENTITY_CLIENT_ID,
                "expected the client id of the compute's identity, a GUID",
            )),
            other => Ok(other),
        },
        // Refused when the credential is built.
        _ => Ok(None),
    }
}

/// `POST {MSI_ENDPOINT}` with `Metadata: true` and the form body `resource=…`.
pub(super) fn request_cloud_shell(
    client: &reqwest::Client,
    endpoint: &url::Url,
    resource: &str,
) -> reqwest::RequestBuilder {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("resource", resource)
        .finish();
    client
        .post(endpoint.clone())
        .header("Metadata", "true")
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
}
