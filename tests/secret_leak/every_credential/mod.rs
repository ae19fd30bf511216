//! No secret of any credential reaches a log line, a `Debug` or `Display` output or an error
//! chain: every managed-identity source (IMDS, App Service, Azure Arc with its key file,
//! Service Fabric, Cloud Shell, Azure ML / 2017-09-01), workload identity, client secret,
//! client certificate (PEM and PKCS#12), Azure CLI, a managed identity as federated credential,
//! `DefaultCredential`, and both middlewares, on their success paths and their failure paths
//! (refusals whose bodies carry token fields, HTML, truncated and malformed bodies, dropped
//! connections, wrong secrets, 401 recovery), all under a TRACE subscriber that captures
//! everything.
//!
//! Every secret is a unique canary (all contain `CANARY`), or a real token the emulator issued
//! (collected with `AccessToken::secret()`), or an assertion the certificate and federated
//! credentials built (captured on the wire).
#![cfg(unix)]

use entra_mi_test_support as support;

use std::fmt::{Debug, Display};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use entra_mi::credentials::{
    AzureCliCredential, ClientCertificate, ClientCertificateCredential, ClientSecretCredential,
    FederatedManagedIdentityCredential, TOKEN_EXCHANGE_AUDIENCE, WorkloadIdentityCredential,
};
use entra_mi::managed_identity::detect_source;
use entra_mi::middleware::BearerChallenge;
use entra_mi::{
    AccessToken, Audience, DefaultCredential, Environment, ManagedIdentityCredential, RetryOptions,
    Route, TokenCredential, TokenProvider, TokenRequest, TokenRouter,
};
use entra_mi_emulator::{App, Emulator, Endpoint, FEDERATED_ISSUER, Fault, Identity};
use entra_mi_reqwest::BearerAuthMiddleware;
use entra_mi_tower::{BearerAuthLayer, CloneBody};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use support::downstream::{Downstream, Mode};
use support::{RawServer, Reply};
use tower::{Layer, ServiceExt};

mod fixtures;

