//! Credentials of the Entra v2.0 token endpoint against the emulator, which really checks
//! secrets and federated assertions: client secret, workload identity (with a rotated token
//! file) and a managed identity as the federated credential of a multi-tenant app.

use entra_mi_test_support as support;

use std::path::PathBuf;
use std::time::Duration;

use entra_mi::credentials::{
    ClientSecretCredential, ClientSecretCredentialBuilder, FederatedManagedIdentityCredential,
    TOKEN_EXCHANGE_AUDIENCE, WorkloadIdentityCredential, authority,
};
use entra_mi::{
    Audience, Environment, Error, ManagedIdentityCredential, TokenCredential, TokenRequest,
};
use entra_mi_emulator::{App, Emulator, Endpoint, FEDERATED_ISSUER};
use support::{RawServer, Reply, jwt_claims};

const SECRET: &str = "CANARY-client-secret~value+/=";

/// A client-secret credential whose authority is `server` (plain http on loopback), on a
/// manual clock whose sleeps return at once (they are recorded in the returned value).
fn on_loopback(server: &RawServer) -> (ClientSecretCredential, entra_mi::time::InstantSleep) {
    let (time, sleeps) = entra_mi::time::ManualClock::new().instant_time_source(0.5);
    let cred = loopback_builder(server).time_source(time).build().unwrap();
    (cred, sleeps)
}

/// The builder of [`on_loopback`], for further settings.
fn loopback_builder(server: &RawServer) -> ClientSecretCredentialBuilder {
    ClientSecretCredential::builder("contoso", "11111111-2222-3333-4444-555555555555", SECRET)
        .authority_host(server.url(""))
        .allow_loopback_http(true)
}

fn graph() -> TokenRequest {
    TokenRequest::new(Audience::microsoft_graph())
}

fn assert_hidden(shown: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!shown.contains(s), "secret leaked: {shown}");
    }
}

fn temp_file(tag: &str) -> PathBuf {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!("entra-mi-{tag}-{}-{n}", std::process::id()))
}

fn secret_credential(emu: &Emulator, client_id: &str, secret: &str) -> ClientSecretCredential {
    ClientSecretCredential::builder(emu.tenant_id(), client_id, secret)
        .authority_host(emu.authority_host())
        .allow_loopback_http(true)
        .build()
        .unwrap()
}

#[tokio::test]
async fn client_secret_gets_a_token_and_a_wrong_one_gets_the_aadsts_error() {
    let app = App::new("daemon").with_secret(SECRET);
    let emu = Emulator::builder().app(app.clone()).start().await.unwrap();

    let cred = secret_credential(&emu, &app.client_id, SECRET);
    let token = cred.get_token(&graph()).await.unwrap();
    let claims = jwt_claims(token.secret());
    assert_eq!(claims["aud"], "https://graph.microsoft.com");
    assert_eq!(claims["appid"], app.client_id.as_str());
    assert!(!format!("{cred:?}").contains("CANARY"));

    let wrong = secret_credential(&emu, &app.client_id, "CANARY-wrong-secret");
    let err = wrong.get_token(&graph()).await.unwrap_err();
    match &err {
        Error::TokenEndpoint(family)
            if let entra_mi::error::TokenEndpointError::Refused { error, .. } = family.as_ref() =>
        {
            assert_eq!(error.status, 401);
            assert_eq!(error.code.as_deref(), Some("invalid_client"));
            assert_eq!(error.aadsts, vec![7000215]);
            assert!(error.trace_id.is_some() && error.correlation_id.is_some());
        }
        other => panic!("{other:?}"),
    }
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains("AADSTS7000215")
            && shown.contains("trace id")
            && shown.contains("correlation id"),
        "{shown}"
    );
    assert!(shown.contains("not its Secret ID"), "hint: {shown}");
    assert!(
        !shown.contains("Timestamp"),
        "only the first line of the description: {shown}"
    );
    assert_hidden(&shown, &["CANARY"]);

    // Unknown app and unknown tenant: Entra's own codes, with hints.
    let err = secret_credential(&emu, "00000000-0000-0000-0000-000000000001", SECRET)
        .get_token(&graph())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("AADSTS700016")
            && err.to_string().contains("check AZURE_CLIENT_ID"),
        "{err}"
    );
    let other_tenant = TokenRequest::new(Audience::microsoft_graph()).with_tenant("not-my-tenant");
    let err = cred.get_token(&other_tenant).await.unwrap_err();
    assert!(err.to_string().contains("AADSTS90002"), "{err}");
    assert_eq!(emu.requests(Endpoint::EntraToken), 4);
}

