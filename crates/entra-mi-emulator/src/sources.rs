//! The managed-identity sources beyond IMDS and App Service 2019: Azure Arc (with its key-file
//! challenge), Service Fabric (served over TLS, see `tls.rs`), the 2017-09-01 protocol (Azure
//! ML and legacy App Service) and Cloud Shell.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use serde_json::Value;

use crate::model::{Endpoint, Identity, ResponseShape, guid};
use crate::routes::{Selection, Selector, handle, imds_error, select_identity, token_response};
use crate::state::{Shared, SourcesState, lock};
use crate::time::legacy_app_service_date;
use crate::wire::{JSON, Query, json_object, respond, with_allow_get};
use crate::{Emulator, EmulatorBuilder};

/// Arc api-versions the agent accepts.
const ARC_API_VERSIONS: &[&str] = &["2019-08-15", "2019-11-01", "2020-06-01", "2021-02-01"];
const SF_API_VERSION: &str = "2019-07-01-preview";
const LEGACY_API_VERSION: &str = "2017-09-01";

impl EmulatorBuilder {
    /// The directory the Azure Arc endpoint writes its challenge key files to (the agent's
    /// `/var/opt/azcmagent/tokens`). Without one, the Arc endpoint answers `500`.
    pub fn arc_key_directory(mut self, dir: impl Into<PathBuf>) -> Self {
        self.sources.arc_key_directory = Some(dir.into());
        self
    }

    /// The secret (`MSI_SECRET`) the 2017-09-01 endpoint expects in its `secret` header.
    /// Default: a random value.
    pub fn msi_secret(mut self, secret: impl Into<String>) -> Self {
        self.sources.msi_secret = Some(secret.into());
        self
    }
}

impl Emulator {
    /// The value for `IDENTITY_ENDPOINT` on an Arc-enabled server:
    /// `<base>/arc/metadata/identity/oauth2/token` (set `IMDS_ENDPOINT` to anything too).
    pub fn arc_endpoint(&self) -> String {
        format!("{}/arc/metadata/identity/oauth2/token", self.base_url())
    }

    /// Makes the Arc challenge name this path instead of a fresh key file in the key
    /// directory (`None` goes back to fresh files). The second leg is accepted when its
    /// `Authorization: Basic` value is that file's content. For testing a client's checks of
    /// the path (outside the directory, `..`, symbolic links, extension, size, missing file).
    pub fn set_arc_challenge_path(&self, path: Option<PathBuf>) {
        *lock(&self.inner.shared.sources.arc_realm) = path;
    }

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

    /// The value for `MSI_ENDPOINT` in Cloud Shell: `<base>/oauth2/token` (and no `MSI_SECRET`).
    pub fn cloud_shell_endpoint(&self) -> String {
        format!("{}/oauth2/token", self.base_url())
    }

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

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/arc/metadata/identity/oauth2/token", any(arc))
        .route("/MSI/auth", any(legacy))
        .route("/msi/auth", any(legacy))
        .route("/oauth2/token", any(cloud_shell))
}

/// The router of the TLS listener (Service Fabric).
pub(crate) fn service_fabric_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metadata/identity/oauth2/token", any(service_fabric))
        .with_state(shared)
}

async fn arc(State(s): State<Arc<Shared>>, req: Request) -> Response {
    handle(Endpoint::AzureArc, s, req).await
}

async fn legacy(State(s): State<Arc<Shared>>, req: Request) -> Response {
    handle(Endpoint::AzureMl, s, req).await
}

async fn cloud_shell(State(s): State<Arc<Shared>>, req: Request) -> Response {
    handle(Endpoint::CloudShell, s, req).await
}

async fn service_fabric(State(s): State<Arc<Shared>>, req: Request) -> Response {
    handle(Endpoint::ServiceFabric, s, req).await
}

pub(crate) fn answer(ep: Endpoint, s: &Shared, parts: &Parts, body: &[u8]) -> Response {
    match ep {
        Endpoint::AzureArc => arc_answer(s, parts),
        Endpoint::ServiceFabric => sf_answer(s, parts),
        Endpoint::AzureMl => legacy_answer(s, parts),
        _ => cloud_shell_answer(s, parts, body),
    }
}

