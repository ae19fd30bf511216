//! The client-certificate credential against the emulator's token endpoint, which verifies the
//! assertion's signature against the registered certificate, its `aud`, `iss`/`sub`, `exp` and
//! `jti`: PEM and PKCS#12 input, the optional `x5c` chain, and every bad input — wrong
//! password, bad PEM, a key of another certificate, an expired certificate.

use entra_mi_test_support as support;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use entra_mi::credentials::{ChainLink, ClientCertificate, ClientCertificateCredential};
use entra_mi::{Audience, DefaultCredential, Environment, Error, TokenCredential, TokenRequest};
use entra_mi_emulator::{App, Emulator, Endpoint};
use support::jwt_claims;

struct Generated {
    cert_der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
    key_der: Vec<u8>,
}

fn generate(expired: bool) -> Generated {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["daemon.example".to_owned()]).unwrap();
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let cert = params.self_signed(&key).unwrap();
    Generated {
        cert_der: cert.der().to_vec(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        key_der: key.serialize_der(),
    }
}

fn pkcs12(g: &Generated, password: &str) -> Vec<u8> {
    let mut store = p12_keystore::KeyStore::new();
    let chain = p12_keystore::PrivateKeyChain::new(
        "1",
        p12_keystore::PrivateKey::from_der(&g.key_der).unwrap(),
        [p12_keystore::Certificate::from_der(&g.cert_der).unwrap()],
    );
    store.add_entry(
        "daemon",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    store.writer(password).write().unwrap()
}

fn temp_path(tag: &str) -> PathBuf {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!("entra-mi-cert-{tag}-{}-{n}", std::process::id()))
}

fn graph() -> TokenRequest {
    TokenRequest::new(Audience::microsoft_graph())
}

fn credential(
    emu: &Emulator,
    app: &App,
    cert: ClientCertificate,
    chain: bool,
) -> ClientCertificateCredential {
    ClientCertificateCredential::builder(emu.tenant_id(), &app.client_id, cert)
        .authority_host(emu.authority_host())
        .allow_loopback_http(true)
        .send_certificate_chain(chain)
        .build()
        .unwrap()
}

