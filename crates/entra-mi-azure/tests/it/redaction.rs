//! No token or secret in any `Debug` or `Display` of the adapters, their tokens or errors.

use std::sync::Arc;

use azure_core::credentials::TokenCredential as _;
use entra_mi::{Audience, TokenCredential as _, TokenRequest};
use entra_mi_azure::{AzureCoreCredential, TokenProviderCredential};

use crate::reverse::{CLIENT_SECRET, official_client_secret, setup};
use crate::support::{SECRET_NAME, SECRET_VALUE, emulator, provider, secret_client};

#[tokio::test]
async fn the_adapter_its_tokens_and_the_client_show_no_secret() {
    let (em, kv) = emulator().await;
    let credential = Arc::new(TokenProviderCredential::new(provider(&em)));
    let token = credential
        .get_token(&["https://vault.azure.net/.default"], None)
        .await
        .expect("token");
    let secret = token.token.secret().to_owned();
    assert!(secret.len() > 100, "a real JWT");
    let client = secret_client(&kv, credential.clone());
    let value = client
        .get_secret(SECRET_NAME, None)
        .await
        .expect("secret")
        .into_model()
        .expect("model");
    assert_eq!(value.value.as_deref(), Some(SECRET_VALUE));
    let shown = format!("{credential:?} {token:?} {:?}", credential.provider());
    assert!(!shown.contains(&secret), "{shown}");
    assert!(!shown.contains(&em.identity_header()), "{shown}");
    assert!(
        shown.contains("https://vault.azure.net/.default"),
        "{shown}"
    );
}

#[tokio::test]
async fn the_reverse_wrapper_and_its_tokens_show_no_secret() {
    let (em, kv, app) = setup().await;
    let official = official_client_secret(&em, &kv, &app, CLIENT_SECRET);
    let wrapped = AzureCoreCredential::new("official", official);
    let token = wrapped
        .get_token(&TokenRequest::new(Audience::key_vault()))
        .await
        .expect("token");
    let shown = format!("{wrapped:?} {token:?} {token} {:?}", token.header_value());
    assert!(!shown.contains(token.secret()), "{shown}");
    assert!(!shown.contains(CLIENT_SECRET), "{shown}");
}

/// A foreign credential whose error message carries a token.
#[derive(Debug)]
struct Leaky;

#[async_trait::async_trait]
impl azure_core::credentials::TokenCredential for Leaky {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        Err(azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            "The request failed: {\"access_token\":\"eyJ0eXAiOiJKV1QifQ.eyJjYW5hcnkiOjF9.c2ln\"}",
        ))
    }
}

#[tokio::test]
async fn a_foreign_message_loses_anything_shaped_like_a_token() {
    let wrapped = AzureCoreCredential::new("leaky", Arc::new(Leaky));
    let err = wrapped
        .get_token(&TokenRequest::new(Audience::key_vault()))
        .await
        .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("eyJjYW5hcnkiOjF9"), "{shown}");
    assert!(
        shown.contains("<redacted token>") && shown.contains("leaky"),
        "{shown}"
    );
}
