//! The tower layer and the axum extractor: RFC 6750 answers, per-route policies, claims for
//! handlers.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use entra_mi_emulator::Endpoint;
use entra_mi_validate::{Claims, Policy, TokenValidator, ValidateTokenLayer};
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::json;
use tower::ServiceExt as _;

use crate::support::{AUDIENCE, ROLE, World};

async fn whoami(claims: Claims, headers: HeaderMap) -> String {
    let sensitive = headers.get(AUTHORIZATION).is_some_and(|v| v.is_sensitive());
    format!("{} sensitive={sensitive}", claims.app_id().unwrap_or("?"))
}

async fn maybe(claims: Option<Claims>) -> String {
    format!("{}", claims.is_some())
}

fn app(v: &TokenValidator) -> Router {
    Router::new()
        .route(
            "/orders",
            get(whoami).route_layer(ValidateTokenLayer::with_policy(
                v.clone(),
                Policy::new().require_roles([ROLE]),
            )),
        )
        .route(
            "/orders/write",
            get(whoami).route_layer(ValidateTokenLayer::with_policy(
                v.clone(),
                Policy::new().require_roles(["Orders.Write"]),
            )),
        )
        .route("/open", get(maybe))
        .route("/misconfigured", get(whoami))
}

struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    body: String,
}

async fn call(app: &Router, path: &str, authorization: Option<&str>) -> Answer {
    let mut req = Request::get(path);
    if let Some(a) = authorization {
        req = req.header(AUTHORIZATION, a);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let challenge = resp
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        challenge,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

const INVALID: &str = "Bearer error=\"invalid_token\"";

#[tokio::test]
async fn answers_follow_rfc_6750_and_never_echo_the_token() {
    let w = World::start().await;
    let v = w.validator();
    let app = app(&v);
    let good = w.token(json!({}));
    let bearer = |t: &str| format!("Bearer {t}");

    let a = call(&app, "/orders", Some(&bearer(&good))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, format!("{} sensitive=true", w.caller.client_id));
    assert_eq!(v.verified_tokens(), 1);
    let key_sets = w.em.requests(Endpoint::Jwks);
    // Again: answered from memory, same result.
    let a = call(&app, "/orders", Some(&format!("bearer  {good} "))).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(v.verified_tokens(), 1, "the same token, remembered once");
    assert_eq!(w.em.requests(Endpoint::Jwks), key_sets);

    for (auth, description) in [
        (None, "no bearer token"),
        (
            Some("Basic dXNlcjpwYXNz".to_owned()),
            "the Authorization header is not a bearer token",
        ),
        (
            Some("Bearer".to_owned()),
            "the Authorization header is not a bearer token",
        ),
        (
            Some("Bearer ".to_owned()),
            "the Authorization header is not a bearer token",
        ),
    ] {
        let a = call(&app, "/orders", auth.as_deref()).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            a.challenge.as_deref(),
            Some(format!("{INVALID}, error_description=\"{description}\"").as_str())
        );
        assert!(a.body.is_empty());
    }

    let now = w.clock.unix_secs();
    for (token, check) in [
        (w.token(json!({"exp": now - 3600})), "expired"),
        (w.token(json!({"aud": "api://elsewhere"})), "audience"),
        (
            crate::support::with_payload(
                &good,
                &crate::support::merge(w.claims(), json!({"oid": "someone"})),
            ),
            "signature",
        ),
        ("not-a-jwt".to_owned(), "malformed"),
    ] {
        let a = call(&app, "/orders", Some(&bearer(&token))).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{check}");
        let challenge = a.challenge.unwrap();
        assert_eq!(
            challenge,
            format!("{INVALID}, error_description=\"{check}\"")
        );
        assert!(!challenge.contains(&token) && !a.body.contains(&token));
    }

    let a = call(&app, "/orders/write", Some(&bearer(&good))).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(
        a.challenge.as_deref(),
        Some("Bearer error=\"insufficient_scope\", error_description=\"role\"")
    );
    // A refused first sight is refused from memory too.
    let fresh = w.token(json!({"uti": "other"}));
    assert_eq!(
        call(&app, "/orders/write", Some(&bearer(&fresh)))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&app, "/orders/write", Some(&bearer(&fresh)))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&app, "/orders", Some(&bearer(&fresh))).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let w = World::start().await;
    let app = app(&w.validator());
    let good = w.token(json!({}));
    let req = Request::get("/orders")
        .header(AUTHORIZATION, format!("Bearer {good}"))
        .header(AUTHORIZATION, format!("Bearer {good}"))
        .body(Body::empty())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unreachable_keys_are_503_not_401() {
    let w = World::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let v = TokenValidator::builder()
        .authority(format!("http://{closed}"))
        .audience(AUDIENCE)
        .tenant(w.tid())
        .build()
        .unwrap();
    let a = call(
        &app(&v),
        "/orders",
        Some(&format!("Bearer {}", w.token(json!({})))),
    )
    .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(a.challenge.is_none());
}

#[tokio::test]
async fn the_extractor_needs_the_layer() {
    let w = World::start().await;
    let app = app(&w.validator());
    let good = format!("Bearer {}", w.token(json!({})));
    assert_eq!(
        call(&app, "/misconfigured", Some(&good)).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(call(&app, "/open", Some(&good)).await.body, "false");
}

#[tokio::test]
async fn a_layer_without_a_policy_uses_the_validators() {
    let w = World::start().await;
    let v = w
        .builder()
        .policy(Policy::new().require_roles(["Orders.Write"]))
        .build()
        .unwrap();
    let app = Router::new().route("/", get(whoami).layer(ValidateTokenLayer::new(v)));
    let a = call(&app, "/", Some(&format!("Bearer {}", w.token(json!({}))))).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
}
