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

mod support;
use support::{FixedToken, batch_of, interleaved, mean_ns, token};

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use entra_mi::{Audience, Route, TokenProvider};
use entra_mi_reqwest::BearerAuthMiddleware;
use entra_mi_tower::BearerAuthLayer;
use http::{Request, Response, Uri};
use tower::{Layer, Service};
use tower_http::auth::AddAuthorizationLayer;

fn static_header_len() -> usize {
    "Bearer ".len() + token().len()
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

/// The tower layer both tower benches use — three routes (Azure Resource Manager, a Key
/// Vault, Microsoft Graph), Graph's token cached — and the request URI (for Graph).
fn tower_setup(rt: &tokio::runtime::Runtime, provider: &TokenProvider) -> (BearerAuthLayer, Uri) {
    rt.block_on(provider.header(&Audience::microsoft_graph()))
        .unwrap();
    let layer = BearerAuthLayer::builder(provider)
        .route(Route::azure_resource_manager())
        .route(Route::key_vault("https://my-vault.vault.azure.net").unwrap())
        .route(Route::microsoft_graph())
        .build()
        .unwrap();
    let uri = "https://graph.microsoft.com/v1.0/servicePrincipals?$top=5"
        .parse()
        .unwrap();
    (layer, uri)
}

fn tower_noop(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();
    let provider = TokenProvider::new(FixedToken::default());
    let graph = Audience::microsoft_graph();
    let (layer, uri) = tower_setup(&rt, &provider);
    let mut bare = Noop;
    let mut ours = layer.layer(Noop);
    let mut ours_no_recovery = layer.clone().recover_unauthorized(false).layer(Noop);
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
    g.bench_function("entra_mi_bearer_auth_no_recovery", |b| {
        b.iter(|| call_once(&mut ours_no_recovery, black_box(&uri)))
    });
    g.finish();

    // Where BearerAuth's time goes.
    let router = layer.router().clone();
    let handle = provider.handle(&graph);
    let mut g = c.benchmark_group("tower_parts");
    g.bench_function("route_match_uri", |b| {
        b.iter(|| router.match_uri(black_box(&uri)).is_some())
    });
    g.bench_function("handle_cached_header", |b| {
        b.iter(|| black_box(&handle).cached_header())
    });
    g.bench_function("new_request_with_uri", |b| {
        b.iter(|| {
            let mut req = Request::new(());
            *req.uri_mut() = black_box(&uri).clone();
            req
        })
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
    let provider = TokenProvider::new(FixedToken::default());
    let audience = Audience::new("api://bench").unwrap();
    rt.block_on(provider.header(&audience)).unwrap();
    let auth = BearerAuthMiddleware::builder(&provider)
        .route(Route::new(&base, audience.clone()).unwrap())
        .allow_http_loopback(true)
        .build()
        .unwrap();
    let auth_no_recovery = BearerAuthMiddleware::builder(&provider)
        .route(Route::new(&base, audience.clone()).unwrap())
        .allow_http_loopback(true)
        .recover_unauthorized(false)
        .build()
        .unwrap();
    let plain = reqwest::Client::new();
    let without = reqwest_middleware::ClientBuilder::new(plain.clone()).build();
    let with = reqwest_middleware::ClientBuilder::new(plain.clone())
        .with(auth)
        .build();
    let with_no_recovery = reqwest_middleware::ClientBuilder::new(plain.clone())
        .with(auth_no_recovery)
        .build();
    // What a caller would send without this crate: the same header, set by hand.
    let static_header = rt.block_on(provider.header(&audience)).unwrap();
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
    g.bench_function("middleware_client_static_header", |b| {
        b.iter(|| {
            rt.block_on(async {
                let req = without
                    .get(&url)
                    .header(http::header::AUTHORIZATION, static_header.clone());
                req.send().await.unwrap().bytes().await.unwrap()
            })
        })
    });
    g.bench_function("middleware_client_with_bearer_auth", |b| {
        b.iter(|| {
            rt.block_on(async { with.get(&url).send().await.unwrap().bytes().await.unwrap() })
        })
    });
    g.bench_function("middleware_client_with_bearer_auth_no_recovery", |b| {
        b.iter(|| {
            rt.block_on(async {
                with_no_recovery
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
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = tower_noop, reqwest_loopback
}

fn print_ratios() {
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
        if let Some(no_rec) = mean_ns("tower_noop", "entra_mi_bearer_auth_no_recovery") {
            println!(
                "    without 401 recovery: {no_rec:.1} ns = {:.2}x AddAuthorization",
                no_rec / stat
            );
        }
    }
    let us = |id| mean_ns("reqwest_loopback", id).map(|ns| ns / 1e3);
    if let (Some(plain), Some(without), Some(fixed), Some(with), Some(no_rec)) = (
        us("plain_reqwest"),
        us("middleware_client_without"),
        us("middleware_client_static_header"),
        us("middleware_client_with_bearer_auth"),
        us("middleware_client_with_bearer_auth_no_recovery"),
    ) {
        println!(
            "  reqwest to loopback: plain {plain:.1} us; middleware client: no header {without:.1} us, static header {fixed:.1} us, BearerAuthMiddleware {with:.1} us (without 401 recovery {no_rec:.1} us)"
        );
        let pct = |a: f64, b: f64| (a / b - 1.0) * 100.0;
        println!(
            "    BearerAuthMiddleware vs the same header set by hand: {:+.2} % (target <= 2 %); without recovery {:+.2} %",
            pct(with, fixed),
            pct(no_rec, fixed)
        );
        println!(
            "    vs no Authorization at all: {:+.2} % (includes sending a {}-byte header)",
            pct(with, without),
            static_header_len()
        );
    }
}

/// Loopback timings drift with the machine's load, so criterion's one-after-the-other runs
/// can disagree by more than the effect measured. This measures the reqwest pair
/// interleaved (A B B A …) and reports the means, trimmed means, medians and the median of
/// the per-pair ratios.
fn paired_reqwest_overhead() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let base = rt.block_on(loopback_server());
    let provider = TokenProvider::new(FixedToken::default());
    let audience = Audience::new("api://bench").unwrap();
    let static_header = rt.block_on(provider.header(&audience)).unwrap();
    let auth = BearerAuthMiddleware::builder(&provider)
        .route(Route::new(&base, audience).unwrap())
        .allow_http_loopback(true)
        .build()
        .unwrap();
    let plain = reqwest::Client::new();
    let without = reqwest_middleware::ClientBuilder::new(plain.clone()).build();
    let with = reqwest_middleware::ClientBuilder::new(plain)
        .with(auth)
        .build();
    let url = format!("{base}/orders/7");
    let fixed = || async {
        let req = without
            .get(&url)
            .header(http::header::AUTHORIZATION, static_header.clone());
        req.send().await.unwrap().bytes().await.unwrap();
    };
    let ours = || async {
        with.get(&url).send().await.unwrap().bytes().await.unwrap();
    };
    const PAIRS: usize = 20_000;
    let (mut times_fixed, mut times_ours, mut pair_ratios) = (Vec::new(), Vec::new(), Vec::new());
    rt.block_on(async {
        for _ in 0..500 {
            fixed().await;
            ours().await;
        }
        for i in 0..PAIRS {
            let (a, b) = if i % 2 == 0 {
                let t = std::time::Instant::now();
                fixed().await;
                let a = t.elapsed().as_secs_f64();
                let t = std::time::Instant::now();
                ours().await;
                (a, t.elapsed().as_secs_f64())
            } else {
                let t = std::time::Instant::now();
                ours().await;
                let b = t.elapsed().as_secs_f64();
                let t = std::time::Instant::now();
                fixed().await;
                (t.elapsed().as_secs_f64(), b)
            };
            times_fixed.push(a);
            times_ours.push(b);
            pair_ratios.push(b / a);
        }
    });
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (mean_fixed, mean_ours) = (mean(&times_fixed), mean(&times_ours));
    for v in [&mut times_fixed, &mut times_ours, &mut pair_ratios] {
        v.sort_by(f64::total_cmp);
    }
    let median = |v: &[f64]| v[v.len() / 2];
    // The mean without the slowest and fastest 5 %: a stall of the machine in one request
    // moves the plain mean by more than the effect measured.
    let trimmed = |v: &[f64]| mean(&v[v.len() / 20..v.len() - v.len() / 20]);
    let pct = |r: f64| (r - 1.0) * 100.0;
    println!(
        "  reqwest to loopback, {PAIRS} interleaved pairs: header by hand {:.1} us, BearerAuthMiddleware {:.1} us (means)",
        mean_fixed * 1e6,
        mean_ours * 1e6
    );
    println!(
        "    overhead (target <= 2 %): {:+.2} % of the means, {:+.2} % of the 5 %-trimmed means, {:+.2} % of the medians ({:.1} us vs {:.1} us), median of the per-pair ratios {:+.2} %",
        pct(mean_ours / mean_fixed),
        pct(trimmed(&times_ours) / trimmed(&times_fixed)),
        pct(median(&times_ours) / median(&times_fixed)),
        median(&times_ours) * 1e6,
        median(&times_fixed) * 1e6,
        pct(median(&pair_ratios))
    );
}

/// The tower pair measured interleaved too: batches of calls through `AddAuthorization` and
/// `BearerAuth` alternate (A B B A …), so drift in the machine's speed hits both alike. Reports
/// the median of the per-round ratios and the ratio of each side's fastest batch.
fn interleaved_tower() {
    const ROUNDS: usize = 400;
    const BATCH: u32 = 2_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();
    let provider = TokenProvider::new(FixedToken::default());
    let (layer, uri) = tower_setup(&rt, &provider);
    let mut ours = layer.layer(Noop);
    let mut static_auth = AddAuthorizationLayer::bearer(&token())
        .as_sensitive(true)
        .layer(Noop);
    let timings = interleaved(
        ROUNDS,
        BATCH,
        &mut [
            (
                "AddAuthorization",
                batch_of(|| call_once(&mut static_auth, black_box(&uri))),
            ),
            (
                "BearerAuth",
                batch_of(|| call_once(&mut ours, black_box(&uri))),
            ),
        ],
    );
    let (static_auth, ours) = (&timings[0], &timings[1]);
    let (q1, median, q3) = ours.ratio_to(static_auth);
    println!(
        "  tower, {ROUNDS} interleaved rounds of {BATCH} calls: BearerAuth / AddAuthorization median {median:.2}x (quartiles {q1:.2}x–{q3:.2}x); fastest batches {:.1} ns / {:.1} ns = {:.2}x (target <= 1.3x)",
        ours.best_ns(),
        static_auth.best_ns(),
        ours.best_ns() / static_auth.best_ns()
    );
}

fn main() {
    support::main(benches, || {
        print_ratios();
        interleaved_tower();
        paired_reqwest_overhead();
    });
}
