//! Failure paths of the managed-identity sources, against scripted servers and the emulator's
//! faults.

use super::*;

pub(super) async fn run(w: &World, built: &Built, ev: &mut Evidence) {
    let World {
        arc_dir,
        realm,
        emu,
        no_retry,
        ..
    } = w;
    let Built { mi_envs, .. } = built;
    let challenge = Reply::json(401, json!({"error": "unauthorized"})).with_header(
        "WWW-Authenticate",
        &format!("Basic realm={}", realm.display()),
    );
    let mi_raw: [(&str, VarsFor, Option<Reply>); 5] = [
        (
            "IMDS",
            |s| vec![("AZURE_POD_IDENTITY_AUTHORITY_HOST".into(), s.url(""))],
            None,
        ),
        (
            "App Service",
            |s| {
                vec![
                    ("IDENTITY_ENDPOINT".into(), s.url("/msi/token")),
                    ("IDENTITY_HEADER".into(), IDENTITY_HEADER.into()),
                ]
            },
            None,
        ),
        (
            "Cloud Shell",
            |s| vec![("MSI_ENDPOINT".into(), s.url("/oauth2/token"))],
            None,
        ),
        (
            "Azure ML",
            |s| {
                vec![
                    ("MSI_ENDPOINT".into(), s.url("/MSI/auth")),
                    ("MSI_SECRET".into(), MSI_SECRET.into()),
                ]
            },
            None,
        ),
        (
            "Azure Arc",
            |s| {
                vec![
                    ("IDENTITY_ENDPOINT".into(), s.url("/arc/token")),
                    ("IMDS_ENDPOINT".into(), s.url("")),
                ]
            },
            Some(challenge.clone()),
        ),
    ];
    for (what, vars, before) in mi_raw {
        let arc_dir_path = arc_dir.path().to_path_buf();
        let retry = no_retry.clone();
        let server = refuse_all(
            &mut *ev,
            what,
            move |s| {
                ManagedIdentityCredential::builder()
                    .environment(Environment::from_vars(vars(s)))
                    .arc_key_directory(&arc_dir_path)
                    .retry(retry.clone())
                    .build()
                    .unwrap()
            },
            &arm(),
            true,
            before,
        )
        .await;
        assert!(server.count() >= bad_replies(true).len(), "{what}");
        if what == "Azure Arc" {
            let sent = server
                .requests()
                .iter()
                .filter_map(|r| r.header("authorization").map(str::to_owned))
                .collect::<Vec<_>>();
            assert!(
                sent.iter().any(|a| a == &format!("Basic {ARC_KEY}")),
                "{sent:?}"
            );
        }
    }
    // Service Fabric's TLS endpoint: the same bodies as emulator faults, and a wrong secret.
    let sf_env = |header: &str| {
        env(&[
            ("IDENTITY_ENDPOINT", &emu.service_fabric_endpoint()),
            ("IDENTITY_HEADER", header),
            (
                "IDENTITY_SERVER_THUMBPRINT",
                &emu.service_fabric_thumbprint(),
            ),
        ])
    };
    let sf = ManagedIdentityCredential::builder()
        .environment(sf_env(IDENTITY_HEADER))
        .retry(no_retry.clone())
        .build()
        .unwrap();
    let sf_faults = [
        Fault::Status {
            status: 401,
            retry_after: None,
            body: Some(error_body("unauthorized").to_string()),
        },
        Fault::Status {
            status: 500,
            retry_after: None,
            body: Some(error_body("server_error").to_string()),
        },
        Fault::Body {
            status: 200,
            content_type: "application/json".into(),
            body: format!("{{\"access_token\":\"{BODY_TOKEN}\",\"expires_on\":").into_bytes(),
        },
        Fault::Body {
            status: 200,
            content_type: "text/html".into(),
            body: format!("<html>{BODY_TOKEN}</html>").into_bytes(),
        },
        Fault::TruncatedJson,
        Fault::CloseConnection,
    ];
    for f in sf_faults {
        emu.push_fault(Endpoint::ServiceFabric, f);
        ev.result("Service Fabric fault", sf.get_token(&arm()).await);
    }
    let wrong_header = "CANARY-identity-header-wrong-31";
    ev.secret(wrong_header);
    for (what, e) in [
        ("Service Fabric wrong secret", sf_env(wrong_header)),
        (
            "App Service wrong header",
            env(&[
                ("IDENTITY_ENDPOINT", &emu.app_service_endpoint()),
                ("IDENTITY_HEADER", wrong_header),
            ]),
        ),
        (
            "Azure ML wrong secret",
            env(&[
                ("MSI_ENDPOINT", &emu.msi_endpoint()),
                ("MSI_SECRET", wrong_header),
            ]),
        ),
    ] {
        let cred = ManagedIdentityCredential::builder()
            .environment(e)
            .retry(no_retry.clone())
            .build()
            .unwrap();
        ev.result(what, cred.get_token(&arm()).await);
    }
    // The emulator's own faults on IMDS.
    let imds_once = ManagedIdentityCredential::builder()
        .environment(mi_envs[0].1.clone())
        .retry(no_retry.clone())
        .build()
        .unwrap();
    for f in [
        Fault::Html,
        Fault::HtmlError(502),
        Fault::TruncatedJson,
        Fault::Oversized(200_000),
        Fault::CloseConnection,
        Fault::Body {
            status: 400,
            content_type: "application/json".into(),
            body: error_body("invalid_request").to_string().into_bytes(),
        },
    ] {
        emu.push_fault(Endpoint::Imds, f);
        ev.result(
            "IMDS fault",
            imds_once
                .get_token(&TokenRequest::new(Audience::storage()))
                .await,
        );
    }
    // A retried status whose body carries token fields, twice: the retries run out.
    let imds_retrying = ManagedIdentityCredential::builder()
        .environment(mi_envs[0].1.clone())
        .retry(
            RetryOptions::default()
                .max_retries(1)
                .initial_delay(Duration::from_millis(10)),
        )
        .build()
        .unwrap();
    for _ in 0..2 {
        emu.push_fault(
            Endpoint::Imds,
            Fault::Status {
                status: 503,
                retry_after: Some("0".into()),
                body: Some(error_body("unavailable").to_string()),
            },
        );
    }
    ev.result(
        "IMDS retried fault",
        imds_retrying
            .get_token(&TokenRequest::new(Audience::storage()))
            .await,
    );
}
