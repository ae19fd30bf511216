//! A small Microsoft Graph v1.0 client: every request goes through the `entra-mi-reqwest`
//! middleware (the token is attached only to the Graph origin), 429s wait for `Retry-After`,
//! `@odata.nextLink` pages are followed (same origin only), and Graph's errors keep their code
//! and message.

use std::time::Duration;

use entra_mi::{Audience, Route, TokenProvider};
use entra_mi_reqwest::BearerAuthMiddleware;
use reqwest::Method;
use serde_json::Value;

use crate::loopback::is_loopback;
use crate::{Failure, printable};

/// At most this many attempts per request when Graph throttles.
const MAX_ATTEMPTS: u32 = 5;
/// At most this many pages of one listing.
const MAX_PAGES: usize = 1000;
/// The most bytes of one Graph response body that are read (16 MiB). A page of a listing is at
/// most 999 items (`$top=999`); 999 service principals with their `appRoles` and
/// `oauth2PermissionScopes`, or 999 app-role assignments, are a few MiB at most, so 16 MiB leaves
/// ample room for legitimate pages while a misbehaving server (or a mistaken `--graph-url`)
/// cannot make the command buffer more. A declared `Content-Length` above it is refused before
/// any of the body is read; an undeclared (chunked) body is refused as soon as it passes it.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// The most bytes of response bodies that one listing ([`Graph::get_all`]) reads over all its
/// pages (64 MiB). [`MAX_PAGES`] bounds the page count, but not memory: 1000 pages of up to
/// [`MAX_BODY`] each are 16 GiB, and the items of every page are kept until the listing ends.
/// The listings this command makes (service principals filtered by `appId` or `displayName`,
/// one principal's app-role assignments) are kilobytes to a few MiB, so 64 MiB is far above any
/// real answer and keeps the parsed items to a few hundred MiB at worst. The pages are read
/// against what is left of this budget, so a listing never buffers past it.
const MAX_LISTING: usize = 64 * 1024 * 1024;

/// What can go wrong talking to Graph.
#[derive(Debug)]
#[non_exhaustive]
pub(crate) enum GraphError {
    /// Graph answered with an error (its code and message with control characters
    /// replaced: see [`printable`]).
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// A response body was larger than [`MAX_BODY`]; it was not read (further).
    BodyTooLarge {
        /// The request's URL without its query ([`redacted`]).
        url: String,
        status: u16,
        limit: usize,
        /// The `Content-Length` the server declared, if it did.
        declared: Option<u64>,
    },
    /// The pages of one listing added up to more than [`MAX_LISTING`].
    ListingTooLarge {
        /// The listing's first URL without its query ([`redacted`]).
        url: String,
        limit: usize,
        /// The page that went past the limit (1-based).
        page: usize,
    },
    /// A successful answer whose body is not JSON (an HTML error page of a proxy, say).
    NotJson {
        /// The request's URL without its query ([`redacted`]).
        url: String,
        status: u16,
        content_type: Option<String>,
        /// Where and why parsing failed (`serde_json`'s message, with line and column).
        detail: String,
    },
    /// No (usable) answer.
    Transport(String),
}

/// How [`Graph::send_capped`] fails.
enum Capped {
    Graph(GraphError),
    /// The body passed the caller's `cap`, which is below [`MAX_BODY`].
    Budget {
        status: u16,
    },
}

impl From<GraphError> for Capped {
    fn from(e: GraphError) -> Self {
        Capped::Graph(e)
    }
}

