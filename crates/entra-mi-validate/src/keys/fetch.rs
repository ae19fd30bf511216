//! GET of a discovery document or key set: `https` (or `http` on a loopback host), no
//! redirects, a timeout per request and a cap on the body.

use std::net::IpAddr;
use std::time::Duration;

use url::Url;

use crate::error::BuildError;

/// The largest discovery document or key set read: 1 MiB. Entra's are a few KiB (a key
/// set holds a handful of keys of about 2 KiB each, certificate included), but a tenant with
/// application-specific signing keys has more, and a key set grows during a rollover; 1 MiB
/// leaves room for hundreds of keys while bounding what a misbehaving endpoint can make the
/// API hold in memory. (Token responses, read by the calling side, are capped at 64 KiB.)
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Whether `url` may be fetched: `https`, or `http` on a loopback host (127.0.0.0/8, `::1`,
/// `localhost`).
pub(crate) fn allowed(url: &Url) -> Result<(), &'static str> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => {
            Err("plain http is accepted only for loopback hosts (127.0.0.0/8, ::1, localhost)")
        }
        _ => Err("the scheme must be https"),
    }
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// The HTTP client of a validator.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    client: reqwest::Client,
    timeout: Duration,
}

impl Fetcher {
    /// A client; `direct` (for a loopback authority) ignores proxy variables, which would
    /// otherwise send loopback requests to the proxy.
    pub(crate) fn new(
        connect_timeout: Duration,
        timeout: Duration,
        direct: bool,
    ) -> Result<Self, BuildError> {
        let mut builder = reqwest::Client::builder();
        if direct {
            builder = builder.no_proxy();
        }
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| BuildError::HttpClient(e.to_string()))?;
        Ok(Fetcher { client, timeout })
    }

    /// The body of a `200` answer to `GET url`, or what went wrong (naming the URL).
    pub(crate) async fn get(&self, url: &Url) -> Result<Vec<u8>, String> {
        if let Err(reason) = allowed(url) {
            return Err(format!("{url}: {reason}"));
        }
        match tokio::time::timeout(self.timeout, self.get_inner(url)).await {
            Ok(result) => result.map_err(|e| format!("GET {url}: {e}")),
            Err(_) => Err(format!(
                "GET {url}: no complete answer within {} s",
                self.timeout.as_secs_f64()
            )),
        }
    }

    async fn get_inner(&self, url: &Url) -> Result<Vec<u8>, String> {
        let mut response = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {}", status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(format!("the body is over {MAX_DOCUMENT_BYTES} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport(&e))? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("the body is over {MAX_DOCUMENT_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

fn transport(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "cannot connect"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "the body could not be read"
    } else {
        "the request failed"
    };
    let mut out = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
