//! The managed-identity credential against the emulator: IMDS and App Service, system- and
//! user-assigned by every kind of id, the tokens' claims, the emulator's quirks and faults,
//! and the cache in front of it.

use entra_mi_test_support as support;

use std::time::Duration;

use entra_mi::error::Unavailable;
use entra_mi::managed_identity::{ManagedIdentitySource, SourceKind};
use entra_mi::time::ManualClock;
use entra_mi::{
    Audience, Environment, Error, ManagedIdentityCredential, ManagedIdentityId, TokenCredential,
    TokenProvider, TokenRequest,
};
use entra_mi_emulator::{Emulator, Endpoint, Fault, Identity, ResponseShape};
use support::jwt_claims;

#[derive(Clone, Copy, Debug)]
enum Src {
    Imds,
    AppService,
}

fn env_for(emu: &Emulator, src: Src) -> Environment {
    match src {
        Src::Imds => {
            Environment::from_vars([("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.imds_host())])
        }
        Src::AppService => Environment::from_vars([
            ("IDENTITY_ENDPOINT", emu.app_service_endpoint()),
            ("IDENTITY_HEADER", emu.identity_header()),
        ]),
    }
}

fn credential(emu: &Emulator, src: Src, id: ManagedIdentityId) -> ManagedIdentityCredential {
    ManagedIdentityCredential::builder()
        .environment(env_for(emu, src))
        .identity(id)
        .build()
        .unwrap()
}

fn endpoint(src: Src) -> Endpoint {
    match src {
        Src::Imds => Endpoint::Imds,
        Src::AppService => Endpoint::AppService,
    }
}

async fn emulator() -> (Emulator, Identity, Identity) {
    let uami = Identity::user_assigned("orders-api");
    let emu = Emulator::builder()
        .identity(uami.clone())
        .roles(
            &uami.object_id,
            "https://graph.microsoft.com",
            &["User.Read.All"],
        )
        .start()
        .await
        .unwrap();
    let system = emu.system_identity().unwrap();
    (emu, system, uami)
}

#[tokio::test]
async fn every_identity_kind_on_every_source() {
    let (emu, system, uami) = emulator().await;
    for src in [Src::Imds, Src::AppService] {
        let cases = [
            (ManagedIdentityId::SystemAssigned, &system),
            (ManagedIdentityId::ClientId(uami.client_id.clone()), &uami),
            (ManagedIdentityId::ObjectId(uami.object_id.clone()), &uami),
            (
                ManagedIdentityId::ResourceId(uami.resource_id.clone()),
                &uami,
            ),
        ];
        for (id, expected) in cases {
            let cred = credential(&emu, src, id.clone());
            let token = cred
                .get_token(&TokenRequest::new(Audience::microsoft_graph()))
                .await
                .unwrap_or_else(|e| panic!("{src:?} {id:?}: {e}"));
            let claims = jwt_claims(token.secret());
            assert_eq!(
                claims["aud"], "https://graph.microsoft.com",
                "{src:?} {id:?}"
            );
            assert_eq!(claims["oid"], expected.object_id.as_str(), "{src:?} {id:?}");
            assert_eq!(
                claims["appid"],
                expected.client_id.as_str(),
                "{src:?} {id:?}"
            );
            assert_eq!(claims["tid"], emu.tenant_id().as_str());
            let lifetime = token.expires_on_unix() as i64 - claims["iat"].as_i64().unwrap();
            assert!((86_000..=86_400).contains(&lifetime), "{lifetime}");
        }
    }
    // Roles are per identity and audience.
    let cred = credential(
        &emu,
        Src::Imds,
        ManagedIdentityId::ClientId(uami.client_id.clone()),
    );
    let token = cred
        .get_token(&TokenRequest::new(Audience::microsoft_graph()))
        .await
        .unwrap();
    assert_eq!(
        jwt_claims(token.secret())["roles"],
        serde_json::json!(["User.Read.All"])
    );
}

#[tokio::test]
async fn the_resource_string_is_sent_exactly() {
    let (emu, _, _) = emulator().await;
    for src in [Src::Imds, Src::AppService] {
        let cred = credential(&emu, src, ManagedIdentityId::SystemAssigned);
        for (input, aud) in [
            (
                "https://management.azure.com/",
                "https://management.azure.com/",
            ),
            (
                "https://management.azure.com",
                "https://management.azure.com",
            ),
            (
                "https://management.core.windows.net//.default",
                "https://management.core.windows.net/",
            ),
            (
                "api://11111111-2222-3333-4444-555555555555/.default",
                "api://11111111-2222-3333-4444-555555555555",
            ),
        ] {
            let token = cred
                .get_token(&TokenRequest::new(Audience::new(input).unwrap()))
                .await
                .unwrap();
            assert_eq!(jwt_claims(token.secret())["aud"], aud, "{src:?} {input}");
        }
    }
}

#[tokio::test]
async fn unknown_identities_are_refused_with_the_service_words() {
    let (emu, _, _) = emulator().await;
    for src in [Src::Imds, Src::AppService] {
        let cred = credential(
            &emu,
            src,
            ManagedIdentityId::ClientId("99999999-9999-9999-9999-999999999999".into()),
        );
        emu.reset_counts();
        let err = cred
            .get_token(&TokenRequest::new(Audience::microsoft_graph()))
            .await
            .unwrap_err();
        match &err {
            Error::Source(family)
                if let entra_mi::error::SourceError::Refused { error, .. } = family.as_ref() =>
            {
                assert_eq!(error.status, 400, "{src:?}");
                assert!(error.is_identity_not_found(), "{src:?}: {err}");
            }
            other => panic!("{src:?}: {other:?}"),
        }
        assert_eq!(
            emu.requests(endpoint(src)),
            1,
            "{src:?}: a 400 is not retried"
        );
    }
    // A VM without a system-assigned identity.
    let emu = Emulator::builder()
        .system_assigned(None)
        .start()
        .await
        .unwrap();
    let err = credential(&emu, Src::Imds, ManagedIdentityId::SystemAssigned)
        .get_token(&TokenRequest::new(Audience::microsoft_graph()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Source(family) if matches!(family.as_ref(), entra_mi::error::SourceError::Refused { error, .. } if error.is_identity_not_found())),
        "{err}"
    );
}

#[tokio::test]
async fn a_wrong_identity_header_is_refused_and_a_rotated_one_is_followed() {
    let (emu, _, _) = emulator().await;
    let env = env_for(&emu, Src::AppService);
    let cred = ManagedIdentityCredential::builder()
        .environment(env.clone())
        .build()
        .unwrap();
    let req = TokenRequest::new(Audience::key_vault());
    cred.get_token(&req).await.unwrap();
    // The platform rotates the secret: the old one is refused until the app reads the new one.
    emu.set_identity_header("rotated-secret");
    let err = cred.get_token(&req).await.unwrap_err();
    assert!(
        matches!(&err, Error::Source(family) if matches!(&**family, entra_mi::error::SourceError::Refused { .. })),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("rotated-secret"));
    env.set("IDENTITY_HEADER", "rotated-secret");
    cred.get_token(&req).await.unwrap();
}

#[tokio::test]
async fn every_emulated_response_shape_parses() {
    let (emu, _, _) = emulator().await;
    for src in [Src::Imds, Src::AppService] {
        for shape in [
            ResponseShape::Standard,
            ResponseShape::NumericExpiry,
            ResponseShape::NoExpiresIn,
            ResponseShape::WithRefreshIn(600),
            ResponseShape::ExpiresOnDate,
            ResponseShape::ExpiresOnOffset(-7200),
            ResponseShape::ExpiresOnOffset(600),
        ] {
            emu.set_response_shape(endpoint(src), shape);
            let token = credential(&emu, src, ManagedIdentityId::SystemAssigned)
                .get_token(&TokenRequest::new(Audience::storage()))
                .await
                .unwrap_or_else(|e| panic!("{src:?} {shape:?}: {e}"));
            let exp = jwt_claims(token.secret())["exp"].as_i64().unwrap();
            let diff = token.expires_on_unix() as i64 - exp;
            match shape {
                // The server's expires_on is reported as sent, skewed or not (the deadline the
                // cache keeps is the earlier of it and expires_in).
                ResponseShape::ExpiresOnOffset(off) => {
                    assert!((diff - off).abs() <= 2, "{src:?} {shape:?}: {diff}")
                }
                _ => assert!(diff.abs() <= 2, "{src:?} {shape:?}: {diff}"),
            }
            if let ResponseShape::WithRefreshIn(r) = shape {
                let refresh = token.refresh_on().unwrap();
                let in_s = refresh
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or_default()
                    .as_secs();
                assert!((r - 5..=r).contains(&in_s), "{in_s}");
            }
        }
        emu.set_response_shape(endpoint(src), ResponseShape::Standard);
    }
}

/// An endpoint whose `expires_on` is already past (a badly set clock) gets no token accepted,
/// whether or not `expires_in` is there to say otherwise.
#[tokio::test]
async fn an_already_expired_expires_on_is_refused_on_both_sources() {
    let (emu, _, _) = emulator().await;
    for src in [Src::Imds, Src::AppService] {
        emu.set_response_shape(endpoint(src), ResponseShape::ExpiresOnOffset(-100_000));
        let err = credential(&emu, src, ManagedIdentityId::SystemAssigned)
            .get_token(&TokenRequest::new(Audience::storage()))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("already-expired token"),
            "{src:?}: {err}"
        );
        emu.set_response_shape(endpoint(src), ResponseShape::Standard);
    }
}

#[tokio::test]
async fn emulated_faults_become_typed_errors() {
    let (emu, _, _) = emulator().await;
    let cred = ManagedIdentityCredential::builder()
        .environment(env_for(&emu, Src::Imds))
        .retry(entra_mi::RetryOptions::default().max_retries(0))
        .attempt_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let req = TokenRequest::new(Audience::microsoft_graph());
    type Check = fn(&Unavailable) -> bool;
    let cases: Vec<(Fault, Check)> = vec![
        (Fault::Html, |u| matches!(u, Unavailable::Html { .. })),
        (Fault::HtmlError(502), |u| {
            matches!(u, Unavailable::Status { status: 502, .. })
        }),
        (Fault::TruncatedJson, |u| {
            matches!(u, Unavailable::NotJson { .. })
        }),
        (Fault::Oversized(1 << 20), |u| {
            matches!(u, Unavailable::BodyTooLarge { .. })
        }),
        (Fault::Hang, |u| matches!(u, Unavailable::Timeout(_))),
        (Fault::CloseConnection, |u| {
            matches!(
                u,
                Unavailable::Transport { .. } | Unavailable::Connect { .. }
            )
        }),
        (
            Fault::Body {
                status: 200,
                content_type: "application/json".into(),
                body: b"{\"access_token\":123}".to_vec(),
            },
            |u| matches!(u, Unavailable::InvalidResponse { .. }),
        ),
    ];
    for (fault, check) in cases {
        let name = format!("{fault:?}");
        emu.push_fault(Endpoint::Imds, fault);
        match &cred.get_token(&req).await {
            Err(Error::Source(family))
                if let entra_mi::error::SourceError::Unavailable { reason, .. } =
                    family.as_ref() =>
            {
                assert!(check(reason), "{name}: {reason:?}")
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    // And the next request is served normally.
    cred.get_token(&req).await.unwrap();
}

#[tokio::test]
async fn imds_gone_then_throttled_then_served_in_virtual_time() {
    let (emu, _, _) = emulator().await;
    let clock = ManualClock::new();
    let (time, sleeps) = clock.instant_time_source(0.5);
    let cred = ManagedIdentityCredential::builder()
        .environment(env_for(&emu, Src::Imds))
        .time_source(time)
        .retry(entra_mi::RetryOptions::default().deadline(Duration::from_secs(300)))
        .build()
        .unwrap();
    for _ in 0..6 {
        emu.push_fault(
            Endpoint::Imds,
            Fault::Status {
                status: 410,
                retry_after: None,
                body: None,
            },
        );
    }
    emu.push_fault(
        Endpoint::Imds,
        Fault::Status {
            status: 429,
            retry_after: Some("20".into()),
            body: None,
        },
    );
    emu.push_fault(
        Endpoint::Imds,
        Fault::Status {
            status: 503,
            retry_after: None,
            body: None,
        },
    );
    cred.get_token(&TokenRequest::new(Audience::microsoft_graph()))
        .await
        .unwrap();
    assert_eq!(emu.requests(Endpoint::Imds), 9);
    let s = sleeps.sleeps();
    assert!(
        s.contains(&Duration::from_secs(30)) || s.iter().any(|d| *d >= Duration::from_secs(20)),
        "{s:?}"
    );
    assert!(
        sleeps.total() >= Duration::from_secs(70),
        "{:?}",
        sleeps.total()
    );
}

#[tokio::test]
async fn the_cache_in_front_of_the_emulator_refreshes_proactively() {
    let (emu, _, _) = emulator().await;
    emu.set_token_lifetime(Duration::from_secs(4));
    emu.reset_counts();
    let provider = TokenProvider::builder(credential(
        &emu,
        Src::Imds,
        ManagedIdentityId::SystemAssigned,
    ))
    .eager_refresh(true)
    .build();
    let graph = provider.handle(&Audience::microsoft_graph());
    let first = graph.cached_header().is_none();
    assert!(first, "cold");
    let first = graph.header().await.unwrap();
    assert_eq!(provider.credential_name(), "managed-identity/imds");
    // The emulator, like real endpoints, may hand back its cached token at the first refresh;
    // the timer then retries before expiry, and a new token is in place without any caller
    // waiting for it.
    let changed =
        support::eventually(8, || graph.cached_header().is_some_and(|h| h != first)).await;
    assert!(changed, "a new token within the old one's life");
    assert!(emu.requests(Endpoint::Imds) >= 2);
    assert_eq!(provider.stats().waits, 1, "only the cold start waited");
    assert_eq!(
        credential(&emu, Src::Imds, ManagedIdentityId::SystemAssigned).source_kind(),
        SourceKind::Imds
    );
}

/// What Linux Consumption Functions answer to api-version 2019-08-01.
fn unsupported_api_version() -> Fault {
    Fault::Status {
        status: 400,
        retry_after: None,
        body: Some(r#"{"error":{"code":"UnsupportedApiVersion","message":"The HTTP resource that matches the request URI 'http://127.0.0.1:8081/msi/token' does not support the API version '2019-08-01'.","innerError":null}}"#.to_owned()),
    }
}

#[tokio::test]
async fn app_service_falls_back_to_2017_when_2019_is_unsupported() {
    let (emu, system, uami) = emulator().await;
    let env = |with_2017: bool| {
        let mut vars = vec![
            ("IDENTITY_ENDPOINT", emu.app_service_endpoint()),
            ("IDENTITY_HEADER", emu.identity_header()),
        ];
        if with_2017 {
            vars.push(("MSI_ENDPOINT", emu.msi_endpoint()));
            vars.push(("MSI_SECRET", emu.msi_secret()));
        }
        Environment::from_vars(vars)
    };
    let build = |with_2017: bool, id: ManagedIdentityId| {
        ManagedIdentityCredential::builder()
            .environment(env(with_2017))
            .identity(id)
            .build()
            .unwrap()
    };
    let graph = TokenRequest::new(Audience::microsoft_graph());

    // The system-assigned identity and a user-assigned one by client id: one refusal, then the
    // 2017-09-01 protocol for the rest of the credential's life.
    for (id, oid) in [
        (ManagedIdentityId::SystemAssigned, &system.object_id),
        (
            ManagedIdentityId::ClientId(uami.client_id.clone()),
            &uami.object_id,
        ),
    ] {
        emu.reset_counts();
        emu.push_fault(Endpoint::AppService, unsupported_api_version());
        let cred = build(true, id.clone());
        for _ in 0..2 {
            let token = cred
                .get_token(&graph)
                .await
                .unwrap_or_else(|e| panic!("{id:?}: {e}"));
            assert_eq!(jwt_claims(token.secret())["oid"], oid.as_str(), "{id:?}");
        }
        assert_eq!(emu.requests(Endpoint::AppService), 1, "{id:?}");
        assert_eq!(emu.requests(Endpoint::AzureMl), 2, "{id:?}");
        assert_eq!(cred.source_kind(), SourceKind::AppService);
        assert_eq!(cred.endpoint(), emu.msi_endpoint());
    }

    // No 2017 endpoint to go to, or an identity the 2017 protocol cannot select: the refusal
    // is the answer.
    for (with_2017, id) in [
        (false, ManagedIdentityId::SystemAssigned),
        (true, ManagedIdentityId::ObjectId(uami.object_id.clone())),
    ] {
        emu.reset_counts();
        emu.push_fault(Endpoint::AppService, unsupported_api_version());
        let err = build(with_2017, id.clone())
            .get_token(&graph)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Source(family) if matches!(family.as_ref(), entra_mi::error::SourceError::Refused { error, .. } if error.code.as_deref() == Some("UnsupportedApiVersion"))),
            "{id:?}: {err}"
        );
        assert_eq!(emu.requests(Endpoint::AzureMl), 0, "{id:?}");
    }
}

#[tokio::test]
async fn a_source_given_in_code_replaces_detection() {
    let (emu, system, _) = emulator().await;
    let graph = TokenRequest::new(Audience::microsoft_graph());
    // IMDS at an address no environment variable names, with an empty environment.
    let cred = ManagedIdentityCredential::builder()
        .environment(Environment::from_vars(Vec::<(String, String)>::new()))
        .source(ManagedIdentitySource::Imds {
            token_url: emu.imds_token_url().parse().unwrap(),
        })
        .build()
        .unwrap();
    assert_eq!(cred.source_kind(), SourceKind::Imds);
    let token = cred.get_token(&graph).await.unwrap();
    assert_eq!(jwt_claims(token.secret())["oid"], system.object_id.as_str());
    assert_eq!(emu.requests(Endpoint::Imds), 1);

    // App Service given in code still reads its rotating header from the environment, and
    // wins over what the environment would select.
    let cred = ManagedIdentityCredential::builder()
        .environment(Environment::from_vars([
            ("IDENTITY_HEADER", emu.identity_header()),
            ("MSI_ENDPOINT", "http://127.0.0.1:1/unused".to_owned()),
        ]))
        .source(ManagedIdentitySource::AppService {
            endpoint: emu.app_service_endpoint().parse().unwrap(),
        })
        .build()
        .unwrap();
    assert_eq!(cred.source_kind(), SourceKind::AppService);
    cred.get_token(&graph).await.unwrap();
    assert_eq!(emu.requests(Endpoint::AppService), 1);

    // The rules of an endpoint from the environment hold.
    for (source, needle) in [
        (
            ManagedIdentitySource::AppService {
                endpoint: "http://203.0.113.9/msi/token".parse().unwrap(),
            },
            "neither loopback nor link-local",
        ),
        (
            ManagedIdentitySource::Imds {
                token_url: "http://u:PW-CANARY@127.0.0.1/x".parse().unwrap(),
            },
            "must not carry credentials",
        ),
        (
            ManagedIdentitySource::Imds {
                token_url: "http://127.0.0.1/x?y=1".parse().unwrap(),
            },
            "without query",
        ),
        (
            ManagedIdentitySource::AzureMl {
                endpoint: "ftp://127.0.0.1/x".parse().unwrap(),
            },
            "http or https",
        ),
    ] {
        let err = ManagedIdentityCredential::builder()
            .source(source.clone())
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, Error::Configuration(family) if matches!(family.as_ref(), entra_mi::error::ConfigurationError::Setting { setting, reason } if setting == "ManagedIdentityCredentialBuilder::source" && reason.contains(needle))),
            "{source:?}: {err}"
        );
        assert!(!format!("{err} {err:?}").contains("PW-CANARY"), "{err:?}");
    }
}