#[tokio::test]
async fn authority_must_be_https_unless_loopback_is_allowed() {
    for (host, allow, needle) in [
        ("http://127.0.0.1:1", false, "allow_loopback_http"),
        ("http://login.example", true, "must be an https URL"),
        ("login.microsoftonline.com", false, "not an absolute URL"),
        (
            "https://login.example/?x=1",
            false,
            "without credentials, query or fragment",
        ),
    ] {
        let err = ClientSecretCredential::builder(
            "contoso.onmicrosoft.com",
            "11111111-2222-3333-4444-555555555555",
            "s",
        )
        .authority_host(host)
        .allow_loopback_http(allow)
        .build()
        .unwrap_err();
        assert!(
            matches!(&err, Error::Configuration(family) if matches!(family.as_ref(), entra_mi::error::ConfigurationError::Setting { setting, reason } if setting == "AZURE_AUTHORITY_HOST" && reason.contains(needle))),
            "{host}: {err}"
        );
    }
    for host in [
        authority::AZURE_PUBLIC_CLOUD,
        authority::AZURE_US_GOVERNMENT,
        authority::AZURE_CHINA,
    ] {
        ClientSecretCredential::builder(
            "contoso.onmicrosoft.com",
            "11111111-2222-3333-4444-555555555555",
            "s",
        )
        .authority_host(host)
        .build()
        .unwrap();
    }
    let err = ClientSecretCredential::builder(
        "contoso/../x",
        "11111111-2222-3333-4444-555555555555",
        "s",
    )
    .build()
    .unwrap_err();
    assert!(
        matches!(&err, Error::Configuration(family) if matches!(family.as_ref(), entra_mi::error::ConfigurationError::Setting { setting, .. } if setting == "AZURE_TENANT_ID")),
        "{err}"
    );
    let err =
        ClientSecretCredential::builder("contoso", "11111111-2222-3333-4444-555555555555", "")
            .build()
            .unwrap_err();
    assert!(err.to_string().contains("AZURE_CLIENT_SECRET"), "{err}");
}

#[tokio::test]
async fn environment_conventions_and_sovereign_authority() {
    let app = App::new("daemon").with_secret(SECRET);
    let emu = Emulator::builder().app(app.clone()).start().await.unwrap();
    let env = Environment::from_vars([
        ("AZURE_TENANT_ID", emu.tenant_id()),
        ("AZURE_CLIENT_ID", app.client_id.clone()),
        ("AZURE_CLIENT_SECRET", SECRET.to_owned()),
        ("AZURE_AUTHORITY_HOST", emu.authority_host()),
    ]);
    // A plain-http authority from the environment still needs the explicit opt-in.
    let err = ClientSecretCredential::from_environment(&env).unwrap_err();
    assert!(err.to_string().contains("allow_loopback_http"), "{err}");
    env.remove("AZURE_CLIENT_SECRET");
    let err = ClientSecretCredential::from_environment(&env).unwrap_err();
    assert!(
        matches!(&err, Error::Credential(family) if matches!(family.as_ref(), entra_mi::error::CredentialError::Unavailable { reason, .. } if reason == "AZURE_CLIENT_SECRET is not set")),
        "{err}"
    );
    assert!(err.is_unavailable());
}

#[tokio::test]
async fn an_oversized_token_answer_is_not_asked_for_again() {
    let server = RawServer::start(Reply::body(
        200,
        "application/json",
        format!("{{\"access_token\": \"{}\"}}", "x".repeat(70_000)),
    ))
    .await;
    let (cred, sleeps) = on_loopback(&server);
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        matches!(&err, Error::TokenEndpoint(family) if matches!(&**family, entra_mi::error::TokenEndpointError::Unavailable {
            reason: entra_mi::error::Unavailable::BodyTooLarge { .. },
            ..
        })),
        "{err:?}"
    );
    assert_eq!(server.count(), 1);
    assert!(sleeps.sleeps().is_empty());
}

