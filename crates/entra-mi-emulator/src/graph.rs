//! A Microsoft Graph subset: `GET /v1.0/servicePrincipals`, listing the emulator's identities
//! as the managed-identity service principals they are, behind Graph's bearer-token checks.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Value, json};

use crate::Emulator;
use crate::model::{GraphRejection, Identity};
use crate::state::{Shared, lock};

/// Graph's resource URI and application id: either may be a token's `aud`.
const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
const CHALLENGE: &str = r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000""#;

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new().route("/v1.0/servicePrincipals", any(service_principals))
}

impl Emulator {
    /// The base of the emulated Microsoft Graph: `<base>/v1.0` (so
    /// `<base>/v1.0/servicePrincipals` lists the identities).
    ///
    /// It checks bearer tokens like Graph: a missing or malformed token, a bad signature, an
    /// `aud` other than `https://graph.microsoft.com` (or Graph's app id) or an `exp` in the
    /// past get `401` with `WWW-Authenticate: Bearer …` (and `error="invalid_token"` when a
    /// token was sent) and a Graph error body, code `InvalidAuthenticationToken`.
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.base_url())
    }

    /// How many requests reached the Graph endpoint, including rejected ones.
    pub fn graph_requests(&self) -> usize {
        self.inner.shared.graph.requests.load(Ordering::SeqCst)
    }

    /// Queues a rejection: the next request with a valid token is turned down this way.
    pub fn push_graph_rejection(&self, rejection: GraphRejection) {
        lock(&self.inner.shared.graph.rejections).push_back(rejection);
    }

    /// When on, every request is turned down with `invalid_token`, valid token or not.
    pub fn reject_all_graph_tokens(&self, on: bool) {
        self.inner.shared.graph.always.store(on, Ordering::SeqCst);
    }
}

pub(crate) fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": "",
                "request-id": crate::model::guid(),
                "client-request-id": crate::model::guid(),
            }
        }
    });
    let mut resp = Response::new(body.to_string().into());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

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
    validation.set_audience(&[GRAPH_RESOURCE, GRAPH_APP_ID]);
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
pub(crate) fn gate(s: &Shared, req: &Request) -> Result<Value, Response> {
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

/// A JSON response as Graph sends it.
pub(crate) fn json_response(status: StatusCode, body: Value) -> Response {
    let mut resp = Response::new(body.to_string().into());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;odata.metadata=minimal"),
    );
    resp
}

/// The query of a Graph listing: `$top` (1–999, default 100), `$skiptoken` (our page offset)
/// and the other parameters, with Graph's errors for bad values.
pub(crate) struct Paging {
    query: Vec<(String, String)>,
    pub(crate) top: usize,
    pub(crate) skip: usize,
}

impl Paging {
    // `Err` is the response to send, as for `gate`.
    #[allow(clippy::result_large_err)]
    pub(crate) fn from_request(req: &Request) -> Result<Paging, Response> {
        let query: Vec<(String, String)> = req
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let mut page = Paging {
            query,
            top: 100,
            skip: 0,
        };
        match page.param("$top").map(str::parse::<usize>) {
            None => {}
            Some(Ok(n)) if (1..=999).contains(&n) => page.top = n,
            Some(_) => {
                return Err(graph_error(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    "Invalid page size specified: '$top'. Must be between 1 and 999 inclusive.",
                ));
            }
        }
        match page.param("$skiptoken").map(str::parse::<usize>) {
            None => {}
            Some(Ok(n)) => page.skip = n,
            Some(Err(_)) => {
                return Err(graph_error(
                    StatusCode::BAD_REQUEST,
                    "Directory_InvalidSkipToken",
                    "The specified page token value has expired or is invalid.",
                ));
            }
        }
        Ok(page)
    }

    /// The `$skiptoken` of the page after this one, if `total` items leave one. Saturating:
    /// a huge `$skiptoken` (any `usize` parses) just means there is no next page.
    pub(crate) fn next_skip(&self, total: usize) -> Option<usize> {
        Some(self.skip.saturating_add(self.top)).filter(|&next| next < total)
    }

    /// A query parameter, names compared case-insensitively.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn service_principals(State(s): State<Arc<Shared>>, req: Request) -> Response {
    if let Err(resp) = gate(&s, &req) {
        return resp;
    }
    if req.method() != axum::http::Method::GET {
        return graph_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "Only GET is supported by this emulator.",
        );
    }
    let page = match Paging::from_request(&req) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let (top, skip) = (page.top, page.skip);
    let param = |name: &str| page.param(name);
    let filter = match param("$filter").map(parse_filter) {
        None => None,
        Some(Some(f)) => Some(f),
        Some(None) => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                "Unsupported query: only appId eq '…' and displayName eq '…' are emulated.",
            );
        }
    };
    let system_oid = s.system.as_ref().map(|i| i.object_id.clone());
    let all: Vec<Value> = s
        .all_identities()
        .map(|i| service_principal(i, Some(&i.object_id) == system_oid.as_ref()))
        .chain(
            s.perms
                .apis
                .iter()
                .map(crate::graph_perms::api_service_principal),
        )
        .collect();
    let matching: Vec<&Value> = all
        .iter()
        .filter(|sp| match &filter {
            None => true,
            Some((Field::AppId, v)) => sp["appId"]
                .as_str()
                .is_some_and(|a| a.eq_ignore_ascii_case(v)),
            Some((Field::DisplayName, v)) => sp["displayName"].as_str() == Some(v.as_str()),
        })
        .collect();
    let values: Vec<Value> = matching
        .iter()
        .skip(skip)
        .take(top)
        .map(|v| (*v).clone())
        .collect();
    let mut body = json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#servicePrincipals",
        "value": values,
    });
    if let Some(next_skip) = page.next_skip(matching.len()) {
        let mut next = format!(
            "{}/v1.0/servicePrincipals?$top={top}&$skiptoken={next_skip}",
            s.base_url,
        );
        if let Some(f) = param("$filter") {
            next.push_str("&$filter=");
            next.extend(form_urlencoded::byte_serialize(f.as_bytes()));
        }
        body["@odata.nextLink"] = Value::String(next);
    }
    let mut resp = Response::new(body.to_string().into());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;odata.metadata=minimal"),
    );
    resp
}

enum Field {
    AppId,
    DisplayName,
}

/// `appId eq '…'` or `displayName eq '…'` (quotes doubled inside, as OData escapes them).
fn parse_filter(f: &str) -> Option<(Field, String)> {
    let (field, rest) = f.trim().split_once(' ')?;
    let field = if field.eq_ignore_ascii_case("appId") {
        Field::AppId
    } else if field.eq_ignore_ascii_case("displayName") {
        Field::DisplayName
    } else {
        return None;
    };
    let value = rest.trim_start().strip_prefix("eq ")?.trim();
    let inner = value.strip_prefix('\'')?.strip_suffix('\'')?;
    Some((field, inner.replace("''", "'")))
}

pub(crate) fn service_principal(i: &Identity, system: bool) -> Value {
    json!({
        "id": i.object_id,
        "appId": i.client_id,
        "displayName": i.display_name,
        "servicePrincipalType": "ManagedIdentity",
        "accountEnabled": true,
        "alternativeNames": [
            if system { "isExplicit=False" } else { "isExplicit=True" },
            i.resource_id,
        ],
        "servicePrincipalNames": [i.client_id, format!("https://identity.azure.net/{}", i.object_id)],
        "appRoles": [],
        "tags": [],
    })
}
