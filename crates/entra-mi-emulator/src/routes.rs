//! The HTTP surface: routing, the checks each endpoint makes, token responses and faults.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use bytes::Bytes;
use serde_json::Value;

use crate::model::{Endpoint, Fault, Identity, ResponseShape};
use crate::server::{ConnCtl, shutdown_requested};
use crate::state::{Issued, Shared};
use crate::time::{legacy_app_service_date, now_secs};

/// The App Service api-version served.
const APP_SERVICE_API_VERSION: &str = "2019-08-01";

/// IMDS api-versions (the identity endpoint accepts 2018-02-01 and later).
const IMDS_API_VERSIONS: &[&str] = &[
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

use crate::wire::{HTML, JSON, Query, json_object, respond, status_code, with_allow_get};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metadata/identity/oauth2/token", any(imds))
        .route("/msi/token", any(app_service))
        .route("/MSI/token", any(app_service))
        .merge(crate::graph::router())
        .merge(crate::graph_perms::router())
        .merge(crate::sources::routes())
        .merge(crate::entra::routes())
        .route("/{tenant}/discovery/keys", any(jwks))
        .route("/{tenant}/discovery/v2.0/keys", any(jwks))
        .route(
            "/{tenant}/.well-known/openid-configuration",
            any(openid_configuration),
        )
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            any(openid_configuration),
        )
        .with_state(shared)
}

async fn imds(State(s): State<Arc<Shared>>, req: Request) -> Response {
    handle(Endpoint::Imds, s, req).await
}

async fn app_service(State(s): State<Arc<Shared>>, req: Request) -> Response {
    handle(Endpoint::AppService, s, req).await
}

async fn jwks(State(s): State<Arc<Shared>>, req: Request) -> Response {
    handle(Endpoint::Jwks, s, req).await
}

async fn openid_configuration(State(s): State<Arc<Shared>>, req: Request) -> Response {
    handle(Endpoint::OpenIdConfiguration, s, req).await
}

/// Counts the request, applies the next queued fault, else answers normally.
pub(crate) async fn handle(ep: Endpoint, s: Arc<Shared>, req: Request) -> Response {
    s.count(ep);
    let (parts, body) = req.into_parts();
    // Token requests are small; a body over 1 MiB is cut (and then fails to parse).
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let answer = |ep, s: &Shared, parts: &Parts| answer(ep, s, parts, &body);
    let Some(fault) = s.pop_fault(ep) else {
        return answer(ep, &s, &parts);
    };
    let Some(conn) = parts.extensions.get::<ConnCtl>().cloned() else {
        // Only our own accept loop drives the router, and it always inserts the handle.
        return answer(ep, &s, &parts);
    };
    match fault {
        Fault::Status {
            status,
            retry_after,
            body,
        } => {
            let status = status_code(status);
            let body = body.unwrap_or_else(|| default_error_body(ep, status));
            let mut resp = respond(status, JSON, body);
            if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
        Fault::Delay(d) => {
            let mut shutdown = s.shutdown.clone();
            tokio::select! {
                () = tokio::time::sleep(d) => answer(ep, &s, &parts),
                () = shutdown_requested(&mut shutdown) => conn.hang_up().await,
            }
        }
        Fault::Hang => {
            shutdown_requested(&mut s.shutdown.clone()).await;
            conn.hang_up().await
        }
        Fault::CloseConnection => conn.hang_up().await,
        Fault::TruncatedJson => {
            let full = answer(ep, &s, &parts);
            let bytes = axum::body::to_bytes(full.into_body(), usize::MAX)
                .await
                .unwrap_or_default();
            respond(StatusCode::OK, JSON, bytes.slice(..bytes.len() / 2))
        }
        Fault::Html => respond(StatusCode::OK, HTML, CAPTIVE_PAGE),
        Fault::HtmlError(status) => {
            let status = status_code(status);
            let reason = status.canonical_reason().unwrap_or("Error");
            let code = status.as_u16();
            let page = format!(
                "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
            );
            respond(status, HTML, page)
        }
        Fault::Oversized(n) => respond(StatusCode::OK, JSON, Body::new(Oversized::new(n))),
        Fault::Body {
            status,
            content_type,
            body,
        } => {
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = status_code(status);
            if let Ok(v) = HeaderValue::from_str(&content_type) {
                resp.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            resp
        }
    }
}

/// The normal answer of `ep` to this request.
fn answer(ep: Endpoint, s: &Shared, parts: &Parts, body: &[u8]) -> Response {
    match ep {
        Endpoint::Imds => imds_answer(s, parts),
        Endpoint::AppService => app_service_answer(s, parts),
        Endpoint::Jwks => crate::discovery::jwks_answer(s, parts),
        Endpoint::OpenIdConfiguration => crate::discovery::openid_answer(s, parts),
        Endpoint::AzureArc | Endpoint::ServiceFabric | Endpoint::AzureMl | Endpoint::CloudShell => {
            crate::sources::answer(ep, s, parts, body)
        }
        Endpoint::EntraToken => crate::entra::answer(s, parts, body),
    }
}

// ---------------------------------------------------------------------------------------------
// IMDS

pub(crate) fn imds_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::json!({ "error": error, "error_description": description });
    respond(status, JSON, body.to_string())
}

fn imds_answer(s: &Shared, parts: &Parts) -> Response {
    if parts.method != Method::GET {
        return with_allow_get(imds_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "The requested HTTP method is not supported; use GET",
        ));
    }
    // SSRF mitigation: exactly `Metadata: true` (lowercase). SDK probes send no header and
    // rely on getting this 400 back.
    if parts.headers.get("metadata").map(HeaderValue::as_bytes) != Some(b"true") {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "bad_request_102",
            "Required metadata header not specified",
        );
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
            return imds_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Required query variable 'api-version' is missing",
            );
        }
        Some(v) if !IMDS_API_VERSIONS.contains(&v) => {
            return imds_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!(
                    "Invalid api-version '{v}'. The identity endpoint supports 2018-02-01 and later."
                ),
            );
        }
        Some(_) => {}
    }
    let Some(resource) = q.non_empty("resource") else {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required query variable 'resource' is missing",
        );
    };
    let selectors = q.tagged(&[
        ("client_id", Selector::Client),
        ("object_id", Selector::Object),
        ("msi_res_id", Selector::Resource),
    ]);
    let identity = match select_identity(s, &selectors) {
        Ok(i) => i,
        Err(Selection::Ambiguous) => {
            return imds_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Only one of client_id, object_id or msi_res_id may be specified",
            );
        }
        Err(Selection::NotFound) => {
            return imds_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Identity not found",
            );
        }
    };
    if let Some(e) = resource_problem(resource, &s.tenant_id) {
        return imds_error(StatusCode::BAD_REQUEST, "invalid_resource", &e);
    }
    match s.token_for(identity, resource) {
        Ok(t) => token_response(
            Endpoint::Imds,
            s.shape(Endpoint::Imds),
            &t,
            identity,
            resource,
        ),
        Err(e) => imds_error(StatusCode::INTERNAL_SERVER_ERROR, "unknown", &e),
    }
}

