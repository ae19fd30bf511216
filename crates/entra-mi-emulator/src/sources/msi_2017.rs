//! The 2017-09-01 protocol, spoken by Azure Machine Learning compute and by legacy App
//! Service: `GET /MSI/auth?api-version=2017-09-01&resource=…` with the `secret` header holding
//! `MSI_SECRET`; only `clientid` selects a user-assigned identity; `expires_on` is an integer
//! (Azure ML) or the legacy App Service date
//! (<https://learn.microsoft.com/en-us/azure/app-service/overview-managed-identity?tabs=portal%2Chttp#rest-endpoint-reference>).

use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::common::{
    SecretHeader, Selector, TokenParams, status_message_error, status_message_fault_body,
};
use crate::endpoint::Emulated;
use crate::model::{Endpoint, ResponseShape};
use crate::state::{Shared, lock};
use crate::time::legacy_app_service_date;
use crate::wire::{JSON, Query, json_object, respond, with_allow_get};
use crate::{Emulator, EmulatorBuilder};

/// The api-version served.
const API_VERSION: &str = "2017-09-01";

/// The token request parameters, with the only selector, `clientid` (like the real
/// endpoint, `client_id` is silently ignored), and the wording of their refusal.
const PARAMS: TokenParams = TokenParams {
    missing_resource: "The resource parameter is required",
    selectors: &[("clientid", Selector::Client)],
    ambiguous: "Only one clientid may be specified",
    not_found: "No Managed Identity found for specified ClientId.",
};

/// The `secret` header (it holds `MSI_SECRET`), and the wording of a request without it.
const SECRET: SecretHeader = SecretHeader {
    name: "secret",
    missing: (StatusCode::BAD_REQUEST, "The secret header is missing"),
    mismatch: (StatusCode::UNAUTHORIZED, "The secret header does not match"),
};

/// The 2017-09-01 token endpoint.
pub(crate) struct Msi2017;

impl Emulated for Msi2017 {
    const ENDPOINT: Endpoint = Endpoint::AzureMl;
    const PATHS: &'static [&'static str] = &["/MSI/auth", "/msi/auth"];

    fn answer(s: &Shared, parts: &Parts, _body: &[u8]) -> Response {
        let error = status_message_error;
        if parts.method != Method::GET {
            return with_allow_get(error(StatusCode::METHOD_NOT_ALLOWED, "Use GET"));
        }
        let expected = lock(&s.sources.msi_secret).clone();
        if let Err((status, message)) = SECRET.check(parts, &expected) {
            return error(status, message);
        }
        let q = Query::parse(parts);
        if q.first("api-version") != Some(API_VERSION) {
            return error(
                StatusCode::BAD_REQUEST,
                "Unsupported api-version. Use 2017-09-01.",
            );
        }
        let (resource, identity) = match PARAMS.read(s, &q) {
            Ok(read) => read,
            Err(why) => return error(StatusCode::BAD_REQUEST, why),
        };
        let token = match s.token_for(identity, resource) {
            Ok(t) => t,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e),
        };
        let exp = i64::try_from(token.exp).unwrap_or(i64::MAX);
        let expires_on = match s.shape(Endpoint::AzureMl) {
            ResponseShape::ExpiresOnDate => Value::from(legacy_app_service_date(exp)),
            ResponseShape::ExpiresOnOffset(off) => Value::from(exp.saturating_add(off)),
            _ => Value::from(token.exp),
        };
        let fields: Vec<(&str, Value)> = vec![
            ("access_token", Value::from(token.token.as_str())),
            ("expires_on", expires_on),
            ("resource", Value::from(resource)),
            ("token_type", Value::from("Bearer")),
        ];
        respond(StatusCode::OK, JSON, json_object(&fields))
    }

    fn fault_body(status: StatusCode) -> String {
        status_message_fault_body(status)
    }
}

impl EmulatorBuilder {
    /// The secret (`MSI_SECRET`) the 2017-09-01 endpoint expects in its `secret` header.
    /// Default: a random value.
    pub fn msi_secret(mut self, secret: impl Into<String>) -> Self {
        self.sources.msi_secret = Some(secret.into());
        self
    }
}

impl Emulator {
    /// The value for `MSI_ENDPOINT` of the 2017-09-01 protocol (Azure ML, legacy App
    /// Service): `<base>/MSI/auth`. Successful answers carry `expires_on` as an integer (Azure
    /// ML) or, with [`ResponseShape::ExpiresOnDate`], as the legacy App Service date.
    pub fn msi_endpoint(&self) -> String {
        format!("{}/MSI/auth", self.base_url())
    }

    /// The value for `MSI_SECRET`.
    pub fn msi_secret(&self) -> String {
        lock(&self.inner.shared.sources.msi_secret).clone()
    }
}
