//! Environment: a bad and an empty value of every variable.

use super::*;

/// A typed configuration error naming `variable`, whose reason says `needle`.
fn assert_config(err: &Error, variable: &str, needle: &str) {
    assert_clean(err);
    match err {
        Error::Configuration(family)
            if let entra_mi::error::ConfigurationError::Setting { setting, reason } =
                family.as_ref() =>
        {
            assert_eq!(setting, variable, "{err}");
            assert!(reason.contains(needle), "{needle:?} not in {reason:?}");
        }
        other => panic!("{variable}: expected Configuration, got {other:?}"),
    }
    assert!(err.to_string().contains(variable), "{err}");
}

/// A credential that is not set up, saying `variable` is missing.
fn assert_not_set(err: &Error, variable: &str) {
    assert!(
        matches!(err, Error::Credential(family) if matches!(family.as_ref(), entra_mi::error::CredentialError::Unavailable { reason, .. } if reason.contains(variable) && reason.contains("not set"))),
        "{variable}: {err:?}"
    );
    assert!(err.is_unavailable());
}

fn mi_build(vars: &[(&str, &str)]) -> Result<ManagedIdentityCredential, Error> {
    ManagedIdentityCredential::builder()
        .environment(env(vars))
        .arc_key_directory(std::env::temp_dir())
        .build()
}

