//! A real official `SecretClient` through the adapter, against the emulator's Key Vault.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use azure_core::credentials::TokenCredential as _;
use azure_core::http::RequestContent;
use azure_security_keyvault_secrets::models::SetSecretParameters;
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use entra_mi::Audience;
use entra_mi_azure::TokenProviderCredential;
use entra_mi_emulator::Endpoint;

use crate::support::{
    SECRET_NAME, SECRET_VALUE, claims, client_options, emulator, provider, secret_client,
};

async fn read(client: &SecretClient, name: &str) -> azure_core::Result<Option<String>> {
    Ok(client.get_secret(name, None).await?.into_model()?.value)
}

#[tokio::test]
async fn the_first_call_follows_the_challenge_and_later_calls_hit_the_cache() {
    let (em, kv) = emulator().await;
    let provider = provider(&em);
    let credential = Arc::new(TokenProviderCredential::new(provider.clone()));
    let client = secret_client(&kv, credential.clone());

    assert_eq!(
        read(&client, SECRET_NAME).await.unwrap().as_deref(),
        Some(SECRET_VALUE)
    );
    let first = em.key_vault_counts();
    // Without a token first, the challenge, then again with the token.
    assert_eq!(
        (first.requests, first.challenged, first.authorized),
        (2, 1, 1)
    );
    assert_eq!(em.requests(Endpoint::AppService), 1);

    for _ in 0..5 {
        assert_eq!(
            read(&client, SECRET_NAME).await.unwrap().as_deref(),
            Some(SECRET_VALUE)
        );
    }
    // A second client (its own bearer policy, its own challenge) shares the adapter's cache.
    let other = secret_client(&kv, credential);
    assert_eq!(
        read(&other, SECRET_NAME).await.unwrap().as_deref(),
        Some(SECRET_VALUE)
    );

    let counts = em.key_vault_counts();
    assert_eq!(
        (counts.challenged, counts.rejected, counts.authorized),
        (2, 0, 7)
    );
    // One token fetch for the one audience, whatever the number of clients and calls.
    assert_eq!(em.requests(Endpoint::AppService), 1);
    assert_eq!(provider.stats().fetches, 1);
}

#[tokio::test]
async fn inside_the_policys_five_minute_window_each_request_is_a_cache_hit() {
    // Tokens that live 4 minutes: the official policy asks its credential again on every
    // request (it refreshes within 5 minutes of expiry); the adapter answers from the cache.
    let (em, kv) = crate::support::emulator_with(
        entra_mi_emulator::Emulator::builder().token_lifetime(std::time::Duration::from_secs(240)),
    )
    .await;
    let provider = provider(&em);
    let client = secret_client(
        &kv,
        Arc::new(TokenProviderCredential::new(provider.clone())),
    );
    for _ in 0..5 {
        assert_eq!(
            read(&client, SECRET_NAME).await.unwrap().as_deref(),
            Some(SECRET_VALUE)
        );
    }
    assert_eq!(em.key_vault_counts().authorized, 5);
    assert_eq!(em.requests(Endpoint::AppService), 1);
    let stats = provider.stats();
    assert_eq!(stats.fetches, 1);
    assert!(stats.hits >= 4, "{stats:?}");
}

#[tokio::test]
async fn a_put_first_call_is_resent_with_its_body_after_the_challenge() {
    let (em, kv) = emulator().await;
    let client = secret_client(&kv, Arc::new(TokenProviderCredential::new(provider(&em))));
    let params = SetSecretParameters {
        value: Some("rotated-value".to_owned()),
        content_type: Some("text/plain".to_owned()),
        ..Default::default()
    };
    let body: RequestContent<SetSecretParameters> = params.try_into().expect("JSON body");
    let set = client
        .set_secret("rotated", body, None)
        .await
        .expect("set_secret")
        .into_model()
        .expect("model");
    assert_eq!(set.value.as_deref(), Some("rotated-value"));
    assert_eq!(set.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        read(&client, "rotated").await.unwrap().as_deref(),
        Some("rotated-value")
    );
    assert_eq!(em.key_vault_counts().challenged, 1);
    assert_eq!(em.requests(Endpoint::AppService), 1);
}

#[tokio::test]
async fn the_token_carries_its_real_expiry() {
    let (em, _kv) = emulator().await;
    let credential = TokenProviderCredential::new(provider(&em));
    let token = credential
        .get_token(&["https://vault.azure.net/.default"], None)
        .await
        .expect("token");
    let exp = claims(token.token.secret())["exp"].as_i64().expect("exp");
    assert_eq!(token.expires_on.unix_timestamp(), exp);
    // The resource form of the same audience is the same cache entry.
    let again = credential
        .get_token(&["https://vault.azure.net"], None)
        .await
        .expect("token");
    assert_eq!(again.token, token.token);
    assert_eq!(em.requests(Endpoint::AppService), 1);
    let aud = claims(token.token.secret())["aud"].clone();
    assert_eq!(aud, "https://vault.azure.net");
    // And it is the provider's token, expiry included.
    let cached = credential
        .provider()
        .token(&Audience::key_vault())
        .await
        .expect("cached");
    let cached_exp = cached
        .expires_on()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(i64::try_from(cached_exp).unwrap(), exp);
}

#[tokio::test]
async fn only_audiences_keeps_a_vaults_challenge_from_getting_another_token() {
    let (em, kv) = emulator().await;
    let credential =
        TokenProviderCredential::new(provider(&em)).only_audiences([Audience::microsoft_graph()]);
    let client = secret_client(&kv, Arc::new(credential));
    let err = read(&client, SECRET_NAME).await.unwrap_err();
    assert!(
        matches!(err.kind(), azure_core::error::ErrorKind::Credential),
        "{err:?}"
    );
    assert!(err.to_string().contains("does not serve"), "{err}");
    assert_eq!(em.key_vault_counts().authorized, 0);
    assert_eq!(em.requests(Endpoint::AppService), 0, "no token was fetched");
}

#[tokio::test]
async fn the_clients_host_check_refuses_an_ip_vault_url_unless_turned_off() {
    // The official client checks that the vault's host ends with the challenge resource's
    // host (`.vault.azure.net`); 127.0.0.1 does not.
    let (em, kv) = emulator().await;
    let credential = Arc::new(TokenProviderCredential::new(provider(&em)));
    let strict = SecretClient::new(
        &kv.ip_url,
        credential.clone(),
        Some(SecretClientOptions {
            client_options: client_options(&kv),
            ..Default::default()
        }),
    )
    .unwrap();
    let err = read(&strict, SECRET_NAME).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("doesn't match the requested domain"),
        "{err}"
    );
    assert_eq!(em.requests(Endpoint::AppService), 0);

    let relaxed = SecretClient::new(
        &kv.ip_url,
        credential,
        Some(SecretClientOptions {
            client_options: client_options(&kv),
            verify_challenge_resource: Some(false),
            ..Default::default()
        }),
    )
    .unwrap();
    assert_eq!(
        read(&relaxed, SECRET_NAME).await.unwrap().as_deref(),
        Some(SECRET_VALUE)
    );
}
