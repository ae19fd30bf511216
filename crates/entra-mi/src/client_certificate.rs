//! Client certificate: an app registration's certificate, proved with a signed JWT assertion
//! (PS256 with `x5t#S256`, 10 minutes, optional `x5c` chain) at the v2.0 token endpoint.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::credential::{TokenCredential, TokenRequest};
use crate::entra::{
    AZURE_CLIENT_ID, AZURE_TENANT_ID, ClientAuth, ConfidentialClient, EntraOptions,
    entra_builder_methods,
};
use crate::env::Environment;
use crate::error::Error;
use crate::secret::Secret;
use crate::token::AccessToken;

pub(crate) const AZURE_CLIENT_CERTIFICATE_PATH: &str = "AZURE_CLIENT_CERTIFICATE_PATH";
pub(crate) const AZURE_CLIENT_CERTIFICATE_PASSWORD: &str = "AZURE_CLIENT_CERTIFICATE_PASSWORD";
pub(crate) const AZURE_CLIENT_SEND_CERTIFICATE_CHAIN: &str = "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN";
/// Lifetime of an assertion (what MSAL uses).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(600);
/// Certificate files are a few KiB; a larger file is not one.
const MAX_FILE: u64 = 1024 * 1024;

/// A certificate with its RSA private key, read from PEM or PKCS#12.
///
/// The leaf certificate must not have expired and the key must be the certificate's. `Debug`
/// shows the certificate's SHA-256 thumbprint, never the key.
#[derive(Clone)]
pub struct ClientCertificate {
    key: Arc<aws_lc_rs::rsa::KeyPair>,
    /// DER, leaf first.
    chain: Vec<Vec<u8>>,
    thumbprint_s256: String,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.thumbprint_s256)
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

fn cert_error(reason: impl Into<String>) -> Error {
    Error::configuration("client certificate", reason)
}

impl ClientCertificate {
    /// From PEM: one or more `CERTIFICATE` blocks (leaf first, or in any order: the leaf is the
    /// one matching the key) and one `PRIVATE KEY` (PKCS#8) or `RSA PRIVATE KEY` (PKCS#1).
    pub fn from_pem(pem: &[u8]) -> Result<Self, Error> {
        let certs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(pem)
            .map(|c| c.map(|c| c.as_ref().to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|e| cert_error(format!("the PEM data is malformed ({})", pem_problem(&e))))?;
        if certs.is_empty() {
            return Err(cert_error(
                "the PEM data has no CERTIFICATE block (expected a certificate with its private key, in PEM, or a PKCS#12 file)",
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
            cert_error(format!(
                "the PEM data has no usable PRIVATE KEY block ({}); the file must hold the certificate's private key too",
                pem_problem(&e)
            ))
        })?;
        let key = match &key {
            PrivateKeyDer::Pkcs8(k) => aws_lc_rs::rsa::KeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => aws_lc_rs::rsa::KeyPair::from_der(k.secret_pkcs1_der()),
            _ => {
                return Err(cert_error(
                    "the private key is not an RSA key; Entra certificate credentials use RSA",
                ));
            }
        }
        .map_err(|e| cert_error(format!("the private key is not a usable RSA key ({e})")))?;
        Self::new(key, certs)
    }

    /// From PKCS#12 (`.pfx`, `.p12`) with its password (`""` for none).
    pub fn from_pkcs12(der: &[u8], password: &str) -> Result<Self, Error> {
        let store = p12_keystore::KeyStore::from_pkcs12(der, password, p12_keystore::Pkcs12ImportPolicy::Strict)
            .map_err(|e| match e {
                p12_keystore::error::Error::MacError(_) => {
                    cert_error("the PKCS#12 password is wrong (the file's integrity check failed)")
                }
                _ => cert_error("the data is not a PKCS#12 file this crate can read (expected PKCS#12 with its password, or PEM)"),
            })?;
        let (_, chain) = store.private_key_chain().ok_or_else(|| {
            cert_error("the PKCS#12 file holds no private key with its certificate")
        })?;
        let key = aws_lc_rs::rsa::KeyPair::from_pkcs8(chain.key().as_der())
            .map_err(|e| cert_error(format!("the private key is not a usable RSA key ({e})")))?;
        let certs = chain.certs().iter().map(|c| c.as_der().to_vec()).collect();
        Self::new(key, certs)
    }

    /// From a file: PEM when it starts like PEM, else PKCS#12 with `password`.
    pub fn from_file(path: &Path, password: Option<&str>) -> Result<Self, Error> {
        let fail = |reason: String| {
            Error::configuration(
                AZURE_CLIENT_CERTIFICATE_PATH,
                format!("{}: {reason}", path.display()),
            )
        };
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => fail("the file does not exist".into()),
            k => fail(format!("cannot be read ({k})")),
        })?;
        if meta.len() > MAX_FILE {
            return Err(fail(format!(
                "larger than {MAX_FILE} bytes: not a certificate file"
            )));
        }
        let data =
            std::fs::read(path).map_err(|e| fail(format!("cannot be read ({})", e.kind())))?;
        let looks_pem = data.trim_ascii_start().starts_with(b"-----BEGIN");
        let parsed = if looks_pem {
            Self::from_pem(&data)
        } else {
            Self::from_pkcs12(&data, password.unwrap_or(""))
        };
        parsed.map_err(|e| match e {
            Error::Configuration(family) => match *family {
                crate::error::ConfigurationError::Setting { reason, .. } => fail(reason),
                other => other.into(),
            },
            other => other,
        })
    }