#[tokio::test]
async fn client_secret_retries_a_5xx_once_on_the_injected_clock() {
    let server = RawServer::start(Reply::json(503, serde_json::json!({"error": "temporarily_unavailable", "error_description": "AADSTS90033: A transient error has occurred.\r\nTrace ID: 1"}))).await;
    let (cred, sleeps) = on_loopback(&server);
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(server.count(), 2);
    assert_eq!(sleeps.sleeps(), vec![Duration::from_secs(1)]);
    let req = &server.requests()[0];
    assert_eq!(req.path(), "/contoso/oauth2/v2.0/token");
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&req.body)
        .into_owned()
        .collect();
    assert!(
        form.contains(&("client_secret".into(), SECRET.into())),
        "form-encoded exactly: {form:?}"
    );
    assert!(form.contains(&(
        "scope".into(),
        "https://graph.microsoft.com/.default".into()
    )));
    assert!(form.contains(&("grant_type".into(), "client_credentials".into())));

    // HTML or garbage from the token endpoint: typed error, no body echoed.
    server.set_fallback(Reply::body(
        200,
        "application/json",
        format!("{{\"access_token\": 5, \"x\": \"{SECRET}\"}}"),
    ));
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        err.to_string().contains("`access_token` is a number"),
        "{err}"
    );
    assert_hidden(&format!("{err} {err:?}"), &["CANARY"]);
    server.set_fallback(Reply::body(
        502,
        "text/html",
        "<html>bad gateway CANARY</html>",
    ));
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(err.to_string().contains("HTML"), "{err}");
    assert_hidden(&format!("{err} {err:?}"), &["CANARY"]);
}

/// A FIFO (or any other non-regular file) where the token file should be is refused at once:
/// opening it never waits for a writer, and nothing is sent.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn workload_identity_refuses_a_fifo_without_blocking() {
    let emu = Emulator::builder().start().await.unwrap();
    let fifo = temp_file("wi-fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let cred = WorkloadIdentityCredential::builder(
        emu.tenant_id(),
        "11111111-2222-3333-4444-555555555555",
        &fifo,
    )
    .authority_host(emu.authority_host())
    .allow_loopback_http(true)
    .build()
    .unwrap();
    let err = tokio::time::timeout(std::time::Duration::from_secs(10), cred.get_token(&graph()))
        .await
        .expect("reading a FIFO blocked")
        .unwrap_err();
    assert!(
        matches!(&err, Error::Configuration(family) if matches!(family.as_ref(), entra_mi::error::ConfigurationError::Setting { setting, reason } if setting == "AZURE_FEDERATED_TOKEN_FILE" && reason.contains("not a regular file"))),
        "{err}"
    );
    assert_eq!(emu.requests(entra_mi_emulator::Endpoint::EntraToken), 0);
    let _ = std::fs::remove_file(&fifo);
}

