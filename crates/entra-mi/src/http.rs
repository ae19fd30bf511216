//! The HTTP client used to reach token endpoints: no proxy, no redirects, bounded bodies.

use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::error::{Error, Unavailable};

/// Largest response body read from a token endpoint. Real token responses are 2–5 KiB.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// `value` as a header value marked sensitive (never shown by `Debug`, kept out of HTTP/2
/// header compression tables); `None` when it cannot be sent in a header.
pub(crate) fn sensitive_header(value: impl AsRef<[u8]>) -> Option<http::HeaderValue> {
    let mut header = http::HeaderValue::from_bytes(value.as_ref()).ok()?;
    header.set_sensitive(true);
    Some(header)
}

/// `<scheme> <secret>` as a sensitive header value, assembled in a buffer that is wiped when
/// dropped (it holds the secret); `None` when a header cannot carry it.
pub(crate) fn sensitive_authorization(scheme: &str, secret: &str) -> Option<http::HeaderValue> {
    let mut value = zeroize::Zeroizing::new(Vec::with_capacity(scheme.len() + 1 + secret.len()));
    value.extend_from_slice(scheme.as_bytes());
    value.push(b' ');
    value.extend_from_slice(secret.as_bytes());
    sensitive_header(value.as_slice())
}

/// What came back from one request. Its `Debug` shows the status, content type and body
/// length, never the body (a token response holds the token).
pub(crate) struct RawResponse {
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    pub(crate) retry_after: Option<String>,
    pub(crate) www_authenticate: Option<String>,
    pub(crate) body: Bytes,
}

impl RawResponse {
    /// An answer with `status`, `content_type` and `body`, for the sources' unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests(status: u16, content_type: &str, body: &str) -> Self {
        Self {
            status,
            content_type: Some(content_type.to_owned()),
            retry_after: None,
            www_authenticate: None,
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }
}

impl std::fmt::Debug for RawResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawResponse")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// One pooled client per credential.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    client: reqwest::Client,
}

impl HttpClient {
    /// A client that never uses a proxy (identity endpoints must be reached directly) and never
    /// follows redirects (a redirect would carry identity headers elsewhere).
    pub(crate) fn new(connect_timeout: Duration) -> Result<Self, Error> {
        Self::build(Self::builder(connect_timeout))
    }

    /// Like [`HttpClient::new`], with this TLS configuration (Service Fabric's pinned
    /// certificate).
    pub(crate) fn with_tls(
        connect_timeout: Duration,
        tls: rustls::ClientConfig,
    ) -> Result<Self, Error> {
        Self::build(Self::builder(connect_timeout).tls_backend_preconfigured(tls))
    }

    /// A client for the Entra token endpoint: proxies honoured (it is a public host), no
    /// redirects.
    pub(crate) fn for_token_endpoint(connect_timeout: Duration) -> Result<Self, Error> {
        Self::build(
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(connect_timeout)
                .pool_idle_timeout(Duration::from_secs(60)),
        )
    }

    fn builder(connect_timeout: Duration) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
    }

    fn build(builder: reqwest::ClientBuilder) -> Result<Self, Error> {
        let client = builder
            .build()
            .map_err(|e| Error::configuration("http client", e.to_string()))?;
        Ok(Self { client })
    }

    pub(crate) fn inner(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `request` and reads at most [`MAX_BODY`] bytes of the answer, all within
    /// `timeout`.
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<RawResponse, Unavailable> {
        match tokio::time::timeout(timeout, Self::send_inner(request)).await {
            Ok(result) => result,
            Err(_) => Err(Unavailable::Timeout(timeout)),
        }
    }

    async fn send_inner(request: reqwest::RequestBuilder) -> Result<RawResponse, Unavailable> {
        let mut response = request.send().await.map_err(transport_error)?;
        let header = |name: http::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(512).collect::<String>())
        };
        let content_type = header(http::header::CONTENT_TYPE);
        let retry_after = header(http::header::RETRY_AFTER);
        let www_authenticate = header(http::header::WWW_AUTHENTICATE);
        let status = response.status().as_u16();
        if response
            .content_length()
            .is_some_and(|len| len > MAX_BODY as u64)
        {
            return Err(Unavailable::BodyTooLarge { limit: MAX_BODY });
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(Unavailable::BodyTooLarge { limit: MAX_BODY });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(RawResponse {
            status,
            content_type,
            retry_after,
            www_authenticate,
            body: body.freeze(),
        })
    }
}

fn transport_error(e: reqwest::Error) -> Unavailable {
    if let Some(detail) = tls_verification_failure(&e) {
        return Unavailable::TlsVerification { detail };
    }
    let connect = e.is_connect();
    let timeout = e.is_timeout();
    let detail = error_chain(&e.without_url());
    if connect {
        Unavailable::Connect { detail }
    } else if timeout {
        Unavailable::Transport {
            detail: format!("timed out: {detail}"),
        }
    } else {
        Unavailable::Transport { detail }
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}

/// The TLS library's description of a failed certificate verification somewhere in `e`'s
/// chain, if there is one. `io::Error` hides the error it wraps from `source()` (and the TLS
/// stack nests one in another), so those are looked into as well.
fn tls_verification_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(e);
    while let Some(err) = next {
        let mut candidate = Some(err);
        while let Some(c) = candidate {
            if let Some(tls) = c.downcast_ref::<rustls::Error>()
                && matches!(
                    tls,
                    rustls::Error::InvalidCertificate(_)
                        | rustls::Error::InvalidCertRevocationList(_)
                        | rustls::Error::UnsupportedNameType
                )
            {
                return Some(tls.to_string());
            }
            candidate = c
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .map(|inner| inner as &(dyn std::error::Error + 'static));
        }
        next = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_headers_are_marked_and_redacted() {
        let header = sensitive_header("Bearer eyJ-canary-secret").unwrap();
        assert!(header.is_sensitive());
        assert_eq!(header.as_bytes(), b"Bearer eyJ-canary-secret");
        assert!(!format!("{header:?}").contains("canary"));
        assert!(sensitive_header(b"tab\tis allowed").is_some());
        for bad in [&b"line\nbreak"[..], b"nul\0", b"del\x7f"] {
            assert!(sensitive_header(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_raw_response_never_shows_its_body() {
        let r = RawResponse {
            status: 200,
            content_type: Some("application/json".into()),
            retry_after: None,
            www_authenticate: Some("Basic realm=/x".into()),
            body: Bytes::from_static(br#"{"access_token":"eyJ-canary-secret"}"#),
        };
        let shown = format!("{r:?} {r:#?}");
        assert!(!shown.contains("canary"), "{shown}");
        assert!(
            shown.contains("200") && shown.contains("application/json"),
            "{shown}"
        );
        assert!(shown.contains("body_len: 36"), "{shown}");
    }
}
