//! App Service and Azure Functions, api-version 2019-08-01: `GET /msi/token` with
//! `X-IDENTITY-HEADER`, selectors `client_id`, `principal_id` (alias `object_id`) and
//! `mi_res_id`; no `expires_in` in the answer
//! (<https://learn.microsoft.com/en-us/azure/app-service/overview-managed-identity#rest-endpoint-reference>).

use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::common::{
    Expiry, SecretHeader, Selector, TokenParams, resource_problem, status_message_error,
    status_message_fault_body,
};
use crate::Emulator;
use crate::endpoint::Emulated;
use crate::model::Endpoint;
use crate::state::Shared;
use crate::wire::{JSON, Query, json_object, respond, with_allow_get};

/// The api-version served.
const API_VERSION: &str = "2019-08-01";

/// App Service's token request parameters and its wording of their refusal.
const PARAMS: TokenParams = TokenParams {
    missing_resource: "The resource parameter is required",
    selectors: &[
        ("client_id", Selector::Client),
        ("principal_id", Selector::Object),
        ("object_id", Selector::Object),
        ("mi_res_id", Selector::Resource),
    ],
    ambiguous: "Only one of client_id, principal_id (object_id) or mi_res_id may be specified",
    not_found: "No Managed Identity found for specified ClientId/ResourceId/PrincipalId.",
};

/// The identity header, and App Service's wording of a request without it.
const SECRET: SecretHeader = SecretHeader {
    name: "x-identity-header",
    missing: (
        StatusCode::BAD_REQUEST,
        "The request is missing the X-IDENTITY-HEADER header",
    ),
    mismatch: (
        StatusCode::UNAUTHORIZED,
        "The X-IDENTITY-HEADER header does not match the identity header",
    ),
};

/// How App Service words any failure to get the token (a bad resource included).
const TOKEN_FAILURE: &str = "An unexpected error occured while fetching the AAD Token.";

/// The App Service token endpoint.
pub(crate) struct AppService;

impl Emulated for AppService {
    const ENDPOINT: Endpoint = Endpoint::AppService;
    const PATHS: &'static [&'static str] = &["/msi/token", "/MSI/token"];

    fn answer(s: &Shared, parts: &Parts, _body: &[u8]) -> Response {
        let error = status_message_error;
        if parts.method != Method::GET {
            return with_allow_get(error(
                StatusCode::METHOD_NOT_ALLOWED,
                "The requested HTTP method is not supported; use GET",
            ));
        }
        if let Err((status, message)) = SECRET.check(parts, &s.identity_header()) {
            return error(status, message);
        }
        let q = Query::parse(parts);
        match q.first("api-version") {
            Some(API_VERSION) => {}
            Some(v) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("Unsupported api-version '{v}'. Use 2019-08-01."),
                );
            }
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "The api-version parameter is required",
                );
            }
        }
        let (resource, identity) = match PARAMS.read(s, &q) {
            Ok(read) => read,
            Err(why) => return error(StatusCode::BAD_REQUEST, why),
        };
        if resource_problem(resource, &s.tenant_id).is_some() {
            // App Service reports a bad resource vaguely, as a 500.
            return error(StatusCode::INTERNAL_SERVER_ERROR, TOKEN_FAILURE);
        }
        let Ok(t) = s.token_for(identity, resource) else {
            return error(StatusCode::INTERNAL_SERVER_ERROR, TOKEN_FAILURE);
        };
        // App Service 2019-08-01 never sends expires_in.
        let expiry = Expiry::new(s.shape(Endpoint::AppService), &t);
        let mut fields: Vec<(&str, Value)> = vec![
            ("access_token", Value::from(t.token.as_str())),
            ("expires_on", expiry.expires_on),
        ];
        if let Some(v) = expiry.refresh_in {
            fields.push(("refresh_in", v));
        }
        fields.push(("resource", Value::from(resource)));
        fields.push(("token_type", Value::from("Bearer")));
        fields.push(("client_id", Value::from(identity.client_id.as_str())));
        respond(StatusCode::OK, JSON, json_object(&fields))
    }

    fn fault_body(status: StatusCode) -> String {
        status_message_fault_body(status)
    }
}

impl Emulator {
    /// The value for `IDENTITY_ENDPOINT` (App Service): `<base>/msi/token`.
    pub fn app_service_endpoint(&self) -> String {
        format!("{}/msi/token", self.base_url())
    }
}
