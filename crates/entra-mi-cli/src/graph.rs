//! A small Microsoft Graph v1.0 client: every request goes through the `entra-mi-reqwest`
//! middleware (the token is attached only to the Graph origin), 429s wait for `Retry-After`,
//! `@odata.nextLink` pages are followed (same origin only), and Graph's errors keep their code
//! and message.

use std::time::Duration;

use entra_mi::{Audience, Route, TokenProvider};
use entra_mi_reqwest::BearerAuthMiddleware;
use reqwest::Method;
use serde_json::Value;

use crate::Failure;

/// At most this many attempts per request when Graph throttles.
const MAX_ATTEMPTS: u32 = 5;
/// At most this many pages of one listing.
const MAX_PAGES: usize = 1000;

/// What can go wrong talking to Graph.
#[derive(Debug)]
pub(crate) enum GraphError {
    /// Graph answered with an error.
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// No (usable) answer.
    Transport(String),
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
            GraphError::Transport(m) => write!(f, "Microsoft Graph: {m}"),
        }
    }
}

impl From<GraphError> for Failure {
    fn from(e: GraphError) -> Self {
        Failure::auth(e.to_string())
    }
}

pub(crate) struct Graph {
    http: reqwest_middleware::ClientWithMiddleware,
    /// `https://graph.microsoft.com/v1.0` (no trailing slash).
    base: String,
    origin: url::Origin,
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl Graph {
    /// A client for the Graph at `base_url` (`https://graph.microsoft.com`, with or without
    /// `/v1.0`). Tokens are for the Graph of that cloud (`https://<host>`); a loopback URL (the
    /// emulator) is the public cloud's Graph and may be plain `http`.
    pub(crate) fn new(base_url: &str, provider: &TokenProvider) -> Result<Graph, Failure> {
        let bad = |why: &str| Failure::usage(format!("Graph URL {base_url:?}: {why}"));
        let mut url = url::Url::parse(base_url).map_err(|_| bad("not an absolute URL"))?;
        let loopback = is_loopback(&url);
        if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
            return Err(bad(
                "must be https (plain http only for a loopback emulator)",
            ));
        }
        if url.query().is_some() || !url.username().is_empty() {
            return Err(bad("must not carry a query or credentials"));
        }
        let path = url.path().trim_end_matches('/').to_owned();
        let path = if path.ends_with("/v1.0") {
            path
        } else {
            format!("{path}/v1.0")
        };
        url.set_path(&path);
        let origin_url = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default())
            + &url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let audience = if loopback {
            Audience::microsoft_graph()
        } else {
            Audience::new(&format!("https://{}", url.host_str().unwrap_or_default()))?
        };
        let route = Route::new(&origin_url, audience)?;
        let middleware = BearerAuthMiddleware::builder(provider)
            .route(route)
            .allow_http_loopback(loopback)
            .build()?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Failure::auth(format!("cannot build the HTTP client: {e}")))?;
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

    /// One request; waits out `429 Retry-After` (at most [`MAX_ATTEMPTS`] attempts).
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, GraphError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self.http.request(method.clone(), url);
            if let Some(b) = body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.to_string());
            }
            let resp = req
                .send()
                .await
                .map_err(|e| GraphError::Transport(e.to_string()))?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| GraphError::Transport(e.to_string()))?;
            if status == 429 && attempt < MAX_ATTEMPTS {
                let wait = Duration::from_secs(retry_after.unwrap_or(2u64.pow(attempt)).min(120));
                crate::progress::note(&format!(
                    "Microsoft Graph is throttling; waiting {} s",
                    wait.as_secs()
                ));
                tokio::time::sleep(wait).await;
                continue;
            }
            if (200..300).contains(&status) {
                if bytes.is_empty() {
                    return Ok(Value::Null);
                }
                return serde_json::from_slice(&bytes).map_err(|_| {
                    GraphError::Transport(format!("HTTP {status} with a body that is not JSON"))
                });
            }
            let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
            let err = parsed.as_ref().map(|v| &v["error"]);
            let text = |k: &str| err.and_then(|e| e[k].as_str()).map(str::to_owned);
            return Err(GraphError::Api {
                status,
                code: text("code").unwrap_or_else(|| "(no error code)".into()),
                message: text("message").unwrap_or_else(|| "(no error message)".into()),
            });
        }
    }

    /// Every item of a listing, following `@odata.nextLink` on the same origin.
    pub(crate) async fn get_all(&self, url: &str) -> Result<Vec<Value>, GraphError> {
        let mut items = Vec::new();
        let mut next = Some(url.to_owned());
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(GraphError::Transport(format!(
                    "more than {MAX_PAGES} pages"
                )));
            }
            let page = self.send(Method::GET, &url, None).await?;
            if let Some(values) = page["value"].as_array() {
                items.extend(values.iter().cloned());
            } else {
                return Err(GraphError::Transport("a listing without `value`".into()));
            }
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
        }
        Ok(items)
    }
}
