//! A `reqwest` client that lists the service principals of Microsoft Graph with a
//! managed-identity token, attached by `entra-mi-reqwest`.
//!
//! It runs anywhere: it starts the embedded emulator (IMDS plus a Microsoft Graph subset on
//! 127.0.0.1) and points the credential and the route at it. On Azure, drop the emulator and
//! use `ManagedIdentityCredential::system_assigned()?` with `Route::microsoft_graph()`.
//!
//! Run: `cargo run --example reqwest_graph`

use entra_mi::{Audience, Environment, ManagedIdentityCredential, Route, TokenProvider};
use entra_mi_emulator::{Emulator, Identity};
use entra_mi_reqwest::BearerAuthMiddleware;
use reqwest_middleware::ClientBuilder;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let emulator = Emulator::builder()
        .identity(Identity::user_assigned("orders-api"))
        .identity(Identity::user_assigned("billing-worker"))
        .start()
        .await?;

    // The credential finds "IMDS" through the environment, as on an AKS pod.
    let credential = ManagedIdentityCredential::builder()
        .environment(Environment::from_vars([(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            emulator.imds_host(),
        )]))
        .build()?;
    let provider = TokenProvider::new(credential);

    // Graph tokens go to the (emulated) Graph base URL only. Plain http is allowed because
    // the emulator is on loopback; on Azure the route is `Route::microsoft_graph()`.
    let auth = BearerAuthMiddleware::builder(&provider)
        .route(Route::new(
            &emulator.graph_url(),
            Audience::microsoft_graph(),
        )?)
        .allow_http_loopback(true)
        .build()?;
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build();

    println!("service principals (2 per page):");
    let mut url = format!("{}/servicePrincipals?$top=2", emulator.graph_url());
    for page in 1..=100 {
        let response = client.get(&url).send().await?;
        let status = response.status();
        let body: serde_json::Value = serde_json::from_slice(&response.bytes().await?)?;
        if !status.is_success() {
            return Err(format!("Graph answered {status}: {}", body["error"]["code"]).into());
        }
        for sp in body["value"].as_array().into_iter().flatten() {
            println!(
                "  page {page}: {:<36} {:<16} id {}  appId {}",
                sp["displayName"].as_str().unwrap_or("?"),
                sp["servicePrincipalType"].as_str().unwrap_or("?"),
                sp["id"].as_str().unwrap_or("?"),
                sp["appId"].as_str().unwrap_or("?"),
            );
        }
        match body["@odata.nextLink"].as_str() {
            // The next link stays on the routed origin, so it gets the token too.
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    let stats = provider.stats();
    println!(
        "token fetches: {} (every page after the first was served from the cache)",
        stats.fetches
    );
    emulator.shutdown().await;
    Ok(())
}