use fixtures::{CLIENT_SECRET, WRONG_SECRET, IDENTITY_HEADER, MSI_SECRET, ARC_KEY, PFX_PASSWORD, BODY_TOKEN, WI_FAKE, CLI_TOKEN, CLI_STDERR_TOKENS, AUD, Evidence, graph, arm, env, unix_now, TempDir, error_body, bad_replies, VarsFor, refuse_all, stand_in_az, cli, generate_certificate, pkcs12, assertions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_of_any_credential_or_middleware_leaks() {
    let logs = crate::logs();
    let mut ev = Evidence::default();
    for s in [
        CLIENT_SECRET,
        WRONG_SECRET,
        IDENTITY_HEADER,
        MSI_SECRET,
        ARC_KEY,
        PFX_PASSWORD,
        BODY_TOKEN,
        WI_FAKE,
        CLI_TOKEN,
    ] {
        ev.secret(s);
    }
    for s in CLI_STDERR_TOKENS {
        ev.secret(s);
    }

    // ---------------------------------------------------------------------------------------
    // One emulator for every credential: identity header, MSI secret, Arc key directory, and
    // apps for client secret, certificate, workload identity and the federated managed identity.
    let arc_dir = TempDir::new("arc");
    let realm = arc_dir.path().join("arc-realm.key");
    std::fs::write(&realm, ARC_KEY).unwrap();
    let g = generate_certificate();
    for line in g
        .key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .take(3)
    {
        ev.secret(line);
    }
    let system = Identity::system_assigned();
    let subject = "system:serviceaccount:default:leak";
    let secret_app = App::new("secret-daemon").with_secret(CLIENT_SECRET);
    let cert_app = App::new("cert-daemon").with_certificate(g.cert_der.clone());
    let wi_app = App::new("wi").with_federated_credential(FEDERATED_ISSUER, subject);
    let mi_issuer = format!(
        "https://sts.windows.net/{}/",
        entra_mi_emulator::DEFAULT_TENANT_ID
    );
    let fic_app = App::new("fic")
        .with_federated_credential(&mi_issuer, &system.object_id)
        .multi_tenant(true);
    let stranger = App::new("no-fic").multi_tenant(true);
    let emu = Emulator::builder()
        .system_assigned(Some(system.clone()))
        .identity_header(IDENTITY_HEADER)
        .msi_secret(MSI_SECRET)
        .arc_key_directory(arc_dir.path())
        .app(secret_app.clone())
        .app(cert_app.clone())
        .app(wi_app.clone())
        .app(fic_app.clone())
        .app(stranger.clone())
        .start()
        .await
        .unwrap();
    let no_retry = RetryOptions::default().max_retries(0);
    let authority = emu.authority_host();

    // ---------------------------------------------------------------------------------------
    // Managed identity, every source: success directly and through the cache.
    let mi_envs: Vec<(&str, Environment)> = vec![
        (
            "IMDS",
            env(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", &emu.imds_host())]),
        ),
        (
            "App Service",
            env(&[
                ("IDENTITY_ENDPOINT", &emu.app_service_endpoint()),
                ("IDENTITY_HEADER", IDENTITY_HEADER),
            ]),
        ),
        (
            "Azure Arc",
            env(&[
                ("IDENTITY_ENDPOINT", &emu.arc_endpoint()),
                ("IMDS_ENDPOINT", &emu.base_url()),
            ]),
        ),
        (
            "Service Fabric",
            env(&[
                ("IDENTITY_ENDPOINT", &emu.service_fabric_endpoint()),
                ("IDENTITY_HEADER", IDENTITY_HEADER),
                (
                    "IDENTITY_SERVER_THUMBPRINT",
                    &emu.service_fabric_thumbprint(),
                ),
            ]),
        ),
        (
            "Cloud Shell",
            env(&[("MSI_ENDPOINT", &emu.cloud_shell_endpoint())]),
        ),
        (
            "Azure ML",
            env(&[
                ("MSI_ENDPOINT", &emu.msi_endpoint()),
                ("MSI_SECRET", MSI_SECRET),
            ]),
        ),
    ];
    for (what, e) in &mi_envs {
        ev.debug(what, e);
        ev.result(what, detect_source(e));
        let builder = ManagedIdentityCredential::builder()
            .environment(e.clone())
            .arc_key_directory(arc_dir.path())
            .retry(no_retry.clone());
        ev.debug(what, &builder);
        let cred = builder.build().unwrap();
        ev.debug(what, &cred);
        let token = cred.get_token(&arm()).await.unwrap();
        ev.token(what, &token);
        let provider = TokenProvider::builder(cred.clone())
            .eager_refresh(true)
            .build();
        let handle = provider.handle(&Audience::microsoft_graph());
        let t = handle.token().await.unwrap();
        ev.token(what, &t);
        ev.debug(what, &handle.header().await.unwrap());
        assert!(handle.invalidate_if_current(&t));
        let t = handle.token().await.unwrap();
        ev.token(what, &t);
        ev.debug(what, &handle);
        ev.debug(what, &provider);
        ev.debug(what, &provider.stats());
        ev.debug(what, &provider.header(&Audience::storage()).await.unwrap());
    }
    // Arc with a key file of our own (the others were written by the emulator per challenge).
    emu.set_arc_challenge_path(Some(realm.clone()));
    let arc = ManagedIdentityCredential::builder()
        .environment(mi_envs[2].1.clone())
        .arc_key_directory(arc_dir.path())
        .build()
        .unwrap();
    let t = arc
        .get_token(&TokenRequest::new(Audience::key_vault()))
        .await
        .unwrap();
    ev.token("Arc with the realm file", &t);

    // Workload identity, client secret, certificate (PEM and PKCS#12), Azure CLI, federated MI.
    let wi_dir = TempDir::new("wi");
    let wi_file = wi_dir.path().join("token");
    let federated =
        emu.federated_token(subject, TOKEN_EXCHANGE_AUDIENCE, Duration::from_secs(3600));
    ev.secret(federated.clone());
    std::fs::write(&wi_file, &federated).unwrap();
    let builder = WorkloadIdentityCredential::builder(emu.tenant_id(), &wi_app.client_id, &wi_file)
        .authority_host(&authority)
        .allow_loopback_http(true);
    ev.debug("WI builder", &builder);
    let wi = builder.build().unwrap();
    ev.debug("WI", &wi);
    let t = wi.get_token(&graph()).await.unwrap();
    ev.token("WI", &t);

    let builder =
        ClientSecretCredential::builder(emu.tenant_id(), &secret_app.client_id, CLIENT_SECRET)
            .authority_host(&authority)
            .allow_loopback_http(true);
    ev.debug("secret builder", &builder);
    let secret_cred = builder.build().unwrap();
    ev.debug("secret", &secret_cred);
    let t = secret_cred.get_token(&graph()).await.unwrap();
    ev.token("secret", &t);
    let provider = TokenProvider::new(secret_cred);
    let t = provider.token(&Audience::microsoft_graph()).await.unwrap();
    ev.token("secret via cache", &t);
    ev.debug("secret provider", &provider);

    let pem =
        ClientCertificate::from_pem(format!("{}{}", g.cert_pem, g.key_pem).as_bytes()).unwrap();
    let p12 = pkcs12(&g, PFX_PASSWORD);
    let p12_path = wi_dir.path().join("cert.p12");
    std::fs::write(&p12_path, &p12).unwrap();
    let from_p12 = ClientCertificate::from_pkcs12(&p12, PFX_PASSWORD).unwrap();
    let from_file = ClientCertificate::from_file(&p12_path, Some(PFX_PASSWORD)).unwrap();
    for (what, cert) in [
        ("PEM", pem.clone()),
        ("PKCS#12", from_p12),
        ("PKCS#12 file", from_file),
    ] {
        ev.debug(what, &cert);
        let builder =
            ClientCertificateCredential::builder(emu.tenant_id(), &cert_app.client_id, cert)
                .authority_host(&authority)
                .allow_loopback_http(true)
                .send_certificate_chain(true);
        ev.debug(what, &builder);
        let cred = builder.build().unwrap();
        ev.debug(what, &cred);
        let t = cred.get_token(&graph()).await.unwrap();
        ev.token(what, &t);
    }
    for r in [
        ClientCertificate::from_pkcs12(&p12, "CANARY-pfx-wrong-password"),
        ClientCertificate::from_file(&p12_path, Some("CANARY-pfx-wrong-password")),
        ClientCertificate::from_pem(g.key_pem.as_bytes()),
        ClientCertificate::from_pem(
            format!("{}{}", generate_certificate().cert_pem, g.key_pem).as_bytes(),
        ),
    ] {
        ev.result("certificate input", r);
    }

    let az_ok = stand_in_az(
        "ok",
        &format!(
            "cat <<'EOF'\n{{\"accessToken\": \"{CLI_TOKEN}\", \"expiresOn\": \"2030-01-01 12:00:00.000000\", \"expires_on\": {}, \"tokenType\": \"Bearer\"}}\nEOF",
            unix_now() + 3600
        ),
    );
    let az = cli(&az_ok);
    ev.debug("az", &az);
    ev.debug("az builder", &AzureCliCredential::builder());
    let t = az.get_token(&arm()).await.unwrap();
    assert_eq!(t.secret(), CLI_TOKEN);
    ev.token("az", &t);

    let mi_imds = ManagedIdentityCredential::builder()
        .environment(mi_envs[0].1.clone())
        .build()
        .unwrap();
    let builder = FederatedManagedIdentityCredential::builder(
        emu.tenant_id(),
        &fic_app.client_id,
        mi_imds.clone(),
    )
    .authority_host(&authority)
    .allow_loopback_http(true);
    ev.debug("federated MI builder", &builder);
    let fic = builder.build().unwrap();
    ev.debug("federated MI", &fic);
    let t = fic.get_token(&graph()).await.unwrap();
    ev.token("federated MI", &t);
    // The assertion it sent: the managed identity's token for the exchange audience (the
    // emulator hands out the same one again while it is young).
    let assertion = mi_imds
        .get_token(&TokenRequest::new(
            Audience::new(TOKEN_EXCHANGE_AUDIENCE).unwrap(),
        ))
        .await
        .unwrap();
    ev.token("federated MI assertion", &assertion);

    // DefaultCredential: environment (secret), workload identity, managed identity.
    let chain_envs = [
        env(&[
            ("AZURE_TENANT_ID", &emu.tenant_id()),
            ("AZURE_CLIENT_ID", &secret_app.client_id),
            ("AZURE_CLIENT_SECRET", CLIENT_SECRET),
            ("AZURE_AUTHORITY_HOST", &authority),
            ("PATH", "/nonexistent"),
        ]),
        env(&[
            ("AZURE_TENANT_ID", &emu.tenant_id()),
            ("AZURE_CLIENT_ID", &wi_app.client_id),
            ("AZURE_FEDERATED_TOKEN_FILE", &wi_file.display().to_string()),
            ("AZURE_AUTHORITY_HOST", &authority),
            ("PATH", "/nonexistent"),
        ]),
        env(&[
            ("IDENTITY_ENDPOINT", &emu.app_service_endpoint()),
            ("IDENTITY_HEADER", IDENTITY_HEADER),
            ("PATH", "/nonexistent"),
        ]),
    ];
    for e in chain_envs {
        let builder = DefaultCredential::builder()
            .environment(e)
            .allow_loopback_http(true)
            .imds_probe_timeout(Duration::from_millis(300));
        ev.debug("chain builder", &builder);
        let chain = builder.build().unwrap();
        let t = chain.get_token(&graph()).await.unwrap();
        ev.token("chain", &t);
        ev.debug("chain", &chain);
        ev.debug("chain links", &(chain.links(), chain.selected()));
    }

    // ---------------------------------------------------------------------------------------
    // Failure paths of the managed-identity sources, against scripted servers.
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
            &mut ev,
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

    // ---------------------------------------------------------------------------------------
    // Failure paths of the token-endpoint credentials.
    let authority_of = |s: &RawServer| s.url("");
    refuse_all(
        &mut ev,
        "client secret",
        |s| {
            ClientSecretCredential::builder("contoso", &secret_app.client_id, CLIENT_SECRET)
                .authority_host(authority_of(s))
                .allow_loopback_http(true)
                .build()
                .unwrap()
        },
        &graph(),
        true,
        None,
    )
    .await;
    let server = refuse_all(
        &mut ev,
        "certificate",
        |s| {
            ClientCertificateCredential::builder("contoso", &cert_app.client_id, pem.clone())
                .authority_host(authority_of(s))
                .allow_loopback_http(true)
                .send_certificate_chain(true)
                .build()
                .unwrap()
        },
        &graph(),
        false,
        None,
    )
    .await;
    let sent = assertions(&server);
    assert!(sent.len() >= bad_replies(false).len());
    for a in sent {
        ev.secret(a);
    }
    let fake_file = wi_dir.path().join("fake-token");
    std::fs::write(&fake_file, WI_FAKE).unwrap();
    let server = refuse_all(
        &mut ev,
        "workload identity",
        |s| {
            WorkloadIdentityCredential::builder("contoso", &wi_app.client_id, &fake_file)
                .authority_host(authority_of(s))
                .allow_loopback_http(true)
                .build()
                .unwrap()
        },
        &graph(),
        false,
        None,
    )
    .await;
    assert!(assertions(&server).iter().all(|a| a == WI_FAKE));
    let server = refuse_all(
        &mut ev,
        "federated MI",
        |s| {
            FederatedManagedIdentityCredential::builder(
                "contoso",
                &fic_app.client_id,
                mi_imds.clone(),
            )
            .authority_host(authority_of(s))
            .allow_loopback_http(true)
            .build()
            .unwrap()
        },
        &graph(),
        false,
        None,
    )
    .await;
    let sent = assertions(&server);
    assert!(!sent.is_empty());
    for a in sent {
        ev.secret(a);
    }
    // Refusals by the emulator's Entra: wrong secret, unknown certificate, federated tokens of
    // the wrong audience or already expired, a file that is not a JWT, an app without the
    // managed identity as federated credential.
    let wrong =
        ClientSecretCredential::builder(emu.tenant_id(), &secret_app.client_id, WRONG_SECRET)
            .authority_host(&authority)
            .allow_loopback_http(true)
            .build()
            .unwrap();
    ev.result("wrong secret", wrong.get_token(&graph()).await);
    let other = generate_certificate();
    let other =
        ClientCertificate::from_pem(format!("{}{}", other.cert_pem, other.key_pem).as_bytes())
            .unwrap();
    let cred = ClientCertificateCredential::builder(emu.tenant_id(), &cert_app.client_id, other)
        .authority_host(&authority)
        .allow_loopback_http(true)
        .build()
        .unwrap();
    ev.result("unknown certificate", cred.get_token(&graph()).await);
    for content in [
        emu.federated_token(subject, "api://other", Duration::from_secs(3600)),
        emu.federated_token(subject, TOKEN_EXCHANGE_AUDIENCE, Duration::ZERO),
        emu.federated_token(
            "system:serviceaccount:default:other",
            TOKEN_EXCHANGE_AUDIENCE,
            Duration::from_secs(3600),
        ),
        "CANARY-not-a-jwt".to_owned(),
    ] {
        ev.secret(content.clone());
        std::fs::write(&wi_file, &content).unwrap();
        ev.result("workload identity refused", wi.get_token(&graph()).await);
    }
    let cred = FederatedManagedIdentityCredential::builder(
        emu.tenant_id(),
        &stranger.client_id,
        mi_imds.clone(),
    )
    .authority_host(&authority)
    .allow_loopback_http(true)
    .build()
    .unwrap();
    ev.result("federated MI refused", cred.get_token(&graph()).await);

    // The Azure CLI failing with tokens in its output.
    let [newline, quoted, json_err] = CLI_STDERR_TOKENS;
    for (tag, body) in [
        ("garbage", format!("echo 'hello {CLI_TOKEN} world'")),
        (
            "nojson",
            format!("echo '{{\"accessToken\": \"{CLI_TOKEN}\"}}'"),
        ),
        (
            "newline",
            format!("printf 'ERROR: the request failed\\n{newline}\\n' >&2\nexit 1"),
        ),
        (
            "quoted",
            format!("echo \"ERROR: token '{quoted}' was rejected (AADSTS50013)\" >&2\nexit 1"),
        ),
        (
            "json",
            format!("echo '{{\"accessToken\": \"{json_err}\"}}' >&2\nexit 2"),
        ),
        (
            "login",
            "echo \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1".to_owned(),
        ),
    ] {
        let d = stand_in_az(tag, &body);
        ev.result(tag, cli(&d).get_token(&arm()).await);
    }

    // DefaultCredential failing: a wrong secret, and every link unavailable (a closed IMDS
    // port, an `az` that fails with a token on stderr).
    let refused = support::RefusedPort::new();
    let closed = refused.url();
    let az_fail = stand_in_az(
        "chain",
        &format!("printf 'ERROR: failed\\n{newline}\\n' >&2\nexit 1"),
    );
    for e in [
        env(&[
            ("AZURE_TENANT_ID", &emu.tenant_id()),
            ("AZURE_CLIENT_ID", &secret_app.client_id),
            ("AZURE_CLIENT_SECRET", WRONG_SECRET),
            ("AZURE_AUTHORITY_HOST", &authority),
            ("PATH", "/nonexistent"),
        ]),
        env(&[
            ("AZURE_POD_IDENTITY_AUTHORITY_HOST", &closed),
            (
                "PATH",
                &format!("{}:/usr/bin:/bin", az_fail.path().display()),
            ),
        ]),
    ] {
        let chain = DefaultCredential::builder()
            .environment(e)
            .allow_loopback_http(true)
            .imds_probe_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        ev.result("chain failure", chain.get_token(&graph()).await);
        ev.debug("failed chain", &chain);
    }

    // ---------------------------------------------------------------------------------------
    // Both middlewares end to end: success, 401 recovery, 401 returned, a claims challenge,
    // and no token at all.
    let emu_mw = Emulator::builder()
        .cache_tokens(false)
        .start()
        .await
        .unwrap();
    let api = Downstream::start(&emu_mw, AUD).await;
    let provider = TokenProvider::new(support::emulator_credential(&emu_mw));
    let route = || Route::new(&api.url("/"), Audience::new(AUD).unwrap()).unwrap();
    ev.both("route", &route());
    let router_builder = TokenRouter::builder(&provider)
        .route(route())
        .allow_http_loopback(true);
    ev.debug("router builder", &router_builder);
    let router = router_builder.build().unwrap();
    ev.debug("router", &router);
    let bound = router
        .match_url(&url::Url::parse(&api.url("/x")).unwrap())
        .unwrap();
    ev.debug("bound route", bound);
    let mw_builder = BearerAuthMiddleware::builder(&provider)
        .route(route())
        .allow_http_loopback(true);
    ev.debug("middleware builder", &mw_builder);
    let mw = mw_builder.build().unwrap();
    ev.debug("middleware", &mw);
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(mw)
        .build();
    ev.debug("reqwest client", &client);
    let claims = Mode::ClaimsOnce {
        claims: r#"{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}"#.into(),
        url_safe: true,
    };
    for (mode, expected) in [
        (Mode::Accept, 200),
        (Mode::RevokeNext, 200),
        (claims.clone(), 200),
        (Mode::RejectAll, 401),
    ] {
        api.set_mode(mode);
        let resp = client
            .post(api.url("/orders"))
            .body("{\"id\":1}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), expected);
        ev.debug("reqwest response", &resp);
    }
    api.set_mode(Mode::Accept);

    let layer_builder = BearerAuthLayer::builder(&provider)
        .route(route())
        .allow_http_loopback(true);
    ev.debug("layer builder", &layer_builder);
    let layer = layer_builder.build().unwrap().with_replay(CloneBody);
    ev.debug("layer", &layer);
    let svc = layer.layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    ev.debug("tower service", &svc);
    for (mode, expected) in [
        (Mode::Accept, 200),
        (Mode::RevokeNext, 200),
        (claims, 200),
        (Mode::RejectAll, 401),
    ] {
        api.set_mode(mode);
        let req = http::Request::post(api.url("/orders"))
            .body(Full::new(Bytes::from_static(b"{\"id\":2}")))
            .unwrap();
        let mut ready = svc.clone();
        let fut = tower::Service::call(ready.ready().await.unwrap(), req);
        ev.debug("tower future", &fut);
        let resp = fut.await.unwrap();
        assert_eq!(resp.status(), expected);
        ev.debug("tower response", &resp);
    }
    api.set_mode(Mode::Accept);
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static(
            r#"Bearer error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnt9fQ==""#,
        ),
    );
    ev.debug("challenge", &BearerChallenge::from_headers(&headers));
    ev.debug("provider", &provider);
    ev.debug("stats", &provider.stats());
    for s in api.seen() {
        if let Some(token) = s
            .authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
        {
            ev.secret(token);
        }
    }
    assert!(api.distinct_tokens() >= 4, "401 recovery got new tokens");

    // No token to be had: the middlewares' errors.
    let failing = RawServer::start(Reply::json(400, error_body("invalid_request"))).await;
    let bad_provider = TokenProvider::new(
        ManagedIdentityCredential::builder()
            .environment(env(&[
                ("IDENTITY_ENDPOINT", &failing.url("/msi/token")),
                ("IDENTITY_HEADER", IDENTITY_HEADER),
            ]))
            .retry(no_retry.clone())
            .build()
            .unwrap(),
    );
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(
            BearerAuthMiddleware::builder(&bad_provider)
                .route(route())
                .allow_http_loopback(true)
                .build()
                .unwrap(),
        )
        .build();
    let err = client.get(api.url("/orders")).send().await.unwrap_err();
    ev.error("reqwest middleware error", &err);
    let svc = BearerAuthLayer::builder(&bad_provider)
        .route(route())
        .allow_http_loopback(true)
        .build()
        .unwrap()
        .layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let err = svc
        .oneshot(
            http::Request::get(api.url("/orders"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap_err();
    ev.error("tower layer error", &*err);
    ev.debug("failing provider", &bad_provider);

    // Key files the emulator wrote for Arc challenges.
    for entry in std::fs::read_dir(arc_dir.path()).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "key") {
            ev.secret(std::fs::read_to_string(entry.path()).unwrap());
        }
    }
    // A token made up here, every way it can be shown.
    let t = AccessToken::new(BODY_TOKEN, SystemTime::now() + Duration::from_secs(60));
    ev.token("made-up token", &t);
    ev.debug(
        "request with claims",
        &graph().with_claims(format!("{{\"x\":\"{BODY_TOKEN}\"}}")),
    );

    // ---------------------------------------------------------------------------------------
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = logs.text();
    assert!(logs.contains("token cached"), "TRACE capture works");
    assert!(logs.len() > 10_000, "{} bytes of logs", logs.len());
    let shown = ev.shown.join("\n");
    println!(
        "{} secrets, {} errors, {} outputs ({} bytes), {} bytes of logs",
        ev.secrets.len(),
        ev.errors,
        ev.shown.len(),
        shown.len(),
        logs.len()
    );
    assert!(ev.errors >= 80, "failure paths ran: {}", ev.errors);
    assert!(
        ev.secrets.len() >= 60,
        "secrets collected: {}",
        ev.secrets.len()
    );
    assert!(shown.contains("redacted") || shown.contains("Sensitive"));
    let mut leaks = Vec::new();
    for (what, text) in [("logs", &logs), ("Debug/Display/errors", &shown)] {
        if text.contains("CANARY") {
            let at = text.find("CANARY").unwrap();
            let from = text[..at]
                .char_indices()
                .rev()
                .nth(200)
                .map_or(0, |(i, _)| i);
            leaks.push(format!(
                "a canary in {what}: …{}…",
                &text[from..(at + 60).min(text.len())]
            ));
        }
        for secret in &ev.secrets {
            // Any 16-character piece of a token is enough to flag a leak; canaries are checked
            // whole (and by their common marker above).
            let piece = if secret.len() >= 40 {
                &secret[secret.len() - 24..secret.len() - 8]
            } else {
                secret.as_str()
            };
            if text.contains(secret.as_str()) || text.contains(piece) {
                leaks.push(format!(
                    "a secret ({} chars, ends …{}) in {what}",
                    secret.len(),
                    &secret[secret.len().saturating_sub(6)..]
                ));
            }
        }
    }
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
}