    fn new(key: aws_lc_rs::rsa::KeyPair, certs: Vec<Vec<u8>>) -> Result<Self, Error> {
        let public = key.public_key().as_ref().to_vec();
        let mut leaf_at = None;
        for (i, der) in certs.iter().enumerate() {
            let (_, cert) = x509_parser::parse_x509_certificate(der)
                .map_err(|_| cert_error("a certificate is not valid X.509 DER"))?;
            if cert.public_key().subject_public_key.data.as_ref() == public.as_slice() {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                let not_after = cert.validity().not_after.timestamp();
                if not_after <= now {
                    return Err(cert_error(format!(
                        "the certificate expired on {} (subject {}); renew it and upload the new one to the app registration",
                        cert.validity().not_after,
                        cert.subject()
                    )));
                }
                if cert.validity().not_before.timestamp() > now {
                    return Err(cert_error(format!(
                        "the certificate is not valid before {}",
                        cert.validity().not_before
                    )));
                }
                leaf_at = Some(i);
                break;
            }
        }
        let leaf_at = leaf_at
            .ok_or_else(|| cert_error("the private key belongs to none of the certificates"))?;
        let mut chain = certs;
        let leaf = chain.remove(leaf_at);
        chain.insert(0, leaf);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &chain[0]);
        Ok(Self {
            key: Arc::new(key),
            thumbprint_s256: URL_SAFE_NO_PAD.encode(digest.as_ref()),
            chain,
        })
    }

    /// The leaf certificate's `x5t#S256`: base64url (unpadded) SHA-256 of its DER.
    pub fn thumbprint_sha256(&self) -> &str {
        &self.thumbprint_s256
    }

    /// The leaf certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.chain[0]
    }

    /// A signed client assertion for `audience` (the token endpoint URL).
    fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        now: SystemTime,
        send_chain: bool,
    ) -> Result<Secret, Error> {
        let mut header =
            serde_json::json!({ "alg": "PS256", "typ": "JWT", "x5t#S256": self.thumbprint_s256 });
        if send_chain {
            header["x5c"] = self.chain.iter().map(|c| STANDARD.encode(c)).collect();
        }
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let jti: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME.as_secs(),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &aws_lc_rs::signature::RSA_PSS_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| cert_error("signing the client assertion failed"))?;
        Ok(Secret::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

fn pem_problem(e: &rustls::pki_types::pem::Error) -> &'static str {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { .. } => "a section has no END line",
        E::IllegalSectionStart { .. } => "a BEGIN line is malformed",
        E::Base64Decode(_) => "a section is not valid base64",
        E::NoItemsFound => "no matching section",
        _ => "unreadable PEM",
    }
}

/// Tokens for an app registration, proved with its certificate: a JWT assertion signed with
/// the certificate's RSA key (PS256, header `x5t#S256`, lifetime 10 minutes, `aud` the token
/// endpoint), built with `aws-lc-rs` — no hand-rolled crypto. With
/// [`ClientCertificateCredentialBuilder::send_certificate_chain`] the chain goes along as
/// `x5c` (subject name / issuer authentication).
#[derive(Debug)]
pub struct ClientCertificateCredential {
    client: ConfidentialClient,
    certificate: ClientCertificate,
    send_chain: bool,
    time: crate::time::TimeSource,
}

