//! `FederatedManagedIdentityCredential` caches the managed identity's assertion
//! (its token for `api://AzureADTokenExchange`) and reuses it for every audience and tenant
//! until five minutes before it expires; concurrent callers share one fetch; an assertion
//! Entra refuses is dropped. Against the emulator, which really validates the assertion.

use entra_mi_test_support as support;

use std::sync::Arc;
use std::time::Duration;

use entra_mi::credentials::{FederatedManagedIdentityCredential, TOKEN_EXCHANGE_AUDIENCE};
use entra_mi::time::ManualClock;
use entra_mi::time::TimeSource;
use entra_mi::{
    Audience, Environment, Error, ManagedIdentityCredential, RetryOptions, TokenCredential,
    TokenRequest,
};
use entra_mi_emulator::{App, DEFAULT_TENANT_ID, Emulator, Endpoint, Fault, Identity};
use support::jwt_claims;

/// Lifetime of the emulator's managed-identity tokens in these tests.
const LIFETIME: u64 = 3600;
/// How long before expiry the credential stops reusing an assertion.
const MARGIN: u64 = 300;

struct Setup {
    emu: Emulator,
    app: App,
}

async fn setup() -> Setup {
    // The app's federated credential names the managed identity: its issuer and object id.
    let system = Identity::system_assigned();
    let issuer = format!("https://sts.windows.net/{DEFAULT_TENANT_ID}/");
    let app = App::new("multi-tenant")
        .with_federated_credential(&issuer, &system.object_id)
        .multi_tenant(true);
    let emu = Emulator::builder()
        .system_assigned(Some(system))
        .app(app.clone())
        .token_lifetime(Duration::from_secs(LIFETIME))
        .start()
        .await
        .unwrap();
    Setup { emu, app }
}

fn managed_identity(emu: &Emulator, time: &TimeSource) -> ManagedIdentityCredential {
    ManagedIdentityCredential::builder()
        .environment(Environment::from_vars([(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            emu.imds_host(),
        )]))
        .retry(RetryOptions::default().max_retries(0))
        .attempt_timeout(Duration::from_secs(10))
        .time_source(time.clone())
        .build()
        .unwrap()
}

/// The credential, its managed identity and the federated credential on the same clock.
fn credential(s: &Setup, time: &TimeSource) -> FederatedManagedIdentityCredential {
    FederatedManagedIdentityCredential::builder(
        s.emu.tenant_id(),
        &s.app.client_id,
        managed_identity(&s.emu, time),
    )
    .authority_host(s.emu.authority_host())
    .allow_loopback_http(true)
    .attempt_timeout(Duration::from_secs(10))
    .time_source(time.clone())
    .build()
    .unwrap()
}

fn graph() -> TokenRequest {
    TokenRequest::new(Audience::microsoft_graph())
}

fn arm() -> TokenRequest {
    TokenRequest::new(Audience::azure_resource_manager())
}

fn counts(emu: &Emulator) -> (usize, usize) {
    (
        emu.requests(Endpoint::Imds),
        emu.requests(Endpoint::EntraToken),
    )
}

/// Entra's answer refusing an expired client assertion.
fn expired_assertion() -> Fault {
    Fault::Status {
        status: 400,
        retry_after: None,
        body: Some(
            serde_json::json!({
                "error": "invalid_client",
                "error_description": "AADSTS700024: Client assertion is not within its valid time range.\r\nTrace ID: 0",
                "error_codes": [700024]
            })
            .to_string(),
        ),
    }
}

#[tokio::test]
async fn one_assertion_serves_every_audience_until_five_minutes_before_it_expires() {
    let s = setup().await;
    let clock = ManualClock::new();
    let time = clock.time_source(0.0);
    let cred = credential(&s, &time);

    let token = cred.get_token(&graph()).await.unwrap();
    assert_eq!(
        jwt_claims(token.secret())["aud"],
        "https://graph.microsoft.com"
    );
    assert_eq!(counts(&s.emu), (1, 1));
    let token = cred.get_token(&arm()).await.unwrap();
    assert_eq!(
        jwt_claims(token.secret())["aud"],
        Audience::azure_resource_manager().resource()
    );
    assert_eq!(counts(&s.emu), (1, 2), "the assertion is reused");

    // A minute before the margin: still reused.
    clock.advance(Duration::from_secs(LIFETIME - MARGIN - 60));
    cred.get_token(&graph()).await.unwrap();
    assert_eq!(counts(&s.emu), (1, 3));

    // Past the margin: fetched again, then reused again.
    clock.advance(Duration::from_secs(120));
    cred.get_token(&graph()).await.unwrap();
    assert_eq!(counts(&s.emu), (2, 4));
    cred.get_token(&arm()).await.unwrap();
    assert_eq!(counts(&s.emu), (2, 5));

    // `Debug` shows that an assertion is cached, never the assertion (the emulator hands the
    // managed identity the very same token again, so it can be compared).
    let assertion = managed_identity(&s.emu, &time)
        .get_token(&TokenRequest::new(
            Audience::new(TOKEN_EXCHANGE_AUDIENCE).unwrap(),
        ))
        .await
        .unwrap();
    let shown = format!("{cred:?}");
    assert!(!shown.contains(assertion.secret()), "{shown}");
    assert!(shown.contains("cached: true"), "{shown}");
}

