//! Success paths: every managed-identity source directly and through the cache, workload
//! identity, client secret, certificate (PEM and PKCS#12), Azure CLI, a managed identity as
//! federated credential, and `DefaultCredential`.

use super::*;

pub(super) async fn run(w: &World, ev: &mut Evidence) -> Built {
    let World {
        arc_dir,
        realm,
        g,
        subject,
        secret_app,
        cert_app,
        wi_app,
        fic_app,
        emu,
        no_retry,
        authority,
        ..
    } = w;
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
        .authority_host(authority.as_str())
        .allow_loopback_http(true);
    ev.debug("WI builder", &builder);
    let wi = builder.build().unwrap();
    ev.debug("WI", &wi);
    let t = wi.get_token(&graph()).await.unwrap();
    ev.token("WI", &t);

    let builder =
        ClientSecretCredential::builder(emu.tenant_id(), &secret_app.client_id, CLIENT_SECRET)
            .authority_host(authority.as_str())
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
    let p12 = pkcs12(g, PFX_PASSWORD);
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
                .authority_host(authority.as_str())
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
    .authority_host(authority.as_str())
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
            ("AZURE_AUTHORITY_HOST", authority),
            ("PATH", "/nonexistent"),
        ]),
        env(&[
            ("AZURE_TENANT_ID", &emu.tenant_id()),
            ("AZURE_CLIENT_ID", &wi_app.client_id),
            ("AZURE_FEDERATED_TOKEN_FILE", &wi_file.display().to_string()),
            ("AZURE_AUTHORITY_HOST", authority),
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
    Built {
        mi_envs,
        mi_imds,
        pem,
        wi,
        wi_dir,
        wi_file,
    }
}
