//! A minimal Azure Key Vault (secrets only), over TLS, behind Key Vault's bearer-token
//! challenge: what the official SDK clients need to run against the emulator.
//!
//! Wire facts, from the Key Vault REST reference
//! (<https://learn.microsoft.com/rest/api/keyvault/secrets/get-secret/get-secret>,
//! <https://learn.microsoft.com/rest/api/keyvault/secrets/set-secret/set-secret>) and its
//! authentication and error pages
//! (<https://learn.microsoft.com/azure/key-vault/general/authentication-requests-and-responses>,
//! <https://learn.microsoft.com/azure/key-vault/general/rest-error-codes>):
//!
//! - `GET /secrets/{name}[/{version}]?api-version=…` and `PUT /secrets/{name}?api-version=…`
//!   (body `{"value": …, "contentType": …, "tags": {…}}`) answer a `SecretBundle`: `value`,
//!   `id` (`{vault}/secrets/{name}/{version}`), `attributes` (`enabled`, `created`, `updated`
//!   in Unix seconds, `recoveryLevel`, `recoverableDays`), `contentType` and `tags` when set.
//! - A request without a bearer token gets `401` with
//!   `WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/{tenant}", resource="https://vault.azure.net"`:
//!   clients learn the tenant and the resource from it (and send their first request without a
//!   token on purpose). A token that fails the checks (signature, issuer, `aud` =
//!   `https://vault.azure.net`, `nbf`/`exp`) gets the same `401` and challenge.
//! - Errors are `{"error": {"code": …, "message": …}}`: `Unauthorized`, `SecretNotFound`
//!   (404), `BadParameter` (400).
//!
//! Secret names are 1 to 127 characters of `0-9`, `a-z`, `A-Z` and `-`; a value is at most
//! 25 KiB (<https://learn.microsoft.com/azure/key-vault/general/service-limits>).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value, json};

use crate::state::{Shared, lock};
use crate::time::now_secs;
use crate::{Emulator, EmulatorBuilder};

/// Key Vault's resource URI: the `resource` of its challenge and the `aud` it accepts.
pub const KEY_VAULT_RESOURCE: &str = "https://vault.azure.net";

/// The message for a bearer token that is not a well-formed JWT.
const MALFORMED: &str = "Token validation failed: the token is malformed.";

/// The largest secret value Key Vault stores, in bytes.
const MAX_VALUE_BYTES: usize = 25 * 1024;

/// An emulated key vault: its name and the secrets it starts with (see
/// [`EmulatorBuilder::key_vault`]).
///
/// Its `Debug` output lists the secret names, never their values.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyVault {
    name: String,
    secrets: Vec<(String, String)>,
}

impl std::fmt::Debug for KeyVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.secrets.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("KeyVault")
            .field("name", &self.name)
            .field("secrets", &names)
            .finish()
    }
}

impl KeyVault {
    /// A vault named `name`, served as `https://<name>.vault.azure.net:<port>` (its
    /// certificate names that host, `localhost` and `127.0.0.1`), with no secrets.
    ///
    /// The host name is what the official clients check the challenge's resource against
    /// (the vault's host must end with `.vault.azure.net`); it never reaches DNS when the
    /// client resolves it to [`KeyVaultEndpoint::addr`].
    pub fn new(name: &str) -> KeyVault {
        KeyVault {
            name: name.to_owned(),
            secrets: Vec::new(),
        }
    }

    /// Adds a secret (its first version).
    pub fn secret(mut self, name: &str, value: &str) -> KeyVault {
        self.secrets.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// Where a running emulator serves its key vault.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyVaultEndpoint {
    /// The vault URL, `https://<name>.vault.azure.net:<port>`: resolve its host to
    /// [`addr`](Self::addr) in the client.
    pub url: String,
    /// The vault's host name, `<name>.vault.azure.net`.
    pub host: String,
    /// The bound address, `127.0.0.1:<port>`.
    pub addr: SocketAddr,
    /// `https://127.0.0.1:<port>`. The TLS listener serves every endpoint of the emulator
    /// here too (Entra's token endpoint, the managed-identity endpoints, …), for clients that
    /// insist on `https` authorities.
    pub ip_url: String,
    /// The listener's self-signed certificate (PEM): the one root a client must trust.
    pub certificate_pem: String,
}

/// Requests the key vault has seen (see [`Emulator::key_vault_counts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyVaultCounts {
    /// Every request to a secrets path.
    pub requests: usize,
    /// Requests without a bearer token, answered with the challenge.
    pub challenged: usize,
    /// Requests whose token failed a check (also answered with the challenge).
    pub rejected: usize,
    /// Requests whose token passed the checks.
    pub authorized: usize,
}

/// One version of a secret.
struct Version {
    id: String,
    value: String,
    content_type: Option<String>,
    tags: Option<Map<String, Value>>,
    created: u64,
}

