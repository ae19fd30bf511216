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
    SecretHeader, Selection, Selector, secret_header, select_identity, status_message_error,
    status_message_fault_body,
};
use crate::endpoint::Emulated;
use crate::model::{Endpoint, ResponseShape};
use crate::state::{Shared, lock};
use crate::time::legacy_app_service_date;
use crate::wire::{JSON, Query, json_object, respond, with_allow_get};
use crate::{Emulator, EmulatorBuilder};

/// The api-version served.
const API_VERSION: &str = "2017-09-01";

/// The only selector: like the real endpoint, `client_id` is silently ignored.
const SELECTORS: &[(&str, Selector)] = &[("clientid", Selector::Client)];

/// The 2017-09-01 token endpoint.
pub(crate) struct Msi2017;

impl Emulated for Msi2017 {
    const ENDPOINT: Endpoint = Endpoint::AzureMl;
    const PATHS: &'static [&'static str] = &["/MSI/auth", "/msi/auth"];

    fn answer(s: &Shared, parts: &Parts, _body: &[u8]) -> Response {
        answer(s, parts)
    }

    fn fault_body(status: StatusCode) -> String {
        status_message_fault_body(status)
    }
}

fn answer(s: &Shared, parts: &Parts) -> Response {
    let error = status_message_error;
    if parts.method != Method::GET {
        return with_allow_get(error(StatusCode::METHOD_NOT_ALLOWED, "Use GET"));
    }
    let expected = lock(&s.sources.msi_secret).clone();
    match secret_header(parts, "secret", &expected) {
        SecretHeader::Missing => {
            return error(StatusCode::BAD_REQUEST, "The secret header is missing");
        }
        SecretHeader::Mismatch => {
            return error(StatusCode::UNAUTHORIZED, "The secret header does not match");
        }
        SecretHeader::Matches => {}
    }
    let q = Query::parse(parts);
    if q.first("api-version") != Some(API_VERSION) {
        return error(
            StatusCode::BAD_REQUEST,
            "Unsupported api-version. Use 2017-09-01.",
        );
    }
    let Some(resource) = q.non_empty("resource") else {
        return error(
            StatusCode::BAD_REQUEST,
            "The resource parameter is required",
        );
    };
    let identity = match select_identity(s, &q.tagged(SELECTORS)) {
        Ok(i) => i,
        Err(Selection::Ambiguous) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Only one clientid may be specified",
            );
        }
        Err(Selection::NotFound) => {
            return error(
                StatusCode::BAD_REQUEST,
                "No Managed Identity found for specified ClientId.",
            );
        }
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
