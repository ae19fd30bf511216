//! Quickstart: a managed-identity token for Microsoft Graph, cached and refreshed before it
//! expires — on the embedded emulator, so it runs anywhere (no Azure needed).
//!
//! Run: `cargo run --example quickstart`
//!
//! On Azure the only difference is the environment: drop `.environment(...)` and the
//! credential finds the platform's endpoint itself (IMDS on a VM or AKS node,
//! `IDENTITY_ENDPOINT` on App Service, Functions and Container Apps).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use entra_mi::{Audience, Environment, ManagedIdentityCredential, TokenProvider};
use entra_mi_emulator::{Emulator, Identity};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. A local stand-in for Azure's managed-identity endpoint, with one user-assigned
    //    identity that holds an app role on Microsoft Graph. Tokens live 6 s so the refresh
    //    shows within seconds (real ones live ~24 h).
    let identity = Identity::user_assigned("orders-api");
    let emulator = Emulator::builder()
        .identity(identity.clone())
        .roles(
            &identity.object_id,
            "https://graph.microsoft.com",
            &["User.Read.All"],
        )
        .token_lifetime(Duration::from_secs(6))
        .cache_tokens(false)
        .start()
        .await?;
    println!("emulator: IMDS at {}", emulator.imds_token_url());

    // 2. The credential: the identity's client id, the source found from the environment.
    //    Here the environment points IMDS at the emulator, as AZURE_POD_IDENTITY_AUTHORITY_HOST
    //    would in a real process.
    let credential = ManagedIdentityCredential::builder()
        .client_id(&identity.client_id)
        .environment(Environment::from_vars([(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            emulator.imds_host(),
        )]))
        .build()?;
    println!(
        "source: {} at {}",
        credential.source_kind(),
        credential.endpoint()
    );

    // 3. One provider per process; one handle per API, resolved once.
    let provider = TokenProvider::builder(credential)
        .eager_refresh(true)
        .build();
    let graph = provider.handle(&Audience::microsoft_graph());

    let token = graph.token().await?;
    println!("token: {token}"); // Display never shows the secret
    print_claims(token.secret())?;

    // 4. Proactive refresh: the cache swaps in a new token before the old one expires; callers
    //    are never made to wait. Watch for ~8 s (bounded).
    let started = Instant::now();
    let mut last_iat = claim_i64(token.secret(), "iat")?;
    let mut refreshes = 0;
    while started.elapsed() < Duration::from_secs(8) && refreshes < 2 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let _header = graph.header().await?; // what a middleware attaches: `Bearer …`, sensitive
        let current = graph.token().await?;
        let iat = claim_i64(current.secret(), "iat")?;
        if iat != last_iat {
            refreshes += 1;
            let left = current
                .expires_on()
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            println!(
                "t+{:.1}s: refreshed in the background (new token issued at {iat}, valid {:.0}s more)",
                started.elapsed().as_secs_f64(),
                left.as_secs_f64()
            );
            last_iat = iat;
        }
    }
    let stats = provider.stats();
    println!(
        "cache: {} hits, {} stale hits, {} fetches, {} failures, {} waits",
        stats.hits, stats.stale_hits, stats.fetches, stats.failures, stats.waits
    );
    if refreshes == 0 {
        return Err("no proactive refresh happened".into());
    }
    Ok(())
}

fn payload(jwt: &str) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let part = jwt.split('.').nth(1).ok_or("not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part)?;
    Ok(serde_json::from_slice(&bytes)?)
}

fn claim_i64(jwt: &str, name: &str) -> Result<i64, Box<dyn std::error::Error>> {
    payload(jwt)?[name]
        .as_i64()
        .ok_or_else(|| format!("no {name} claim").into())
}

/// Prints what an API will see in the token — never the token itself.
fn print_claims(jwt: &str) -> Result<(), Box<dyn std::error::Error>> {
    let claims = payload(jwt)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    println!("claims the API sees:");
    for name in ["aud", "iss", "tid", "oid", "appid", "xms_mirid", "roles"] {
        println!("  {name:<9} {}", claims[name]);
    }
    println!(
        "  exp       {} (in {} s)",
        claims["exp"],
        claims["exp"].as_i64().unwrap_or(0) - now
    );
    Ok(())
}