/// Writes a self-signed certificate with its key as PEM, and as PKCS#12 under `password`.
fn certificate_files(dir: &Path, password: &str) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let params = rcgen::CertificateParams::new(vec!["daemon.example".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let pem = dir.join("cert.pem");
    std::fs::write(&pem, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
    let mut store = p12_keystore::KeyStore::new();
    let chain = p12_keystore::PrivateKeyChain::new(
        "1",
        p12_keystore::PrivateKey::from_der(&key.serialize_der()).unwrap(),
        [p12_keystore::Certificate::from_der(cert.der()).unwrap()],
    );
    store.add_entry(
        "daemon",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    let p12 = dir.join("cert.p12");
    std::fs::write(&p12, store.writer(password).write().unwrap()).unwrap();
    (pem, p12)
}

#[tokio::test]
async fn bad_and_empty_environment_values() {
    let mut checked: Vec<(&str, &str)> = Vec::new();
    // The credentials below run on the system clock: the answers' `expires_on` must be real.
    let clock = ManualClock::with_wall_time(std::time::SystemTime::now());
    let server = RawServer::start(token_reply(&clock, "tok")).await;
    let guid = "11111111-2222-3333-4444-555555555555";
    let tenant = "contoso.onmicrosoft.com";

    // IDENTITY_ENDPOINT
    let err =
        mi_build(&[("IDENTITY_ENDPOINT", "not a url"), ("IDENTITY_HEADER", "h")]).unwrap_err();
    assert_config(&err, "IDENTITY_ENDPOINT", "not an absolute URL");
    let cred = mi_build(&[("IDENTITY_ENDPOINT", ""), ("IDENTITY_HEADER", "h")]).unwrap();
    assert_eq!(
        cred.source_kind(),
        SourceKind::Imds,
        "empty counts as unset"
    );
    checked.push(("IDENTITY_ENDPOINT", "bad: not a URL · empty: unset"));

    // IDENTITY_HEADER: checked per request (it rotates), before anything is sent.
    let cred = mi_build(&[
        ("IDENTITY_ENDPOINT", &server.url("/msi/token")),
        ("IDENTITY_HEADER", "line\nbreak"),
    ])
    .unwrap();
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert_config(&err, "IDENTITY_HEADER", "not allowed in an HTTP header");
    let err = mi_build(&[
        ("IDENTITY_ENDPOINT", &server.url("/msi/token")),
        ("IDENTITY_HEADER", ""),
    ])
    .unwrap_err();
    assert_config(&err, "IDENTITY_ENDPOINT", "refusing to guess");
    checked.push(("IDENTITY_HEADER", "bad: newline · empty: source ambiguous"));

    // IDENTITY_SERVER_THUMBPRINT
    let sf = |thumb: &str| {
        mi_build(&[
            (
                "IDENTITY_ENDPOINT",
                "https://127.0.0.1:2377/metadata/identity/oauth2/token",
            ),
            ("IDENTITY_HEADER", "h"),
            ("IDENTITY_SERVER_THUMBPRINT", thumb),
        ])
    };
    assert_config(
        &sf("not-a-thumbprint").unwrap_err(),
        "IDENTITY_SERVER_THUMBPRINT",
        "40 hexadecimal digits",
    );
    assert_eq!(sf("").unwrap().source_kind(), SourceKind::AppService);
    checked.push((
        "IDENTITY_SERVER_THUMBPRINT",
        "bad: not hex · empty: App Service",
    ));

    // IMDS_ENDPOINT
    let arc = |imds: &str| {
        mi_build(&[
            ("IDENTITY_ENDPOINT", &server.url("/arc/token")),
            ("IMDS_ENDPOINT", imds),
        ])
    };
    assert_config(
        &arc("not a url").unwrap_err(),
        "IMDS_ENDPOINT",
        "not an absolute URL",
    );
    assert_eq!(
        arc(&server.url("")).unwrap().source_kind(),
        SourceKind::AzureArc
    );
    assert_config(
        &arc("").unwrap_err(),
        "IDENTITY_ENDPOINT",
        "refusing to guess",
    );
    checked.push(("IMDS_ENDPOINT", "bad: not a URL · empty: source ambiguous"));

    // MSI_ENDPOINT
    let err = mi_build(&[("MSI_ENDPOINT", "not a url"), ("MSI_SECRET", "s")]).unwrap_err();
    assert_config(&err, "MSI_ENDPOINT", "not an absolute URL");
    let cred = mi_build(&[("MSI_ENDPOINT", ""), ("MSI_SECRET", "s")]).unwrap();
    assert_eq!(cred.source_kind(), SourceKind::Imds);
    checked.push(("MSI_ENDPOINT", "bad: not a URL · empty: unset"));

    // MSI_SECRET
    let msi = |secret: &str| {
        mi_build(&[
            ("MSI_ENDPOINT", &server.url("/MSI/auth")),
            ("MSI_SECRET", secret),
        ])
        .unwrap()
    };
    let err = msi("carriage\rreturn")
        .get_token(&graph())
        .await
        .unwrap_err();
    assert_config(&err, "MSI_SECRET", "not allowed in an HTTP header");
    assert_eq!(msi("").source_kind(), SourceKind::CloudShell);
    checked.push(("MSI_SECRET", "bad: control character · empty: Cloud Shell"));

    // AZURE_POD_IDENTITY_AUTHORITY_HOST
    let err = mi_build(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", "169.254.169.254")]).unwrap_err();
    assert_config(
        &err,
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        "not an absolute URL",
    );
    let cred = mi_build(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", "")]).unwrap();
    assert_eq!(
        cred.endpoint(),
        "http://169.254.169.254/metadata/identity/oauth2/token",
        "empty: the well-known address (built, never contacted here)"
    );
    checked.push((
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        "bad: no scheme · empty: default",
    ));

    // DEFAULT_IDENTITY_CLIENT_ID: checked per request, before anything is sent.
    let ml = |default: &str| {
        mi_build(&[
            ("MSI_ENDPOINT", &server.url("/MSI/auth")),
            ("MSI_SECRET", "s"),
            ("DEFAULT_IDENTITY_CLIENT_ID", default),
        ])
        .unwrap()
    };
    let before = server.count();
    for (bad, needle) in [("not-a-guid", "a GUID"), ("clientid", "placeholder")] {
        let err = ml(bad).get_token(&graph()).await.unwrap_err();
        assert_config(&err, "DEFAULT_IDENTITY_CLIENT_ID", needle);
    }
    assert_eq!(server.count(), before, "nothing sent");
    ml("").get_token(&graph()).await.unwrap();
    assert_eq!(server.requests().last().unwrap().query("clientid"), None);
    checked.push((
        "DEFAULT_IDENTITY_CLIENT_ID",
        "bad: not a GUID, placeholder · empty: omitted",
    ));

    // AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_AUTHORITY_HOST
    let secret_env = |t: &str, c: &str, s: &str, a: Option<&str>| {
        let mut v = vec![
            ("AZURE_TENANT_ID", t),
            ("AZURE_CLIENT_ID", c),
            ("AZURE_CLIENT_SECRET", s),
        ];
        if let Some(a) = a {
            v.push(("AZURE_AUTHORITY_HOST", a));
        }
        ClientSecretCredential::from_environment(&env(&v))
    };
    assert_config(
        &secret_env("contoso/../x", guid, SECRET, None).unwrap_err(),
        "AZURE_TENANT_ID",
        "letters, digits",
    );
    assert_not_set(
        &secret_env("", guid, SECRET, None).unwrap_err(),
        "AZURE_TENANT_ID",
    );
    checked.push(("AZURE_TENANT_ID", "bad: path characters · empty: not set"));
    assert_config(
        &secret_env(tenant, "not a guid!", SECRET, None).unwrap_err(),
        "AZURE_CLIENT_ID",
        "a GUID",
    );
    assert_not_set(
        &secret_env(tenant, "", SECRET, None).unwrap_err(),
        "AZURE_CLIENT_ID",
    );
    checked.push(("AZURE_CLIENT_ID", "bad: not a GUID · empty: not set"));
    assert_config(
        &secret_env(tenant, guid, SECRET, Some("login.microsoftonline.com")).unwrap_err(),
        "AZURE_AUTHORITY_HOST",
        "not an absolute URL",
    );
    assert_config(
        &secret_env(tenant, guid, SECRET, Some("http://login.example")).unwrap_err(),
        "AZURE_AUTHORITY_HOST",
        "must be an https URL",
    );
    secret_env(tenant, guid, SECRET, Some("")).expect("empty: the public cloud (not contacted)");
    checked.push((
        "AZURE_AUTHORITY_HOST",
        "bad: no scheme, http · empty: public cloud",
    ));
    assert_not_set(
        &secret_env(tenant, guid, "", None).unwrap_err(),
        "AZURE_CLIENT_SECRET",
    );
    {
        // A wrong secret, read from the environment by the default chain, at the emulator.
        let app = App::new("daemon").with_secret(SECRET);
        let emu = Emulator::builder().app(app.clone()).start().await.unwrap();
        let chain = DefaultCredential::builder()
            .environment(env(&[
                ("AZURE_TENANT_ID", &emu.tenant_id()),
                ("AZURE_CLIENT_ID", &app.client_id),
                ("AZURE_CLIENT_SECRET", "CANARY-wrong"),
                ("AZURE_AUTHORITY_HOST", &emu.authority_host()),
            ]))
            .links(&[ChainLink::Environment])
            .allow_loopback_http(true)
            .build()
            .unwrap();
        let err = chain.get_token(&graph()).await.unwrap_err();
        assert_clean(&err);
        match &err {
            Error::Chain(chain) => {
                let attempts = &chain.attempts;
                assert_eq!(attempts.len(), 1);
                assert!(!attempts[0].unavailable);
                assert!(attempts[0].reason.contains("AADSTS7000215"), "{err}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(emu.requests(Endpoint::EntraToken), 1);
    }
    checked.push((
        "AZURE_CLIENT_SECRET",
        "bad: wrong (AADSTS7000215) · empty: not set",
    ));

    // AZURE_FEDERATED_TOKEN_FILE: read per request, before anything is sent.
    let dir = TempDir::new("env");
    let wi = |file: &str| {
        WorkloadIdentityCredential::from_environment(&env(&[
            ("AZURE_TENANT_ID", tenant),
            ("AZURE_CLIENT_ID", guid),
            ("AZURE_FEDERATED_TOKEN_FILE", file),
        ]))
    };
    let not_jwt = dir.path().join("not-a-jwt");
    std::fs::write(&not_jwt, "CANARY not a jwt").unwrap();
    for (file, needle) in [
        (dir.path().join("missing"), "does not exist"),
        (dir.path().to_path_buf(), "not a regular file"),
        (not_jwt, "not a JWT"),
    ] {
        let err = wi(&file.display().to_string())
            .unwrap()
            .get_token(&graph())
            .await
            .unwrap_err();
        assert_config(&err, "AZURE_FEDERATED_TOKEN_FILE", needle);
    }
    assert_not_set(&wi("").unwrap_err(), "AZURE_FEDERATED_TOKEN_FILE");
    checked.push((
        "AZURE_FEDERATED_TOKEN_FILE",
        "bad: missing, a directory, not a JWT · empty: not set",
    ));

    // AZURE_CLIENT_CERTIFICATE_PATH, _PASSWORD, AZURE_CLIENT_SEND_CERTIFICATE_CHAIN
    let (pem, p12) = certificate_files(dir.path(), "pfx-password");
    let cert = |path: &Path, password: &str, chain: &str| {
        ClientCertificateCredential::from_environment(&env(&[
            ("AZURE_TENANT_ID", tenant),
            ("AZURE_CLIENT_ID", guid),
            ("AZURE_CLIENT_CERTIFICATE_PATH", &path.display().to_string()),
            ("AZURE_CLIENT_CERTIFICATE_PASSWORD", password),
            ("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", chain),
        ]))
    };
    assert_config(
        &cert(&dir.path().join("missing.pem"), "", "").unwrap_err(),
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "does not exist",
    );
    assert_not_set(
        &cert(Path::new(""), "", "").unwrap_err(),
        "AZURE_CLIENT_CERTIFICATE_PATH",
    );
    checked.push((
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "bad: missing file · empty: not set",
    ));
    cert(&p12, "pfx-password", "").expect("the right password");
    for password in ["wrong", ""] {
        assert_config(
            &cert(&p12, password, "").unwrap_err(),
            "AZURE_CLIENT_CERTIFICATE_PATH",
            "password is wrong",
        );
    }
    checked.push((
        "AZURE_CLIENT_CERTIFICATE_PASSWORD",
        "bad: wrong · empty: no password (wrong)",
    ));
    for ok in ["", "1", "true", "TRUE", "0", "false"] {
        cert(&pem, "", ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
    assert_config(
        &cert(&pem, "", "maybe").unwrap_err(),
        "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN",
        "expected `1`, `true`, `0` or `false`",
    );
    checked.push((
        "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN",
        "bad: `maybe` · empty: off",
    ));

    // AZURE_TOKEN_CREDENTIALS
    let chain = |v: &str| {
        DefaultCredential::builder()
            .environment(env(&[("AZURE_TOKEN_CREDENTIALS", v)]))
            .build()
    };
    assert_config(&chain("bogus").unwrap_err(), "AZURE_TOKEN_CREDENTIALS", "");
    assert_eq!(
        chain("").unwrap().links().len(),
        4,
        "empty: the whole chain"
    );
    checked.push((
        "AZURE_TOKEN_CREDENTIALS",
        "bad: unknown name · empty: every link",
    ));

    // PATH (where `az` is looked up)
    for path in ["/nonexistent-entra-mi-dir", "relative/dir", ""] {
        let cli = AzureCliCredential::builder()
            .environment(env(&[("PATH", path)]))
            .build()
            .unwrap();
        let err = cli.get_token(&graph()).await.unwrap_err();
        assert!(
            matches!(&err, Error::Credential(family) if matches!(family.as_ref(), entra_mi::error::CredentialError::Unavailable { reason, .. } if reason.contains("not found"))),
            "PATH={path:?}: {err:?}"
        );
    }
    checked.push(("PATH", "bad: no az, relative · empty: az not found"));

    println!("environment variables, a bad and an empty value each:");
    for (name, what) in &checked {
        println!("  {name:<38} {what}");
    }
    println!("{} variables", checked.len());
    assert_eq!(checked.len(), 18);
}
