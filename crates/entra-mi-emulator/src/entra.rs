//! The Entra v2.0 token endpoint (`POST /<tenant>/oauth2/v2.0/token`, client-credentials
//! grant): it really checks client secrets and federated client assertions (signature against
//! the emulator's key, `exp`, `aud` = `api://AzureADTokenExchange`, and the app's federated
//! credentials), and answers like Entra, errors included (`error`, `error_description` with its
//! AADSTS code and trace lines, `error_codes`, `trace_id`, `correlation_id`, `timestamp`).

use std::time::Duration;

use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::directory::App;
use crate::endpoint::Emulated;
use crate::model::{Endpoint, guid};
use crate::state::Shared;
use crate::time::now_secs;
use crate::wire::{JSON, json_object, respond};
use crate::{Emulator, EmulatorBuilder};

/// The issuer of [`Emulator::federated_token`]s, like a Kubernetes cluster's OIDC issuer
/// (not served: Entra learns its keys from registration here).
pub const FEDERATED_ISSUER: &str = "https://oidc.entra-mi-emulator.invalid/cluster/";

/// The audience of federated tokens exchanged at Entra.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Lifetime of tokens from the token endpoint (what Entra issues to apps).
const APP_TOKEN_LIFETIME: u64 = 3599;

impl EmulatorBuilder {
    /// Registers an app with the token endpoint (in the emulator's tenant).
    pub fn app(mut self, app: App) -> Self {
        self.entra.apps.push(app);
        self
    }

    /// Adds another tenant the token endpoint serves (for multi-tenant apps).
    pub fn additional_tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.entra.tenants.push(tenant_id.into());
        self
    }
}

/// Claims of a federated token minted by [`Emulator::federated_token`].
#[derive(Serialize)]
struct FederatedClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: String,
}

impl Emulator {
    /// The authority host for credentials (`AZURE_AUTHORITY_HOST`): `http://127.0.0.1:<port>`.
    pub fn authority_host(&self) -> String {
        self.base_url()
    }

    /// `<base>/<tenant>/oauth2/v2.0/token`.
    pub fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.base_url())
    }

    /// A federated token (what Kubernetes projects into `AZURE_FEDERATED_TOKEN_FILE`) from
    /// [`FEDERATED_ISSUER`], signed with the emulator's key, valid for `lifetime` from now.
    /// `Duration::ZERO` gives a token that expired ten minutes ago.
    pub fn federated_token(&self, subject: &str, audience: &str, lifetime: Duration) -> String {
        let now = now_secs();
        let (iat, exp) = if lifetime.is_zero() {
            (now.saturating_sub(3600), now.saturating_sub(600))
        } else {
            (now, now.saturating_add(lifetime.as_secs().max(1)))
        };
        let iss = FEDERATED_ISSUER;
        let claims = FederatedClaims {
            iss,
            sub: subject,
            aud: audience,
            iat,
            nbf: iat,
            exp,
            jti: guid(),
        };
        self.inner.shared.sign(&claims).unwrap_or_default()
    }
}

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