// ---------------------------------------------------------------------------------------------
// App Service 2019-08-01

fn app_service_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "statusCode": status.as_u16(), "message": message });
    respond(status, JSON, body.to_string())
}

fn app_service_answer(s: &Shared, parts: &Parts) -> Response {
    if parts.method != Method::GET {
        return with_allow_get(app_service_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "The requested HTTP method is not supported; use GET",
        ));
    }
    match parts.headers.get("x-identity-header") {
        None => {
            return app_service_error(
                StatusCode::BAD_REQUEST,
                "The request is missing the X-IDENTITY-HEADER header",
            );
        }
        Some(v) if v.as_bytes() != s.identity_header().as_bytes() => {
            return app_service_error(
                StatusCode::UNAUTHORIZED,
                "The X-IDENTITY-HEADER header does not match the identity header",
            );
        }
        Some(_) => {}
    }
    let q = Query::parse(parts);
    match q.first("api-version") {
        Some(APP_SERVICE_API_VERSION) => {}
        Some(v) => {
            return app_service_error(
                StatusCode::BAD_REQUEST,
                &format!("Unsupported api-version '{v}'. Use 2019-08-01."),
            );
        }
        None => {
            return app_service_error(
                StatusCode::BAD_REQUEST,
                "The api-version parameter is required",
            );
        }
    }
    let Some(resource) = q.non_empty("resource") else {
        return app_service_error(
            StatusCode::BAD_REQUEST,
            "The resource parameter is required",
        );
    };
    let selectors = q.tagged(&[
        ("client_id", Selector::Client),
        ("principal_id", Selector::Object),
        ("object_id", Selector::Object),
        ("mi_res_id", Selector::Resource),
    ]);
    let identity = match select_identity(s, &selectors) {
        Ok(i) => i,
        Err(Selection::Ambiguous) => {
            return app_service_error(
                StatusCode::BAD_REQUEST,
                "Only one of client_id, principal_id (object_id) or mi_res_id may be specified",
            );
        }
        Err(Selection::NotFound) => {
            return app_service_error(
                StatusCode::BAD_REQUEST,
                "No Managed Identity found for specified ClientId/ResourceId/PrincipalId.",
            );
        }
    };
    if resource_problem(resource, &s.tenant_id).is_some() {
        // App Service reports a bad resource vaguely, as a 500.
        return app_service_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An unexpected error occured while fetching the AAD Token.",
        );
    }
    match s.token_for(identity, resource) {
        Ok(t) => token_response(
            Endpoint::AppService,
            s.shape(Endpoint::AppService),
            &t,
            identity,
            resource,
        ),
        Err(_) => app_service_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An unexpected error occured while fetching the AAD Token.",
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

#[derive(Clone, Copy)]
pub(crate) enum Selector {
    Client,
    Object,
    Resource,
}

pub(crate) enum Selection {
    Ambiguous,
    NotFound,
}

/// At most one selector; none selects the system-assigned identity.
pub(crate) fn select_identity<'s>(
    s: &'s Shared,
    selectors: &[(Selector, &str)],
) -> Result<&'s Identity, Selection> {
    match selectors {
        [] => s.system.as_ref().ok_or(Selection::NotFound),
        [(sel, value)] => s
            .all_identities()
            .find(|i| {
                let field = match sel {
                    Selector::Client => &i.client_id,
                    Selector::Object => &i.object_id,
                    Selector::Resource => &i.resource_id,
                };
                field.eq_ignore_ascii_case(value)
            })
            .ok_or(Selection::NotFound),
        _ => Err(Selection::Ambiguous),
    }
}