#[tokio::test]
async fn concurrent_callers_share_one_fetch_of_the_assertion() {
    let s = setup().await;
    let cred = Arc::new(credential(&s, &TimeSource::system()));
    // The fetch is slow enough for every caller to arrive while it is in flight.
    s.emu
        .push_fault(Endpoint::Imds, Fault::Delay(Duration::from_millis(300)));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let cred = cred.clone();
            tokio::spawn(async move {
                let request = if i % 2 == 0 { graph() } else { arm() };
                cred.get_token(&request).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(counts(&s.emu), (1, 8));
}

#[tokio::test]
async fn a_caller_waiting_for_another_callers_fetch_keeps_to_its_deadline() {
    let s = setup().await;
    let cred = Arc::new(credential(&s, &TimeSource::system()));
    s.emu
        .push_fault(Endpoint::Imds, Fault::Delay(Duration::from_secs(2)));
    let slow = {
        let cred = cred.clone();
        tokio::spawn(async move { cred.get_token(&graph()).await })
    };
    assert!(support::eventually(5, || s.emu.requests(Endpoint::Imds) == 1).await);

    let started = std::time::Instant::now();
    let err = cred
        .get_token(&arm().with_deadline(Duration::from_millis(200)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Deadline(family) if matches!(family.as_ref(), entra_mi::error::DeadlineError::Caller { deadline, .. } if *deadline == Duration::from_millis(200))),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_millis(1500), "{err}");

    slow.await.unwrap().unwrap();
    cred.get_token(&arm()).await.unwrap();
    assert_eq!(counts(&s.emu), (1, 2));
}

#[tokio::test]
async fn an_assertion_entra_refuses_is_dropped() {
    let s = setup().await;
    let clock = ManualClock::new();
    let cred = credential(&s, &clock.time_source(0.0));

    // A freshly fetched assertion is refused: the error stands, and the next call fetches
    // again instead of reusing it.
    s.emu.push_fault(Endpoint::EntraToken, expired_assertion());
    let err = cred.get_token(&graph()).await.unwrap_err();
    match &err {
        Error::TokenEndpoint(family)
            if let entra_mi::error::TokenEndpointError::Refused { error, .. } = family.as_ref() =>
        {
            assert_eq!(error.aadsts, [700024], "{err}")
        }
        other => panic!("{other}"),
    }
    assert_eq!(counts(&s.emu), (1, 1));
    cred.get_token(&graph()).await.unwrap();
    assert_eq!(counts(&s.emu), (2, 2));
    cred.get_token(&graph()).await.unwrap();
    assert_eq!(counts(&s.emu), (2, 3), "the new assertion is cached");

    // A cached assertion is refused and the managed identity hands out a new one: one retry
    // with it succeeds. (Changing the lifetime makes the emulator forget its own cache.)
    s.emu.set_token_lifetime(Duration::from_secs(LIFETIME));
    s.emu.push_fault(Endpoint::EntraToken, expired_assertion());
    let token = cred.get_token(&arm()).await.unwrap();
    assert_eq!(
        jwt_claims(token.secret())["aud"],
        Audience::azure_resource_manager().resource()
    );
    assert_eq!(counts(&s.emu), (3, 5));
    cred.get_token(&graph()).await.unwrap();
    assert_eq!(counts(&s.emu), (3, 6), "the retried assertion is cached");

    // A cached assertion is refused and the managed identity hands out the same one: no
    // retry with it, the error stands, and it is not cached again.
    s.emu.push_fault(Endpoint::EntraToken, expired_assertion());
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(err.to_string().contains("AADSTS700024"), "{err}");
    assert_eq!(counts(&s.emu), (4, 7));
    cred.get_token(&graph()).await.unwrap();
    assert_eq!(counts(&s.emu), (5, 8));
}

#[tokio::test]
async fn a_refusal_that_is_not_about_the_assertion_keeps_it() {
    let s = setup().await;
    let cred = credential(&s, &ManualClock::new().time_source(0.0));
    cred.get_token(&graph()).await.unwrap();
    // An unknown tenant (AADSTS90002) says nothing about the assertion.
    let err = cred
        .get_token(&graph().with_tenant("no-such-tenant.example"))
        .await
        .unwrap_err();
    match &err {
        Error::TokenEndpoint(family)
            if let entra_mi::error::TokenEndpointError::Refused { error, .. } = family.as_ref() =>
        {
            assert_eq!(error.aadsts, [90002], "{err}")
        }
        other => panic!("{other}"),
    }
    cred.get_token(&arm()).await.unwrap();
    assert_eq!(counts(&s.emu), (1, 3));
}