// ---------------------------------------------------------------------------------------------
// Azure Arc

fn arc_answer(s: &Shared, parts: &Parts) -> Response {
    if parts.method != Method::GET {
        return with_allow_get(imds_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "The requested HTTP method is not supported; use GET",
        ));
    }
    if parts.headers.get("metadata").map(HeaderValue::as_bytes) != Some(b"true") {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "bad_request_102",
            "Required metadata header not specified",
        );
    }
    let q = Query::parse(parts);
    match q.first("api-version") {
        Some(v) if ARC_API_VERSIONS.contains(&v) => {}
        _ => {
            return imds_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Invalid or missing api-version; the agent supports 2019-08-15, 2019-11-01, 2020-06-01 and 2021-02-01",
            );
        }
    }
    let Some(resource) = q.non_empty("resource") else {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required query variable 'resource' is missing",
        );
    };
    if q.first("client_id").is_some()
        || q.first("object_id").is_some()
        || q.first("msi_res_id").is_some()
    {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "User-assigned identities are not supported by the Azure Connected Machine agent",
        );
    }
    let sources = &s.sources;
    let Some(auth) = parts.headers.get(header::AUTHORIZATION) else {
        return arc_challenge(sources);
    };
    let presented = auth
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Basic "))
        .unwrap_or_default();
    let valid = match lock(&sources.arc_realm).as_ref() {
        Some(path) => std::fs::read_to_string(path)
            .map(|k| !presented.is_empty() && k.trim() == presented)
            .unwrap_or(false),
        None => lock(&sources.arc_keys).iter().any(|k| k == presented),
    };
    if !valid {
        return imds_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request",
            "The Authorization header does not carry a valid key",
        );
    }
    let Some(identity) = s.system.as_ref() else {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Identity not found",
        );
    };
    issue(Endpoint::Imds, Endpoint::AzureArc, s, identity, resource)
}

fn arc_challenge(sources: &SourcesState) -> Response {
    let path = match lock(&sources.arc_realm).clone() {
        Some(p) => p,
        None => match new_key_file(sources.arc_key_directory.as_deref()) {
            Ok((path, key)) => {
                lock(&sources.arc_keys).push(key);
                path
            }
            Err(e) => {
                return imds_error(StatusCode::INTERNAL_SERVER_ERROR, "unknown", &e);
            }
        },
    };
    let mut resp = imds_error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Authorization with a key file is required",
    );
    if let Ok(v) = HeaderValue::from_str(&format!("Basic realm={}", path.display())) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// Writes `<dir>/<guid>.key` with a fresh random key, like the agent does per challenge.
fn new_key_file(dir: Option<&Path>) -> Result<(PathBuf, String), String> {
    let dir = dir.ok_or("emulator: no Arc key directory configured")?;
    let key: String = (0..4).map(|_| guid().replace('-', "")).collect();
    let path = dir.join(format!("{}.key", guid()));
    std::fs::write(&path, &key).map_err(|e| format!("emulator: cannot write the key file: {e}"))?;
    Ok((path, key))
}

// ---------------------------------------------------------------------------------------------
// Service Fabric

fn sf_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "error": { "correlationId": guid(), "code": code, "message": message }
    });
    respond(status, JSON, body.to_string())
}

fn sf_answer(s: &Shared, parts: &Parts) -> Response {
    if parts.method != Method::GET {
        return with_allow_get(sf_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "Use GET",
        ));
    }
    match parts.headers.get("secret") {
        None => {
            return sf_error(
                StatusCode::UNAUTHORIZED,
                "SecretHeaderNotFound",
                "Secret is not found in the request headers.",
            );
        }
        Some(v) if v.as_bytes() != s.identity_header().as_bytes() => {
            return sf_error(
                StatusCode::UNAUTHORIZED,
                "SecretHeaderNotFound",
                "The secret in the request headers does not match.",
            );
        }
        Some(_) => {}
    }
    let q = Query::parse(parts);
    if q.first("api-version") != Some(SF_API_VERSION) {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersion",
            "The api-version is invalid; currently the only accepted value is 2019-07-01-preview.",
        );
    }
    let Some(resource) = q.non_empty("resource") else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "ArgumentNullOrEmpty",
            "Value cannot be null or empty. Parameter name: resource",
        );
    };
    let Some(identity) = s.system.as_ref() else {
        return sf_error(
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
        Err(e) => return sf_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", &e),
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

// ---------------------------------------------------------------------------------------------
// 2017-09-01 (Azure ML, legacy App Service)

fn legacy_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "statusCode": status.as_u16(), "message": message });
    respond(status, JSON, body.to_string())
}