/// Entra's answer to a resource that cannot be an application: a v2 scope (`…/.default`)
/// passed where a v1 resource belongs.
pub(crate) fn resource_problem(resource: &str, tenant: &str) -> Option<String> {
    resource.ends_with("/.default").then(|| {
        format!(
            "AADSTS500011: The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
        )
    })
}

/// The success body of a token endpoint, in the endpoint's field order and the given shape.
pub(crate) fn token_response(
    ep: Endpoint,
    shape: ResponseShape,
    t: &Issued,
    identity: &Identity,
    resource: &str,
) -> Response {
    let remaining = t.exp.saturating_sub(now_secs());
    let expires_on = match shape {
        ResponseShape::NumericExpiry => Value::from(t.exp),
        ResponseShape::ExpiresOnDate => Value::from(legacy_app_service_date(
            i64::try_from(t.exp).unwrap_or(i64::MAX),
        )),
        ResponseShape::ExpiresOnOffset(off) => {
            let shifted = i64::try_from(t.exp).unwrap_or(i64::MAX).saturating_add(off);
            Value::from(shifted.to_string())
        }
        _ => Value::from(t.exp.to_string()),
    };
    let expires_in = match shape {
        ResponseShape::NoExpiresIn | ResponseShape::ExpiresOnDate => None,
        ResponseShape::NumericExpiry => Some(Value::from(remaining)),
        _ => Some(Value::from(remaining.to_string())),
    };
    let refresh_in = match shape {
        ResponseShape::WithRefreshIn(r) => Some(Value::from(r.to_string())),
        _ => None,
    };
    let mut fields: Vec<(&str, Value)> = vec![("access_token", Value::from(t.token.as_str()))];
    match ep {
        Endpoint::Imds => {
            fields.push(("refresh_token", Value::from("")));
            if let Some(v) = expires_in {
                fields.push(("expires_in", v));
            }
            fields.push(("expires_on", expires_on));
            if let Some(v) = refresh_in {
                fields.push(("refresh_in", v));
            }
            fields.push(("not_before", Value::from(t.nbf.to_string())));
            fields.push(("resource", Value::from(resource)));
            fields.push(("token_type", Value::from("Bearer")));
        }
        _ => {
            // App Service 2019-08-01 never sends expires_in.
            fields.push(("expires_on", expires_on));
            if let Some(v) = refresh_in {
                fields.push(("refresh_in", v));
            }
            fields.push(("resource", Value::from(resource)));
            fields.push(("token_type", Value::from("Bearer")));
            fields.push(("client_id", Value::from(identity.client_id.as_str())));
        }
    }
    respond(StatusCode::OK, JSON, json_object(&fields))
}

