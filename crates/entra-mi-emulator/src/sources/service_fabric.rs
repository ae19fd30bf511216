//! Service Fabric: `GET https://…/metadata/identity/oauth2/token?api-version=2019-07-01-preview`
//! over TLS (the emulator's own listener, certificate generated at start, pinned by clients
//! through its thumbprint), the `secret` header holding `IDENTITY_HEADER`, system-assigned
//! identity only, nested error bodies, and `token_sha256_to_refresh` to replace a token an API
//! rejected
//! (<https://learn.microsoft.com/en-us/azure/service-fabric/how-to-managed-identity-service-fabric-app-code>).

use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::common::SecretHeader;
use crate::Emulator;
use crate::endpoint::Emulated;
use crate::model::{Endpoint, ResponseShape, guid};
use crate::state::{Shared, lock};
use crate::wire::{JSON, Query, json_object, respond, with_allow_get};

/// The api-version served.
const API_VERSION: &str = "2019-07-01-preview";

/// The `secret` header (it holds `IDENTITY_HEADER`), and Service Fabric's wording of a
/// request without it (code `SecretHeaderNotFound` either way).
const SECRET: SecretHeader = SecretHeader {
    name: "secret",
    missing: (
        StatusCode::UNAUTHORIZED,
        "Secret is not found in the request headers.",
    ),
    mismatch: (
        StatusCode::UNAUTHORIZED,
        "The secret in the request headers does not match.",
    ),
};

/// The Service Fabric token endpoint.
pub(crate) struct ServiceFabric;

impl Emulated for ServiceFabric {
    const ENDPOINT: Endpoint = Endpoint::ServiceFabric;
    const PATHS: &'static [&'static str] = &["/metadata/identity/oauth2/token"];

    fn answer(s: &Shared, parts: &Parts, _body: &[u8]) -> Response {
        if parts.method != Method::GET {
            return with_allow_get(error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "Use GET",
            ));
        }
        if let Err((status, message)) = SECRET.check(parts, &s.identity_header()) {
            return error(status, "SecretHeaderNotFound", message);
        }
        let q = Query::parse(parts);
        if q.first("api-version") != Some(API_VERSION) {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidApiVersion",
                "The api-version is invalid; currently the only accepted value is 2019-07-01-preview.",
            );
        }
        let Some(resource) = q.non_empty("resource") else {
            return error(
                StatusCode::BAD_REQUEST,
                "ArgumentNullOrEmpty",
                "Value cannot be null or empty. Parameter name: resource",
            );
        };
        let Some(identity) = s.system.as_ref() else {
            return error(
                StatusCode::NOT_FOUND,
                "ManagedIdentityNotFound",
                "The application has no managed identity.",
            );
        };
        if let Some(hash) = q.first("token_sha256_to_refresh") {
            s.forget_token_if_sha256(identity, resource, hash);
        }
        let token = match s.token_for(identity, resource) {
            Ok(t) => t,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", &e),
        };
        let expires_on = match s.shape(Endpoint::ServiceFabric) {
            ResponseShape::Standard | ResponseShape::NumericExpiry => Value::from(token.exp),
            _ => Value::from(token.exp.to_string()),
        };
        let fields: Vec<(&str, Value)> = vec![
            ("token_type", Value::from("Bearer")),
            ("access_token", Value::from(token.token.as_str())),
            ("expires_on", expires_on),
            ("resource", Value::from(resource)),
        ];
        respond(StatusCode::OK, JSON, json_object(&fields))
    }

    fn fault_body(status: StatusCode) -> String {
        let code = match status.as_u16() {
            404 => "ManagedIdentityNotFound",
            429 => "TooManyRequests",
            _ => "InternalServerError",
        };
        error_body(code, status.canonical_reason().unwrap_or("Error"))
    }
}

/// `{"error": {"correlationId": …, "code": …, "message": …}}`.
fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({
        "error": { "correlationId": guid(), "code": code, "message": message }
    })
    .to_string()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    respond(status, JSON, error_body(code, message))
}

impl Emulator {
    /// The value for `IDENTITY_ENDPOINT` on Service Fabric:
    /// `https://127.0.0.1:<port>/metadata/identity/oauth2/token`, served over TLS with a
    /// self-signed certificate generated at start. Use it with [`Emulator::identity_header`]
    /// and [`Emulator::service_fabric_thumbprint`].
    pub fn service_fabric_endpoint(&self) -> String {
        lock(&self.inner.shared.sources.service_fabric)
            .as_ref()
            .map(|(url, _)| url.clone())
            .unwrap_or_default()
    }

    /// The value for `IDENTITY_SERVER_THUMBPRINT`: the SHA-1 of the Service Fabric endpoint's
    /// certificate, 40 uppercase hex digits.
    pub fn service_fabric_thumbprint(&self) -> String {
        lock(&self.inner.shared.sources.service_fabric)
            .as_ref()
            .map(|(_, t)| t.clone())
            .unwrap_or_default()
    }
}
