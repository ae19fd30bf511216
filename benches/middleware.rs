//! The cost of the two middlewares, each against a baseline measured in the same run:
//!
//! * **tower** — `BearerAuthLayer` (route match + cached header) against tower-http's
//!   `AddAuthorizationLayer` with a static bearer token, both on a no-op inner service, plus
//!   the bare no-op service so the cost each layer *adds* can be compared too;
//! * **reqwest** — a GET to a loopback HTTP/1.1 server through `reqwest-middleware` with and
//!   without `BearerAuthMiddleware` (and plain `reqwest` for reference).
//!
//! Tokens come from a credential that returns a long-lived token at once, so the cache is
//! warm and the benches measure the hot path. After the criterion run the ratios are printed.
//! Run: `cargo bench --bench middleware`.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use criterion::{Criterion, criterion_group};
use entra_mi::{AccessToken, Audience, Error, Route, TokenCredential, TokenProvider, TokenRequest};
use entra_mi_reqwest::BearerAuthMiddleware;
use entra_mi_tower::BearerAuthLayer;
use http::{Request, Response, Uri};
use tower::{Layer, Service};
use tower_http::auth::AddAuthorizationLayer;

const TOKEN_BODY: usize = 1200;

#[derive(Debug)]
struct FixedToken;

#[async_trait]
impl TokenCredential for FixedToken {
    async fn get_token(&self, _: &TokenRequest) -> Result<AccessToken, Error> {
        Ok(AccessToken::new(
            token(),
            SystemTime::now() + Duration::from_secs(86_400),
        ))
    }
    fn name(&self) -> &str {
        "fixed"
    }
}

fn token() -> String {
    format!("eyJ0eXAiOiJKV1QifQ.{}.c2lnbmF0dXJl", "x".repeat(TOKEN_BODY))
}

/// A service that answers at once.
#[derive(Clone, Copy)]
struct Noop;

impl Service<Request<()>> for Noop {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: Request<()>) -> Self::Future {
        black_box(&req);
        ready(Ok(Response::new(())))
    }
}

/// Calls `svc` once with a fresh request and polls the future once (it is ready at once).
fn call_once<S>(svc: &mut S, uri: &Uri) -> bool
where
    S: Service<Request<()>, Response = Response<()>>,
{
    let mut cx = Context::from_waker(Waker::noop());
    let mut req = Request::new(());
    *req.uri_mut() = uri.clone();
    let fut = svc.call(req);
    match pin!(fut).poll(&mut cx) {
        Poll::Ready(Ok(r)) => r.status().is_success(),
        _ => panic!("the no-op service answers at once"),
    }
}

fn tower_noop(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();
    let provider = TokenProvider::new(FixedToken);
    let graph = Audience::microsoft_graph();
    rt.block_on(provider.header(&graph)).unwrap();
    let layer = BearerAuthLayer::builder(&provider)
        .route(Route::azure_resource_manager())
        .route(Route::key_vault("https://my-vault.vault.azure.net").unwrap())
        .route(Route::microsoft_graph())
        .build()
        .unwrap();
    let uri: Uri = "https://graph.microsoft.com/v1.0/servicePrincipals?$top=5"
        .parse()
        .unwrap();
    let mut bare = Noop;
    let mut ours = layer.layer(Noop);
    let mut static_auth = AddAuthorizationLayer::bearer(&token())
        .as_sensitive(true)
        .layer(Noop);

    let mut g = c.benchmark_group("tower_noop");
    g.bench_function("bare_noop_service", |b| {
        b.iter(|| call_once(&mut bare, black_box(&uri)))
    });
    g.bench_function("tower_http_add_authorization", |b| {
        b.iter(|| call_once(&mut static_auth, black_box(&uri)))
    });
    g.bench_function("entra_mi_bearer_auth", |b| {
        b.iter(|| call_once(&mut ours, black_box(&uri)))
    });
    g.finish();
}

/// A loopback HTTP/1.1 server answering `200 ok` to everything.
async fn loopback_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|| async { "ok" });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn reqwest_loopback(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let base = rt.block_on(loopback_server());
    let provider = TokenProvider::new(FixedToken);
    let audience = Audience::new("api://bench").unwrap();
    rt.block_on(provider.header(&audience)).unwrap();
    let auth = BearerAuthMiddleware::builder(&provider)
        .route(Route::new(&base, audience).unwrap())
        .allow_http_loopback(true)
        .build()
        .unwrap();
    let plain = reqwest::Client::new();
    let without = reqwest_middleware::ClientBuilder::new(plain.clone()).build();
    let with = reqwest_middleware::ClientBuilder::new(plain.clone())
        .with(auth)
        .build();
    let url = format!("{base}/orders/7");

    let mut g = c.benchmark_group("reqwest_loopback");
    g.bench_function("plain_reqwest", |b| {
        b.iter(|| {
            rt.block_on(async { plain.get(&url).send().await.unwrap().bytes().await.unwrap() })
        })
    });
    g.bench_function("middleware_client_without", |b| {
        b.iter(|| {
            rt.block_on(async {
                without
                    .get(&url)
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap()
            })
        })
    });
    g.bench_function("middleware_client_with_bearer_auth", |b| {
        b.iter(|| {
            rt.block_on(async { with.get(&url).send().await.unwrap().bytes().await.unwrap() })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = tower_noop, reqwest_loopback
}

fn mean_ns(group: &str, id: &str) -> Option<f64> {
    let dir = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").to_owned());
    let path = format!("{dir}/criterion/{group}/{id}/new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

fn print_ratios() {
    println!("\nratios (mean time; lower is faster):");
    if let (Some(bare), Some(stat), Some(ours)) = (
        mean_ns("tower_noop", "bare_noop_service"),
        mean_ns("tower_noop", "tower_http_add_authorization"),
        mean_ns("tower_noop", "entra_mi_bearer_auth"),
    ) {
        println!(
            "  tower, no-op inner: bare {bare:.1} ns, AddAuthorization {stat:.1} ns, BearerAuth {ours:.1} ns"
        );
        println!(
            "    BearerAuth / AddAuthorization = {:.2}x (target <= 1.3x); added cost {:.1} ns vs {:.1} ns = {:.2}x",
            ours / stat,
            ours - bare,
            stat - bare,
            (ours - bare) / (stat - bare)
        );
    }
    if let (Some(plain), Some(without), Some(with)) = (
        mean_ns("reqwest_loopback", "plain_reqwest"),
        mean_ns("reqwest_loopback", "middleware_client_without"),
        mean_ns("reqwest_loopback", "middleware_client_with_bearer_auth"),
    ) {
        println!(
            "  reqwest to loopback: plain {:.1} us, middleware client {:.1} us, with BearerAuthMiddleware {:.1} us",
            plain / 1e3,
            without / 1e3,
            with / 1e3
        );
        println!(
            "    overhead of BearerAuthMiddleware = {:+.2} % (target <= 2 %); vs plain reqwest {:+.2} %",
            (with / without - 1.0) * 100.0,
            (with / plain - 1.0) * 100.0
        );
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if std::env::args().any(|a| a == "--bench") {
        print_ratios();
    }
}
