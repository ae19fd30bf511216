//! Entra's discovery endpoints, what an API needs to validate the emulator's tokens: the v1
//! and v2 OpenID Connect discovery documents and key sets, for the emulator's tenant, its
//! additional tenants, and the multi-tenant `common` and `organizations` (whose issuers hold
//! `{tenantid}`). Also key rotation on demand and signing of arbitrary claims for tests.
//!
//! As on Entra
//! (<https://learn.microsoft.com/en-us/entra/identity-platform/access-tokens#validate-the-signature>),
//! keys carry no `alg` member, and every key of a v2 key set carries the `issuer` whose
//! tokens it may sign: `<base>/{tenantid}/v2.0` for the keys every tenant shares, a concrete
//! tenant for a key of one tenant ([`Emulator::add_tenant_signing_key`]).

use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::errors::fault_body;
use crate::endpoint::Emulated;
use crate::keys::SigningKey;
use crate::model::Endpoint;
use crate::state::{Shared, lock};
use crate::wire::{JSON, respond, with_allow_get};
use crate::{Emulator, EmulatorError};

/// The tenant a discovery URL names.
enum Tenant {
    /// A tenant id the emulator serves (as the emulator spells it).
    One(String),
    /// `common` or `organizations` (as written in the path).
    Any(String),
}

impl Tenant {
    /// The path segment.
    fn path(&self) -> &str {
        match self {
            Tenant::One(t) | Tenant::Any(t) => t,
        }
    }

    /// What issuers hold in the tenant's place.
    fn in_issuer(&self) -> &str {
        match self {
            Tenant::One(t) => t,
            Tenant::Any(_) => "{tenantid}",
        }
    }
}

fn entra_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::json!({
        "error": error,
        "error_description": description,
        "error_codes": [],
        "timestamp": "",
        "trace_id": crate::model::guid(),
        "correlation_id": crate::model::guid(),
    });
    respond(status, JSON, body.to_string())
}

/// The tenant of the request, or Entra's answer for a tenant it does not know.
// The error is the response to send, built once per request: boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn tenant(s: &Shared, parts: &Parts) -> Result<Tenant, Response> {
    if parts.method != Method::GET {
        return Err(with_allow_get(entra_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "AADSTS900561: The endpoint only accepts GET requests.",
        )));
    }
    let segment = parts.uri.path().split('/').nth(1).unwrap_or_default();
    if segment.eq_ignore_ascii_case(&s.tenant_id) {
        return Ok(Tenant::One(s.tenant_id.clone()));
    }
    if let Some(t) = s.entra.tenant(segment) {
        return Ok(Tenant::One(t.to_owned()));
    }
    if segment == "common" || segment == "organizations" {
        return Ok(Tenant::Any(segment.to_owned()));
    }
    Err(entra_error(
        StatusCode::BAD_REQUEST,
        "invalid_tenant",
        &format!(
            "AADSTS90002: Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
        ),
    ))
}

fn is_v2(parts: &Parts) -> bool {
    parts.uri.path().contains("/v2.0/")
}

/// The JSON Web Key Sets.
pub(crate) struct Jwks;

impl Emulated for Jwks {
    const ENDPOINT: Endpoint = Endpoint::Jwks;
    const PATHS: &'static [&'static str] =
        &["/{tenant}/discovery/keys", "/{tenant}/discovery/v2.0/keys"];

    fn answer(s: &Shared, parts: &Parts, _body: &[u8]) -> Response {
        jwks_answer(s, parts)
    }

    fn fault_body(status: StatusCode) -> String {
        fault_body(status)
    }
}

/// The OpenID Connect discovery documents.
pub(crate) struct OpenIdConfiguration;

impl Emulated for OpenIdConfiguration {
    const ENDPOINT: Endpoint = Endpoint::OpenIdConfiguration;
    const PATHS: &'static [&'static str] = &[
        "/{tenant}/.well-known/openid-configuration",
        "/{tenant}/v2.0/.well-known/openid-configuration",
    ];

    fn answer(s: &Shared, parts: &Parts, _body: &[u8]) -> Response {
        openid_answer(s, parts)
    }

    fn fault_body(status: StatusCode) -> String {
        fault_body(status)
    }
}

fn jwks_answer(s: &Shared, parts: &Parts) -> Response {
    if let Err(r) = tenant(s, parts) {
        return r;
    }
    let template = format!("{}/{{tenantid}}/v2.0", s.base_url);
    let set = lock(&s.keys).key_set(is_v2(parts).then_some(template.as_str()));
    respond(StatusCode::OK, JSON, set.to_string())
}

fn openid_answer(s: &Shared, parts: &Parts) -> Response {
    let t = match tenant(s, parts) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let doc = if is_v2(parts) {
        v2_document(s, &t)
    } else {
        v1_document(s, &t)
    };
    respond(StatusCode::OK, JSON, doc.to_string())
}

/// The v1 discovery document (tokens from managed-identity endpoints are v1 tokens).
fn v1_document(s: &Shared, t: &Tenant) -> Value {
    let base = &s.base_url;
    let tid = t.path();
    document(
        s,
        t,
        serde_json::json!({
            "jwks_uri": format!("{base}/{tid}/discovery/keys"),
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
            "scopes_supported": ["openid"],
            "issuer": format!("https://sts.windows.net/{}/", t.in_issuer()),
            "microsoft_multi_refresh_token": true,
            "authorization_endpoint": format!("{base}/{tid}/oauth2/authorize"),
            "end_session_endpoint": format!("{base}/{tid}/oauth2/logout"),
            "claims_supported": [
                "sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
                "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce", "email",
                "given_name", "family_name", "nickname"
            ],
            "check_session_iframe": format!("{base}/{tid}/oauth2/checksession"),
            "userinfo_endpoint": format!("{base}/{tid}/openid/userinfo"),
        }),
    )
}

