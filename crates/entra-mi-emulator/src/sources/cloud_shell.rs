//! Cloud Shell: `POST /oauth2/token` with `Metadata: true` and the resource in a form body;
//! identity selectors are ignored (the token is the signed-in user's), and the answer is
//! shaped like IMDS's.

use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::Response;

use super::common::{has_metadata_header, imds_fault_body, imds_token};
use crate::Emulator;
use crate::endpoint::Emulated;
use crate::model::Endpoint;
use crate::state::Shared;
use crate::wire::{JSON, Query, respond, with_allow};

/// The Cloud Shell token endpoint.
pub(crate) struct CloudShell;

impl Emulated for CloudShell {
    const ENDPOINT: Endpoint = Endpoint::CloudShell;
    const PATHS: &'static [&'static str] = &["/oauth2/token"];

    fn answer(s: &Shared, parts: &Parts, body: &[u8]) -> Response {
        if parts.method != Method::POST {
            return with_allow(
                error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    "Use POST",
                ),
                "POST",
            );
        }
        if !has_metadata_header(parts) {
            return error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Required metadata header not specified",
            );
        }
        let form = Query::from_bytes(body);
        let Some(resource) = form.non_empty("resource") else {
            return error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "The resource form field is required",
            );
        };
        // Cloud Shell ignores identity selectors: the token is the signed-in user's.
        let Some(identity) = s.system.as_ref() else {
            return error(StatusCode::BAD_REQUEST, "BadRequest", "No signed-in user");
        };
        imds_token(Endpoint::CloudShell, s, identity, resource)
    }

    fn fault_body(status: StatusCode) -> String {
        imds_fault_body(status)
    }
}

/// `{"error": {"code": …, "message": …}}`.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    respond(status, JSON, body.to_string())
}

impl Emulator {
    /// The value for `MSI_ENDPOINT` in Cloud Shell: `<base>/oauth2/token` (and no `MSI_SECRET`).
    pub fn cloud_shell_endpoint(&self) -> String {
        format!("{}/oauth2/token", self.base_url())
    }
}
