//! The fault matrix's workload-identity and client-secret faults (the emulator's Entra token
//! endpoint).

use super::*;

const WI_SUBJECT: &str = "system:serviceaccount:default:fault-matrix";

pub(super) async fn wi_file_missing() {
    let app = App::new("wi").with_federated_credential(FEDERATED_ISSUER, WI_SUBJECT);
    let emu = Emulator::builder().app(app.clone()).start().await.unwrap();
    let dir = TempDir::new("wi-missing");
    let cred = WorkloadIdentityCredential::builder(
        emu.tenant_id(),
        &app.client_id,
        dir.path().join("token"),
    )
    .authority_host(emu.authority_host())
    .allow_loopback_http(true)
    .build()
    .unwrap();
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Configuration(family) if matches!(family.as_ref(), entra_mi::error::ConfigurationError::Setting { setting, reason } if setting == "AZURE_FEDERATED_TOKEN_FILE" && reason.contains("does not exist"))),
        "{err:?}"
    );
    assert_names(&err, &["AZURE_FEDERATED_TOKEN_FILE", "does not exist"]);
    assert_eq!(emu.requests(Endpoint::EntraToken), 0);
}

pub(super) async fn wi_entra_503() {
    let app = App::new("wi").with_federated_credential(FEDERATED_ISSUER, WI_SUBJECT);
    let emu = Emulator::builder().app(app.clone()).start().await.unwrap();
    let dir = TempDir::new("wi-503");
    let file = dir.path().join("token");
    std::fs::write(
        &file,
        emu.federated_token(
            WI_SUBJECT,
            TOKEN_EXCHANGE_AUDIENCE,
            Duration::from_secs(3600),
        ),
    )
    .unwrap();
    for _ in 0..2 {
        emu.push_fault(
            Endpoint::EntraToken,
            EmuFault::Status {
                status: 503,
                retry_after: None,
                body: None,
            },
        );
    }
    let clock = ManualClock::with_wall_time(SystemTime::now());
    let (time, sleeps) = clock.instant_time_source(0.5);
    let cred = WorkloadIdentityCredential::builder(emu.tenant_id(), &app.client_id, &file)
        .authority_host(emu.authority_host())
        .allow_loopback_http(true)
        .time_source(time)
        .build()
        .unwrap();
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        matches!(&err, Error::TokenEndpoint(family) if matches!(family.as_ref(), entra_mi::error::TokenEndpointError::Refused { error, .. } if error.status == 503)),
        "{err:?}"
    );
    assert_clean(&err);
    assert_names(&err, &["workload-identity", "HTTP 503"]);
    assert_eq!(emu.requests(Endpoint::EntraToken), 2, "one retry");
    assert_eq!(secs(&sleeps.sleeps()), [1]);
}

/// An emulator with one app whose secret is [`SECRET`], and a client-secret credential for it
/// on the returned virtual clock.
async fn secret_setup(
    secret: &str,
) -> (
    Emulator,
    ClientSecretCredential,
    entra_mi::time::InstantSleep,
) {
    let app = App::new("daemon").with_secret(SECRET);
    let emu = Emulator::builder().app(app.clone()).start().await.unwrap();
    let clock = ManualClock::with_wall_time(SystemTime::now());
    let (time, sleeps) = clock.instant_time_source(0.5);
    let cred = ClientSecretCredential::builder(emu.tenant_id(), &app.client_id, secret)
        .authority_host(emu.authority_host())
        .allow_loopback_http(true)
        .time_source(time)
        .attempt_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    (emu, cred, sleeps)
}

pub(super) async fn secret_wrong() {
    let (emu, cred, sleeps) = secret_setup("CANARY-wrong-secret").await;
    let err = cred.get_token(&graph()).await.unwrap_err();
    match &err {
        Error::TokenEndpoint(family)
            if let entra_mi::error::TokenEndpointError::Refused { error, .. } = family.as_ref() =>
        {
            assert_eq!(error.status, 401);
            assert_eq!(error.aadsts, vec![7000215]);
        }
        other => panic!("{other:?}"),
    }
    assert_clean(&err);
    assert_names(
        &err,
        &["client-secret", "AADSTS7000215", "not its Secret ID"],
    );
    assert_eq!(emu.requests(Endpoint::EntraToken), 1, "401 is not retried");
    assert!(sleeps.sleeps().is_empty());
}

pub(super) async fn secret_500_then_token() {
    let (emu, cred, sleeps) = secret_setup(SECRET).await;
    emu.push_fault(
        Endpoint::EntraToken,
        EmuFault::Status {
            status: 500,
            retry_after: None,
            body: None,
        },
    );
    cred.get_token(&graph()).await.unwrap();
    assert_eq!(emu.requests(Endpoint::EntraToken), 2);
    assert_eq!(secs(&sleeps.sleeps()), [1]);
}

pub(super) async fn secret_429() {
    let (emu, cred, sleeps) = secret_setup(SECRET).await;
    emu.push_fault(
        Endpoint::EntraToken,
        EmuFault::Status {
            status: 429,
            retry_after: Some("5".into()),
            body: None,
        },
    );
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        matches!(&err, Error::TokenEndpoint(family) if matches!(family.as_ref(), entra_mi::error::TokenEndpointError::Refused { error, .. } if error.status == 429)),
        "{err:?}"
    );
    assert_clean(&err);
    assert_names(&err, &["HTTP 429"]);
    assert_eq!(emu.requests(Endpoint::EntraToken), 1);
    assert!(sleeps.sleeps().is_empty());
}