/// The v2.0 discovery document.
fn v2_document(s: &Shared, t: &Tenant) -> Value {
    let base = &s.base_url;
    let tid = t.path();
    document(
        s,
        t,
        serde_json::json!({
            "jwks_uri": format!("{base}/{tid}/discovery/v2.0/keys"),
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": format!("{base}/{}/v2.0", t.in_issuer()),
            "request_uri_parameter_supported": false,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/devicecode"),
            "end_session_endpoint": format!("{base}/{tid}/oauth2/v2.0/logout"),
            "claims_supported": [
                "sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
                "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce",
                "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"
            ],
        }),
    )
}

/// A discovery document: the members the v1 and v2 documents share, plus `specific`.
fn document(s: &Shared, t: &Tenant, specific: Value) -> Value {
    let base = &s.base_url;
    let tid = t.path();
    let mut doc = serde_json::json!({
        "token_endpoint": format!("{base}/{tid}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "kerberos_endpoint": format!("{base}/{tid}/kerberos"),
        "tenant_region_scope": tenant_region(t),
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    });
    if let (Value::Object(doc), Value::Object(specific)) = (&mut doc, specific) {
        doc.extend(specific);
    }
    doc
}

fn tenant_region(t: &Tenant) -> Value {
    match t {
        Tenant::One(_) => Value::from("NA"),
        Tenant::Any(_) => Value::Null,
    }
}

impl Emulator {
    /// The issuer of v2 tokens: `<base>/<tid>/v2.0` (see
    /// [`EmulatorBuilder::v2_tokens_for`](crate::EmulatorBuilder::v2_tokens_for)).
    pub fn issuer_v2(&self) -> String {
        format!("{}/{}/v2.0", self.base_url(), self.tenant_id())
    }

    /// The v2.0 discovery document: `<base>/<tid>/v2.0/.well-known/openid-configuration`
    /// (its `jwks_uri` is [`jwks_v2_url`](Emulator::jwks_v2_url)).
    pub fn openid_configuration_v2_url(&self) -> String {
        format!(
            "{}/{}/v2.0/.well-known/openid-configuration",
            self.base_url(),
            self.tenant_id()
        )
    }

    /// The v2.0 key set, whose keys carry an `issuer` member: `<base>/<tid>/discovery/v2.0/keys`.
    pub fn jwks_v2_url(&self) -> String {
        format!(
            "{}/{}/discovery/v2.0/keys",
            self.base_url(),
            self.tenant_id()
        )
    }

    /// The ids (`kid`) of the published keys, the signing key first.
    pub fn signing_key_ids(&self) -> Vec<String> {
        lock(&self.inner.shared.keys).kids()
    }

    /// Rotates the signing key, like Entra's key rollover: a new key is generated, published
    /// first and signs every token from now on; the previous keys stay published until
    /// [`retire_old_signing_keys`](Emulator::retire_old_signing_keys). Tokens the endpoints
    /// cached are forgotten, so the next ones are signed with the new key. Returns its `kid`.
    pub async fn rotate_signing_key(&self) -> Result<String, EmulatorError> {
        let key = SigningKey::fresh().await?;
        let kid = key.kid().to_owned();
        lock(&self.inner.shared.keys).rotate(key);
        self.inner.shared.forget_cached_tokens();
        Ok(kid)
    }

    /// Stops publishing every key but the signing key (the end of a rollover).
    pub fn retire_old_signing_keys(&self) {
        lock(&self.inner.shared.keys).drop_retired();
    }

    /// Publishes a new key that may only sign tokens of `tenant_id`: the v2 key sets give it
    /// the issuer `<base>/<tenant_id>/v2.0` (v1 key sets, which cannot say so, leave it out),
    /// like the keys Entra keeps for one tenant's applications. It signs only what
    /// [`sign_token_with_key`](Emulator::sign_token_with_key) asks. Returns its `kid`.
    pub async fn add_tenant_signing_key(&self, tenant_id: &str) -> Result<String, EmulatorError> {
        let key = SigningKey::fresh().await?;
        let kid = key.kid().to_owned();
        lock(&self.inner.shared.keys).add_tenant_key(key, tenant_id.to_owned());
        Ok(kid)
    }

    /// Signs `claims` (any JSON, typically an object) with the signing key, with the header
    /// Entra uses (`typ` JWT, `alg` RS256, `kid`, `x5t`): for tests that need a token with
    /// claims no endpoint would issue (another tenant, a past `exp`, a missing claim).
    pub fn sign_token(&self, claims: &Value) -> String {
        self.inner.shared.sign(claims).unwrap_or_default()
    }

    /// Like [`sign_token`](Emulator::sign_token) with the published key `kid`; `None` if no
    /// published key has it.
    pub fn sign_token_with_key(&self, kid: &str, claims: &Value) -> Option<String> {
        let key = lock(&self.inner.shared.keys).find(kid)?;
        key.sign(claims).ok()
    }
}