fn legacy_answer(s: &Shared, parts: &Parts) -> Response {
    if parts.method != Method::GET {
        return with_allow_get(legacy_error(StatusCode::METHOD_NOT_ALLOWED, "Use GET"));
    }
    let expected = lock(&s.sources.msi_secret).clone();
    match parts.headers.get("secret") {
        None => return legacy_error(StatusCode::BAD_REQUEST, "The secret header is missing"),
        Some(v) if v.as_bytes() != expected.as_bytes() => {
            return legacy_error(StatusCode::UNAUTHORIZED, "The secret header does not match");
        }
        Some(_) => {}
    }
    let q = Query::parse(parts);
    if q.first("api-version") != Some(LEGACY_API_VERSION) {
        return legacy_error(
            StatusCode::BAD_REQUEST,
            "Unsupported api-version. Use 2017-09-01.",
        );
    }
    let Some(resource) = q.non_empty("resource") else {
        return legacy_error(
            StatusCode::BAD_REQUEST,
            "The resource parameter is required",
        );
    };
    // Only `clientid` selects; like the real endpoint, `client_id` is silently ignored.
    let selectors = q.tagged(&[("clientid", Selector::Client)]);
    let identity = match select_identity(s, &selectors) {
        Ok(i) => i,
        Err(Selection::Ambiguous) => {
            return legacy_error(
                StatusCode::BAD_REQUEST,
                "Only one clientid may be specified",
            );
        }
        Err(Selection::NotFound) => {
            return legacy_error(
                StatusCode::BAD_REQUEST,
                "No Managed Identity found for specified ClientId.",
            );
        }
    };
    let token = match s.token_for(identity, resource) {
        Ok(t) => t,
        Err(e) => return legacy_error(StatusCode::INTERNAL_SERVER_ERROR, &e),
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

// ---------------------------------------------------------------------------------------------
// Cloud Shell

fn cloud_shell_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    respond(status, JSON, body.to_string())
}

fn cloud_shell_answer(s: &Shared, parts: &Parts, body: &[u8]) -> Response {
    if parts.method != Method::POST {
        let mut r = cloud_shell_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "Use POST",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    if parts.headers.get("metadata").map(HeaderValue::as_bytes) != Some(b"true") {
        return cloud_shell_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Required metadata header not specified",
        );
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let Some(resource) = form
        .iter()
        .find(|(k, _)| k == "resource")
        .map(|(_, v)| v.as_str())
        .filter(|r| !r.is_empty())
    else {
        return cloud_shell_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "The resource form field is required",
        );
    };
    // Cloud Shell ignores identity selectors: the token is the signed-in user's.
    let Some(identity) = s.system.as_ref() else {
        return cloud_shell_error(StatusCode::BAD_REQUEST, "BadRequest", "No signed-in user");
    };
    issue(Endpoint::Imds, Endpoint::CloudShell, s, identity, resource)
}

/// An IMDS-shaped token answer (Arc, Cloud Shell).
fn issue(
    body_of: Endpoint,
    shape_of: Endpoint,
    s: &Shared,
    identity: &Identity,
    resource: &str,
) -> Response {
    match s.token_for(identity, resource) {
        Ok(t) => token_response(body_of, s.shape(shape_of), &t, identity, resource),
        Err(e) => imds_error(StatusCode::INTERNAL_SERVER_ERROR, "unknown", &e),
    }
}
