//! Key Vault through the official Azure SDK client, with an entra-mi managed identity: the
//! official `SecretClient` takes entra-mi's cache as its credential, through
//! `entra_mi_azure::TokenProviderCredential`. On the embedded emulator, so it runs anywhere.
//!
//! Run: `cargo run --example keyvault_secret`
//!
//! On Azure, drop the emulator: build the credential from the process environment
//! (`ManagedIdentityCredential::system_assigned()`), give the client your vault's URL and no
//! client options. The emulator's vault is served over TLS with its own certificate, so here
//! the client's transport trusts that certificate and resolves the vault's name to 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use azure_core::http::{ClientOptions, Transport};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use entra_mi::{Audience, Environment, ManagedIdentityCredential, TokenProvider};
use entra_mi_azure::TokenProviderCredential;
use entra_mi_emulator::{Emulator, Endpoint, KeyVault};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. The emulator: an App Service managed-identity endpoint and a key vault named
    //    `contoso-dev` (https://contoso-dev.vault.azure.net:<port>, on 127.0.0.1) with a secret.
    let emulator = Emulator::builder()
        .key_vault(KeyVault::new("contoso-dev").secret("db-password", "example-only-value"))
        .start()
        .await?;
    let vault = emulator.key_vault().ok_or("the emulator serves no vault")?;

    // 2. entra-mi's managed-identity credential, as App Service would configure it
    //    (IDENTITY_ENDPOINT, IDENTITY_HEADER), and one provider (the cache) for the process.
    let credential = ManagedIdentityCredential::builder()
        .environment(Environment::from_vars([
            ("IDENTITY_ENDPOINT", emulator.app_service_endpoint()),
            ("IDENTITY_HEADER", emulator.identity_header()),
        ]))
        .build()?;
    let provider = TokenProvider::new(credential);

    // 3. The adapter: an `azure_core` credential over the provider. The client learns its
    //    scope from the vault's 401 challenge; only Key Vault tokens may leave.
    let azure_credential = Arc::new(
        TokenProviderCredential::new(provider.clone()).only_audiences([Audience::key_vault()]),
    );

    // 4. The official client. Its transport trusts the emulator's certificate and reaches
    //    the vault's name on loopback (on Azure: no client options at all).
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .tls_certs_only([reqwest::Certificate::from_pem(
            vault.certificate_pem.as_bytes(),
        )?])
        .resolve(&vault.host, vault.addr)
        .build()?;
    let options = SecretClientOptions {
        client_options: ClientOptions {
            transport: Some(Transport::new(Arc::new(http))),
            ..Default::default()
        },
        ..Default::default()
    };
    let client = SecretClient::new(&vault.url, azure_credential, Some(options))?;
    println!("vault: {}", vault.url);

    // 5. Read the secret a few times: the first call follows the challenge, every call after
    //    it is served by the client's policy and entra-mi's cache.
    for _ in 0..3 {
        let secret = client.get_secret("db-password", None).await?.into_model()?;
        println!(
            "db-password = {:?}",
            secret.value.as_deref().unwrap_or_default()
        );
    }
    let counts = emulator.key_vault_counts();
    println!(
        "vault saw {} requests: {} challenge, {} with a valid token; managed-identity endpoint: {} token request(s); cache: {:?}",
        counts.requests,
        counts.challenged,
        counts.authorized,
        emulator.requests(Endpoint::AppService),
        provider.stats(),
    );
    emulator.shutdown().await;
    Ok(())
}
