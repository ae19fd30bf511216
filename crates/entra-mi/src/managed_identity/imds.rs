//! Azure Instance Metadata Service, api-version 2018-02-01.

use super::ManagedIdentityId;

pub(super) const API_VERSION: &str = "2018-02-01";
pub(super) const DEFAULT_HOST: &str = "http://169.254.169.254";
pub(super) const TOKEN_PATH: &str = "/metadata/identity/oauth2/token";

/// `GET {host}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=…` with
/// `Metadata: true`; a user-assigned identity as `client_id`, `object_id` or `msi_res_id`.
pub(super) fn request(
    client: &reqwest::Client,
    token_url: &url::Url,
    resource: &str,
    id: &ManagedIdentityId,
) -> reqwest::RequestBuilder {
    let mut url = token_url.clone();
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
                q.append_pair("object_id", v);
            }
            ManagedIdentityId::ResourceId(v) => {
                q.append_pair("msi_res_id", v);
            }
        }
    }
    client.get(url).header("Metadata", "true")
}