fn header_of(jwt: &str) -> serde_json::Value {
    let h = jwt.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn pem_and_pkcs12_certificates_get_tokens() {
    let g = generate(false);
    let app = App::new("cert-daemon").with_certificate(g.cert_der.clone());
    let emu = Emulator::builder().app(app.clone()).start().await.unwrap();

    let pem = format!("{}{}", g.cert_pem, g.key_pem);
    let from_pem = ClientCertificate::from_pem(pem.as_bytes()).unwrap();
    assert_eq!(from_pem.certificate_der(), g.cert_der.as_slice());
    let shown = format!("{from_pem:?}");
    assert!(
        !shown.contains("PRIVATE") && shown.contains(from_pem.thumbprint_sha256()),
        "{shown}"
    );
    let token = credential(&emu, &app, from_pem.clone(), false)
        .get_token(&graph())
        .await
        .unwrap();
    assert_eq!(jwt_claims(token.secret())["appid"], app.client_id.as_str());
    // Each request signs a fresh assertion (new jti): a second token request is accepted.
    let cred = credential(&emu, &app, from_pem, true);
    cred.get_token(&graph()).await.unwrap();
    cred.get_token(&graph()).await.unwrap();

    let p12 = pkcs12(&g, "pfx-password");
    let from_p12 = ClientCertificate::from_pkcs12(&p12, "pfx-password").unwrap();
    assert_eq!(from_p12.certificate_der(), g.cert_der.as_slice());
    credential(&emu, &app, from_p12, false)
        .get_token(&graph())
        .await
        .unwrap();
    assert_eq!(emu.requests(Endpoint::EntraToken), 4);

    // From the environment, PKCS#12 with its password, and in the default chain.
    let path = temp_path("p12");
    std::fs::write(&path, &p12).unwrap();
    let env = Environment::from_vars([
        ("AZURE_TENANT_ID", emu.tenant_id()),
        ("AZURE_CLIENT_ID", app.client_id.clone()),
        ("AZURE_CLIENT_CERTIFICATE_PATH", path.display().to_string()),
        (
            "AZURE_CLIENT_CERTIFICATE_PASSWORD",
            "pfx-password".to_owned(),
        ),
        ("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "true".to_owned()),
        ("AZURE_AUTHORITY_HOST", emu.authority_host()),
        ("PATH", "/nonexistent".to_owned()),
    ]);
    let chain = DefaultCredential::builder()
        .environment(env.clone())
        .allow_loopback_http(true)
        .build()
        .unwrap();
    chain.get_token(&graph()).await.unwrap();
    assert_eq!(chain.selected(), Some(ChainLink::Environment));
    env.set("AZURE_CLIENT_CERTIFICATE_PASSWORD", "wrong");
    let err = DefaultCredential::builder()
        .environment(env)
        .allow_loopback_http(true)
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Configuration(family) if matches!(family.as_ref(), entra_mi::error::ConfigurationError::Setting { setting, reason } if setting == "AZURE_CLIENT_CERTIFICATE_PATH" && reason.contains("password is wrong"))),
        "{err}"
    );
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn the_assertion_is_what_entra_expects() {
    let g = generate(false);
    let app = App::new("cert-daemon").with_certificate(g.cert_der.clone());
    let server = support::RawServer::start(support::Reply::json(
        400,
        serde_json::json!({"error": "invalid_client"}),
    ))
    .await;
    let cert =
        ClientCertificate::from_pem(format!("{}{}", g.cert_pem, g.key_pem).as_bytes()).unwrap();
    let cred = ClientCertificateCredential::builder("contoso", &app.client_id, cert.clone())
        .authority_host(server.url(""))
        .allow_loopback_http(true)
        .send_certificate_chain(true)
        .build()
        .unwrap();
    let _ = cred.get_token(&graph()).await.unwrap_err();
    let req = &server.requests()[0];
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&req.body)
        .into_owned()
        .collect();
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(
        get("client_assertion_type"),
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    let assertion = get("client_assertion");
    let header = header_of(&assertion);
    assert_eq!(header["alg"], "PS256");
    assert_eq!(header["x5t#S256"], cert.thumbprint_sha256());
    assert_eq!(
        header["x5c"][0],
        base64::engine::general_purpose::STANDARD
            .encode(&g.cert_der)
            .as_str()
    );
    let claims = jwt_claims(&assertion);
    assert_eq!(
        claims["aud"],
        server.url("/contoso/oauth2/v2.0/token").as_str()
    );
    assert_eq!(claims["iss"], app.client_id.as_str());
    assert_eq!(claims["sub"], app.client_id.as_str());
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["nbf"].as_u64().unwrap(),
        600
    );
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
}

/// An RS256 assertion signed with `key`, naming `thumbprint`.
fn sign_assertion(
    key: &rcgen::KeyPair,
    thumbprint: &str,
    aud: &str,
    client_id: &str,
    jti: &str,
    exp_offset: i64,
) -> String {
    use rcgen::SigningKey as _;
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t#S256": thumbprint});
    let claims = serde_json::json!({"aud": aud, "iss": client_id, "sub": client_id, "jti": jti, "nbf": now - 1200, "exp": now + exp_offset});
    let input = format!("{}.{}", b64(&header), b64(&claims));
    let sig = key.sign(input.as_bytes()).unwrap();
    format!(
        "{input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
    )
}

