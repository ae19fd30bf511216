//! Service Fabric, api-version 2019-07-01-preview: https to `IDENTITY_ENDPOINT`, the server's
//! certificate pinned to `IDENTITY_SERVER_THUMBPRINT`.

use std::sync::Arc;

use http::HeaderValue;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::error::Error;

pub(super) const API_VERSION: &str = "2019-07-01-preview";

/// `GET {IDENTITY_ENDPOINT}?api-version=2019-07-01-preview&resource=…` with `Secret`.
pub(super) fn request(
    client: &reqwest::Client,
    endpoint: &url::Url,
    resource: &str,
    secret: &str,
    client_capabilities: Option<&str>,
    token_sha256_to_refresh: Option<&str>,
) -> Result<reqwest::RequestBuilder, Error> {
    let mut url = endpoint.clone();
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("api-version", API_VERSION)
            .append_pair("resource", resource);
        if let Some(capabilities) = client_capabilities {
            query.append_pair("xms_cc", capabilities);
        }
        if let Some(hash) = token_sha256_to_refresh {
            query.append_pair("token_sha256_to_refresh", hash);
        }
    }
    let mut header = HeaderValue::from_str(secret).map_err(|_| {
        Error::configuration(
            super::detect::IDENTITY_HEADER,
            "its value contains characters not allowed in an HTTP header",
        )
    })?;
    header.set_sensitive(true);
    Ok(client
        .get(url)
        .header("Secret", header)
        .header(http::header::ACCEPT, "application/json"))
}

/// A TLS configuration that accepts exactly the certificate whose SHA-1 is `thumbprint`: the
/// Service Fabric token service's certificate is self-signed, and the pin is its trust anchor.
/// There is no fallback to other verification, and none to skipping it.
pub(super) fn tls_config(thumbprint: [u8; 20]) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = ThumbprintVerifier {
        thumbprint,
        provider: provider.clone(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::configuration("tls", e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

#[derive(Debug)]
struct ThumbprintVerifier {
    thumbprint: [u8; 20],
    provider: Arc<CryptoProvider>,
}

/// SHA-1 of a DER certificate (what Windows and Service Fabric call its thumbprint).
pub(super) fn sha1_thumbprint(der: &[u8]) -> [u8; 20] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    let mut out = [0u8; 20];
    out.copy_from_slice(digest.as_ref());
    out
}

impl ServerCertVerifier for ThumbprintVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let actual = sha1_thumbprint(end_entity.as_ref());
        // Constant time: no early exit on the first differing byte.
        let diff = actual
            .iter()
            .zip(self.thumbprint.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff == 0 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(capabilities: Option<&str>, refresh: Option<&str>) -> Vec<(String, String)> {
        let endpoint =
            url::Url::parse("https://10.0.0.4:2377/metadata/identity/oauth2/token").unwrap();
        let request = request(
            &reqwest::Client::new(),
            &endpoint,
            "https://vault.azure.net",
            "s",
            capabilities,
            refresh,
        )
        .unwrap()
        .build()
        .unwrap();
        request.url().query_pairs().into_owned().collect()
    }

    #[test]
    fn capabilities_and_the_token_to_refresh_go_in_the_query() {
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            query(None, None),
            [
                pair("api-version", API_VERSION),
                pair("resource", "https://vault.azure.net")
            ]
        );
        let hash = "cc0af97287543b65da2c7e1476426021826cab166f1e063ed012b855ff819656";
        let q = query(Some("cp1,cp2"), Some(hash));
        assert!(q.contains(&pair("xms_cc", "cp1,cp2")), "{q:?}");
        assert!(q.contains(&pair("token_sha256_to_refresh", hash)), "{q:?}");
    }
}