/// The error body Entra sends with `status` (its token and discovery endpoints alike).
pub(crate) fn fault_body(status: StatusCode) -> String {
    let (error, description) = match status.as_u16() {
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

/// An Entra error answer.
pub(crate) fn aadsts(status: StatusCode, error: &str, code: u32, message: &str) -> Response {
    let trace = guid();
    let correlation = guid();
    let timestamp = timestamp(now_secs());
    let body = serde_json::json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {timestamp}"
        ),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    respond(status, JSON, body.to_string())
}

fn timestamp(epoch: u64) -> String {
    let epoch = i64::try_from(epoch).unwrap_or(0);
    let (y, m, d) = crate::time::civil_from_days(epoch.div_euclid(86_400));
    let secs = epoch.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    #[serde(default)]
    aud: Value,
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
        let mut r = aadsts(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            900561,
            "The endpoint only accepts POST requests.",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
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
    let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
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
        // A certificate assertion names its certificate; a federated token (the emulator's own
        // too) may carry `x5t` of its issuer's key, which is no certificate of the app.
        let by_certificate = jsonwebtoken::decode_header(assertion)
            .map(|h| {
                h.x5t_s256.is_some()
                    || h.x5t.as_deref().is_some_and(|t| {
                        app.certificates.iter().any(|der| {
                            let d = aws_lc_rs::digest::digest(
                                &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
                                der,
                            );
                            base64::Engine::encode(
                                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                                d.as_ref(),
                            ) == t.trim_end_matches('=')
                        })
                    })
            })
            .unwrap_or(false);
        let problem = if by_certificate {
            check_certificate(s, app, assertion, tenant)
        } else {
            check_federated(s, app, assertion)
        };
        if let Some(r) = problem {
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

/// Verifies a federated assertion: RS256 signature by the emulator's key (it signs both its
/// managed-identity tokens and its OIDC issuer's tokens), `exp`/`nbf`, `aud`, and a federated
/// credential of `app` with the same issuer and subject.
fn check_federated(s: &Shared, app: &App, assertion: &str) -> Option<Response> {
    let invalid = |code: u32, message: &str| {
        Some(aadsts(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            code,
            message,
        ))
    };
    let Some(signing_key) = s.verification_key(assertion) else {
        return invalid(50013, "Assertion failed signature validation.");
    };
    let key = signing_key.decoding();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    validation.validate_nbf = true;
    validation.leeway = 60;
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    let data = match jsonwebtoken::decode::<AssertionClaims>(assertion, key, &validation) {
        Ok(d) => d,
        Err(e) => {
            return match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature
                | jsonwebtoken::errors::ErrorKind::ImmatureSignature => invalid(
                    700024,
                    &format!(
                        "Client assertion is not within its valid time range. Current time: {}.",
                        timestamp(now_secs())
                    ),
                ),
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    invalid(50013, "Assertion failed signature validation.")
                }
                _ => invalid(50027, "JWT token is invalid or malformed."),
            };
        }
    };
    let c = data.claims;
    let aud_ok = match &c.aud {
        Value::String(a) => a == TOKEN_EXCHANGE_AUDIENCE,
        Value::Array(v) => v
            .iter()
            .any(|a| a.as_str() == Some(TOKEN_EXCHANGE_AUDIENCE)),
        _ => false,
    };
    let aud_text = match &c.aud {
        Value::String(a) => a.clone(),
        other => other.to_string(),
    };
    if !aud_ok {
        return invalid(
            700212,
            &format!(
                "No matching federated identity record found for presented assertion audience '{aud_text}'."
            ),
        );
    }
    if !app.federated.iter().any(|(iss, _)| *iss == c.iss) {
        return invalid(
            700211,
            &format!(
                "No matching federated identity record found for presented assertion issuer '{}'.",
                c.iss
            ),
        );
    }
    if !app
        .federated
        .iter()
        .any(|(iss, sub)| *iss == c.iss && *sub == c.sub)
    {
        return invalid(
            70021,
            &format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{}'. Assertion Audience: '{aud_text}'.",
                c.iss, c.sub
            ),
        );
    }
    None
}

#[derive(Deserialize)]
struct CertificateAssertionClaims {
    sub: String,
    #[serde(default)]
    jti: Option<String>,
}

/// Verifies a certificate assertion against the app's registered certificates. (A replayed
/// `jti` is answered with AADSTS700027 and a message saying so; the code is the emulator's
/// choice.)
fn check_certificate(s: &Shared, app: &App, assertion: &str, tenant: &str) -> Option<Response> {
    let invalid = |code: u32, message: &str| {
        Some(aadsts(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            code,
            message,
        ))
    };
    let Ok(header) = jsonwebtoken::decode_header(assertion) else {
        return invalid(50027, "JWT token is invalid or malformed.");
    };
    let b64 = |bytes: &[u8]| {
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
    };
    let wanted_s256 = header
        .x5t_s256
        .as_deref()
        .map(|t| t.trim_end_matches('=').to_owned());
    let wanted_s1 = header
        .x5t
        .as_deref()
        .map(|t| t.trim_end_matches('=').to_owned());
    let cert = app.certificates.iter().find(|der| {
        let s256 = b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref());
        let s1 = b64(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref(),
        );
        wanted_s256.as_deref() == Some(s256.as_str())
            || (wanted_s256.is_none() && wanted_s1.as_deref() == Some(s1.as_str()))
    });
    let thumb = wanted_s256.or(wanted_s1).unwrap_or_default();
    let Some(cert) = cert else {
        return invalid(
            700027,
            &format!(
                "Client assertion failed signature validation. [Reason - The key was not found., Thumbprint of key used by client: '{thumb}']"
            ),
        );
    };
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert) else {
        return invalid(
            700027,
            "Client assertion failed signature validation. [Reason - The registered certificate is unreadable.]",
        );
    };
    let key = DecodingKey::from_rsa_der(parsed.public_key().subject_public_key.data.as_ref());
    if !matches!(header.alg, Algorithm::PS256 | Algorithm::RS256) {
        return invalid(
            700027,
            "Client assertion failed signature validation. [Reason - Unsupported algorithm.]",
        );
    }
    let mut validation = Validation::new(header.alg);
    let endpoint = format!("{}/{tenant}/oauth2/v2.0/token", s.base_url);
    validation.set_audience(&[endpoint.as_str()]);
    validation.set_issuer(&[app.client_id.as_str()]);
    validation.validate_nbf = true;
    validation.leeway = 60;
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    let claims = match jsonwebtoken::decode::<CertificateAssertionClaims>(
        assertion,
        &key,
        &validation,
    ) {
        Ok(d) => d.claims,
        Err(e) => {
            use jsonwebtoken::errors::ErrorKind as K;
            return match e.kind() {
                K::ExpiredSignature | K::ImmatureSignature => invalid(
                    700024,
                    &format!(
                        "Client assertion is not within its valid time range. Current time: {}.",
                        timestamp(now_secs())
                    ),
                ),
                K::InvalidSignature => {
                    invalid(700027, "Client assertion contains an invalid signature.")
                }
                K::InvalidAudience => invalid(
                    700027,
                    &format!(
                        "Client assertion failed validation: its audience must be the token endpoint '{endpoint}'."
                    ),
                ),
                K::InvalidIssuer => invalid(
                    700027,
                    "Client assertion failed validation: its issuer must be the client id.",
                ),
                _ => invalid(50027, "JWT token is invalid or malformed."),
            };
        }
    };
    if !claims.sub.eq_ignore_ascii_case(&app.client_id) {
        return invalid(
            700027,
            "Client assertion failed validation: its subject must be the client id.",
        );
    }
    let Some(jti) = claims.jti.filter(|j| !j.is_empty()) else {
        return invalid(700027, "Client assertion failed validation: it has no jti.");
    };
    if !crate::state::lock(&s.entra.seen_jti).insert(jti) {
        return invalid(
            700027,
            "Client assertion failed validation: its jti has already been used (replayed assertion).",
        );
    }
    None
}