/// `limit` in MiB when it is a whole number of them, else in bytes.
fn size(limit: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if limit.is_multiple_of(MIB) {
        format!("{} MiB", limit / MIB)
    } else {
        format!("{limit} bytes")
    }
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GraphError::Api {
                status,
                code,
                message,
            } => write!(
                f,
                "Microsoft Graph answered HTTP {status} {code}: {message}"
            ),
            GraphError::BodyTooLarge {
                url,
                status,
                limit,
                declared,
            } => {
                write!(
                    f,
                    "Microsoft Graph: the HTTP {status} answer from {url} is larger than the {} limit on a response body",
                    size(*limit)
                )?;
                if let Some(len) = declared {
                    write!(f, " (Content-Length: {len})")?;
                }
                write!(f, "; not read (is the Graph URL right?)")
            }
            GraphError::ListingTooLarge { url, limit, page } => write!(
                f,
                "Microsoft Graph: the listing {url} passed the {} limit on a whole listing at page {page}; not read further",
                size(*limit)
            ),
            GraphError::NotJson {
                url,
                status,
                content_type,
                detail,
            } => write!(
                f,
                "Microsoft Graph: the HTTP {status} answer from {url} (Content-Type: {}) is not JSON: {detail} (is the Graph URL right?)",
                content_type.as_deref().unwrap_or("none")
            ),
            GraphError::Transport(m) => write!(f, "Microsoft Graph: {m}"),
        }
    }
}

/// `url` without its query, fragment or credentials, for messages: a query may carry a
/// `$skiptoken` or the names being looked up; `?…` marks that there was one.
fn redacted(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "(an invalid URL)".to_owned();
    };
    let had_query = parsed.query().is_some();
    parsed.set_query(None);
    parsed.set_fragment(None);
    // Fails only for URLs that cannot have credentials, which then have none.
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    let mut out = String::from(parsed);
    if had_query {
        out.push_str("?…");
    }
    out
}

/// Why [`read_capped`] stopped.
enum Exceeded {
    /// The declared `Content-Length` was above the cap; nothing was read.
    Declared(u64),
    /// The body passed the cap while being read.
    Streamed,
}

/// The body of `resp`, at most `cap` bytes: a larger declared `Content-Length` is refused up
/// front, an undeclared body as soon as it passes `cap`. The loop reads one chunk per turn and
/// ends at the end of the body, at the cap or at the client's timeout.
async fn read_capped(
    mut resp: reqwest::Response,
    cap: usize,
) -> Result<Result<Vec<u8>, Exceeded>, reqwest::Error> {
    if let Some(len) = resp.content_length()
        && len > cap as u64
    {
        return Ok(Err(Exceeded::Declared(len)));
    }
    let mut body = Vec::with_capacity(resp.content_length().map_or(0, |len| len as usize));
    while let Some(chunk) = resp.chunk().await? {
        if chunk.len() > cap - body.len() {
            return Ok(Err(Exceeded::Streamed));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Ok(body))
}

impl From<GraphError> for Failure {
    fn from(e: GraphError) -> Self {
        Failure::new(e.to_string())
    }
}

/// A Microsoft Graph base URL (`--graph-url`, `ENTRA_MI_GRAPH_URL`): absolute, `https` (plain
/// `http` only to a loopback host, the emulator), without query or credentials; `/v1.0` is
/// appended unless it is there.
#[derive(Clone)]
pub(crate) struct GraphUrl {
    /// The base with `/v1.0`, no trailing slash.
    url: url::Url,
    /// Its origin and the audience of the tokens it gets: Graph of that cloud
    /// (`https://<host>`), or the public cloud's Graph for a loopback URL (the emulator).
    route: Route,
}

impl std::fmt::Debug for GraphUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("GraphUrl").field(&self.url.as_str()).finish()
    }
}

impl GraphUrl {
    /// Microsoft Graph in the public cloud.
    pub(crate) const PUBLIC: &str = "https://graph.microsoft.com";

    /// Checks `value` (a clap value parser: its errors are usage errors).
    pub(crate) fn parse(value: &str) -> Result<GraphUrl, String> {
        let mut url = url::Url::parse(value).map_err(|e| format!("not an absolute URL ({e})"))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err("the URL has no host".into());
        }
        if url.scheme() != "https" && !(url.scheme() == "http" && is_loopback(&url)) {
            return Err("must be https (plain http only for a loopback emulator)".into());
        }
        if url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err("must not carry a query, fragment or credentials".into());
        }
        let path = url.path().trim_end_matches('/').to_owned();
        let path = if path.ends_with("/v1.0") {
            path
        } else {
            format!("{path}/v1.0")
        };
        url.set_path(&path);
        let host = url.host_str().unwrap_or_default();
        let origin = format!("{}://{host}", url.scheme())
            + &url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let audience = if is_loopback(&url) {
            Audience::microsoft_graph()
        } else {
            Audience::new(&format!("https://{host}")).map_err(|e| e.to_string())?
        };
        let route = Route::new(&origin, audience).map_err(|e| e.to_string())?;
        Ok(GraphUrl { url, route })
    }

    /// True when the host is on loopback (the emulator, or any local program).
    pub(crate) fn is_loopback(&self) -> bool {
        is_loopback(&self.url)
    }
}

