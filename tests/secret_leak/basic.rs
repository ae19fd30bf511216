//! No secret in any `Debug`, `Display`, error or log line: everything the library and its
//! dependencies log at TRACE is captured while tokens are fetched, cached, refreshed and
//! refused, then searched for the tokens and the identity header.

use entra_mi_test_support as support;

use std::time::Duration;

use entra_mi::{
    AccessToken, Audience, Environment, ManagedIdentityCredential, RetryOptions, TokenCredential,
    TokenProvider, TokenRequest,
};
use entra_mi_emulator::{Emulator, Endpoint, Fault};
use serde_json::json;
use support::{RawServer, Reply};

const IDENTITY_SECRET: &str = "IDENTITY-HEADER-CANARY-7f3a";
const BODY_TOKEN: &str = "eyJ.BODY-TOKEN-CANARY.sig";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_errors_or_debug_output() {
    let logs = crate::logs();
    let mut shown = Vec::<String>::new();
    let mut secrets = vec![IDENTITY_SECRET.to_string(), BODY_TOKEN.to_string()];

    // Success paths: App Service (secret header) and IMDS, through the cache, with refreshes.
    let emu = Emulator::builder()
        .identity_header(IDENTITY_SECRET)
        .token_lifetime(Duration::from_secs(3))
        .cache_tokens(false)
        .start()
        .await
        .unwrap();
    let app_env = Environment::from_vars([
        ("IDENTITY_ENDPOINT", emu.app_service_endpoint()),
        ("IDENTITY_HEADER", IDENTITY_SECRET.to_string()),
    ]);
    let app = ManagedIdentityCredential::builder()
        .environment(app_env.clone())
        .build()
        .unwrap();
    let imds = ManagedIdentityCredential::builder()
        .environment(Environment::from_vars([(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            emu.imds_host(),
        )]))
        .build()
        .unwrap();
    shown.push(format!("{app:?} {imds:?} {app_env:?}"));
    for cred in [app.clone(), imds.clone()] {
        let provider = TokenProvider::builder(cred).eager_refresh(true).build();
        let handle = provider.handle(&Audience::microsoft_graph());
        let token = handle.token().await.unwrap();
        secrets.push(token.secret().to_string());
        let header = handle.header().await.unwrap();
        shown.push(format!(
            "{token:?} {token} {header:?} {handle:?} {provider:?}"
        ));
        // Let a refresh or two happen in the background.
        assert!(
            support::eventually(5, || handle.cached_header().is_some_and(|h| h != header)).await
        );
        let newer = handle.token().await.unwrap();
        secrets.push(newer.secret().to_string());
        assert!(handle.invalidate_if_current(&newer));
        let again = handle.token().await.unwrap();
        secrets.push(again.secret().to_string());
        shown.push(format!("{:?}", provider.stats()));
    }

    // Failure paths: a rotated secret refused, faults, bodies that carry a token.
    emu.set_identity_header("another-secret");
    let err = app
        .get_token(&TokenRequest::new(Audience::key_vault()))
        .await
        .unwrap_err();
    shown.push(format!("{err} {err:?}"));
    for fault in [
        Fault::Html,
        Fault::TruncatedJson,
        Fault::Oversized(200_000),
        Fault::CloseConnection,
    ] {
        emu.push_fault(Endpoint::Imds, fault);
        let err = imds
            .get_token(&TokenRequest::new(Audience::storage()))
            .await;
        if let Err(err) = err {
            shown.push(format!("{err} {err:?}"));
        }
    }
    let server = RawServer::start(Reply::json(
        200,
        json!({"access_token": BODY_TOKEN, "expires_in": "x"}),
    ))
    .await;
    server.push(Reply::json(400, json!({"error": "invalid_request", "access_token": BODY_TOKEN, "refresh_token": BODY_TOKEN})));
    server.push(Reply::body(
        200,
        "text/plain",
        format!("access_token={BODY_TOKEN}"),
    ));
    server.push(Reply::body(
        200,
        "application/json",
        format!("{{\"access_token\":\"{BODY_TOKEN}\""),
    ));
    server.push(Reply::json(
        200,
        json!({"access_token": 12, "expires_in": BODY_TOKEN}),
    ));
    let raw = ManagedIdentityCredential::builder()
        .environment(Environment::from_vars([
            ("IDENTITY_ENDPOINT", server.url("/msi/token")),
            ("IDENTITY_HEADER", IDENTITY_SECRET.to_string()),
        ]))
        .retry(RetryOptions::default().max_retries(0))
        .build()
        .unwrap();
    let provider = TokenProvider::new(raw.clone());
    for _ in 0..5 {
        let err = raw
            .get_token(&TokenRequest::new(Audience::microsoft_graph()))
            .await
            .unwrap_err();
        shown.push(format!("{err} {err:?}"));
    }
    let err = provider
        .header(&Audience::microsoft_graph())
        .await
        .unwrap_err();
    shown.push(format!("{err} {err:?} {provider:?}"));
    let req = TokenRequest::new(Audience::microsoft_graph())
        .with_claims(format!("{{\"x\":\"{BODY_TOKEN}\"}}"));
    shown.push(format!("{req:?}"));
    let t = AccessToken::new(BODY_TOKEN, std::time::SystemTime::now());
    shown.push(format!("{t:?} {t} {:?}", t.header_value()));

    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = logs.text();
    assert!(
        logs.contains("token cached"),
        "TRACE capture works: {} bytes",
        logs.len()
    );
    assert!(logs.len() > 1000);
    let shown = shown.join("\n");
    assert!(shown.contains("Refused") && shown.contains("redacted"));
    assert!(secrets.len() >= 8);
    for secret in &secrets {
        // Any 16-character piece of a token is enough to flag a leak.
        let piece =
            &secret[secret.len().saturating_sub(40)..secret.len().saturating_sub(24).max(16)];
        for (what, text) in [("logs", &logs), ("Debug/Display/errors", &shown)] {
            assert!(
                !text.contains(secret.as_str()),
                "a secret appears in {what}"
            );
            assert!(!text.contains(piece), "part of a secret appears in {what}");
        }
    }
}