/// A token file over 64 KiB is no federated token: refused by its size, and nothing is sent.
#[tokio::test]
async fn workload_identity_refuses_an_oversized_token_file() {
    let emu = Emulator::builder().start().await.unwrap();
    let file = temp_file("wi-huge");
    std::fs::write(&file, "e".repeat(64 * 1024 + 1)).unwrap();
    let cred = WorkloadIdentityCredential::builder(
        emu.tenant_id(),
        "11111111-2222-3333-4444-555555555555",
        &file,
    )
    .authority_host(emu.authority_host())
    .allow_loopback_http(true)
    .build()
    .unwrap();
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Configuration(family) if matches!(family.as_ref(), entra_mi::error::ConfigurationError::Setting { setting, reason } if setting == "AZURE_FEDERATED_TOKEN_FILE" && reason.contains("larger than 65536"))),
        "{err}"
    );
    assert_eq!(emu.requests(entra_mi_emulator::Endpoint::EntraToken), 0);
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn workload_identity_rereads_the_rotated_token_file() {
    let subject = "system:serviceaccount:default:worker";
    let app = App::new("wi").with_federated_credential(FEDERATED_ISSUER, subject);
    let emu = Emulator::builder().app(app.clone()).start().await.unwrap();

    let file = temp_file("wi-token");
    let env = Environment::from_vars([
        ("AZURE_TENANT_ID", emu.tenant_id()),
        ("AZURE_CLIENT_ID", app.client_id.clone()),
        ("AZURE_FEDERATED_TOKEN_FILE", file.display().to_string()),
        ("AZURE_AUTHORITY_HOST", emu.authority_host()),
    ]);
    let builder = |env: &Environment| {
        WorkloadIdentityCredential::builder(
            env.get("AZURE_TENANT_ID").unwrap(),
            env.get("AZURE_CLIENT_ID").unwrap(),
            &file,
        )
        .authority_host(emu.authority_host())
        .allow_loopback_http(true)
        .build()
        .unwrap()
    };
    let cred = builder(&env);
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Configuration(family) if matches!(family.as_ref(), entra_mi::error::ConfigurationError::Setting { setting, reason } if setting == "AZURE_FEDERATED_TOKEN_FILE" && reason.contains("does not exist"))),
        "{err}"
    );
    std::fs::write(&file, "").unwrap();
    assert!(
        cred.get_token(&graph())
            .await
            .unwrap_err()
            .to_string()
            .contains("empty")
    );
    std::fs::write(&file, "CANARY-not-a-jwt").unwrap();
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(err.to_string().contains("not a JWT"), "{err}");
    assert_hidden(&format!("{err} {err:?}"), &["CANARY"]);

    // An expired projected token: AADSTS700024 with its hint.
    std::fs::write(
        &file,
        emu.federated_token(subject, TOKEN_EXCHANGE_AUDIENCE, Duration::ZERO),
    )
    .unwrap();
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        err.to_string().contains("AADSTS700024") && err.to_string().contains("re-read"),
        "{err}"
    );

    // Kubernetes rotates the file: the next fetch uses the new token.
    let good = emu.federated_token(subject, TOKEN_EXCHANGE_AUDIENCE, Duration::from_secs(3600));
    std::fs::write(&file, &good).unwrap();
    let token = cred.get_token(&graph()).await.unwrap();
    assert_eq!(jwt_claims(token.secret())["appid"], app.client_id.as_str());

    // Rotated to a token of another subject: the new content is what gets sent.
    std::fs::write(
        &file,
        emu.federated_token(
            "system:serviceaccount:default:other",
            TOKEN_EXCHANGE_AUDIENCE,
            Duration::from_secs(3600),
        ),
    )
    .unwrap();
    let err = cred.get_token(&graph()).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains("AADSTS70021") && shown.contains("system:serviceaccount:default:other"),
        "{shown}"
    );
    assert_hidden(&shown, &[&good]);

    // Wrong audience.
    std::fs::write(
        &file,
        emu.federated_token(subject, "api://other", Duration::from_secs(3600)),
    )
    .unwrap();
    assert!(
        cred.get_token(&graph())
            .await
            .unwrap_err()
            .to_string()
            .contains("AADSTS700212")
    );

    let from_env = WorkloadIdentityCredential::from_environment(&env);
    assert!(
        from_env
            .unwrap_err()
            .to_string()
            .contains("allow_loopback_http")
    );
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn managed_identity_as_federated_credential_in_another_tenant() {
    let other_tenant = "7d1e2f3a-0000-4000-8000-00000000beef";
    // The app's federated credential names the managed identity: its issuer and object id.
    let system = entra_mi_emulator::Identity::system_assigned();
    let issuer = format!(
        "https://sts.windows.net/{}/",
        entra_mi_emulator::DEFAULT_TENANT_ID
    );
    let app = App::new("multi-tenant")
        .with_federated_credential(&issuer, &system.object_id)
        .multi_tenant(true);
    let stranger = App::new("no-fic").multi_tenant(true);
    let emu = Emulator::builder()
        .system_assigned(Some(system.clone()))
        .app(app.clone())
        .app(stranger.clone())
        .additional_tenant(other_tenant)
        .start()
        .await
        .unwrap();
    let mi = || {
        ManagedIdentityCredential::builder()
            .environment(Environment::from_vars([(
                "AZURE_POD_IDENTITY_AUTHORITY_HOST",
                emu.imds_host(),
            )]))
            .build()
            .unwrap()
    };
    let cred = FederatedManagedIdentityCredential::builder(emu.tenant_id(), &app.client_id, mi())
        .authority_host(emu.authority_host())
        .allow_loopback_http(true)
        .build()
        .unwrap();
    let token = cred
        .get_token(&TokenRequest::new(Audience::microsoft_graph()).with_tenant(other_tenant))
        .await
        .unwrap();
    let claims = jwt_claims(token.secret());
    assert_eq!(claims["tid"], other_tenant);
    assert_eq!(claims["appid"], app.client_id.as_str());
    assert_eq!(emu.requests(Endpoint::Imds), 1);

    let cred =
        FederatedManagedIdentityCredential::builder(emu.tenant_id(), &stranger.client_id, mi())
            .authority_host(emu.authority_host())
            .allow_loopback_http(true)
            .build()
            .unwrap();
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        err.to_string().contains("AADSTS700211") && err.to_string().contains("federated"),
        "{err}"
    );
}