impl std::fmt::Display for GraphUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.url.as_str())
    }
}

pub(crate) struct Graph {
    http: reqwest_middleware::ClientWithMiddleware,
    /// `https://graph.microsoft.com/v1.0` (no trailing slash).
    base: String,
    origin: url::Origin,
}

impl Graph {
    /// A client for the Graph at `base`, with tokens for its audience. A loopback URL (the
    /// emulator) is the public cloud's Graph and may be plain `http`: the caller makes sure
    /// such a token comes from a loopback source too.
    pub(crate) fn new(base: &GraphUrl, provider: &TokenProvider) -> Result<Graph, Failure> {
        let url = &base.url;
        let middleware = BearerAuthMiddleware::builder(provider)
            .route(base.route.clone())
            .allow_http_loopback(base.is_loopback())
            .build()?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Failure::new(format!("cannot build the HTTP client: {e}")))?;
        Ok(Graph {
            http: reqwest_middleware::ClientBuilder::new(client)
                .with(middleware)
                .build(),
            origin: url.origin(),
            base: url.as_str().trim_end_matches('/').to_owned(),
        })
    }

    /// `<base>/<path>` with query parameters, encoded.
    pub(crate) fn url(&self, path: &str, query: &[(&str, &str)]) -> String {
        let mut url =
            url::Url::parse(&format!("{}/{path}", self.base)).expect("the base is a valid URL");
        if !query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        url.into()
    }

    /// One request; waits out `429 Retry-After` (at most [`MAX_ATTEMPTS`] attempts). The body is
    /// read up to [`MAX_BODY`] bytes.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, GraphError> {
        self.send_capped(method, url, body, MAX_BODY)
            .await
            .map(|(value, _)| value)
            .map_err(|e| match e {
                Capped::Graph(e) => e,
                // Only a `cap` below `MAX_BODY` yields this; kept total all the same.
                Capped::Budget { status } => GraphError::BodyTooLarge {
                    url: redacted(url),
                    status,
                    limit: MAX_BODY,
                    declared: None,
                },
            })
    }

    /// [`Graph::send`] reading at most `cap` (≤ [`MAX_BODY`]) bytes of the body; also returns the
    /// body's length. Past [`MAX_BODY`] it is [`GraphError::BodyTooLarge`]; past a smaller `cap`
    /// it is [`Capped::Budget`], for the caller to name its own limit.
    async fn send_capped(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        cap: usize,
    ) -> Result<(Value, usize), Capped> {
        let transport = |e: reqwest::Error| {
            GraphError::Transport(format!("{} ({})", e.without_url(), redacted(url)))
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self.http.request(method.clone(), url);
            if let Some(b) = body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.to_string());
            }
            let resp = req.send().await.map_err(|e| match e {
                reqwest_middleware::Error::Reqwest(e) => transport(e),
                other => GraphError::Transport(other.to_string()),
            })?;
            let status = resp.status().as_u16();
            if status == 429 && attempt < MAX_ATTEMPTS {
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                // The body of a throttled answer is not needed; dropping it closes the stream.
                drop(resp);
                let wait = Duration::from_secs(retry_after.unwrap_or(2u64.pow(attempt)).min(120));
                crate::progress::note(&format!(
                    "Microsoft Graph is throttling; waiting {} s",
                    wait.as_secs()
                ));
                tokio::time::sleep(wait).await;
                continue;
            }
            let content_type = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(100).collect::<String>());
            let bytes = match read_capped(resp, cap.min(MAX_BODY))
                .await
                .map_err(transport)?
            {
                Ok(bytes) => bytes,
                Err(exceeded) => {
                    let declared = match exceeded {
                        Exceeded::Declared(len) => Some(len),
                        Exceeded::Streamed => None,
                    };
                    // Over the listing's budget but not over a page's limit: the caller's limit.
                    if cap < MAX_BODY && declared.is_none_or(|len| len <= MAX_BODY as u64) {
                        return Err(Capped::Budget { status });
                    }
                    return Err(Capped::Graph(GraphError::BodyTooLarge {
                        url: redacted(url),
                        status,
                        limit: MAX_BODY,
                        declared,
                    }));
                }
            };
            if (200..300).contains(&status) {
                if bytes.is_empty() {
                    return Ok((Value::Null, 0));
                }
                return match serde_json::from_slice(&bytes) {
                    Ok(value) => Ok((value, bytes.len())),
                    Err(e) => Err(Capped::Graph(GraphError::NotJson {
                        url: redacted(url),
                        status,
                        content_type,
                        detail: e.to_string(),
                    })),
                };
            }
            let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
            let err = parsed.as_ref().map(|v| &v["error"]);
            // Graph's own words, made safe to print.
            let text = |k: &str| {
                err.and_then(|e| e[k].as_str())
                    .map(|s| printable::text(s).into_owned())
            };
            return Err(Capped::Graph(GraphError::Api {
                status,
                code: text("code").unwrap_or_else(|| "(no error code)".into()),
                message: text("message").unwrap_or_else(|| "(no error message)".into()),
            }));
        }
    }

    /// Every item of a listing, following `@odata.nextLink` on the same origin: at most
    /// [`MAX_PAGES`] pages and [`MAX_LISTING`] bytes of bodies in all.
    pub(crate) async fn get_all(&self, url: &str) -> Result<Vec<Value>, GraphError> {
        let mut items = Vec::new();
        let mut next = Some(url.to_owned());
        let mut read = 0usize;
        let mut pages = 0;
        while let Some(page_url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(GraphError::Transport(format!(
                    "the listing {} has more than {MAX_PAGES} pages",
                    redacted(url)
                )));
            }
            let (mut page, len) = match self
                .send_capped(Method::GET, &page_url, None, MAX_LISTING - read)
                .await
            {
                Ok(answer) => answer,
                Err(Capped::Graph(e)) => return Err(e),
                Err(Capped::Budget { .. }) => {
                    return Err(GraphError::ListingTooLarge {
                        url: redacted(url),
                        limit: MAX_LISTING,
                        page: pages,
                    });
                }
            };
            read += len;
            if let Some(link) = page["@odata.nextLink"].as_str() {
                let parsed = url::Url::parse(link)
                    .map_err(|_| GraphError::Transport("an invalid @odata.nextLink".into()))?;
                if parsed.origin() != self.origin {
                    return Err(GraphError::Transport(format!(
                        "@odata.nextLink points to another host ({}); not followed",
                        parsed.host_str().unwrap_or("?")
                    )));
                }
                next = Some(link.to_owned());
            }
            match page.get_mut("value").map(Value::take) {
                Some(Value::Array(values)) => items.extend(values),
                _ => {
                    return Err(GraphError::Transport(format!(
                        "a listing without `value` ({})",
                        redacted(&page_url)
                    )));
                }
            }
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_urls() {
        let public = GraphUrl::parse(GraphUrl::PUBLIC).unwrap();
        assert_eq!(public.to_string(), "https://graph.microsoft.com/v1.0");
        assert!(!public.is_loopback());
        let china = GraphUrl::parse("https://microsoftgraph.chinacloudapi.cn/v1.0/").unwrap();
        assert_eq!(
            china.to_string(),
            "https://microsoftgraph.chinacloudapi.cn/v1.0"
        );
        let emulator = GraphUrl::parse("http://127.0.0.1:8080").unwrap();
        assert!(emulator.is_loopback());
        for (bad, why) in [
            ("graph.microsoft.com", "absolute"),
            ("http://graph.microsoft.com", "https"),
            ("http://0.0.0.0:8080", "https"),
            ("https://graph.microsoft.com/?$top=1", "query"),
            ("https://graph.microsoft.com/#x", "fragment"),
            ("https://user:pw@graph.microsoft.com", "credentials"),
        ] {
            let e = GraphUrl::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("pw"), "{e}");
        }
    }
}
