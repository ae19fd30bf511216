//! App Service / Azure Functions / Container Apps, api-version 2019-08-01.

use http::HeaderValue;

use super::ManagedIdentityId;
use crate::error::Error;

pub(super) const API_VERSION: &str = "2019-08-01";

/// `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=…` with `X-IDENTITY-HEADER`; a
/// user-assigned identity as `client_id`, `principal_id` or `mi_res_id`.
pub(super) fn request(
    client: &reqwest::Client,
    endpoint: &url::Url,
    resource: &str,
    id: &ManagedIdentityId,
    secret: &str,
) -> Result<reqwest::RequestBuilder, Error> {
    let mut url = endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("api-version", API_VERSION);
        q.append_pair("resource", resource);
        match id {
            ManagedIdentityId::SystemAssigned => {}
            ManagedIdentityId::ClientId(v) => {
                q.append_pair("client_id", v);
            }
            ManagedIdentityId::ObjectId(v) => {
                q.append_pair("principal_id", v);
            }
            ManagedIdentityId::ResourceId(v) => {
                q.append_pair("mi_res_id", v);
            }
        }
    }
    let mut header = HeaderValue::from_str(secret).map_err(|_| {
        Error::configuration(
            super::detect::IDENTITY_HEADER,
            "its value contains characters not allowed in an HTTP header",
        )
    })?;
    header.set_sensitive(true);
    Ok(client
        .get(url)
        .header("X-IDENTITY-HEADER", header)
        .header("Metadata", "true"))
}
