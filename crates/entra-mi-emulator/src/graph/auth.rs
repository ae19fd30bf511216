//! Who may call the emulated Graph: the bearer-token check (signature by a published key,
//! issuer, `aud` = Graph), the queued and standing rejections, and the app roles a caller
//! needs to read directory objects or change app-role assignments.

use std::sync::atomic::Ordering;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

use super::odata::graph_error;
use crate::directory::MICROSOFT_GRAPH_APP_ID;
use crate::model::GraphRejection;
use crate::state::{Shared, lock};

/// Graph's resource URI: with its app id, what a token's `aud` may be.
const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
const CHALLENGE: &str = r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000""#;

/// The roles, any one of which lets a caller read directory objects and assignments.
pub(super) const READ_ROLES: &[&str] = &[
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Directory.Read.All",
    "AppRoleAssignment.ReadWrite.All",
];
/// The role a caller needs to change app-role assignments.
pub(super) const WRITE_ROLE: &str = "AppRoleAssignment.ReadWrite.All";

fn unauthorized(message: &str, challenge: String) -> Response {
    let mut resp = graph_error(
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        message,
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

fn invalid_token(message: &str) -> Response {
    unauthorized(
        message,
        format!(r#"{CHALLENGE}, error="invalid_token", error_description="{message}""#),
    )
}

/// Checks the bearer token like Graph; `Err` is the `401` to send.
// The error is the response to send, built once per request: boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn check_token(s: &Shared, req: &Request) -> Result<Value, Response> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(unauthorized("Access token is empty.", CHALLENGE.to_owned()));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid_token("Invalid JWT token. The token is not in JWS format."))?;
    let signing_key = s
        .verification_key(token)
        .ok_or_else(|| invalid_token("Access token validation failure."))?;
    let key = signing_key.decoding();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[GRAPH_RESOURCE, MICROSOFT_GRAPH_APP_ID]);
    validation.set_issuer(&[s.issuer()]);
    validation.leeway = 0;
    match jsonwebtoken::decode::<Value>(token, key, &validation) {
        Ok(data) => Ok(data.claims),
        Err(e) => Err(invalid_token(match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                "Lifetime validation failed, the token is expired."
            }
            jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                "Access token validation failure. Invalid audience."
            }
            jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                "Access token validation failure. Invalid issuer."
            }
            _ => "Access token validation failure.",
        })),
    }
}

/// What every Graph request goes through: counting, the bearer-token check, then the queued or
/// standing rejections. `Ok` carries the token's claims.
#[allow(clippy::result_large_err)]
pub(super) fn gate(s: &Shared, req: &Request) -> Result<Value, Response> {
    let graph = &s.graph;
    graph.requests.fetch_add(1, Ordering::SeqCst);
    let claims = check_token(s, req)?;
    if graph.always.load(Ordering::SeqCst) {
        return Err(invalid_token("The token has been revoked."));
    }
    let queued = lock(&graph.rejections).pop_front();
    match queued {
        Some(GraphRejection::InvalidToken) => Err(invalid_token("The token has been revoked.")),
        Some(GraphRejection::ClaimsChallenge(claims)) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(claims);
            Err(unauthorized(
                "Continuous access evaluation resulted in challenge with result: InteractionRequired and code: TokenIssuedBeforeRevocationTimestamp",
                format!(r#"{CHALLENGE}, error="insufficient_claims", claims="{encoded}""#),
            ))
        }
        Some(GraphRejection::Throttled(secs)) => {
            let mut resp = graph_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many requests, please try again later.",
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            Err(resp)
        }
        None => Ok(claims),
    }
}

/// Graph's `403` for a caller without the roles an operation needs.
pub(super) fn denied() -> Response {
    graph_error(
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

/// Whether the token's `roles` claim holds one of `wanted`.
pub(super) fn has_any(claims: &Value, wanted: &[&str]) -> bool {
    claims["roles"].as_array().is_some_and(|r| {
        r.iter()
            .any(|v| v.as_str().is_some_and(|v| wanted.contains(&v)))
    })
}

/// The checks of an operation served for one method: [`gate`], then the method (Graph's
/// `405` says which one is emulated), then one of `roles` in the token. `Some` is the answer
/// to send instead.
pub(super) fn admit(s: &Shared, req: &Request, method: Method, roles: &[&str]) -> Option<Response> {
    let claims = match gate(s, req) {
        Ok(c) => c,
        Err(resp) => return Some(resp),
    };
    if *req.method() != method {
        return Some(graph_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            &format!("Only {method} is emulated here."),
        ));
    }
    (!has_any(&claims, roles)).then(denied)
}