/// The endpoint's own error body for a status (what the real service sends).
fn default_error_body(ep: Endpoint, status: StatusCode) -> String {
    let code = status.as_u16();
    match ep {
        Endpoint::Imds | Endpoint::AzureArc | Endpoint::CloudShell => {
            let (error, description) = match code {
                400 => ("invalid_request", "Bad request"),
                401 => ("unknown_source", "Unknown Source"),
                403 => ("forbidden", "Forbidden"),
                404 => ("not_found", "IMDS endpoint is updating"),
                410 => (
                    "gone",
                    "IMDS is going through updates. Please try again later.",
                ),
                429 => (
                    "too_many_requests",
                    "Too many requests. Please try again later.",
                ),
                500 => (
                    "unknown",
                    "Failed to retrieve token from the Active directory. For details see logs in /var/log/azure",
                ),
                _ => (
                    "service_unavailable",
                    status.canonical_reason().unwrap_or("Service unavailable"),
                ),
            };
            serde_json::json!({ "error": error, "error_description": description }).to_string()
        }
        Endpoint::ServiceFabric => {
            let code_name = match code {
                404 => "ManagedIdentityNotFound",
                429 => "TooManyRequests",
                _ => "InternalServerError",
            };
            serde_json::json!({ "error": { "correlationId": crate::model::guid(), "code": code_name, "message": status.canonical_reason().unwrap_or("Error") } }).to_string()
        }
        Endpoint::AppService | Endpoint::AzureMl => {
            let message = match code {
                400 => "Bad request",
                401 => "Unauthorized",
                404 => "Not found",
                429 => "Too many requests. Please retry later.",
                500 => "An unexpected error occured while fetching the AAD Token.",
                _ => status.canonical_reason().unwrap_or("Error"),
            };
            serde_json::json!({ "statusCode": code, "message": message }).to_string()
        }
        _ => {
            let (error, description) = match code {
                429 => (
                    "temporarily_unavailable",
                    "AADSTS50196: The server terminated an operation because it encountered a client request loop.",
                ),
                500..=599 => (
                    "temporarily_unavailable",
                    "AADSTS90033: A transient error has occurred. Please try again.",
                ),
                _ => ("invalid_request", "AADSTS900144: The request is not valid."),
            };
            serde_json::json!({ "error": error, "error_description": description }).to_string()
        }
    }
}

const CAPTIVE_PAGE: &str = "<!DOCTYPE html>\n<html>\n<head><title>Network Access Required</title></head>\n<body>\n<h1>Sign in to the network</h1>\n<p>You must log in to this network before you can access the Internet.</p>\n<form method=\"post\" action=\"/login\"><input type=\"submit\" value=\"Accept and continue\"></form>\n</body>\n</html>\n";

/// A response body of exactly `n` bytes, produced in chunks: a token-response prefix, `A`s,
/// and a closing suffix when there is room for it (then the whole is one JSON object).
struct Oversized {
    prefix: &'static [u8],
    fill: usize,
    suffix: &'static [u8],
}

const OVERSIZED_PREFIX: &[u8] = b"{\"access_token\":\"";
const OVERSIZED_SUFFIX: &[u8] =
    b"\",\"expires_in\":\"3599\",\"expires_on\":\"4102444800\",\"resource\":\"https://management.azure.com/\",\"token_type\":\"Bearer\"}";
const CHUNK: usize = 64 * 1024;
static FILLER: [u8; CHUNK] = [b'A'; CHUNK];

impl Oversized {
    fn new(n: usize) -> Self {
        let frame = OVERSIZED_PREFIX.len() + OVERSIZED_SUFFIX.len();
        if n >= frame {
            Oversized {
                prefix: OVERSIZED_PREFIX,
                fill: n - frame,
                suffix: OVERSIZED_SUFFIX,
            }
        } else {
            Oversized {
                prefix: &OVERSIZED_PREFIX[..n.min(OVERSIZED_PREFIX.len())],
                fill: n.saturating_sub(OVERSIZED_PREFIX.len()),
                suffix: b"",
            }
        }
    }

    fn remaining(&self) -> usize {
        self.prefix.len() + self.fill + self.suffix.len()
    }
}

impl http_body::Body for Oversized {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let chunk = if !self.prefix.is_empty() {
            Bytes::from_static(std::mem::take(&mut self.prefix))
        } else if self.fill > 0 {
            let k = self.fill.min(CHUNK);
            self.fill -= k;
            Bytes::from_static(&FILLER[..k])
        } else if !self.suffix.is_empty() {
            Bytes::from_static(std::mem::take(&mut self.suffix))
        } else {
            return Poll::Ready(None);
        };
        Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining() == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    fn drain(mut b: Oversized) -> Vec<u8> {
        let mut out = Vec::new();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        while let Poll::Ready(Some(Ok(f))) = Pin::new(&mut b).poll_frame(&mut cx) {
            out.extend_from_slice(f.data_ref().expect("data frame"));
        }
        out
    }

    #[test]
    fn oversized_has_exact_length() {
        for n in [0, 1, 5, 17, 18, 100, 150, CHUNK + 7, 3 * CHUNK] {
            let b = Oversized::new(n);
            assert_eq!(b.size_hint().exact(), Some(n as u64));
            let bytes = drain(b);
            assert_eq!(bytes.len(), n, "n = {n}");
            if n >= OVERSIZED_PREFIX.len() + OVERSIZED_SUFFIX.len() {
                let v: Value = serde_json::from_slice(&bytes).expect("complete JSON");
                assert_eq!(v["token_type"], "Bearer");
            }
        }
    }
}
