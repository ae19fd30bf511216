//! Service Fabric, api-version 2019-07-01-preview: https to `IDENTITY_ENDPOINT`, the server's
//! certificate pinned to `IDENTITY_SERVER_THUMBPRINT`.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::source::{self, RequestContext, Source, SourceConfig};
use super::vars::IDENTITY_HEADER;
use crate::credential::TokenRequest;
use crate::error::Error;
use crate::http::HttpClient;
use crate::retry::RetryClass;
use crate::source_kind::SourceKind;

pub(super) const API_VERSION: &str = "2019-07-01-preview";

/// The Service Fabric token service. The application's identity is fixed by the cluster
/// configuration; the endpoint's certificate is pinned to `IDENTITY_SERVER_THUMBPRINT`.
#[derive(Debug)]
pub(super) struct ServiceFabric {
    endpoint: url::Url,
    thumbprint: [u8; 20],
    /// `xms_cc`: the client capabilities joined by `,` (empty: none).
    client_capabilities: String,
}

impl ServiceFabric {
    pub(super) fn new(
        endpoint: url::Url,
        thumbprint: [u8; 20],
        config: &SourceConfig<'_>,
    ) -> Result<Self, Error> {
        source::system_assigned_only(
            SourceKind::ServiceFabric,
            config.id,
            "the application's identity is fixed by the cluster configuration",
        )?;
        Ok(Self {
            endpoint,
            thumbprint,
            client_capabilities: config.client_capabilities.join(","),
        })
    }
}

/// `{IDENTITY_ENDPOINT}?api-version=2019-07-01-preview&resource=…[&xms_cc=…]
/// [&token_sha256_to_refresh=…]`.
fn url(
    endpoint: &url::Url,
    resource: &str,
    client_capabilities: Option<&str>,
    token_sha256_to_refresh: Option<&str>,
) -> url::Url {
    let mut url = source::token_url(endpoint, API_VERSION, resource);
    {
        let mut query = url.query_pairs_mut();
        if let Some(capabilities) = client_capabilities {
            query.append_pair("xms_cc", capabilities);
        }
        if let Some(hash) = token_sha256_to_refresh {
            query.append_pair("token_sha256_to_refresh", hash);
        }
    }
    url
}

impl Source for ServiceFabric {
    fn kind(&self) -> SourceKind {
        SourceKind::ServiceFabric
    }

    fn endpoint(&self) -> &url::Url {
        &self.endpoint
    }

    fn retry_class(&self) -> RetryClass {
        RetryClass::ServiceFabric
    }

    fn http_client(&self, connect_timeout: Duration) -> Result<HttpClient, Error> {
        HttpClient::with_tls(connect_timeout, tls_config(self.thumbprint)?)
    }

    /// `GET` with `Secret` (`IDENTITY_HEADER`). With a claims challenge, the token it rejected
    /// goes as `token_sha256_to_refresh`, so that the service issues a new one instead of its
    /// cached one (Service Fabric alone takes it).
    fn request(
        &self,
        cx: &RequestContext<'_>,
        request: &TokenRequest,
    ) -> Result<reqwest::RequestBuilder, Error> {
        let secret = source::secret_header(cx.env, IDENTITY_HEADER)?;
        let refresh = request.claims().and(request.token_to_refresh_sha256());
        let capabilities = Some(self.client_capabilities.as_str()).filter(|c| !c.is_empty());
        let url = url(
            &self.endpoint,
            request.audience().resource(),
            capabilities,
            refresh,
        );
        Ok(cx
            .client
            .get(url)
            .header("Secret", secret)
            .header(http::header::ACCEPT, "application/json"))
    }
}

/// A TLS configuration that accepts exactly the certificate whose SHA-1 is `thumbprint`: the
/// Service Fabric token service's certificate is self-signed, and the pin is its trust anchor.
/// There is no fallback to other verification, and none to skipping it.
fn tls_config(thumbprint: [u8; 20]) -> Result<rustls::ClientConfig, Error> {
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
        url(&endpoint, "https://vault.azure.net", capabilities, refresh)
            .query_pairs()
            .into_owned()
            .collect()
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
