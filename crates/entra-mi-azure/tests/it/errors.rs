//! Errors reach `azure_core` callers with the right kind, the entra-mi error as the source, and
//! no secret anywhere.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential as _;
use azure_core::error::ErrorKind;
use entra_mi::{Environment, ManagedIdentityCredential, RetryOptions, TokenProvider};
use entra_mi_azure::TokenProviderCredential;
use entra_mi_emulator::{Emulator, Endpoint};

use crate::support::{SECRET_NAME, emulator, emulator_with, provider, secret_client};

const VAULT_SCOPE: &str = "https://vault.azure.net/.default";
const IDENTITY_HEADER: &str = "canary-identity-header-3c4d";

/// App Service credential on `endpoint` with a canary identity header, no retries.
fn credential_on(endpoint: String) -> TokenProviderCredential {
    let credential = ManagedIdentityCredential::builder()
        .environment(Environment::from_vars([
            ("IDENTITY_ENDPOINT", endpoint),
            ("IDENTITY_HEADER", IDENTITY_HEADER.to_owned()),
        ]))
        .retry(RetryOptions::default().max_retries(0))
        .attempt_timeout(Duration::from_secs(5))
        .build()
        .expect("credential");
    TokenProviderCredential::new(TokenProvider::new(credential))
}

fn entra_source(err: &azure_core::Error) -> &entra_mi::Error {
    std::error::Error::source(err)
        .and_then(|s| s.downcast_ref::<entra_mi::Error>())
        .unwrap_or_else(|| panic!("no entra-mi source: {err:?}"))
}

fn assert_no_secret(err: &azure_core::Error) {
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(IDENTITY_HEADER), "{shown}");
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_credential_error_with_the_entra_error_as_source() {
    // A loopback port that was bound and released: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let credential = credential_on(format!("http://{addr}/msi/token"));
    let err = credential
        .get_token(&[VAULT_SCOPE], None)
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Credential), "{err:?}");
    let source = entra_source(&err);
    assert!(source.is_unavailable(), "{source:?}");
    assert!(err.to_string().contains("managed-identity"), "{err}");
    assert_no_secret(&err);
}

#[tokio::test]
async fn a_refusal_keeps_its_status_in_the_source() {
    // No system-assigned identity: the endpoint answers 400.
    let em = Emulator::builder()
        .system_assigned(None)
        .identity_header(IDENTITY_HEADER)
        .start()
        .await
        .unwrap();
    let credential = credential_on(em.app_service_endpoint());
    let err = credential
        .get_token(&[VAULT_SCOPE], None)
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Credential), "{err:?}");
    let source = entra_source(&err);
    assert_eq!(source.status(), Some(400), "{source}");
    assert!(!source.is_unavailable());
    assert_no_secret(&err);
    assert_eq!(em.requests(Endpoint::AppService), 1);
}

#[tokio::test]
async fn scopes_that_are_not_one_audience_are_data_conversion_errors() {
    let (em, _kv) = emulator().await;
    let credential = TokenProviderCredential::new(provider(&em));
    for scopes in [
        &[][..],
        &[VAULT_SCOPE, "https://graph.microsoft.com/.default"][..],
        &["not a scope"][..],
        &["User.Read"][..],
    ] {
        let err = credential.get_token(scopes, None).await.unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::DataConversion),
            "{scopes:?}: {err:?}"
        );
    }
    let err = credential
        .get_token(&["User.Read"], None)
        .await
        .unwrap_err();
    assert!(
        entra_source(&err).to_string().contains("User.Read"),
        "{err}"
    );
    assert_eq!(em.requests(Endpoint::AppService), 0);
}

#[tokio::test]
async fn an_official_client_reports_the_credential_error_and_sends_no_token() {
    let (em, kv) = emulator_with(Emulator::builder().system_assigned(None)).await;
    let client = secret_client(&kv, Arc::new(TokenProviderCredential::new(provider(&em))));
    let err = client.get_secret(SECRET_NAME, None).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Credential), "{err:?}");
    // The client wraps the credential's error; the entra-mi error is further down the chain.
    let mut found = false;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = cause {
        found |= e.downcast_ref::<entra_mi::Error>().is_some();
        cause = e.source();
    }
    assert!(found, "{err:?}");
    let counts = em.key_vault_counts();
    assert_eq!((counts.challenged, counts.authorized), (1, 0));
}
