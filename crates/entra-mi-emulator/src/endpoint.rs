//! An emulated endpoint ([`Emulated`]: where it is served, its normal answer, its own error
//! body) and the path every request to one takes: it is counted, then the next fault queued
//! for the endpoint is applied (a status, a delay, a hang, a dropped connection, HTML, a
//! truncated or oversized body), else the endpoint answers.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use bytes::Bytes;

use crate::model::{Endpoint, Fault};
use crate::server::{ConnCtl, shutdown_requested};
use crate::state::Shared;
use crate::wire::{HTML, JSON, respond, status_code};

/// An endpoint the emulator serves, counts and can fault.
pub(crate) trait Emulated: 'static {
    /// Its counter, fault queue and response shape.
    const ENDPOINT: Endpoint;
    /// The paths it is served at.
    const PATHS: &'static [&'static str];
    /// The answer to a request that no fault intercepts.
    fn answer(s: &Shared, parts: &Parts, body: &[u8]) -> Response;
    /// The body of a [`Fault::Status`] that brings none: what the real service sends with
    /// that status.
    fn fault_body(status: StatusCode) -> String;
}

/// Adds the routes of `E` to `router`.
pub(crate) fn route<E: Emulated>(router: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    E::PATHS
        .iter()
        .fold(router, |router, path| router.route(path, any(serve::<E>)))
}

/// The axum handler of `E`.
async fn serve<E: Emulated>(State(s): State<Arc<Shared>>, req: Request) -> Response {
    handle::<E>(s, req).await
}

/// Counts the request, applies the next queued fault, else answers normally.
async fn handle<E: Emulated>(s: Arc<Shared>, req: Request) -> Response {
    let ep = E::ENDPOINT;
    s.count(ep);
    let (parts, body) = req.into_parts();
    // Token requests are small; a body over 1 MiB is cut (and then fails to parse).
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let answer = |s: &Shared, parts: &Parts| E::answer(s, parts, &body);
    let Some(fault) = s.pop_fault(ep) else {
        return answer(&s, &parts);
    };
    let Some(conn) = parts.extensions.get::<ConnCtl>().cloned() else {
        // Only our own accept loop drives the router, and it always inserts the handle.
        return answer(&s, &parts);
    };
    match fault {
        Fault::Status {
            status,
            retry_after,
            body,
        } => {
            let status = status_code(status);
            let body = body.unwrap_or_else(|| E::fault_body(status));
            let mut resp = respond(status, JSON, body);
            if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
        Fault::Delay(d) => {
            let mut shutdown = s.shutdown.clone();
            tokio::select! {
                () = tokio::time::sleep(d) => answer(&s, &parts),
                () = shutdown_requested(&mut shutdown) => conn.hang_up().await,
            }
        }
        Fault::Hang => {
            shutdown_requested(&mut s.shutdown.clone()).await;
            conn.hang_up().await
        }
        Fault::CloseConnection => conn.hang_up().await,
        Fault::TruncatedJson => {
            let full = answer(&s, &parts);
            let bytes = axum::body::to_bytes(full.into_body(), usize::MAX)
                .await
                .unwrap_or_default();
            respond(StatusCode::OK, JSON, bytes.slice(..bytes.len() / 2))
        }
        Fault::Html => respond(StatusCode::OK, HTML, CAPTIVE_PAGE),
        Fault::HtmlError(status) => {
            let status = status_code(status);
            let reason = status.canonical_reason().unwrap_or("Error");
            let code = status.as_u16();
            let page = format!(
                "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
            );
            respond(status, HTML, page)
        }
        Fault::Oversized(n) => respond(StatusCode::OK, JSON, Body::new(Oversized::new(n))),
        Fault::Body {
            status,
            content_type,
            body,
        } => {
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = status_code(status);
            if let Ok(v) = HeaderValue::from_str(&content_type) {
                resp.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            resp
        }
    }
}

/// What a proxy's captive portal serves.
const CAPTIVE_PAGE: &str = "<!DOCTYPE html>\n<html>\n<head><title>Network Access Required</title></head>\n<body>\n<h1>Sign in to the network</h1>\n<p>You must log in to this network before you can access the Internet.</p>\n<form method=\"post\" action=\"/login\"><input type=\"submit\" value=\"Accept and continue\"></form>\n</body>\n</html>\n";

/// A response body of exactly `n` bytes, produced in chunks: a token-response prefix, `A`s,
/// and a closing suffix when there is room for it (then the whole is one JSON object).
struct Oversized {
    prefix: &'static [u8],
    fill: usize,
    suffix: &'static [u8],
}

const OVERSIZED_PREFIX: &[u8] = b"{\"access_token\":\"";
const OVERSIZED_SUFFIX: &[u8] =
    b"\",\"expires_in\":\"3599\",\"expires_on\":\"4102444800\",\"resource\":\"https://management.azure.com/\",\"token_type\":\"Bearer\"}";
const CHUNK: usize = 64 * 1024;
static FILLER: [u8; CHUNK] = [b'A'; CHUNK];

impl Oversized {
    fn new(n: usize) -> Self {
        let frame = OVERSIZED_PREFIX.len() + OVERSIZED_SUFFIX.len();
        if n >= frame {
            Oversized {
                prefix: OVERSIZED_PREFIX,
                fill: n - frame,
                suffix: OVERSIZED_SUFFIX,
            }
        } else {
            Oversized {
                prefix: &OVERSIZED_PREFIX[..n.min(OVERSIZED_PREFIX.len())],
                fill: n.saturating_sub(OVERSIZED_PREFIX.len()),
                suffix: b"",
            }
        }
    }

    fn remaining(&self) -> usize {
        self.prefix.len() + self.fill + self.suffix.len()
    }
}

impl http_body::Body for Oversized {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let chunk = if !self.prefix.is_empty() {
            Bytes::from_static(std::mem::take(&mut self.prefix))
        } else if self.fill > 0 {
            let k = self.fill.min(CHUNK);
            self.fill -= k;
            Bytes::from_static(&FILLER[..k])
        } else if !self.suffix.is_empty() {
            Bytes::from_static(std::mem::take(&mut self.suffix))
        } else {
            return Poll::Ready(None);
        };
        Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining() == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;
    use serde_json::Value;

    fn drain(mut b: Oversized) -> Vec<u8> {
        let mut out = Vec::new();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        while let Poll::Ready(Some(Ok(f))) = Pin::new(&mut b).poll_frame(&mut cx) {
            out.extend_from_slice(f.data_ref().expect("data frame"));
        }
        out
    }

    #[test]
    fn oversized_has_exact_length() {
        for n in [0, 1, 5, 17, 18, 100, 150, CHUNK + 7, 3 * CHUNK] {
            let b = Oversized::new(n);
            assert_eq!(b.size_hint().exact(), Some(n as u64));
            let bytes = drain(b);
            assert_eq!(bytes.len(), n, "n = {n}");
            if n >= OVERSIZED_PREFIX.len() + OVERSIZED_SUFFIX.len() {
                let v: Value = serde_json::from_slice(&bytes).expect("complete JSON");
                assert_eq!(v["token_type"], "Bearer");
            }
        }
    }
}
