//! The emulated Key Vault: TLS with a certificate for the vault's name, the bearer challenge,
//! the token checks, and the secrets API.

use crate::common;

use std::time::Duration;

use common::{app_service, claims, imds};
use entra_mi_emulator::{Emulator, KEY_VAULT_RESOURCE, KeyVault, KeyVaultEndpoint};
use reqwest::StatusCode;
use serde_json::{Value, json};

const API: &str = "api-version=2025-07-01";

async fn emulator() -> (Emulator, KeyVaultEndpoint) {
    let em = Emulator::builder()
        .key_vault(
            KeyVault::new("kv-test")
                .secret("db-password", "first")
                .secret("db-password", "second"),
        )
        .start()
        .await
        .expect("emulator");
    let kv = em.key_vault().expect("a vault was configured");
    (em, kv)
}

/// A client that trusts only the vault's certificate and reaches the vault's host name on
/// loopback; it resolves no other name.
fn client(kv: &KeyVaultEndpoint) -> reqwest::Client {
    let cert = reqwest::Certificate::from_pem(kv.certificate_pem.as_bytes()).expect("PEM");
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .tls_certs_only([cert])
        .resolve(&kv.host, kv.addr)
        .dns_resolver(NoDns)
        .build()
        .expect("client")
}

/// Refuses every lookup: names other than the vault's (resolved above) are never looked up.
struct NoDns;

impl reqwest::dns::Resolve for NoDns {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_owned();
        Box::pin(async move { Err(format!("this test resolves no names ({name})").into()) })
    }
}

struct Reply {
    status: StatusCode,
    challenge: Option<String>,
    body: Value,
}