/// The vault of a running emulator.
pub(crate) struct Vault {
    endpoint: KeyVaultEndpoint,
    /// Name (as first set: names compare case-insensitively) → versions, oldest first.
    secrets: Mutex<HashMap<String, (String, Vec<Version>)>>,
    requests: AtomicUsize,
    challenged: AtomicUsize,
    rejected: AtomicUsize,
    authorized: AtomicUsize,
}

/// What the vault's handlers see.
#[derive(Clone)]
struct VaultState {
    shared: Arc<Shared>,
    vault: Arc<Vault>,
}

impl EmulatorBuilder {
    /// Serves `vault` over TLS on a second loopback port (see [`Emulator::key_vault`]).
    pub fn key_vault(mut self, vault: KeyVault) -> Self {
        self.key_vault = Some(vault);
        self
    }
}

impl Emulator {
    /// Where the key vault is served, if the builder configured one.
    pub fn key_vault(&self) -> Option<KeyVaultEndpoint> {
        self.inner.key_vault.as_ref().map(|v| v.endpoint.clone())
    }

    /// The key vault's request counters (all zero when there is no vault).
    pub fn key_vault_counts(&self) -> KeyVaultCounts {
        self.inner
            .key_vault
            .as_ref()
            .map(|v| KeyVaultCounts {
                requests: v.requests.load(Ordering::SeqCst),
                challenged: v.challenged.load(Ordering::SeqCst),
                rejected: v.rejected.load(Ordering::SeqCst),
                authorized: v.authorized.load(Ordering::SeqCst),
            })
            .unwrap_or_default()
    }
}

/// Binds the vault's TLS listener and returns it, the router to serve on it (the vault's
/// routes plus every other endpoint) and the vault.
pub(crate) async fn start(
    config: KeyVault,
    shared: &Arc<Shared>,
) -> Result<(crate::tls::TlsListener, Router, Arc<Vault>), crate::EmulatorError> {
    let host = format!("{}.vault.azure.net", config.name);
    let tls = crate::tls::bind(&[&host, "localhost", "127.0.0.1"]).await?;
    let url = format!("https://{host}:{}", tls.addr.port());
    let now = now_secs();
    let mut secrets = HashMap::new();
    for (name, value) in config.secrets {
        let entry = secrets
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| (name.clone(), Vec::new()));
        entry.1.push(new_version(value, None, None, now));
    }
    let vault = Arc::new(Vault {
        endpoint: KeyVaultEndpoint {
            url,
            host,
            addr: tls.addr,
            ip_url: tls.base_url.clone(),
            certificate_pem: tls.cert_pem.clone(),
        },
        secrets: Mutex::new(secrets),
        requests: AtomicUsize::new(0),
        challenged: AtomicUsize::new(0),
        rejected: AtomicUsize::new(0),
        authorized: AtomicUsize::new(0),
    });
    let router = Router::new()
        .route("/secrets/{name}", any(secret))
        .route("/secrets/{name}/", any(secret))
        .route("/secrets/{name}/{version}", any(secret_version))
        .with_state(VaultState {
            shared: shared.clone(),
            vault: vault.clone(),
        })
        .merge(crate::routes::router(shared.clone()));
    Ok((tls, router, vault))
}

fn new_version(
    value: String,
    content_type: Option<String>,
    tags: Option<Map<String, Value>>,
    now: u64,
) -> Version {
    let id: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    Version {
        id: id.iter().map(|b| format!("{b:02x}")).collect(),
        value,
        content_type,
        tags,
        created: now,
    }
}

async fn secret(
    State(s): State<VaultState>,
    axum::extract::Path(name): axum::extract::Path<String>,
    req: Request,
) -> Response {
    handle(&s, &name, None, req).await
}

async fn secret_version(
    State(s): State<VaultState>,
    axum::extract::Path((name, version)): axum::extract::Path<(String, String)>,
    req: Request,
) -> Response {
    handle(&s, &name, Some(&version), req).await
}

async fn handle(s: &VaultState, name: &str, version: Option<&str>, req: Request) -> Response {
    let vault = &*s.vault;
    vault.requests.fetch_add(1, Ordering::SeqCst);
    if let Err(resp) = check_token(&s.shared, vault, &req) {
        return resp;
    }
    if !has_api_version(&req) {
        return error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "The request URI contains an invalid or missing api-version query parameter.",
        );
    }
    if name.is_empty()
        || name.len() > 127
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            &format!("The request URI contains an invalid name: {name}"),
        );
    }
    let method = req.method().clone();
    match (method, version) {
        (Method::GET, version) => get(vault, name, version),
        (Method::PUT, None) => {
            // Secrets are small; a body past the limit is refused below.
            match axum::body::to_bytes(req.into_body(), MAX_VALUE_BYTES * 4).await {
                Ok(body) => set(vault, name, &body),
                Err(_) => error(
                    StatusCode::BAD_REQUEST,
                    "BadParameter",
                    "The request body is too large.",
                ),
            }
        }
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "This emulator serves GET and PUT on secrets only.",
        ),
    }
}

