//! The emulator's other managed-identity sources and its Entra token endpoint, checked on the
//! wire against the protocol (no `entra-mi` code): Arc's challenge and key files, Service
//! Fabric over TLS with the advertised thumbprint, the 2017-09-01 protocol, Cloud Shell, and
//! Entra's answers and error bodies.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{client, enc, get};
use entra_mi_emulator::{App, Emulator, Endpoint, Identity, ResponseShape};
use reqwest::StatusCode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = std::env::temp_dir().join(format!("emu-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test]
async fn arc_challenges_with_a_fresh_key_file_and_accepts_its_content() {
    let dir = temp_dir("arc");
    let em = Emulator::builder()
        .arc_key_directory(&dir)
        .start()
        .await
        .unwrap();
    let url = format!(
        "{}?api-version=2020-06-01&resource={}",
        em.arc_endpoint(),
        enc("https://management.azure.com/")
    );
    let first = get(&url, &[("Metadata", "true")]).await;
    assert_eq!(first.status, StatusCode::UNAUTHORIZED);
    let challenge = first.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let path = challenge
        .strip_prefix("Basic realm=")
        .expect("Basic realm=<path>");
    assert!(
        path.starts_with(dir.to_str().unwrap()) && path.ends_with(".key"),
        "{path}"
    );
    let key = std::fs::read_to_string(path).unwrap();
    let second = get(
        &url,
        &[
            ("Metadata", "true"),
            ("Authorization", &format!("Basic {key}")),
        ],
    )
    .await;
    let body = second.json();
    assert_eq!(second.status, StatusCode::OK, "{body}");
    assert!(
        body["expires_in"].is_string() && body["expires_on"].is_string(),
        "{body}"
    );
    assert_eq!(body["resource"], "https://management.azure.com/");

    let wrong = get(
        &url,
        &[("Metadata", "true"), ("Authorization", "Basic nope")],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(!wrong.headers.contains_key("www-authenticate"));
    assert_eq!(get(&url, &[]).await.status, StatusCode::BAD_REQUEST);
    let user = get(&format!("{url}&client_id=x"), &[("Metadata", "true")]).await;
    assert_eq!(user.status, StatusCode::BAD_REQUEST);
    assert_eq!(em.requests(Endpoint::AzureArc), 5);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn legacy_2017_endpoint_takes_secret_and_clientid() {
    let user = Identity::user_assigned("ml");
    let em = Emulator::builder()
        .identity(user.clone())
        .msi_secret("s3")
        .start()
        .await
        .unwrap();
    let base = format!(
        "{}?api-version=2017-09-01&resource={}",
        em.msi_endpoint(),
        enc("https://vault.azure.net")
    );
    let r = get(&base, &[("secret", "s3")]).await;
    let body = r.json();
    assert!(
        body["expires_on"].is_u64(),
        "Azure ML sends an integer: {body}"
    );
    assert!(body.get("expires_in").is_none());
    let sys = common::claims(&r.token());
    assert_eq!(sys["oid"], em.system_identity().unwrap().object_id.as_str());
    let by_clientid = get(
        &format!("{base}&clientid={}", user.client_id),
        &[("secret", "s3")],
    )
    .await;
    assert_eq!(
        common::claims(&by_clientid.token())["oid"],
        user.object_id.as_str()
    );
    // `client_id` is not this protocol's parameter: ignored, like the real endpoint does.
    let ignored = get(
        &format!("{base}&client_id={}", user.client_id),
        &[("secret", "s3")],
    )
    .await;
    assert_eq!(common::claims(&ignored.token())["oid"], sys["oid"]);
    em.set_response_shape(Endpoint::AzureMl, ResponseShape::ExpiresOnDate);
    let dated = get(&base, &[("secret", "s3")]).await.json();
    assert!(
        dated["expires_on"].as_str().unwrap().ends_with("M +00:00"),
        "{dated}"
    );
    assert_eq!(
        get(&base, &[("secret", "other")]).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(get(&base, &[]).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn cloud_shell_wants_a_form_post() {
    let em = Emulator::builder().start().await.unwrap();
    let post = |metadata: bool| {
        let mut req = client()
            .post(em.cloud_shell_endpoint())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("resource={}", enc("https://management.azure.com/")));
        if metadata {
            req = req.header("Metadata", "true");
        }
        req.send()
    };
    let ok = post(true).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let body: Value = serde_json::from_str(&ok.text().await.unwrap()).unwrap();
    assert_eq!(body["resource"], "https://management.azure.com/");
    assert_eq!(post(false).await.unwrap().status(), StatusCode::BAD_REQUEST);
    let get = get(&em.cloud_shell_endpoint(), &[("Metadata", "true")]).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        get.json()["error"]["code"].is_string(),
        "nested error: {}",
        get.body
    );
}

/// Accepts any certificate and keeps the one it saw (test only).
#[derive(Debug, Default)]
struct Capture(Mutex<Option<Vec<u8>>>);

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.0.lock().unwrap() = Some(end_entity.to_vec());
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            m,
            c,
            d,
            &rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            m,
            c,
            d,
            &rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

async fn sf_request(em: &Emulator, secret: Option<&str>) -> (String, Vec<u8>) {
    let capture = Arc::new(Capture::default());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(capture.clone())
    .with_no_client_auth();
    let endpoint = em.service_fabric_endpoint();
    let rest = endpoint
        .strip_prefix("https://127.0.0.1:")
        .expect("https on 127.0.0.1");
    let (port, path) = rest.split_once('/').unwrap();
    let path = format!("/{path}");
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap()))
        .await
        .unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let secret = secret
        .map(|s| format!("Secret: {s}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "GET {}?api-version=2019-07-01-preview&resource={} HTTP/1.1\r\nHost: 127.0.0.1\r\n{secret}Connection: close\r\n\r\n",
        path,
        enc("https://vault.azure.net")
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_string(&mut out)).await;
    let cert = capture.0.lock().unwrap().clone().unwrap();
    (out, cert)
}

#[tokio::test]
async fn service_fabric_serves_tls_with_the_advertised_thumbprint() {
    let em = Emulator::builder()
        .identity_header("sf-secret")
        .start()
        .await
        .unwrap();
    let (answer, cert) = sf_request(&em, Some("sf-secret")).await;
    let sha1 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &cert);
    let hex: String = sha1.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(hex, em.service_fabric_thumbprint());
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert!(body["expires_on"].is_u64(), "{body}");
    assert_eq!(body["token_type"], "Bearer");

    let (answer, _) = sf_request(&em, None).await;
    assert!(
        answer.starts_with("HTTP/1.1 401") && answer.contains("SecretHeaderNotFound"),
        "{answer}"
    );
}

#[tokio::test]
async fn entra_token_endpoint_answers_like_entra() {
    let app = App::new("daemon").with_secret("pw");
    let em = Emulator::builder().app(app.clone()).start().await.unwrap();
    let post = |tenant: String, form: Vec<(&'static str, String)>| {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        client()
            .post(em.token_endpoint(&tenant))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let form = |secret: &str, scope: &str| {
        vec![
            ("client_id", app.client_id.clone()),
            ("client_secret", secret.to_owned()),
            ("scope", scope.to_owned()),
            ("grant_type", "client_credentials".to_owned()),
        ]
    };
    let ok = post(
        em.tenant_id(),
        form("pw", "https://graph.microsoft.com/.default"),
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let body: Value = serde_json::from_str(&ok.text().await.unwrap()).unwrap();
    assert!(
        body["expires_in"].is_u64() && body["ext_expires_in"].is_u64(),
        "{body}"
    );
    let (_, claims) = common::verify(
        &em,
        body["access_token"].as_str().unwrap(),
        "https://graph.microsoft.com",
    )
    .await;
    assert_eq!(claims["appid"], app.client_id.as_str());

    for (tenant, f, status, code) in [
        (
            em.tenant_id(),
            form("wrong", "https://graph.microsoft.com/.default"),
            401,
            7000215,
        ),
        (
            em.tenant_id(),
            form("pw", "https://graph.microsoft.com"),
            400,
            1002012,
        ),
        (
            "other-tenant".to_owned(),
            form("pw", "https://graph.microsoft.com/.default"),
            400,
            90002,
        ),
    ] {
        let r = post(tenant, f).await.unwrap();
        assert_eq!(r.status().as_u16(), status);
        let e: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(e["error_codes"][0], code, "{e}");
        let d = e["error_description"].as_str().unwrap();
        assert!(
            d.starts_with(&format!("AADSTS{code}:"))
                && d.contains("\r\nTrace ID: ")
                && d.contains("\r\nCorrelation ID: "),
            "{d}"
        );
        for f in ["trace_id", "correlation_id", "timestamp", "error"] {
            assert!(e[f].is_string(), "{f}: {e}");
        }
    }
    let get = get(&em.token_endpoint(&em.tenant_id()), &[]).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
}