async fn send(
    kv: &KeyVaultEndpoint,
    method: reqwest::Method,
    path_and_query: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut req = client(kv).request(method, format!("{}{path_and_query}", kv.url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.expect("response");
    let status = resp.status();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ASCII").to_owned());
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    Reply {
        status,
        challenge,
        body,
    }
}

async fn vault_token(em: &Emulator) -> String {
    app_service(em, KEY_VAULT_RESOURCE, "").await.token()
}

#[tokio::test]
async fn a_request_without_a_token_gets_key_vaults_challenge() {
    let (em, kv) = emulator().await;
    assert!(
        kv.url.starts_with("https://kv-test.vault.azure.net:"),
        "{}",
        kv.url
    );
    assert_eq!(kv.host, "kv-test.vault.azure.net");
    assert!(kv.addr.ip().is_loopback());
    let r = send(
        &kv,
        reqwest::Method::GET,
        &format!("/secrets/db-password?{API}"),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.challenge.as_deref(),
        Some(
            format!(
                r#"Bearer authorization="https://login.microsoftonline.com/{}", resource="https://vault.azure.net""#,
                em.tenant_id()
            )
            .as_str()
        )
    );
    assert_eq!(r.body["error"]["code"], "Unauthorized");
    let counts = em.key_vault_counts();
    assert_eq!(
        (counts.requests, counts.challenged, counts.authorized),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn a_vault_token_reads_the_latest_version_and_each_version() {
    let (em, kv) = emulator().await;
    let token = vault_token(&em).await;
    let r = send(
        &kv,
        reqwest::Method::GET,
        &format!("/secrets/db-password/?{API}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["value"], "second");
    let id = r.body["id"].as_str().expect("id");
    let prefix = format!("{}/secrets/db-password/", kv.url);
    assert!(id.starts_with(&prefix), "{id}");
    assert_eq!(r.body["attributes"]["enabled"], true);
    assert!(r.body["attributes"]["created"].is_u64());
    // Names compare case-insensitively, versions are addressable.
    let latest = &id[prefix.len()..];
    let again = send(
        &kv,
        reqwest::Method::GET,
        &format!("/secrets/DB-Password/{latest}?{API}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(again.body["value"], "second");
    let counts = em.key_vault_counts();
    assert_eq!(
        (counts.challenged, counts.rejected, counts.authorized),
        (0, 0, 2)
    );
}

#[tokio::test]
async fn set_adds_a_version_with_content_type_and_tags() {
    let (em, kv) = emulator().await;
    let token = vault_token(&em).await;
    let body = json!({"value": "s3cr3t", "contentType": "text/plain", "tags": {"env": "dev"}});
    let r = send(
        &kv,
        reqwest::Method::PUT,
        &format!("/secrets/new-one?{API}"),
        Some(&token),
        Some(body),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["value"], "s3cr3t");
    assert_eq!(r.body["contentType"], "text/plain");
    assert_eq!(r.body["tags"]["env"], "dev");
    let read = send(
        &kv,
        reqwest::Method::GET,
        &format!("/secrets/new-one?{API}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(read.body["value"], "s3cr3t");
    assert_eq!(read.body["id"], r.body["id"]);
}

#[tokio::test]
async fn tokens_that_fail_a_check_get_the_challenge_again() {
    let (em, kv) = emulator().await;
    let path = format!("/secrets/db-password?{API}");
    // Another audience.
    let graph = imds(&em, "https://graph.microsoft.com", "").await.token();
    // A trailing slash is another audience string.
    let slash = imds(&em, "https://vault.azure.net/", "").await.token();
    // A signature that does not verify.
    let good = vault_token(&em).await;
    let (head, sig) = good.rsplit_once('.').expect("JWS");
    let flipped = if sig.starts_with('A') { 'B' } else { 'A' };
    let forged = format!("{head}.{flipped}{}", &sig[1..]);
    for (token, needle) in [
        (graph.as_str(), "audience"),
        (slash.as_str(), "audience"),
        (forged.as_str(), "signature"),
        ("not-a-jwt", "malformed"),
    ] {
        let r = send(&kv, reqwest::Method::GET, &path, Some(token), None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{needle}");
        assert!(r.challenge.is_some(), "{needle}");
        let message = r.body["error"]["message"].as_str().expect("message");
        assert!(message.contains(needle), "{needle}: {message}");
    }
    assert_eq!(em.key_vault_counts().rejected, 4);
    assert_eq!(em.key_vault_counts().authorized, 0);
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let (em, kv) = emulator().await;
    em.set_token_lifetime(Duration::from_secs(1));
    let token = vault_token(&em).await;
    let exp = claims(&token)["exp"].as_u64().expect("exp");
    // Bounded wait until the token is past its `exp` (at most 3 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while common::now() <= exp && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = send(
        &kv,
        reqwest::Method::GET,
        &format!("/secrets/db-password?{API}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("expired")
    );
}

#[tokio::test]
async fn bad_requests_get_key_vault_errors() {
    let (em, kv) = emulator().await;
    let token = vault_token(&em).await;
    let get = |path: String| {
        let (kv, token) = (kv.clone(), token.clone());
        async move { send(&kv, reqwest::Method::GET, &path, Some(&token), None).await }
    };
    let missing = get(format!("/secrets/nope?{API}")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["error"]["code"], "SecretNotFound");
    let no_version = get(format!(
        "/secrets/db-password/0123456789abcdef0123456789abcdef?{API}"
    ))
    .await;
    assert_eq!(no_version.status, StatusCode::NOT_FOUND);
    let bad_name = get(format!("/secrets/under_score?{API}")).await;
    assert_eq!(bad_name.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_name.body["error"]["code"], "BadParameter");
    let no_api = get("/secrets/db-password".to_owned()).await;
    assert_eq!(no_api.status, StatusCode::BAD_REQUEST);
    assert!(
        no_api.body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("api-version")
    );
    for body in [
        json!("just a string"),
        json!({"value": 5}),
        json!({"contentType": "x"}),
        json!({"value": "x".repeat(26 * 1024)}),
        json!({"value": "v", "tags": {"n": 1}}),
    ] {
        let r = send(
            &kv,
            reqwest::Method::PUT,
            &format!("/secrets/s?{API}"),
            Some(&token),
            Some(body),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "BadParameter");
    }
    let del = send(
        &kv,
        reqwest::Method::DELETE,
        &format!("/secrets/db-password?{API}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(del.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_tls_listener_also_serves_the_other_endpoints_on_its_ip_url() {
    let (em, kv) = emulator().await;
    let url = format!("{}/{}/discovery/keys", kv.ip_url, em.tenant_id());
    let resp = client(&kv).get(url).send().await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let jwks: Value = serde_json::from_str(&resp.text().await.expect("body")).expect("JWKS");
    assert!(jwks["keys"].is_array());
}

#[tokio::test]
async fn debug_never_shows_secret_values_and_no_vault_means_none() {
    let vault = KeyVault::new("kv").secret("name", "canary-value-123");
    let shown = format!(
        "{vault:?} {:?}",
        Emulator::builder().key_vault(vault.clone())
    );
    assert!(
        shown.contains("name") && !shown.contains("canary-value-123"),
        "{shown}"
    );
    let em = Emulator::builder().start().await.expect("emulator");
    assert!(em.key_vault().is_none());
    assert_eq!(em.key_vault_counts(), Default::default());
}
