//! Shared setup: the emulator with a key vault, a transport that reaches it, entra-mi
//! credentials pointed at it.

use std::sync::Arc;
use std::time::Duration;

use azure_core::http::{ClientOptions, Transport};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use entra_mi::{Environment, ManagedIdentityCredential, RetryOptions, TokenProvider};
use entra_mi_emulator::{Emulator, KeyVault, KeyVaultEndpoint};

/// The secret every test vault starts with.
pub(crate) const SECRET_NAME: &str = "db-password";
/// Its value: a canary that must never show in a `Debug` or `Display`.
pub(crate) const SECRET_VALUE: &str = "canary-secret-value-7f3a";

/// An emulator with a key vault holding [`SECRET_NAME`].
pub(crate) async fn emulator() -> (Emulator, KeyVaultEndpoint) {
    emulator_with(Emulator::builder()).await
}

/// `builder` plus a key vault holding [`SECRET_NAME`].
pub(crate) async fn emulator_with(
    builder: entra_mi_emulator::EmulatorBuilder,
) -> (Emulator, KeyVaultEndpoint) {
    let em = builder
        .key_vault(KeyVault::new("entra-mi-test").secret(SECRET_NAME, SECRET_VALUE))
        .start()
        .await
        .expect("emulator");
    let kv = em.key_vault().expect("vault configured");
    (em, kv)
}

/// A `reqwest` client that trusts only the emulator's TLS certificate, reaches the vault's
/// host name on the emulator's loopback address, and resolves no other name: nothing but
/// 127.0.0.1 can be contacted.
pub(crate) fn http_client(kv: &KeyVaultEndpoint) -> reqwest::Client {
    let cert = reqwest::Certificate::from_pem(kv.certificate_pem.as_bytes()).expect("PEM");
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .tls_certs_only([cert])
        .resolve(&kv.host, kv.addr)
        .dns_resolver(NoDns)
        .build()
        .expect("client")
}

/// Refuses every lookup.
struct NoDns;

impl reqwest::dns::Resolve for NoDns {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_owned();
        Box::pin(async move { Err(format!("the tests resolve no names ({name})").into()) })
    }
}

/// Client options of the official clients: [`http_client`] as the transport, no retries
/// (a failure shows at once).
pub(crate) fn client_options(kv: &KeyVaultEndpoint) -> ClientOptions {
    ClientOptions {
        transport: Some(Transport::new(Arc::new(http_client(kv)))),
        retry: azure_core::http::RetryOptions::none(),
        ..Default::default()
    }
}

/// An official `SecretClient` for the vault, through `credential`.
pub(crate) fn secret_client(
    kv: &KeyVaultEndpoint,
    credential: Arc<dyn azure_core::credentials::TokenCredential>,
) -> SecretClient {
    let options = SecretClientOptions {
        client_options: client_options(kv),
        ..Default::default()
    };
    SecretClient::new(&kv.url, credential, Some(options)).expect("SecretClient")
}

/// entra-mi's managed-identity credential on the emulator's App Service endpoint, without
/// retries.
pub(crate) fn app_service_credential(em: &Emulator) -> ManagedIdentityCredential {
    ManagedIdentityCredential::builder()
        .environment(Environment::from_vars([
            ("IDENTITY_ENDPOINT", em.app_service_endpoint()),
            ("IDENTITY_HEADER", em.identity_header()),
        ]))
        .retry(RetryOptions::default().max_retries(0))
        .attempt_timeout(Duration::from_secs(5))
        .build()
        .expect("credential")
}

/// A provider over [`app_service_credential`].
pub(crate) fn provider(em: &Emulator) -> TokenProvider {
    TokenProvider::new(app_service_credential(em))
}

/// The claims of a JWT, without verifying it.
pub(crate) fn claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("JWS");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}