/// Builds a [`ClientCertificateCredential`].
#[derive(Debug)]
pub struct ClientCertificateCredentialBuilder {
    tenant: String,
    client_id: String,
    certificate: ClientCertificate,
    send_chain: bool,
    opts: EntraOptions,
}

impl ClientCertificateCredentialBuilder {
    entra_builder_methods!();

    /// Sends the certificate chain as `x5c` (default: no).
    pub fn send_certificate_chain(mut self, on: bool) -> Self {
        self.send_chain = on;
        self
    }

    /// Validates the settings.
    pub fn build(self) -> Result<ClientCertificateCredential, Error> {
        Ok(ClientCertificateCredential {
            client: ConfidentialClient::new(
                "client-certificate",
                &self.tenant,
                &self.client_id,
                &self.opts,
            )?,
            certificate: self.certificate,
            send_chain: self.send_chain,
            time: self.opts.time,
        })
    }
}

impl ClientCertificateCredential {
    /// A builder for the app `client_id` in `tenant`.
    pub fn builder(
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        certificate: ClientCertificate,
    ) -> ClientCertificateCredentialBuilder {
        ClientCertificateCredentialBuilder {
            tenant: tenant.into(),
            client_id: client_id.into(),
            certificate,
            send_chain: false,
            opts: EntraOptions::default(),
        }
    }

    /// From `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_CERTIFICATE_PATH` (PEM with
    /// its key, or PKCS#12), `AZURE_CLIENT_CERTIFICATE_PASSWORD`,
    /// `AZURE_CLIENT_SEND_CERTIFICATE_CHAIN` (`1`/`true` or `0`/`false`) and `AZURE_AUTHORITY_HOST`.
    pub fn from_environment(env: &Environment) -> Result<Self, Error> {
        Self::builder_from_environment(env)?.build()
    }

    pub(crate) fn builder_from_environment(
        env: &Environment,
    ) -> Result<ClientCertificateCredentialBuilder, Error> {
        match (
            env.get(AZURE_TENANT_ID),
            env.get(AZURE_CLIENT_ID),
            env.get(AZURE_CLIENT_CERTIFICATE_PATH),
        ) {
            (Some(t), Some(c), Some(p)) => {
                let password = env.get(AZURE_CLIENT_CERTIFICATE_PASSWORD);
                let certificate = ClientCertificate::from_file(Path::new(&p), password.as_deref())?;
                let send_chain = match env.get(AZURE_CLIENT_SEND_CERTIFICATE_CHAIN) {
                    None => false,
                    Some(v) if v == "1" || v.eq_ignore_ascii_case("true") => true,
                    Some(v) if v == "0" || v.eq_ignore_ascii_case("false") => false,
                    Some(_) => {
                        return Err(Error::configuration(
                            AZURE_CLIENT_SEND_CERTIFICATE_CHAIN,
                            "expected `1`, `true`, `0` or `false`",
                        ));
                    }
                };
                let mut b = Self::builder(t, c, certificate).send_certificate_chain(send_chain);
                b.opts = b.opts.with_env_authority(env);
                Ok(b)
            }
            (t, c, p) => Err(Error::from(crate::error::CredentialError::Unavailable {
                credential: "client-certificate".into(),
                reason: crate::client_secret::missing(&[
                    (AZURE_TENANT_ID, t.is_some()),
                    (AZURE_CLIENT_ID, c.is_some()),
                    (AZURE_CLIENT_CERTIFICATE_PATH, p.is_some()),
                ]),
            })),
        }
    }
}

#[async_trait]
impl TokenCredential for ClientCertificateCredential {
    async fn get_token(&self, request: &TokenRequest) -> Result<AccessToken, Error> {
        let audience = self.client.token_url(request)?;
        let assertion = self.certificate.assertion(
            self.client.client_id(),
            audience.as_str(),
            self.time.system_now(),
            self.send_chain,
        )?;
        self.client
            .get_token(request, ClientAuth::Assertion(assertion.expose()))
            .await
    }

    fn name(&self) -> &str {
        &self.client.name
    }
}
