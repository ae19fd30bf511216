//! An axum service whose handler calls a downstream API through a hyper client wrapped in
//! `entra-mi-tower`'s `BearerAuthLayer`; the downstream validates the JWT like a real
//! resource server (RS256 signature against the emulator's JWKS, `iss`, `aud`, `exp`).
//!
//! Everything runs on 127.0.0.1: the embedded emulator (managed-identity endpoint and JWKS),
//! the downstream "orders" API, and the front service. On Azure, the credential is
//! `ManagedIdentityCredential::system_assigned()?` and the route names the API's real URL.
//!
//! Run: `cargo run --example axum_outbound`

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use bytes::Bytes;
use entra_mi::{Environment, ManagedIdentityCredential, Route, TokenProvider};
use entra_mi_emulator::Emulator;
use entra_mi_tower::{BearerAuth, BearerAuthLayer, CloneBody};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tower::{ServiceBuilder, ServiceExt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type HyperClient = Client<HttpConnector, Full<Bytes>>;
type OutboundClient = BearerAuth<HyperClient, CloneBody>;

/// The downstream API's application (client) id: its tokens have `aud` `api://<this>`.
const ORDERS_APP_ID: &str = "6f1c2a9e-3b7d-4e8f-a0c1-2d3e4f5a6b7c";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let emulator = Emulator::builder().start().await?;

    // The downstream API validates tokens with the emulator's published keys.
    let orders = serve(orders_api(&emulator).await?).await?;

    // The front service: one provider per process, one hyper client wrapped in the layer.
    let credential = ManagedIdentityCredential::builder()
        .environment(Environment::from_vars([(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            emulator.imds_host(),
        )]))
        .build()?;
    let provider = TokenProvider::new(credential);
    let layer = BearerAuthLayer::builder(&provider)
        .route(Route::api(
            ORDERS_APP_ID,
            &format!("http://{orders}/orders"),
        )?)
        .allow_http_loopback(true)
        .replay(CloneBody) // `Full<Bytes>` bodies can be sent again after a 401
        .build()?;
    let outbound: OutboundClient = ServiceBuilder::new()
        .layer(layer)
        .service(Client::builder(TokioExecutor::new()).build_http());
    let front = Router::new()
        .route("/summary", get(summary))
        .with_state(Arc::new(Front {
            outbound,
            orders_url: format!("http://{orders}/orders"),
        }));
    let front = serve(front).await?;

    // A caller of the front service (no token: the front service holds the identity).
    let caller: HyperClient = Client::builder(TokioExecutor::new()).build_http();
    for _ in 0..2 {
        let response = caller
            .get(format!("http://{front}/summary").parse()?)
            .await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        println!(
            "GET /summary -> {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    println!("token fetches: {}", provider.stats().fetches);
    emulator.shutdown().await;
    Ok(())
}

struct Front {
    outbound: OutboundClient,
    orders_url: String,
}

/// The front handler: calls the orders API; the layer attaches the token.
async fn summary(State(front): State<Arc<Front>>) -> (StatusCode, String) {
    let request = http::Request::get(&front.orders_url)
        .body(Full::default())
        .expect("a valid request");
    match front.outbound.clone().oneshot(request).await {
        Ok(response) => {
            let status = response.status();
            let body = match response.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return (StatusCode::BAD_GATEWAY, format!("orders body: {e}")),
            };
            (status, String::from_utf8_lossy(&body).into_owned())
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("orders call failed: {e}")),
    }
}

/// The downstream API: accepts only tokens signed by the emulator's key, issued by it, for
/// `api://<ORDERS_APP_ID>`, not expired.
async fn orders_api(emulator: &Emulator) -> Result<Router, BoxError> {
    let jwks: serde_json::Value =
        serde_json::from_slice(&reqwest::get(emulator.jwks_url()).await?.bytes().await?)?;
    let jwk = &jwks["keys"][0];
    let key = DecodingKey::from_rsa_components(
        jwk["n"].as_str().ok_or("jwk without n")?,
        jwk["e"].as_str().ok_or("jwk without e")?,
    )?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[format!("api://{ORDERS_APP_ID}")]);
    validation.set_issuer(&[emulator.issuer()]);
    validation.leeway = 0;
    let state = Arc::new((key, validation));
    Ok(Router::new()
        .route("/orders", get(list_orders))
        .with_state(state))
}

async fn list_orders(
    State(state): State<Arc<(DecodingKey, Validation)>>,
    headers: HeaderMap,
) -> (StatusCode, [(header::HeaderName, String); 1], String) {
    let challenge = |error: &str| {
        (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                format!(r#"Bearer error="{error}""#),
            )],
            "unauthorized".to_owned(),
        )
    };
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return challenge("invalid_request");
    };
    let (key, validation) = &*state;
    match jsonwebtoken::decode::<serde_json::Value>(token, key, validation) {
        Ok(data) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json".to_owned())],
            serde_json::json!({
                "orders": [{"id": 1, "total": 42}, {"id": 2, "total": 7}],
                // Who called, from the validated claims (never the token itself).
                "caller_oid": data.claims["oid"],
                "caller_app": data.claims["appid"],
            })
            .to_string(),
        ),
        Err(_) => challenge("invalid_token"),
    }
}

/// Serves `app` on 127.0.0.1 with a free port.
async fn serve(app: Router) -> Result<std::net::SocketAddr, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("server error: {e}");
        }
    });
    Ok(addr)
}