#[tokio::test]
async fn the_emulator_checks_signature_audience_expiry_and_replay() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["d".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let pem = format!("{}{}", cert.pem(), key.serialize_pem());
    let thumb = ClientCertificate::from_pem(pem.as_bytes())
        .unwrap()
        .thumbprint_sha256()
        .to_owned();
    let app = App::new("cert-daemon").with_certificate(cert.der().to_vec());
    let emu = Emulator::builder().app(app.clone()).start().await.unwrap();
    let endpoint = emu.token_endpoint(&emu.tenant_id());
    let post = |a: String| {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &app.client_id)
            .append_pair("scope", "https://graph.microsoft.com/.default")
            .append_pair("grant_type", "client_credentials")
            .append_pair(
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            )
            .append_pair("client_assertion", &a)
            .finish();
        post_form(endpoint.clone(), body)
    };
    let good = sign_assertion(&key, &thumb, &endpoint, &app.client_id, "jti-1", 600);
    let (status, body) = post(good.clone()).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(good).await;
    assert_eq!(status, 401);
    assert!(
        body.contains("AADSTS700027") && body.contains("already been used"),
        "{body}"
    );

    let (_, body) = post(sign_assertion(
        &key,
        &thumb,
        "https://elsewhere.example/token",
        &app.client_id,
        "jti-2",
        600,
    ))
    .await;
    assert!(
        body.contains("AADSTS700027") && body.contains("audience"),
        "{body}"
    );
    let (_, body) = post(sign_assertion(
        &key,
        &thumb,
        &endpoint,
        &app.client_id,
        "jti-3",
        -600,
    ))
    .await;
    assert!(body.contains("AADSTS700024"), "{body}");
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let (_, body) = post(sign_assertion(
        &other,
        &thumb,
        &endpoint,
        &app.client_id,
        "jti-4",
        600,
    ))
    .await;
    assert!(body.contains("invalid signature"), "{body}");
    let (_, body) = post(sign_assertion(
        &key,
        "bm90LWEtdGh1bWI",
        &endpoint,
        &app.client_id,
        "jti-5",
        600,
    ))
    .await;
    assert!(body.contains("The key was not found"), "{body}");
    for field in ["error_codes", "trace_id", "correlation_id", "timestamp"] {
        assert!(body.contains(field), "{field}: {body}");
    }
}

#[test]
fn bad_certificate_inputs_get_errors_that_name_the_problem() {
    let g = generate(false);
    let other = generate(false);
    let expired = generate(true);
    let check = |r: Result<ClientCertificate, Error>, needle: &str| {
        let err = r.unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(shown.contains(needle), "{needle}: {shown}");
        let key_body: String = g.key_pem.lines().nth(2).unwrap().to_owned();
        assert!(
            !shown.contains(&key_body),
            "key material in the error: {shown}"
        );
    };
    check(
        ClientCertificate::from_pkcs12(&pkcs12(&g, "right"), "wrong"),
        "password is wrong",
    );
    check(
        ClientCertificate::from_pkcs12(b"not pkcs12 at all", ""),
        "not a PKCS#12 file",
    );
    check(
        ClientCertificate::from_pem(
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        ),
        "malformed",
    );
    check(
        ClientCertificate::from_pem(g.cert_pem.as_bytes()),
        "no usable PRIVATE KEY",
    );
    check(
        ClientCertificate::from_pem(g.key_pem.as_bytes()),
        "no CERTIFICATE block",
    );
    check(
        ClientCertificate::from_pem(format!("{}{}", other.cert_pem, g.key_pem).as_bytes()),
        "belongs to none of the certificates",
    );
    check(
        ClientCertificate::from_pem(format!("{}{}", expired.cert_pem, expired.key_pem).as_bytes()),
        "expired on",
    );
    check(
        ClientCertificate::from_pkcs12(&pkcs12(&expired, ""), ""),
        "expired on",
    );
    let missing = temp_path("missing");
    check(
        ClientCertificate::from_file(&missing, None),
        "does not exist",
    );
    let pem_file = temp_path("pem");
    std::fs::write(&pem_file, format!("{}{}", g.cert_pem, g.key_pem)).unwrap();
    ClientCertificate::from_file(&pem_file, None).unwrap();
    let _ = std::fs::remove_file(&pem_file);
}

async fn post_form(url: String, body: String) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let u = url::Url::parse(&url).unwrap();
    let mut s = tokio::net::TcpStream::connect((u.host_str().unwrap(), u.port().unwrap()))
        .await
        .unwrap();
    let req = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        u.path(),
        u.host_str().unwrap(),
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    (status, out)
}
