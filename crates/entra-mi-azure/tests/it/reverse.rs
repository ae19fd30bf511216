//! `AzureCoreCredential`: the official identity crate's credential behind entra-mi's cache and
//! its `reqwest` middleware.

use std::sync::Arc;
use std::time::Duration;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential as AzureTokenCredential};
use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};
use entra_mi::{Audience, Route, TokenCredential as _, TokenProvider, TokenRequest};
use entra_mi_azure::AzureCoreCredential;
use entra_mi_emulator::{App, Emulator, Endpoint, KeyVaultEndpoint};
use entra_mi_reqwest::BearerAuthMiddleware;

use crate::support::{SECRET_NAME, SECRET_VALUE, client_options, emulator_with, http_client};

pub(crate) const CLIENT_SECRET: &str = "canary-client-secret-91b2";

/// The official `ClientSecretCredential` against the emulator's Entra token endpoint, over
/// the TLS listener (the identity crate requires an `https` authority).
pub(crate) fn official_client_secret(
    em: &Emulator,
    kv: &KeyVaultEndpoint,
    app: &App,
    secret: &str,
) -> Arc<dyn AzureTokenCredential> {
    let mut cloud = CustomConfiguration::default();
    cloud.authority_host = kv.ip_url.clone();
    let mut client_options = client_options(kv);
    client_options.cloud = Some(Arc::new(CloudConfiguration::Custom(cloud)));
    ClientSecretCredential::new(
        &em.tenant_id(),
        app.client_id.clone(),
        Secret::new(secret.to_owned()),
        Some(ClientSecretCredentialOptions { client_options }),
    )
    .expect("ClientSecretCredential")
}

pub(crate) async fn setup() -> (Emulator, KeyVaultEndpoint, App) {
    let app = App::new("reverse-test").with_secret(CLIENT_SECRET);
    let (em, kv) = emulator_with(Emulator::builder().app(app.clone())).await;
    (em, kv, app)
}

#[tokio::test]
async fn an_official_credential_behind_the_cache_and_the_reqwest_middleware() {
    let (em, kv, app) = setup().await;
    let official = official_client_secret(&em, &kv, &app, CLIENT_SECRET);
    let provider = TokenProvider::new(AzureCoreCredential::new(
        "azure-identity/client-secret",
        official,
    ));
    let auth = BearerAuthMiddleware::builder(&provider)
        .route(Route::key_vault(&kv.url).expect("route"))
        .build()
        .expect("middleware");
    let client = reqwest_middleware::ClientBuilder::new(http_client(&kv))
        .with(auth)
        .build();
    let url = format!("{}/secrets/{SECRET_NAME}?api-version=2025-07-01", kv.url);
    for _ in 0..3 {
        let resp = client.get(&url).send().await.expect("response");
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value =
            serde_json::from_str(&resp.text().await.expect("body")).expect("JSON");
        assert_eq!(body["value"], SECRET_VALUE);
    }
    let counts = em.key_vault_counts();
    // The middleware sends the token on the first request: no challenge.
    assert_eq!((counts.challenged, counts.authorized), (0, 3));
    assert_eq!(em.requests(Endpoint::EntraToken), 1);
    assert_eq!(provider.credential_name(), "azure-identity/client-secret");
}

#[tokio::test]
async fn tokens_keep_the_expiry_the_official_credential_computed() {
    let (em, kv, app) = setup().await;
    let official = official_client_secret(&em, &kv, &app, CLIENT_SECRET);
    let wrapped = AzureCoreCredential::new("official", official);
    let before = std::time::SystemTime::now();
    let token = wrapped
        .get_token(&TokenRequest::new(Audience::key_vault()))
        .await
        .expect("token");
    let lifetime = token
        .expires_on()
        .duration_since(before)
        .expect("in the future");
    // The official credential adds the response's `expires_in` (about an hour here) to its
    // clock: that lands within a few seconds of the token's `exp`, and is kept as it is.
    assert!(lifetime > Duration::from_secs(3000), "{lifetime:?}");
    let exp = crate::support::claims(token.secret())["exp"]
        .as_u64()
        .expect("exp");
    let expires_on = token.expires_on_unix();
    assert!(expires_on.abs_diff(exp) <= 5, "{expires_on} vs exp {exp}");
    assert_eq!(
        crate::support::claims(token.secret())["aud"],
        "https://vault.azure.net"
    );
}

#[tokio::test]
async fn claims_and_other_tenants_are_refused_with_a_reason() {
    let (em, kv, app) = setup().await;
    let wrapped = AzureCoreCredential::new(
        "official",
        official_client_secret(&em, &kv, &app, CLIENT_SECRET),
    );
    let claims = TokenRequest::new(Audience::key_vault()).with_claims(r#"{"access_token":{}}"#);
    let err = wrapped.get_token(&claims).await.unwrap_err();
    assert!(err.to_string().contains("claims"), "{err}");
    let tenant = TokenRequest::new(Audience::key_vault()).with_tenant("other-tenant");
    let err = wrapped.get_token(&tenant).await.unwrap_err();
    assert!(err.to_string().contains("another tenant"), "{err}");
    assert_eq!(em.requests(Endpoint::EntraToken), 0, "nothing was asked");
}

#[tokio::test]
async fn the_official_credentials_error_comes_through_without_the_secret() {
    let (em, kv, app) = setup().await;
    let wrong = "canary-wrong-secret-55aa";
    let wrapped =
        AzureCoreCredential::new("official", official_client_secret(&em, &kv, &app, wrong));
    let err = wrapped
        .get_token(&TokenRequest::new(Audience::key_vault()))
        .await
        .unwrap_err();
    let shown = format!("{err} {err:?} {wrapped:?}");
    assert!(
        shown.contains("official") && shown.contains("AADSTS7000215"),
        "{shown}"
    );
    assert!(
        !shown.contains(wrong) && !shown.contains(CLIENT_SECRET),
        "{shown}"
    );
    assert!(!err.is_unavailable());
}

/// A foreign `azure_core` credential: a fixed token and expiry after an optional delay.
#[derive(Debug)]
struct Foreign {
    token: &'static str,
    expires_on: azure_core::time::OffsetDateTime,
    delay: Duration,
}

#[async_trait::async_trait]
impl AzureTokenCredential for Foreign {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        tokio::time::sleep(self.delay).await;
        Ok(azure_core::credentials::AccessToken::new(
            self.token,
            self.expires_on,
        ))
    }
}

#[tokio::test]
async fn an_expired_token_and_a_passed_deadline_are_errors() {
    let now = azure_core::time::OffsetDateTime::now_utc();
    let expired = AzureCoreCredential::new(
        "foreign",
        Arc::new(Foreign {
            token: "eyJ.expired.token",
            expires_on: now - azure_core::time::Duration::seconds(10),
            delay: Duration::ZERO,
        }),
    );
    let err = expired
        .get_token(&TokenRequest::new(Audience::key_vault()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already-expired"), "{err}");

    let slow = AzureCoreCredential::new(
        "foreign",
        Arc::new(Foreign {
            token: "eyJ.slow.token",
            expires_on: now + azure_core::time::Duration::hours(1),
            delay: Duration::from_secs(5),
        }),
    );
    let request = TokenRequest::new(Audience::key_vault()).with_deadline(Duration::from_millis(50));
    let err = slow.get_token(&request).await.unwrap_err();
    assert!(err.to_string().contains("deadline of 50ms"), "{err}");
}