async fn secret_bad_answer(fault: EmuFault, check: fn(&Unavailable) -> bool, needles: &[&str]) {
    let (emu, cred, _) = secret_setup(SECRET).await;
    emu.push_fault(Endpoint::EntraToken, fault);
    let err = cred.get_token(&graph()).await.unwrap_err();
    let reason = endpoint_unavailable(&err);
    assert!(check(reason), "unexpected reason {reason:?}");
    assert!(
        !err.is_unavailable(),
        "a configured credential stops a chain"
    );
    assert_names(&err, needles);
    assert_eq!(emu.requests(Endpoint::EntraToken), 1);
    // The next request is served normally.
    cred.get_token(&graph()).await.unwrap();
}

pub(super) async fn secret_truncated_json() {
    secret_bad_answer(
        EmuFault::TruncatedJson,
        |u| matches!(u, Unavailable::NotJson { what, .. } if what.contains("truncated")),
        &["client-secret", "token endpoint", "truncated JSON"],
    )
    .await;
}

pub(super) async fn secret_one_gib_body() {
    // Cut at the cap, and not asked for again: an answer, not a transport failure.
    let (emu, cred, sleeps) = secret_setup(SECRET).await;
    emu.push_fault(Endpoint::EntraToken, EmuFault::Oversized(GIB));
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert_eq!(
        endpoint_unavailable(&err),
        &Unavailable::BodyTooLarge { limit: CAP }
    );
    assert_names(&err, &["client-secret", "larger than 65536 bytes"]);
    assert_eq!(emu.requests(Endpoint::EntraToken), 1);
    assert!(sleeps.sleeps().is_empty());
    cred.get_token(&graph()).await.unwrap();
}

pub(super) async fn secret_hang() {
    let (emu, cred, sleeps) = secret_setup(SECRET).await;
    emu.push_fault(Endpoint::EntraToken, EmuFault::Hang);
    let err = cred
        .get_token(&graph().with_deadline(Duration::from_millis(300)))
        .await
        .unwrap_err();
    let last = past_deadline(&err, Duration::from_millis(300));
    assert_eq!(
        endpoint_unavailable(last),
        &Unavailable::Timeout(Duration::from_millis(300))
    );
    assert_names(&err, &["no answer within 300ms"]);
    assert_eq!(emu.requests(Endpoint::EntraToken), 1);
    assert!(sleeps.sleeps().is_empty(), "no retry fits in the deadline");
}

pub(super) async fn secret_connection_refused() {
    let refused = support::RefusedPort::new();
    let addr = refused.addr;
    let clock = ManualClock::new();
    let (time, sleeps) = clock.instant_time_source(0.5);
    let cred =
        ClientSecretCredential::builder("contoso", "11111111-2222-3333-4444-555555555555", SECRET)
            .authority_host(format!("http://{addr}"))
            .allow_loopback_http(true)
            .time_source(time)
            .build()
            .unwrap();
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        matches!(endpoint_unavailable(&err), Unavailable::Connect { .. }),
        "{err:?}"
    );
    assert_names(&err, &["client-secret", "connection failed"]);
    assert_eq!(secs(&sleeps.sleeps()), [1], "one retry");
}

pub(super) async fn secret_redirect() {
    let clock = ManualClock::new();
    let target = RawServer::start(token_reply(&clock, CANARY)).await;
    let server = RawServer::start(
        Reply::body(302, "text/plain", "").with_header("Location", &target.url("/steal")),
    )
    .await;
    let (time, _) = clock.instant_time_source(0.5);
    let cred =
        ClientSecretCredential::builder("contoso", "11111111-2222-3333-4444-555555555555", SECRET)
            .authority_host(server.url(""))
            .allow_loopback_http(true)
            .time_source(time)
            .build()
            .unwrap();
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert_eq!(
        endpoint_unavailable(&err),
        &Unavailable::Redirect { status: 302 }
    );
    assert_names(&err, &["HTTP 302 redirect", "not followed"]);
    assert_eq!(server.count(), 1);
    assert_eq!(target.count(), 0, "the secret never reached the target");
}

pub(super) async fn secret_untrusted_certificate() {
    // The emulator's TLS listener serves its Entra endpoints with a self-signed certificate
    // that this client was not told to trust.
    let app = App::new("daemon").with_secret(SECRET);
    let emu = Emulator::builder()
        .app(app.clone())
        .key_vault(entra_mi_emulator::KeyVault::new("fault-matrix"))
        .start()
        .await
        .unwrap();
    let tls = emu.key_vault().expect("the TLS listener");
    let clock = ManualClock::with_wall_time(SystemTime::now());
    let (time, sleeps) = clock.instant_time_source(0.5);
    let cred = ClientSecretCredential::builder(emu.tenant_id(), &app.client_id, SECRET)
        .authority_host(tls.ip_url.clone())
        .time_source(time)
        .attempt_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let err = cred.get_token(&graph()).await.unwrap_err();
    match &err {
        Error::TokenEndpoint(family)
            if let entra_mi::error::TokenEndpointError::Unavailable { reason, .. } =
                family.as_ref() =>
        {
            assert!(
                matches!(reason, Unavailable::TlsVerification { .. }),
                "{err:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_clean(&err);
    assert!(
        sleeps.sleeps().is_empty(),
        "a certificate that fails verification is not retried: {:?}",
        sleeps.sleeps()
    );
    assert_eq!(
        emu.requests(Endpoint::EntraToken),
        0,
        "no request got past the TLS handshake"
    );
}
