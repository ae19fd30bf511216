//! Both ends of the story on one machine: an axum "orders" API protected by
//! `entra-mi-validate` (it requires the app role `Orders.Read`), and callers with managed
//! identities that reach it through `entra-mi-reqwest`.
//!
//! - the identity granted `Orders.Read` gets `200` and the API sees its verified claims;
//! - an identity without the role gets `403` (`insufficient_scope`);
//! - a forged token (signed with a key the authority never published) and an expired one
//!   get `401` (`invalid_token`).
//!
//! Everything runs on 127.0.0.1: the embedded emulator plays the managed-identity endpoint
//! and Entra's discovery documents and keys. On Azure, the API's validator uses the default
//! authority (`https://login.microsoftonline.com`) with its real tenant id, the callers use
//! `ManagedIdentityCredential::system_assigned()?` (or their client id), and the role is
//! granted once with `entra-mi perms grant --identity <object id> --api <orders app id>
//! --role Orders.Read`.
//!
//! Run: `cargo run --example protected_api`

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use entra_mi::{Audience, Environment, ManagedIdentityCredential, Route, TokenProvider};
use entra_mi_emulator::{ApiApp, Emulator, Identity};
use entra_mi_reqwest::BearerAuthMiddleware;
use entra_mi_validate::{Claims, Policy, TokenValidator, ValidateTokenLayer};
use reqwest_middleware::ClientBuilder;
use serde_json::json;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The API's App ID URI: the audience its callers ask tokens for.
const ORDERS: &str = "api://orders";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let granted = Identity::user_assigned("billing-worker");
    let ungranted = Identity::user_assigned("reporting-job");
    let emulator = Emulator::builder()
        .identity(granted.clone())
        .identity(ungranted.clone())
        .api(ApiApp::new("Orders API", ORDERS, &["Orders.Read"]))
        // What `entra-mi perms grant` does through Microsoft Graph.
        .roles(&granted.object_id, ORDERS, &["Orders.Read"])
        .start()
        .await?;

    // The protected API: tokens for `api://orders` from its tenant, holding `Orders.Read`.
    let validator = TokenValidator::builder()
        .authority(emulator.authority_host())
        .tenant(emulator.tenant_id())
        .audience(ORDERS)
        .build()?;
    let api = Router::new().route(
        "/orders",
        get(list_orders).route_layer(ValidateTokenLayer::with_policy(
            validator,
            Policy::new().require_roles(["Orders.Read"]),
        )),
    );
    let addr = serve(api).await?;
    let url = format!("http://{addr}/orders");

    // The callers: a managed identity each, the token attached by the reqwest middleware.
    for (name, identity) in [("granted", &granted), ("ungranted", &ungranted)] {
        let credential = ManagedIdentityCredential::builder()
            .environment(Environment::from_vars([(
                "AZURE_POD_IDENTITY_AUTHORITY_HOST",
                emulator.imds_host(),
            )]))
            .client_id(&identity.client_id)
            .build()?;
        let provider = TokenProvider::new(credential);
        let auth = BearerAuthMiddleware::builder(&provider)
            .route(Route::new(
                &format!("http://{addr}"),
                Audience::new(ORDERS)?,
            )?)
            .allow_http_loopback(true)
            .build()?;
        let client = ClientBuilder::new(reqwest::Client::new())
            .with(auth)
            .build();
        for _ in 0..2 {
            let response = client.get(&url).send().await?;
            let status = response.status();
            let challenge = challenge(&response);
            println!(
                "{name:>9} identity: GET /orders -> {status} {}{challenge}",
                response.text().await?
            );
        }
    }

    // Tokens the API must refuse.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let claims = |exp: u64| {
        json!({
            "aud": ORDERS, "iss": emulator.issuer(), "tid": emulator.tenant_id(),
            "iat": now - 7200, "nbf": now - 7200, "exp": exp,
            "appid": granted.client_id, "oid": granted.object_id, "sub": granted.object_id,
            "idtyp": "app", "roles": ["Orders.Read"], "ver": "1.0",
        })
    };
    let genuine = emulator.sign_token(&claims(now + 3600));
    let (signed, _) = genuine.rsplit_once('.').ok_or("not a JWT")?;
    let forged = {
        // The same header and claims with another signature: what a forger without the
        // authority's private key can produce.
        let mut sig = genuine.rsplit('.').next().unwrap_or_default().to_owned();
        sig.replace_range(
            ..4,
            if sig.starts_with("AAAA") {
                "BBBB"
            } else {
                "AAAA"
            },
        );
        format!("{signed}.{sig}")
    };
    let expired = emulator.sign_token(&claims(now - 3600));
    let plain = reqwest::Client::new();
    for (name, token) in [("forged", forged), ("expired", expired)] {
        let response = plain.get(&url).bearer_auth(token).send().await?;
        let challenge = challenge(&response);
        println!(
            "{name:>9} token:    GET /orders -> {} {challenge}",
            response.status()
        );
    }
    emulator.shutdown().await;
    Ok(())
}

/// The handler sees only verified claims.
async fn list_orders(claims: Claims) -> axum::Json<serde_json::Value> {
    axum::Json(json!({
        "orders": ["#1001", "#1002"],
        "for_app": claims.app_id(),
        "roles": claims.roles().collect::<Vec<_>>(),
    }))
}

/// The `WWW-Authenticate` challenge of a refusal (RFC 6750), if any.
fn challenge(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn serve(app: Router) -> Result<SocketAddr, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}