#[tokio::test]
async fn workload_identity_retries_once_with_a_rotated_file_after_aadsts700024() {
    let expired = serde_json::json!({
        "error": "invalid_client",
        "error_description": "AADSTS700024: Client assertion is not within its valid time range.\r\nTrace ID: 0",
        "error_codes": [700024]
    });
    let ok = serde_json::json!({"token_type": "Bearer", "expires_in": 3599, "access_token": "new.token.sig"});
    let server = RawServer::start(Reply::json(200, ok)).await;
    let file = temp_file("wi-700024");
    std::fs::write(&file, "old.assertion.sig").unwrap();
    let cred = WorkloadIdentityCredential::builder(
        "contoso",
        "11111111-2222-3333-4444-555555555555",
        &file,
    )
    .authority_host(server.url(""))
    .allow_loopback_http(true)
    .build()
    .unwrap();

    // The file is unchanged: the error stands, no second request.
    server.push(Reply::json(400, expired.clone()));
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(err.to_string().contains("AADSTS700024"), "{err}");
    assert_eq!(server.count(), 1);

    // The platform rotates the file while Entra is answering: one retry with the new content.
    server.push(Reply::Delayed(
        Duration::from_millis(500),
        Box::new(Reply::json(400, expired)),
    ));
    let task = {
        let cred = std::sync::Arc::new(cred);
        let c = cred.clone();
        (
            tokio::spawn(async move { c.get_token(&graph()).await }),
            cred,
        )
    };
    assert!(support::eventually(5, || server.count() == 2).await);
    std::fs::write(&file, "new.assertion.sig").unwrap();
    let token = task.0.await.unwrap().unwrap();
    assert_eq!(token.secret(), "new.token.sig");
    let sent: Vec<String> = server
        .requests()
        .iter()
        .map(|r| {
            url::form_urlencoded::parse(&r.body)
                .find(|(k, _)| k == "client_assertion")
                .map(|(_, v)| v.into_owned())
                .unwrap()
        })
        .collect();
    assert_eq!(
        sent,
        [
            "old.assertion.sig",
            "old.assertion.sig",
            "new.assertion.sig"
        ]
    );
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn client_capabilities_are_declared_and_merged_with_a_challenge() {
    let token = serde_json::json!({"access_token": "cae.token.x", "expires_in": 86399, "token_type": "Bearer"});
    let server = RawServer::start(Reply::json(200, token)).await;
    let build = |caps: &[&str]| {
        loopback_builder(&server)
            .client_capabilities(caps.iter().copied())
            .build()
            .unwrap()
    };
    let claims_sent = |i: usize| -> Option<serde_json::Value> {
        let body = server.requests()[i].body.clone();
        url::form_urlencoded::parse(&body)
            .find(|(k, _)| k == "claims")
            .map(|(_, v)| serde_json::from_str(&v).unwrap())
    };

    let cae = build(&["cp1"]);
    cae.get_token(&graph()).await.unwrap();
    assert_eq!(
        claims_sent(0),
        Some(serde_json::json!({"access_token": {"xms_cc": {"values": ["cp1"]}}}))
    );
    // A challenge's claims keep what they ask for and gain the capabilities.
    let challenge = r#"{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}"#;
    cae.get_token(&graph().with_claims(challenge))
        .await
        .unwrap();
    assert_eq!(
        claims_sent(1),
        Some(serde_json::json!({"access_token": {
            "nbf": {"essential": true, "value": "1700000000"},
            "xms_cc": {"values": ["cp1"]}
        }}))
    );
    // Without capabilities: no claims, or the challenge's as they came.
    let plain = build(&[]);
    plain.get_token(&graph()).await.unwrap();
    assert_eq!(claims_sent(2), None);
    plain
        .get_token(&graph().with_claims(challenge))
        .await
        .unwrap();
    assert_eq!(
        claims_sent(3),
        Some(serde_json::from_str::<serde_json::Value>(challenge).unwrap())
    );
}
