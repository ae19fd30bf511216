//! The v2.0 token endpoint, client-credentials grant: `POST /<tenant>/oauth2/v2.0/token` with
//! `client_id`, `scope` (`<resource>/.default`) and a client secret or a client assertion;
//! v1 or v2 app tokens, and Entra's errors for each thing missing or wrong
//! (<https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow>).

use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;

use super::assertion;
use super::errors::{aadsts, fault_body};
use crate::endpoint::Emulated;
use crate::model::{Endpoint, guid};
use crate::state::Shared;
use crate::time::now_secs;
use crate::wire::{JSON, Query, json_object, respond, with_allow};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Lifetime of tokens from the token endpoint (what Entra issues to apps).
const APP_TOKEN_LIFETIME: u64 = 3599;

/// The v2.0 token endpoint.
pub(crate) struct TokenEndpoint;

impl Emulated for TokenEndpoint {
    const ENDPOINT: Endpoint = Endpoint::EntraToken;
    const PATHS: &'static [&'static str] = &["/{tenant}/oauth2/v2.0/token"];

    fn answer(s: &Shared, parts: &Parts, body: &[u8]) -> Response {
        answer(s, parts, body)
    }

    fn fault_body(status: StatusCode) -> String {
        fault_body(status)
    }
}

#[derive(Serialize)]
struct AppTokenClaims<'a> {
    aud: &'a str,
    iss: String,
    iat: u64,
    nbf: u64,
    exp: u64,
    appid: &'a str,
    appidacr: &'static str,
    idp: String,
    idtyp: &'static str,
    oid: &'a str,
    sub: &'a str,
    tid: &'a str,
    uti: String,
    ver: &'static str,
}

fn answer(s: &Shared, parts: &Parts, body: &[u8]) -> Response {
    if parts.method != Method::POST {
        return with_allow(
            aadsts(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                900561,
                "The endpoint only accepts POST requests.",
            ),
            "POST",
        );
    }
    let tenant = parts.uri.path().split('/').nth(1).unwrap_or_default();
    let home = tenant.eq_ignore_ascii_case(&s.tenant_id);
    if !home
        && !s
            .entra
            .tenants
            .iter()
            .any(|t| t.eq_ignore_ascii_case(tenant))
    {
        return aadsts(
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    let form = Query::from_bytes(body);
    let field = |name: &str| form.non_empty(name);
    let missing = |name: &str| {
        aadsts(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            &format!("The request body must contain the following parameter: '{name}'."),
        )
    };
    match field("grant_type") {
        None => return missing("grant_type"),
        Some("client_credentials") => {}
        Some(_) => {
            return aadsts(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type.",
            );
        }
    }
    let Some(client_id) = field("client_id") else {
        return missing("client_id");
    };
    let app = s
        .entra
        .apps
        .iter()
        .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
        .filter(|a| home || a.multi_tenant);
    let Some(app) = app else {
        return aadsts(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        );
    };
    let Some(scope) = field("scope") else {
        return missing("scope");
    };
    let Some(resource) = scope
        .strip_suffix("/.default")
        .filter(|r| !r.is_empty() && !scope.contains(' '))
    else {
        return aadsts(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        );
    };
    if let Some(secret) = field("client_secret") {
        if !app.secrets.iter().any(|s| s == secret) {
            return aadsts(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                &format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                    app.client_id
                ),
            );
        }
    } else if let Some(assertion) = field("client_assertion") {
        if field("client_assertion_type") != Some(JWT_BEARER) {
            return missing("client_assertion_type");
        }
        if let Some(r) = assertion::check(s, app, assertion, tenant) {
            return r;
        }
    } else {
        return missing("client_assertion' or 'client_secret");
    }
    let iat = now_secs();
    let credential = if field("client_secret").is_some() {
        "1"
    } else {
        "2"
    };
    if s.v2_for(resource) {
        let claims = crate::tokens_v2::claims(&crate::tokens_v2::V2Token {
            base_url: &s.base_url,
            tenant,
            audience: s.v2_audience(resource),
            client_id: &app.client_id,
            object_id: &app.object_id,
            roles: &[],
            credential,
            iat,
            exp: iat + APP_TOKEN_LIFETIME,
            mirid: None,
            uti: guid(),
        });
        return app_token_response(s.sign(&claims));
    }
    let claims = AppTokenClaims {
        aud: resource,
        iss: format!("https://sts.windows.net/{tenant}/"),
        iat,
        nbf: iat,
        exp: iat + APP_TOKEN_LIFETIME,
        appid: &app.client_id,
        appidacr: credential,
        idp: format!("https://sts.windows.net/{tenant}/"),
        idtyp: "app",
        oid: &app.object_id,
        sub: &app.object_id,
        tid: tenant,
        uti: guid(),
        ver: "1.0",
    };
    app_token_response(s.sign(&claims))
}

/// The token endpoint's answer for a signed token (or a signing failure).
fn app_token_response(token: Result<String, String>) -> Response {
    let token = match token {
        Ok(t) => t,
        Err(_) => {
            return aadsts(
                StatusCode::INTERNAL_SERVER_ERROR,
                "temporarily_unavailable",
                90033,
                "A transient error has occurred. Please try again.",
            );
        }
    };
    let fields: Vec<(&str, Value)> = vec![
        ("token_type", Value::from("Bearer")),
        ("expires_in", Value::from(APP_TOKEN_LIFETIME)),
        ("ext_expires_in", Value::from(APP_TOKEN_LIFETIME)),
        ("access_token", Value::from(token)),
    ];
    respond(StatusCode::OK, JSON, json_object(&fields))
}