fn has_api_version(req: &Request) -> bool {
    req.uri().query().is_some_and(|q| {
        form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "api-version" && !v.is_empty())
    })
}

fn get(vault: &Vault, name: &str, version: Option<&str>) -> Response {
    let secrets = lock(&vault.secrets);
    let found = secrets.get(&name.to_ascii_lowercase()).and_then(|(n, vs)| {
        let v = match version {
            None => vs.last(),
            Some(id) => vs.iter().find(|v| v.id.eq_ignore_ascii_case(id)),
        };
        v.map(|v| bundle(vault, n, v))
    });
    match found {
        Some(body) => json_response(StatusCode::OK, &body),
        None => {
            let what = version.map_or_else(|| name.to_owned(), |v| format!("{name}/{v}"));
            error(
                StatusCode::NOT_FOUND,
                "SecretNotFound",
                &format!(
                    "A secret with (name/id) {what} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command."
                ),
            )
        }
    }
}

fn set(vault: &Vault, name: &str, body: &[u8]) -> Response {
    let bad = |message: &str| error(StatusCode::BAD_REQUEST, "BadParameter", message);
    let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(body) else {
        return bad("The request body must be a JSON object.");
    };
    let value = match fields.remove("value") {
        Some(Value::String(v)) => v,
        Some(_) => return bad("Property 'value' must be a string."),
        None => return bad("Property 'value' is required."),
    };
    if value.len() > MAX_VALUE_BYTES {
        return bad("The secret value is larger than 25 KiB.");
    }
    let content_type = match fields.remove("contentType") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) => Some(c),
        Some(_) => return bad("Property 'contentType' must be a string."),
    };
    let tags = match fields.remove("tags") {
        None | Some(Value::Null) => None,
        Some(Value::Object(t)) if t.values().all(Value::is_string) => Some(t),
        Some(_) => return bad("Property 'tags' must be an object of strings."),
    };
    let mut secrets = lock(&vault.secrets);
    let entry = secrets
        .entry(name.to_ascii_lowercase())
        .or_insert_with(|| (name.to_owned(), Vec::new()));
    entry
        .1
        .push(new_version(value, content_type, tags, now_secs()));
    let (n, versions) = &*entry;
    let latest = versions.last().map(|v| bundle(vault, n, v));
    json_response(StatusCode::OK, &latest.unwrap_or(Value::Null))
}

fn bundle(vault: &Vault, name: &str, v: &Version) -> Value {
    let mut body = json!({
        "value": v.value,
        "id": format!("{}/secrets/{name}/{}", vault.endpoint.url, v.id),
        "attributes": {
            "enabled": true,
            "created": v.created,
            "updated": v.created,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
        },
    });
    if let Some(c) = &v.content_type {
        body["contentType"] = Value::String(c.clone());
    }
    if let Some(t) = &v.tags {
        body["tags"] = Value::Object(t.clone());
    }
    body
}

/// Checks the bearer token; `Err` is the `401` (with the challenge) to send.
// The error is the response to send, built once per request: boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn check_token(s: &Shared, vault: &Vault, req: &Request) -> Result<(), Response> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        vault.challenged.fetch_add(1, Ordering::SeqCst);
        return Err(unauthorized(
            s,
            "AKV10000: Request is missing a Bearer or PoP token.",
        ));
    };
    // The published key the token's header names (keys rotate, as Entra's do). A token
    // whose header does not even decode is malformed, not merely signed by an unknown key.
    let key = s
        .verification_key(token)
        .ok_or_else(|| match jsonwebtoken::decode_header(token) {
            Ok(_) => "Token validation failed.",
            Err(_) => MALFORMED,
        });
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[KEY_VAULT_RESOURCE]);
    validation.set_issuer(&[s.issuer()]);
    validation.set_required_spec_claims(&["exp", "aud", "iss"]);
    validation.validate_nbf = true;
    validation.leeway = 0;
    let checked = key.and_then(|key| {
        jsonwebtoken::decode::<Value>(token, key.decoding(), &validation).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "Token has expired.",
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => "Token is not yet valid.",
                jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                    "Invalid audience. Expected https://vault.azure.net."
                }
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                    "Invalid issuer: the token is not from this vault's tenant."
                }
                jsonwebtoken::errors::ErrorKind::InvalidSignature => "Invalid token signature.",
                _ => MALFORMED,
            }
        })
    });
    match checked {
        Ok(_) => {
            vault.authorized.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        Err(message) => {
            vault.rejected.fetch_add(1, Ordering::SeqCst);
            Err(unauthorized(s, message))
        }
    }
}

fn unauthorized(s: &Shared, message: &str) -> Response {
    let mut resp = error(StatusCode::UNAUTHORIZED, "Unauthorized", message);
    let challenge = format!(
        r#"Bearer authorization="https://login.microsoftonline.com/{}", resource="{KEY_VAULT_RESOURCE}""#,
        s.tenant_id
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({ "error": { "code": code, "message": message } }),
    )
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = Response::new(body.to_string().into());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}
