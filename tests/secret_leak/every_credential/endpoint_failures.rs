//! Failure paths of the token-endpoint credentials: scripted servers and the emulator's Entra
//! refusals, the Azure CLI failing, and `DefaultCredential` failing.

use super::*;

pub(super) async fn run(w: &World, built: &Built, ev: &mut Evidence) {
    let World {
        authority,
        cert_app,
        emu,
        fic_app,
        secret_app,
        stranger,
        subject,
        wi_app,
        ..
    } = w;
    let Built {
        mi_imds,
        pem,
        wi,
        wi_dir,
        wi_file,
        ..
    } = built;
    let authority_of = |s: &RawServer| s.url("");
    refuse_all(
        &mut *ev,
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
        &mut *ev,
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
        &mut *ev,
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
        &mut *ev,
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
            .authority_host(authority.as_str())
            .allow_loopback_http(true)
            .build()
            .unwrap();
    ev.result("wrong secret", wrong.get_token(&graph()).await);
    let other = generate_certificate();
    let other =
        ClientCertificate::from_pem(format!("{}{}", other.cert_pem, other.key_pem).as_bytes())
            .unwrap();
    let cred = ClientCertificateCredential::builder(emu.tenant_id(), &cert_app.client_id, other)
        .authority_host(authority.as_str())
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
        std::fs::write(wi_file, &content).unwrap();
        ev.result("workload identity refused", wi.get_token(&graph()).await);
    }
    let cred = FederatedManagedIdentityCredential::builder(
        emu.tenant_id(),
        &stranger.client_id,
        mi_imds.clone(),
    )
    .authority_host(authority.as_str())
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
            ("AZURE_AUTHORITY_HOST", authority),
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
}
