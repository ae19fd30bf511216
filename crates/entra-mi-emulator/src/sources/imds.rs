//! Azure IMDS, the Instance Metadata Service of VMs, scale sets and AKS nodes:
//! `GET /metadata/identity/oauth2/token?api-version=…&resource=…` with `Metadata: true`,
//! selectors `client_id`, `object_id` and `msi_res_id`
//! (<https://learn.microsoft.com/en-us/entra/identity/managed-identities-azure-resources/how-to-use-vm-token>).

use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;

use super::common::{
    Selector, TokenParams, imds_error, imds_fault_body, imds_invalid_request, imds_preamble,
    imds_token, resource_problem,
};
use crate::Emulator;
use crate::endpoint::Emulated;
use crate::model::Endpoint;
use crate::state::Shared;
use crate::wire::Query;

/// The identity endpoint's api-versions (2018-02-01 and later).
const API_VERSIONS: &[&str] = &[
    "2018-02-01",
    "2018-04-02",
    "2018-10-01",
    "2019-02-01",
    "2019-03-11",
    "2019-04-30",
    "2019-06-01",
    "2019-06-04",
    "2019-08-01",
    "2019-08-15",
    "2019-11-01",
    "2020-06-01",
    "2020-07-15",
    "2020-09-01",
    "2020-10-01",
    "2020-12-01",
    "2021-01-01",
    "2021-02-01",
    "2021-03-01",
    "2021-05-01",
    "2021-08-01",
    "2021-10-01",
    "2021-11-01",
    "2021-11-15",
    "2021-12-13",
    "2022-02-01",
    "2022-03-01",
    "2022-07-01",
    "2022-08-01",
    "2022-09-01",
    "2023-07-01",
    "2023-11-15",
    "2024-03-15",
];

/// IMDS's token request parameters and its wording of their refusal.
const PARAMS: TokenParams = TokenParams {
    missing_resource: "Required query variable 'resource' is missing",
    selectors: &[
        ("client_id", Selector::Client),
        ("object_id", Selector::Object),
        ("msi_res_id", Selector::Resource),
    ],
    ambiguous: "Only one of client_id, object_id or msi_res_id may be specified",
    not_found: "Identity not found",
};

/// The IMDS token endpoint.
pub(crate) struct Imds;

impl Emulated for Imds {
    const ENDPOINT: Endpoint = Endpoint::Imds;
    const PATHS: &'static [&'static str] = &["/metadata/identity/oauth2/token"];

    fn answer(s: &Shared, parts: &Parts, _body: &[u8]) -> Response {
        if let Some(refused) = imds_preamble(parts) {
            return refused;
        }
        // IMDS refuses anything that went through a proxy.
        if parts.headers.contains_key("x-forwarded-for") {
            return imds_error(
                StatusCode::BAD_REQUEST,
                "bad_request_102",
                "Requests with an X-Forwarded-For header are not accepted",
            );
        }
        let q = Query::parse(parts);
        match q.first("api-version") {
            None => {
                return imds_invalid_request("Required query variable 'api-version' is missing");
            }
            Some(v) if !API_VERSIONS.contains(&v) => {
                return imds_invalid_request(&format!(
                    "Invalid api-version '{v}'. The identity endpoint supports 2018-02-01 and later."
                ));
            }
            Some(_) => {}
        }
        let (resource, identity) = match PARAMS.read(s, &q) {
            Ok(read) => read,
            Err(why) => return imds_invalid_request(why),
        };
        if let Some(e) = resource_problem(resource, &s.tenant_id) {
            return imds_error(StatusCode::BAD_REQUEST, "invalid_resource", &e);
        }
        imds_token(Endpoint::Imds, s, identity, resource)
    }

    fn fault_body(status: StatusCode) -> String {
        imds_fault_body(status)
    }
}

impl Emulator {
    /// The value for `AZURE_POD_IDENTITY_AUTHORITY_HOST`: scheme, host and port, no path.
    pub fn imds_host(&self) -> String {
        self.base_url()
    }

    /// The full IMDS token URL: `<base>/metadata/identity/oauth2/token`.
    pub fn imds_token_url(&self) -> String {
        format!("{}/metadata/identity/oauth2/token", self.base_url())
    }
}
