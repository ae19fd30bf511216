//! A protected API for middleware tests: an axum server on 127.0.0.1:0 that validates bearer
//! JWTs like a real resource server (RS256 signature against the emulator's JWKS fetched over
//! HTTP, `iss`, `aud`, `exp` without leeway) and can be told to reject tokens.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// What the downstream does with a valid token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Accept it.
    Accept,
    /// Revoke the next valid token it sees: that request and every later one with the same
    /// token get `401 invalid_token`; other tokens are accepted.
    RevokeNext,
    /// Every request gets `401 invalid_token`.
    RejectAll,
    /// The next request with a valid token gets a claims challenge for this JSON (base64 in
    /// the given alphabet); later ones are accepted.
    ClaimsOnce {
        /// The claims JSON.
        claims: String,
        /// Base64url (`true`) or standard base64 (`false`).
        url_safe: bool,
    },
}

/// One request as seen.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The request path.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The status answered.
    pub status: u16,
    /// The body answered.
    pub body: Bytes,
}

struct DsState {
    key: DecodingKey,
    validation: Validation,
    mode: Mutex<Mode>,
    revoked: Mutex<HashSet<String>>,
    seen: Mutex<Vec<Seen>>,
    ok: AtomicUsize,
    unauthorized: AtomicUsize,
}

/// A protected API on 127.0.0.1:0 (see the module docs).
pub struct Downstream {
    /// The listening address.
    pub addr: SocketAddr,
    state: Arc<DsState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Downstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Downstream {
    /// Starts a downstream that accepts tokens for `audience` issued by `emulator`.
    pub async fn start(emulator: &entra_mi_emulator::Emulator, audience: &str) -> Self {
        let jwks: serde_json::Value = reqwest::get(emulator.jwks_url())
            .await
            .unwrap()
            .json_value()
            .await;
        let jwk = &jwks["keys"][0];
        let key = DecodingKey::from_rsa_components(
            jwk["n"].as_str().unwrap(),
            jwk["e"].as_str().unwrap(),
        )
        .unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[emulator.issuer()]);
        validation.leeway = 0;
        let state = Arc::new(DsState {
            key,
            validation,
            mode: Mutex::new(Mode::Accept),
            revoked: Mutex::new(HashSet::new()),
            seen: Mutex::new(Vec::new()),
            ok: AtomicUsize::new(0),
            unauthorized: AtomicUsize::new(0),
        });
        let app = Router::new()
            .fallback(any(handle))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state, task }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The route of `router` that requests to this API take.
    pub fn route_in(&self, router: &entra_mi::TokenRouter) -> entra_mi::middleware::BoundRoute {
        let uri: http::Uri = self.url("/").parse().unwrap();
        router.match_uri(&uri).expect("a route to the API").clone()
    }

    /// Sets what happens to the next valid tokens.
    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// How many requests were accepted.
    pub fn ok(&self) -> usize {
        self.state.ok.load(Ordering::SeqCst)
    }

    /// How many requests got `401`.
    pub fn unauthorized(&self) -> usize {
        self.state.unauthorized.load(Ordering::SeqCst)
    }

    /// Distinct bearer tokens seen so far.
    pub fn distinct_tokens(&self) -> usize {
        self.seen()
            .iter()
            .filter_map(|s| s.authorization.clone())
            .collect::<HashSet<_>>()
            .len()
    }
}

trait JsonValue {
    async fn json_value(self) -> serde_json::Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> serde_json::Value {
        serde_json::from_slice(&self.bytes().await.unwrap()).unwrap()
    }
}

const CHALLENGE: &str = r#"Bearer realm="downstream", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize""#;

fn unauthorized(challenge: String) -> Response {
    let mut resp = Response::new("unauthorized".into());
    *resp.status_mut() = StatusCode::UNAUTHORIZED;
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_str(&challenge).unwrap(),
    );
    resp
}

fn invalid_token() -> Response {
    unauthorized(format!(r#"{CHALLENGE}, error="invalid_token""#))
}

async fn handle(State(s): State<Arc<DsState>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("<not utf-8>").to_owned());
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let resp = decide(&s, authorization.as_deref());
    let status = resp.status().as_u16();
    if status == 200 {
        s.ok.fetch_add(1, Ordering::SeqCst);
    } else if status == 401 {
        s.unauthorized.fetch_add(1, Ordering::SeqCst);
    }
    s.seen.lock().unwrap().push(Seen {
        path,
        authorization,
        status,
        body,
    });
    resp
}

fn decide(s: &DsState, authorization: Option<&str>) -> Response {
    let Some(token) = authorization.and_then(|a| a.strip_prefix("Bearer ")) else {
        return unauthorized(CHALLENGE.to_owned());
    };
    if jsonwebtoken::decode::<serde_json::Value>(token, &s.key, &s.validation).is_err() {
        return invalid_token();
    }
    if s.revoked.lock().unwrap().contains(token) {
        return invalid_token();
    }
    let mut mode = s.mode.lock().unwrap();
    match &*mode {
        Mode::Accept => {}
        Mode::RejectAll => return invalid_token(),
        Mode::RevokeNext => {
            s.revoked.lock().unwrap().insert(token.to_owned());
            *mode = Mode::Accept;
            return invalid_token();
        }
        Mode::ClaimsOnce { claims, url_safe } => {
            use base64::Engine;
            let encoded = if *url_safe {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims)
            } else {
                base64::engine::general_purpose::STANDARD.encode(claims)
            };
            *mode = Mode::Accept;
            return unauthorized(format!(
                r#"{CHALLENGE}, error="insufficient_claims", claims="{encoded}""#
            ));
        }
    }
    Response::new("ok".into())
}
